"""docs/plugins.md's contracts agree with trm.types and with what trm really passes; trm.testing's checks catch broken
plugins; a plugin written against the first version of the docs still works."""

from __future__ import annotations

import importlib.util
import re
import textwrap

import attrs
import numpy as np
import pytest

from trm import errors, testing, types
from trm.hookspecs import hookimpl
from trm.store_write import DatasetWriter
from trm.types import EvalContext, EvaluatorSpec, NoOptions

from conftest import REPO

DOC = (REPO / "docs" / "plugins.md").read_text()


def section(heading: str) -> str:
    """The text under ``### heading`` up to the next heading."""
    match = re.search(rf"^### {re.escape(heading)}\n(.*?)(?=^#)", DOC, flags=re.M | re.S)
    assert match, f"docs/plugins.md has no section '### {heading}'"
    return match.group(1)


def table_rows(text: str) -> list[list[str]]:
    rows = [line.strip().strip("|").split(" | ") for line in text.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in row] for row in rows]


def first_column(text: str) -> list[str]:
    return [re.match(r"`([A-Za-z_]+)", row[0]).group(1) for row in table_rows(text)]


RECORDS = {"TaskSpec": types.TaskSpec, "TaskDims": types.TaskDims, "EvaluatorSpec": types.EvaluatorSpec,
           "EvalContext": types.EvalContext, "BackboneSpec": types.BackboneSpec,
           "BackboneShape": types.BackboneShape, "HaltingSpec": types.HaltingSpec}


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_each_record_field_is_documented_in_order_with_its_default(name):
    record = RECORDS[name]
    rows = table_rows(section(name))
    assert [row[0].strip("`") for row in rows] == [field.name for field in attrs.fields(record)]
    for row, field in zip(rows, attrs.fields(record)):
        documented = row[2]
        if field.default is attrs.NOTHING:
            assert documented == "required", (name, field.name)
        else:
            assert documented.strip("`") == repr(field.default).replace("'", '"'), (name, field.name)


@pytest.mark.parametrize("fields", ["batch", "outputs"])
def test_evaluator_arrays_are_documented_as_declared(fields):
    text = section("The evaluator contract")
    declared = types.BATCH_FIELDS if fields == "batch" else types.OUTPUT_FIELDS
    part = text.split("`outputs` holds:")[0 if fields == "batch" else 1]
    rows = table_rows(part)
    assert [(r[0].strip("`"), r[1], r[2]) for r in rows] == [(f.name, f.dtype, f.shape) for f in declared]


def test_writer_members_are_documented_and_exist():
    members = first_column(section("The dataset writer"))
    assert members == ["set_vocabulary", "identifier", "split", "set_extra", "progress", "seed", "show_progress"]
    writer = DatasetWriter.__new__(DatasetWriter)
    writer.__init__(root=None, seed=3)
    for member in members:
        assert hasattr(writer, member), member


def test_testing_helpers_are_documented_and_exist():
    text = DOC[DOC.index("## Testing a plugin"):DOC.index("## Compatibility")]
    names = set(re.findall(r"^\| `(\w+)\(", text, flags=re.M)) | set(re.findall(r", `(\w+)\(", text))
    assert {"build_tiny_store", "check_store", "check_evaluator", "check_render", "check_options",
            "evaluation_batches", "perfect_outputs", "corrupt_outputs"} <= names
    for name in names:
        assert callable(getattr(testing, name)), name


def test_exit_codes_table_matches_trm_errors():
    text = DOC[DOC.index("## Errors"):DOC.index("## Testing a plugin")]
    assert f"| {errors.EXIT_USER_ERROR} | a user's mistake (`UserError`)" in text
    assert f"| {errors.EXIT_PLUGIN_BUG} | a bug in a plugin |" in text
    assert f"`{errors.ENV_DEBUG}=1`" in text


def test_wants_names_only_optional_outputs():
    assert EvaluatorSpec("e", NoOptions, lambda o, c: None, "s").wants == ()
    assert EvaluatorSpec("e", NoOptions, lambda o, c: None, "s", wants="confidences").wants == ("confidences",)
    with pytest.raises(ValueError, match="wants \\['logits'\\] are not outputs trm can add"):
        EvaluatorSpec("e", NoOptions, lambda o, c: None, "s", wants=("logits",))


