"""The smaller points of issue 16: every problem at once, allowed values in `trm list`, the task's extras in
`trm data info`, the curves hint, and the CPU starting recipe of docs/recipes.md."""

from __future__ import annotations

import json
import re
import sys

import attrs
import pytest
from click.testing import CliRunner

from trm import cli as cli_module
from trm.cli.plugins import describe_validator
from trm.config import load_recipe
from trm.errors import RecipeError

from conftest import REPO

QUICKSTART = REPO / "recipes" / "quickstart_4x4.yaml"


def problems_of(*overrides: str) -> list[str]:
    with pytest.raises(RecipeError) as caught:
        load_recipe(QUICKSTART, overrides)
    return [problem[problem.index("$."):] for problem in caught.value.problems]  # without the file / override


def test_an_unknown_key_does_not_hide_the_other_problems():
    problems = problems_of("optim.lrr=1", "optim.lr=-1", "task.options.bogus=1", "task.options.size=5",
                           "task.options.num_aug=-1", "backbone.options.nope=1", "backbone.options.layers=0")
    for expected in ("$.optim.lrr: unknown key (did you mean 'lr'?)", "$.optim.lr: must be >= 0 (got -1.0)",
                     "$.task.options.bogus: unknown key", "$.task.options.size: must be one of 4, 6, 9 (got 5)",
                     "$.task.options.num_aug: must be >= 0 (got -1)", "$.backbone.options.nope: unknown key",
                     "$.backbone.options.layers: must be > 0 (got 0)"):
        assert expected in problems, (expected, problems)


def test_evaluator_options_are_checked_even_when_the_recipe_is_broken_elsewhere():
    problems = problems_of("task.bogus=1", "eval.evaluators=[{name: exact_match, options: {q: 1}}, nope]")
    assert "$.task.bogus: unknown key" in problems
    assert "$.eval.evaluators[0].options.q: unknown key" in problems
    assert any(p.startswith("$.eval.evaluators[1].name: unknown evaluator 'nope'") for p in problems)


def test_describe_validator_reads_attrs_validators_and_descriptions():
    v = attrs.validators
    assert describe_validator(v.ge(1)) == ">= 1"
    assert describe_validator(v.and_(v.ge(0.0), v.lt(1.0))) == ">= 0.0, < 1.0"
    assert describe_validator(v.optional(v.ge(1))) == ">= 1, or null"
    assert describe_validator(v.in_([4, 6, 9])) == "one of 4, 6, 9"
    assert describe_validator(None) is None

    def even(instance, attribute, value):
        if value % 2:
            raise ValueError("must be even")

    assert describe_validator(even) is None
    even.description = "even"
    assert describe_validator(even) == "even"


def test_trm_list_shows_allowed_values():
    result = CliRunner().invoke(cli_module.cli, ["list", "tasks"])
    assert result.exit_code == 0
    assert "- size: int = 9  (one of 4, 6, 9)" in result.output  # sudoku
    assert "- wall_density: float = 0.35  (>= 0.0, < 1.0)" in result.output  # maze
    assert "- max_tasks: int | null = None  (>= 1, or null)" in result.output  # arc
    backbones = json.loads(CliRunner().invoke(cli_module.cli, ["list", "backbones", "--json"]).output)
    attention = {o["name"]: o for o in next(e for e in backbones if e["name"] == "attention")["options"]}
    assert attention["layers"]["allowed"] == "> 0"
    assert attention["positions"]["allowed"] is None  # a Literal: the type shows the choices already


