"""Recipes: strict structuring, all problems at once, extends, overrides, plugin options, YAML floats."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from trm import config
from trm.errors import RecipeError, UserError

from conftest import FakeOptions

GOOD = """
task: {name: fake, options: {width: 3}}
data: {store: data/x.zarr}
backbone: {name: fake, options: {mode: b}}
halting: {name: fake}
optim: {lr: 1e-4, weight_decay: 1}
train: {global_batch_size: 8, epochs: 2}
eval: {evaluators: [fake, {name: fake, options: {width: 9}}]}
"""


def write(tmp_path, text, name="recipe.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(path, host, overrides=()):
    with pytest.raises(RecipeError) as err:
        config.load_recipe(path, overrides, host=host)
    return err.value.problems


def test_good_recipe_structures_plugin_options(tmp_path, fake_host):
    recipe = config.load_recipe(write(tmp_path, GOOD), host=fake_host)
    assert recipe.optim.lr == pytest.approx(1e-4) and isinstance(recipe.optim.lr, float)
    assert recipe.optim.weight_decay == 1.0 and isinstance(recipe.optim.weight_decay, float)
    assert recipe.task.options == FakeOptions(width=3)
    assert recipe.backbone.options == FakeOptions(mode="b")
    assert [e.options for e in recipe.eval.evaluators] == [FakeOptions(), FakeOptions(width=9)]


def test_three_mistakes_reported_at_once_with_paths(tmp_path, fake_host):
    path = write(tmp_path, GOOD.replace("lr: 1e-4", "lrr: 1e-4").replace("epochs: 2", "epochs: two")
                 .replace("backbone: {name: fake", "backbone: {name: fak"))
    problems = problems_of(path, fake_host)
    assert f"{path}: $.optim.lrr: unknown key (did you mean 'lr'?)" in problems
    assert f"{path}: $.train.epochs: expected int, got str 'two'" in problems
    assert any(p.startswith(f"{path}: $.backbone.name: unknown backbone 'fak' (did you mean 'fake'?)") for p in problems)
    assert len(problems) == 3


def test_plugin_options_validated_by_the_plugins_class(tmp_path, fake_host):
    path = write(tmp_path, GOOD.replace("{mode: b}", "{mode: b, widht: 2}").replace("width: 3", "width: 3.5"))
    problems = problems_of(path, fake_host)
    assert f"{path}: $.backbone.options.widht: unknown key (did you mean 'width'?)" in problems
    assert f"{path}: $.task.options.width: expected int, got float 3.5" in problems


def test_strict_scalars_do_not_coerce(tmp_path, fake_host):
    path = write(tmp_path, GOOD.replace("epochs: 2", "epochs: 2.0").replace("lr: 1e-4", "lr: '1e-4'"))
    problems = problems_of(path, fake_host)
    assert any("$.train.epochs: expected int, got float 2.0" in p for p in problems)
    assert any("$.optim.lr: expected float, got str '1e-4'" in p for p in problems)


def test_choices_are_checked_with_suggestion(tmp_path, fake_host):
    problems = problems_of(write(tmp_path, GOOD), fake_host, ["optim.schedule=cosin"])
    assert any("$.optim.schedule: expected one of 'constant', 'cosine', got str 'cosin' (did you mean 'cosine'?)" in p
               for p in problems)


def test_overrides_parse_yaml_and_floats(tmp_path, fake_host):
    recipe = config.load_recipe(write(tmp_path, GOOD), ["optim.lr=3e-4", "train.max_steps=7", "backbone.options.width=5",
                                                        "eval.evaluators=[fake]"], host=fake_host)
    assert recipe.optim.lr == pytest.approx(3e-4)
    assert recipe.train.max_steps == 7
    assert recipe.backbone.options == FakeOptions(width=5, mode="b")
    assert len(recipe.eval.evaluators) == 1


def test_bad_override_is_a_user_error(tmp_path, fake_host):
    with pytest.raises(UserError, match="expected key=value"):
        config.load_recipe(write(tmp_path, GOOD), ["optim.lr"], host=fake_host)
    with pytest.raises(UserError, match="not a mapping"):
        config.load_recipe(write(tmp_path, GOOD), ["optim.lr.x=1"], host=fake_host)


def test_extends_merges_and_replaces_renamed_plugin_sections(tmp_path, fake_host):
    write(tmp_path, GOOD, "_base.yaml")
    child = write(tmp_path, """
        extends: _base.yaml
        optim: {lr: 2e-4}
        backbone: {options: {width: 7}}
    """)
    recipe = config.load_recipe(child, host=fake_host)
    assert recipe.optim.lr == pytest.approx(2e-4) and recipe.optim.weight_decay == 1.0
    assert recipe.backbone.options == FakeOptions(width=7, mode="b")
    renamed = write(tmp_path, "extends: _base.yaml\nbackbone: {name: other}\n", "renamed.yaml")
    problems = problems_of(renamed, fake_host)
    assert not any("options" in p for p in problems), "the base's options must not leak into another plugin"


def test_extends_errors(tmp_path, fake_host):
    with pytest.raises(UserError, match="base recipe 'nope.yaml' not found"):
        config.load_recipe(write(tmp_path, "extends: nope.yaml\n"), host=fake_host)
    write(tmp_path, "extends: b.yaml\n", "a.yaml")
    write(tmp_path, "extends: a.yaml\n", "b.yaml")
    with pytest.raises(UserError, match="cycle"):
        config.load_recipe(tmp_path / "a.yaml", host=fake_host)


def test_unreadable_inputs_are_one_line_errors(tmp_path, fake_host):
    with pytest.raises(UserError, match="recipe not found"):
        config.load_recipe(tmp_path / "missing.yaml", host=fake_host)
    with pytest.raises(UserError, match=r"invalid YAML \(line \d+, column \d+\)"):
        config.load_recipe(write(tmp_path, "task: [unclosed\n"), host=fake_host)
    with pytest.raises(UserError, match="must be a mapping"):
        config.load_recipe(write(tmp_path, "- a\n- b\n"), host=fake_host)


def test_dump_round_trips(tmp_path, fake_host):
    recipe = config.load_recipe(write(tmp_path, GOOD), host=fake_host)
    dumped = write(tmp_path, config.dump_recipe(recipe), "dumped.yaml")
    assert config.load_recipe(dumped, host=fake_host) == recipe
    assert yaml.safe_load(config.dump_recipe(recipe))["optim"]["betas"] == [0.9, 0.95]


def test_parse_value():
    assert config.parse_value("1e-4") == pytest.approx(1e-4)
    assert config.parse_value("-2E3") == -2000.0
    assert config.parse_value("[1, 2]") == [1, 2]
    assert config.parse_value("off") == "off"
    assert config.parse_value("true") is True
    assert config.parse_value("null") is None


def test_structure_options_reports_every_problem():
    with pytest.raises(RecipeError) as err:
        config.structure_options(FakeOptions, {"width": "x", "mood": 1}, "$.options")
    assert err.value.problems == ["$.options.width: expected int, got str 'x'",
                                  "$.options.mood: unknown key (did you mean 'mode'?)"]


def test_an_override_that_changes_the_task_says_the_files_options_are_the_other_tasks():
    from conftest import REPO

    from trm.config import RecipeError, load_recipe

    with pytest.raises(RecipeError) as caught:
        load_recipe(REPO / "recipes" / "quickstart.yaml", ["task.name=maze"])
    first = caught.value.problems[0]
    assert "$.task.options." in first and "unknown key" in first
    assert first.endswith("the override 'task.name=maze' changed the task but not the file's task.options, written "
                          "for the other one: replace them too, e.g. 'task.options={}'")
    load_recipe(REPO / "recipes" / "quickstart.yaml", ["task.name=maze", "task.options={}"])  # the remedy works