class Recorder:
    """An evaluator that keeps what it was given."""

    def __init__(self):
        self.seen = []

    def update(self, batch, outputs):
        self.seen.append(({k: np.array(v) for k, v in batch.items()}, {k: np.array(v) for k, v in outputs.items()}))

    def compute(self):
        return {}

    def write(self, directory):
        return []


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny Sudoku store and a model for it."""
    import torch

    from trm.build import build_model
    from trm.config import load_recipe
    from trm.types import TaskDims

    root = tmp_path_factory.mktemp("contracts")
    store = testing.build_tiny_store("sudoku", root / "s.zarr", {"source": "generate", "size": 4, "num_train": 10,
                                                                  "num_test": 11, "num_aug": 0})
    recipe_path = root / "r.yaml"
    recipe_path.write_text(textwrap.dedent(f"""
        extends: {REPO / 'recipes' / 'quickstart_4x4.yaml'}
        data: {{store: {root / 's.zarr'}}}
        model: {{hidden_size: 16, h_cycles: 1, l_cycles: 1, puzzle_emb_len: 1, puzzle_emb_dim: 16}}
        backbone: {{name: attention, options: {{layers: 1, num_heads: 2}}}}
    """))
    recipe = load_recipe(recipe_path)
    info = store.info
    torch.manual_seed(0)
    model = build_model(recipe, TaskDims(info.vocab_size, info.seq_len, info.num_puzzle_identifiers),
                        dtype=torch.float32)
    return store, model


def run_pass(store, model, evaluators):
    from trm.evaluate import evaluate

    return evaluate(model, store.split("test"), evaluators, accelerator=None, global_batch_size=8, max_steps=2,
                    ignore_label_id=store.info.ignore_label_id, pad_id=store.info.pad_id, show_progress=False)


def check_arrays(batch, outputs, vocab_size, optional=()):
    rows, length = batch["inputs"].shape
    sizes = {"B": rows, "L": length, "V": vocab_size}
    for declared, given in ((types.BATCH_FIELDS, batch), (types.OUTPUT_FIELDS, outputs)):
        expected = [f for f in declared if not f.optional or f.name in optional]
        assert sorted(given) == sorted(f.name for f in expected)
        for field in expected:
            shape = tuple(sizes[d.strip()] for d in field.shape.strip("[]").split(","))
            assert (str(given[field.name].dtype), given[field.name].shape) == (field.dtype, shape), field.name


def test_an_evaluation_passes_exactly_the_documented_arrays(tiny):
    store, model = tiny
    recorder = Recorder()
    run_pass(store, model, [("recorder", recorder)])
    assert sum(len(batch["inputs"]) for batch, _ in recorder.seen) == 11
    for batch, outputs in recorder.seen:
        assert len(batch["inputs"]) <= 8  # at most one global batch per update
        check_arrays(batch, outputs, store.info.vocab_size)
        assert batch["valid"].all()
        assert ((batch["labels"] == -100) | (batch["labels"] >= 0)).all()


class Wanting:
    @hookimpl
    def trm_evaluators(self):
        return [EvaluatorSpec("wanting", NoOptions, lambda o, c: Recorder(), "asks for everything",
                              wants=("confidences", "probabilities"))]


def test_evaluators_get_probabilities_and_confidences_only_when_they_ask(tiny, empty_host, monkeypatch):
    from trm import plugins

    store, model = tiny
    empty_host.register(Wanting(), "wanting-plugin")
    monkeypatch.setattr(plugins, "_host", empty_host)
    wanting, plain = Recorder(), Recorder()
    run_pass(store, model, [("wanting", wanting), ("recorder", plain)])
    for (batch, outputs), (_, plain_outputs) in zip(wanting.seen, plain.seen):
        check_arrays(batch, outputs, store.info.vocab_size, optional=("probabilities", "confidences"))
        assert set(plain_outputs) == set(outputs)  # one pass computes them once, for every evaluator
        probabilities = outputs["probabilities"]
        assert np.allclose(probabilities.sum(-1), 1.0, atol=1e-5)
        assert (probabilities.argmax(-1) == outputs["preds"]).all()
        assert np.allclose(outputs["confidences"], probabilities.max(-1))
    alone = Recorder()
    run_pass(store, model, [("recorder", alone)])
    assert "probabilities" not in alone.seen[0][1] and "confidences" not in alone.seen[0][1]


# ---- trm.testing catches broken evaluators and renderers ------------------------------------------------------


class AlwaysOne:
    """Scores 1 whatever it is given: the self-test must notice."""

    def update(self, batch, outputs):
        pass

    def compute(self):
        return {"exact_accuracy": 1.0}

    def write(self, directory):
        return []


class NeverResets:
    """Forgets to start a new pass after compute(): a later pass mixes with the earlier ones."""

    def __init__(self):
        self.right = self.total = 0

    def update(self, batch, outputs):
        valid = batch["valid"]
        self.right += int((outputs["preds"][valid] == batch["labels"][valid]).all(1).sum())
        self.total += int(valid.sum())

    def compute(self):
        return {"exact_accuracy": self.right / self.total}

    def write(self, directory):
        return [directory / "never-written.json"]


def test_check_evaluator_accepts_exact_match_and_catches_broken_ones(tiny):
    store, _ = tiny
    result = testing.check_evaluator("exact_match", store)
    assert result["perfect"]["exact_accuracy"] == 1.0 and result["corrupted"]["exact_accuracy"] == 0.0
    with pytest.raises(testing.PluginCheckError, match="no score fell"):
        testing.check_evaluator(EvaluatorSpec("one", NoOptions, lambda o, c: AlwaysOne(), "s"), store)
    with pytest.raises(testing.PluginCheckError) as caught:
        testing.check_evaluator(EvaluatorSpec("leaky", NoOptions, lambda o, c: NeverResets(), "s"), store)
    assert any("compute() must close the pass" in p for p in caught.value.problems)
    assert any("write() returned paths that do not exist" in p for p in caught.value.problems)


def test_check_render_catches_a_lossy_renderer(tiny):
    store, _ = tiny
    sudoku = testing._spec("tasks", "sudoku")
    assert len(testing.check_render(sudoku, store)) > 0
    lossy = attrs.evolve(sudoku, render=lambda tokens, info: "a board")
    with pytest.raises(testing.PluginCheckError, match="render drew two different rows the same way"):
        testing.check_render(lossy, store)


def test_check_options_catches_an_unfrozen_options_class():
    @attrs.define
    class Loose:
        size: int = attrs.field(default=3, metadata={"help": "side"})

    spec = types.TaskSpec("loose", Loose, lambda o, w: None, "s")
    with pytest.raises(testing.PluginCheckError, match="must be frozen"):
        testing.check_options(spec)
    assert testing.check_options("sudoku") == []


def test_check_store_catches_dims_that_disagree_with_the_store(tiny):
    store, _ = tiny
    sudoku = testing._spec("tasks", "sudoku")
    wrong = attrs.evolve(sudoku, dims=lambda options: types.TaskDims(99, 16, None))
    with pytest.raises(testing.PluginCheckError, match="dims\\(options\\).vocab_size is 99 but the built store has 11"):
        testing.check_store(store, wrong, object())


# ---- compatibility ------------------------------------------------------------------------------------------------


def test_a_plugin_written_against_the_first_docs_still_works(empty_host, tmp_path):
    path = REPO / "tests" / "plugins_v0" / "sorting_v0.py"
    spec = importlib.util.spec_from_file_location("sorting_v0", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from trm_evaluators import exact_match

    empty_host.register(module, "sorting_v0")
    empty_host.register(exact_match, "exact_match")
    task = empty_host.registry("tasks").get("sorting_v0")
    store = testing.build_tiny_store(task, tmp_path / "v0.zarr", {"length": 5, "num_train": 20, "num_test": 10},
                                     host=empty_host)
    testing.check_options(task)
    testing.check_evaluator(empty_host.registry("evaluators").get("exact_match"), store)
    old_style = EvaluatorSpec("old", NoOptions, lambda options, context: None, "four positional fields")
    assert old_style.wants == () and isinstance(EvalContext(store.info, "test", None), EvalContext)


class Crashes(AlwaysOne):
    def update(self, batch, outputs):
        raise RuntimeError("crashed in update")


class BrokenEvaluators:
    @hookimpl
    def trm_evaluators(self):
        return [EvaluatorSpec("always_one", NoOptions, lambda o, c: AlwaysOne(), "scores 1 whatever"),
                EvaluatorSpec("crashes", NoOptions, lambda o, c: Crashes(), "raises")]


def test_trm_plugins_check_reports_each_failure_and_exits_1(empty_host, monkeypatch):
    from click.testing import CliRunner

    from trm import plugins
    from trm.cli import cli

    path = REPO / "tests" / "plugins_v0" / "sorting_v0.py"
    spec = importlib.util.spec_from_file_location("sorting_v0_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from trm_evaluators import exact_match

    empty_host.register(module, "sorting_v0")
    empty_host.register(exact_match, "exact_match")
    empty_host.register(BrokenEvaluators(), "broken-evaluators")
    monkeypatch.setattr(plugins, "_host", empty_host)
    good = CliRunner().invoke(cli, ["plugins", "check", "sorting_v0", "length=4", "num_train=10", "num_test=5"])
    assert good.exit_code == 0, good.output
    assert "ok    evaluator 'exact_match' on the 'sorting_v0' store" in good.output
    bad = CliRunner().invoke(cli, ["plugins", "check", "broken-evaluators", "--task", "sorting_v0", "length=4",
                                   "num_train=10", "num_test=5"])
    assert bad.exit_code == 1, bad.output
    lines = bad.output.splitlines()
    assert "FAIL  evaluator 'always_one' on the 'sorting_v0' store: labels score 1, a corrupted copy less" in lines
    assert any(line.startswith("      - no score fell when one position of every row was wrong") for line in lines)
    assert "FAIL  evaluator 'crashes' on the 'sorting_v0' store: labels score 1, a corrupted copy less" in lines
    assert any("raised RuntimeError: crashed in update at test_plugin_contracts.py:" in line for line in lines)
    assert lines[-1] == "2 check(s) failed"


def test_the_writer_s_old_module_still_works_with_a_deprecation_warning():
    import trm.store
    from trm import store_write

    with pytest.warns(DeprecationWarning, match="import it from trm.store_write"):
        old = trm.store.DatasetWriter
    assert old is store_write.DatasetWriter
    with pytest.warns(DeprecationWarning):
        from trm.store import build_store  # noqa: F401
    with pytest.raises(AttributeError):
        trm.store.no_such_name


def test_names_that_moved_still_work_with_a_deprecation_warning():
    """docs/python-api.md named trm.engine.assemble; docs and tests name trm.engine.ModelConfig and trm.config's
    schema classes, which now live in trm.recipe."""
    import trm.engine
    from trm import build, config, recipe

    with pytest.warns(DeprecationWarning, match=r"trm.engine.assemble is deprecated: import it from trm.build"):
        assert trm.engine.assemble is build.assemble
    assert trm.engine.ModelConfig is recipe.ModelConfig
    assert config.Recipe is recipe.Recipe and config.OptimConfig is recipe.OptimConfig
    with pytest.raises(AttributeError):
        trm.engine.no_such_name


def test_a_store_built_by_another_task_version_is_noted_once(tmp_path, empty_host, monkeypatch, capsys):
    from types import SimpleNamespace

    from trm import plugins
    from trm.build import open_recipe_store

    sudoku = testing._spec("tasks", "sudoku")
    testing.build_tiny_store(sudoku, tmp_path / "v1.zarr", {"source": "generate", "size": 4, "num_train": 5,
                                                             "num_test": 5, "num_aug": 0})

    class NewerSudoku:
        @hookimpl
        def trm_tasks(self):
            return [attrs.evolve(sudoku, version="2")]

    empty_host.register(NewerSudoku(), "newer-sudoku")
    monkeypatch.setattr(plugins, "_host", empty_host)
    recipe = SimpleNamespace(data=SimpleNamespace(store=str(tmp_path / "v1.zarr"), build_if_missing=False),
                             task=SimpleNamespace(name="sudoku"))
    capsys.readouterr()
    assert open_recipe_store(recipe).info.builder_version == "1"
    assert (f"note: {tmp_path / 'v1.zarr'} was built by version 1 of task 'sudoku', the installed one is version 2; "
            "it is used as it is, rebuild it with `trm augment sudoku --out") in capsys.readouterr().err
    open_recipe_store(recipe)
    assert "note:" not in capsys.readouterr().err


def test_sudoku_s_render_stays_a_function_after_its_submodule_is_imported(empty_host):
    import trm_sudoku
    import trm_sudoku.render  # noqa: F401  (rebinds the package attribute `render` to the submodule)

    empty_host.register(trm_sudoku, "sudoku")
    assert callable(empty_host.registry("tasks").get("sudoku").render)