def test_data_info_shows_the_tasks_extras(tmp_path):
    from trm.config import structure_options
    from trm.plugins import registry
    from trm.store_write import build_store

    task = registry("tasks").get("sudoku")
    store = tmp_path / "s.zarr"
    build_store(task, structure_options(task.options_class, {"size": 4, "num_train": 3, "num_test": 2, "num_aug": 1}),
                store, show_progress=False)
    text = CliRunner().invoke(cli_module.cli, ["data", "info", str(store)]).output
    assert "extras       board, generated_guesses (trm data info --json shows them)" in text
    meta = json.loads(CliRunner().invoke(cli_module.cli, ["data", "info", "--json", str(store)]).output)
    assert meta["extras"]["board"] == {"size": 4, "box": [2, 2]}
    assert len(meta["extras"]["generated_guesses"]["train"]) == 3
    bare = json.loads(CliRunner().invoke(cli_module.cli, ["data", "info", "--json", "--no-extras", str(store)]).output)
    assert "extras" not in bare and bare["fingerprint"] == meta["fingerprint"]


def test_the_curves_hint_is_right_with_and_without_matplotlib(monkeypatch):
    from trm.train import _plot_hint

    matplotlib = pytest.importorskip("matplotlib")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails as when it is not installed
    hint = _plot_hint(True)
    assert "pip install matplotlib" in hint and "-e" not in hint and ".[plot]" not in hint
    # The same module object back: a re-imported matplotlib would lack the submodules later tests draw with.
    monkeypatch.setitem(sys.modules, "matplotlib", matplotlib)
    assert _plot_hint(False) == "it is drawn at each evaluation, and none ran"


def test_the_cpu_starting_recipe_in_recipes_md_is_valid(tmp_path):
    text = (REPO / "docs" / "recipes.md").read_text()
    section = text.split("## A CPU-sized start for a new task", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, flags=re.S).group(1)
    recipe_file = tmp_path / "start.yaml"
    recipe_file.write_text(block)
    recipe = load_recipe(recipe_file, ["task={name: sudoku, options: {size: 4, num_train: 1000, num_test: 200}}"])
    assert recipe.backbone.name == "mlp_mixer" and recipe.optim.warmup_steps == 50
    result = CliRunner().invoke(cli_module.cli, ["recipe", "validate", str(recipe_file),
                                                 "task={name: sudoku, options: {size: 4}}"])
    assert result.exit_code == 0, result.output
    table = section.split("Why each value", 1)[1].split("\n\n", 2)[1]
    explained = " ".join(re.findall(r"^\| ([^|]+) \|", table, flags=re.M))
    for key in ("backbone", "max_steps", "hidden_size", "h_cycles", "puzzle_emb_len", "lr", "weight_decay",
                "warmup_steps", "global_batch_size", "ema", "epochs", "eval.every", "log_every"):
        assert key in explained, key


def test_trm_runs_shows_a_plugin_evaluators_own_metric_when_there_is_no_exact_accuracy():
    from trm.cli.runs import headline

    record = {"kind": "eval", "step": 400, "takuzu/board_accuracy": 0.175, "takuzu/cell_accuracy": 0.94,
              "takuzu/examples": 200.0, "eval/puzzles_per_s": 50.0}
    assert headline(record) == "takuzu/board_accuracy=0.1750"
    assert headline({**record, "exact_match/exact_accuracy": 0.5}) == "exact_match/exact_accuracy=0.5000"
    assert headline({"kind": "eval", "step": 3, "eval/examples": 4.0}) == "-"


def test_a_plugin_recipe_names_its_run_directory_after_the_plugin(tmp_path, monkeypatch):
    import trm.recipe_catalog as catalog
    from trm.cli.train import _recipe_label

    ours, theirs = tmp_path / "recipes", tmp_path / "site" / "trm_takuzu" / "recipes"
    theirs.mkdir(parents=True)
    monkeypatch.setattr(catalog, "recipe_dirs", lambda host=None: [("trm", ours), ("takuzu", theirs)])
    assert _recipe_label(theirs / "cpu.yaml") == "takuzu-cpu"  # every plugin's CPU recipe is a cpu.yaml
    assert _recipe_label(theirs / "takuzu_big.yaml") == "takuzu_big"
    assert _recipe_label(ours / "quickstart.yaml") == "quickstart"
    assert _recipe_label(tmp_path / "mine.yaml") == "mine"
