"""Range checks of the recipe sections and clean one-line messages for attrs validators (recipes and plugin options)."""

from __future__ import annotations

import re
import textwrap

import attrs
import pytest

from trm import config
from trm.errors import RecipeError

GOOD = """
task: {name: fake}
data: {store: data/x.zarr}
backbone: {name: fake}
halting: {name: fake}
train: {global_batch_size: 8, epochs: 2}
eval: {every: 1}
"""


@pytest.fixture
def recipe(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(textwrap.dedent(GOOD))
    return path


def problems_of(path, host, overrides):
    with pytest.raises(RecipeError) as err:
        config.load_recipe(path, overrides, host=host)
    # the problems of values set by `overrides` are attributed to the command line (tests/test_bad_inputs.py)
    return [re.sub(r"^command line, override '[^']*': ", "", problem.removeprefix(f"{path}: "))
            for problem in err.value.problems]


# Every value a user-testing pass found accepted and then failing, hanging or misbehaving in `trm run`.
OUT_OF_RANGE = [
    ("eval.every=-1", "$.eval.every: must be >= 1 (got -1)"),  # hung `trm run`
    ("eval.every=0", "$.eval.every: must be >= 1 (got 0)"),  # silently meant null
    ("eval.limit=0", "$.eval.limit: must be >= 1 (got 0)"),
    ("eval.batch_size=0", "$.eval.batch_size: must be >= 1 (got 0)"),
    ("eval.max_steps=0", "$.eval.max_steps: must be >= 1 (got 0)"),
    ("train.global_batch_size=0", "$.train.global_batch_size: must be >= 1 (got 0)"),
    ("train.per_device_batch_size=0", "$.train.per_device_batch_size: must be >= 1 (got 0)"),
    ("train.epochs=0", "$.train.epochs: must be >= 1 (got 0)"),
    ("train.max_steps=-5", "$.train.max_steps: must be >= 1 (got -5)"),
    ("train.log_every=0", "$.train.log_every: must be >= 1 (got 0)"),
    ("train.checkpoint_every=0", "$.train.checkpoint_every: must be >= 1 (got 0)"),
    ("train.ema=1.5", "$.train.ema: must be < 1 (got 1.5)"),
    ("train.ema=-0.1", "$.train.ema: must be >= 0 (got -0.1)"),
    ("train.seed=-1", "$.train.seed: must be >= 0 (got -1)"),
    ("optim.lr=-1", "$.optim.lr: must be >= 0 (got -1.0)"),
    ("optim.puzzle_emb_lr=-1", "$.optim.puzzle_emb_lr: must be >= 0 (got -1.0)"),
    ("optim.weight_decay=-0.5", "$.optim.weight_decay: must be >= 0 (got -0.5)"),
    ("optim.puzzle_emb_weight_decay=-1", "$.optim.puzzle_emb_weight_decay: must be >= 0 (got -1.0)"),
    ("optim.warmup_steps=-1", "$.optim.warmup_steps: must be >= 0 (got -1)"),
    ("optim.lr_min_ratio=1.5", "$.optim.lr_min_ratio: must be <= 1 (got 1.5)"),
    ("optim.lr_min_ratio=-0.5", "$.optim.lr_min_ratio: must be >= 0 (got -0.5)"),
    ("optim.betas=[0.9, 1.0]", "$.optim.betas: each beta must be >= 0 and < 1 (got [0.9, 1.0])"),
    ("optim.muon_lr=-0.02", "$.optim.muon_lr: must be >= 0 (got -0.02)"),
    ("optim.muon_momentum=1", "$.optim.muon_momentum: must be < 1 (got 1.0)"),
    ("optim.muon_weight_decay=-1", "$.optim.muon_weight_decay: must be >= 0 (got -1.0)"),
    ("model.hidden_size=-64", "$.model.hidden_size: must be >= 1 (got -64)"),
    ("model.h_cycles=0", "$.model.h_cycles: must be >= 1 (got 0)"),
    ("model.puzzle_emb_len=-1", "$.model.puzzle_emb_len: must be >= 0 (got -1)"),
    ("model.halt_loss_weight=-1", "$.model.halt_loss_weight: must be >= 0 (got -1.0)"),
    ("model.forward_dtype=float64", "$.model.forward_dtype: must be one of auto, bfloat16, float32 (got 'float64')"),
    ("model.puzzle_emb_dim=100", "$.model.puzzle_emb_dim: must be <= puzzle_emb_len x hidden_size = 1 x 64 = 64 "
                                 "(got 100)"),
]


@pytest.mark.parametrize(("override", "expected"), OUT_OF_RANGE, ids=[o for o, _ in OUT_OF_RANGE])
def test_out_of_range_value_is_one_clean_line_with_its_key_path(recipe, fake_host, override, expected):
    sizes = ["model.hidden_size=64", "model.puzzle_emb_len=1", "model.puzzle_emb_dim=64"]
    sizes = [size for size in sizes if size.split("=")[0] != override.split("=")[0]]
    assert problems_of(recipe, fake_host, [*sizes, override]) == [expected]


def test_every_range_problem_is_reported_at_once(recipe, fake_host):
    problems = problems_of(recipe, fake_host, ["train.global_batch_size=0", "train.log_every=0", "train.ema=1.5",
                                               "optim.lr=-1", "eval.every=-1", "eval.limit=0",
                                               "model.hidden_size=-64", "model.forward_dtype=float64"])
    assert len(problems) == 8, problems
    for key in ("train.global_batch_size", "train.log_every", "train.ema", "optim.lr", "eval.every", "eval.limit",
                "model.hidden_size", "model.forward_dtype"):
        assert any(problem.startswith(f"$.{key}: ") for problem in problems), key


def test_range_problems_beside_type_problems_of_the_same_section(recipe, fake_host):
    problems = problems_of(recipe, fake_host, ["train.epochs=many", "train.log_every=0", "model.hidden_size=wide",
                                               "model.h_cycles=0"])
    assert problems == ["$.model.hidden_size: expected int, got str 'wide'", "$.model.h_cycles: must be >= 1 (got 0)",
                        "$.train.epochs: expected int, got str 'many'", "$.train.log_every: must be >= 1 (got 0)"]


def test_null_and_boundary_values_are_accepted(recipe, fake_host):
    loaded = config.load_recipe(recipe, ["eval.every=null", "train.ema=null", "train.ema=0.0", "optim.lr=0",
                                         "optim.warmup_steps=0", "optim.lr_min_ratio=0", "eval.limit=1",
                                         "train.max_steps=1", "model.puzzle_emb_dim=0"], host=fake_host)
    assert loaded.eval.every is None and loaded.train.ema == 0.0 and loaded.optim.lr_min_ratio == 0.0


@attrs.frozen
class SizedOptions:
    size: int = attrs.field(default=9, validator=attrs.validators.in_([4, 6, 9]))
    depth: int = attrs.field(default=1, validator=attrs.validators.gt(0))
    name: str = attrs.field(default="x", validator=attrs.validators.instance_of(str))


def test_plugin_option_validators_give_clean_lines():
    with pytest.raises(RecipeError) as err:
        config.structure_options(SizedOptions, {"size": 5, "depth": -2}, "sudoku options")
    assert err.value.problems == ["sudoku options.size: must be one of 4, 6, 9 (got 5)",
                                  "sudoku options.depth: must be > 0 (got -2)"]


def test_explain_attrs_errors_raised_outside_structuring():
    with pytest.raises(ValueError) as err:
        SizedOptions(size=5)
    assert config.explain(err.value) == ("size", "must be one of 4, 6, 9 (got 5)")
    with pytest.raises(TypeError) as err:
        SizedOptions(name=3)
    assert config.explain(err.value) == ("name", "expected str, got int 3")
    assert config.explain(ValueError("plain message")) == (None, "plain message")


def test_a_section_that_is_not_a_mapping_says_so_once(recipe, fake_host):
    problems = problems_of(recipe, fake_host, ["model=5", "train=[1]", "task.options=3"])
    assert problems == ["$.task.options: must be a mapping, got int 3", "$.model: expected a mapping, got int 5",
                        "$.train: expected a mapping, got a list"]


def test_a_number_where_text_is_expected_suggests_quoting(tmp_path):
    from conftest import REPO
    from in_process import trm_in_process

    result = trm_in_process("recipe", "validate", str(REPO / "recipes/arc_small.yaml"),
                            "task.options.task_ids=[00576224]")
    assert result.returncode == 2
    assert "task_ids[0]: expected str, got int 195732; YAML reads unquoted digits as a number" in result.stderr
