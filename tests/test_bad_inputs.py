"""Bad input files end in one clear line and exit 2, never a traceback or a silently different result.

Each case builds its own small fixture in tmp_path and runs the command a user would run (in process, through
click's runner), so a regression shows as a traceback, another exit code or a message that no longer names the
file, line or field. docs/reliability.md ("Bad input files") lists what these cases pin down.
"""

from __future__ import annotations

import codecs
import json
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
from click.testing import CliRunner

from conftest import REPO
from trm import plugins
from trm.cli import cli
from trm.errors import UserError
from trm.hookspecs import hookimpl
from trm.types import BackboneSpec, TaskSpec

QUICKSTART = REPO / "recipes" / "quickstart_4x4.yaml"
BOM = codecs.BOM_UTF8


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def error_line(result, exit_code: int = 2) -> str:
    """The one error line of a refused command (a recipe's problem count line aside); fails on anything else.
    Exit code 2 is a user's mistake, 3 a plugin's bug (docs/plugins.md, "Errors")."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.exit_code == exit_code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.endswith("problem(s) found")]
    assert len(lines) == 1, lines
    return lines[0]


# ---------------------------------------------------------------------------------------------------------------
# recipes
# ---------------------------------------------------------------------------------------------------------------

def test_a_recipe_that_is_not_utf8_names_the_file_and_byte_offset(tmp_path):
    recipe = tmp_path / "latin1.yaml"
    recipe.write_bytes(b"extends: " + str(QUICKSTART).encode() + b"\ndescription: caf\xe9\n")
    offset = recipe.read_bytes().index(b"\xe9")
    line = error_line(invoke("recipe", "validate", recipe))
    assert line == (f"trm: error: {recipe}: not UTF-8 text: byte 0xe9 at byte offset {offset} (line 2) "
                    "(invalid continuation byte); save the file as UTF-8")


def test_a_recipe_with_a_utf8_bom_is_accepted(tmp_path):
    recipe = tmp_path / "bom.yaml"
    recipe.write_bytes(BOM + QUICKSTART.read_bytes())
    result = invoke("recipe", "validate", recipe)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{recipe}: ok"


@pytest.mark.parametrize("text, key, line, first", [
    ("optim:\n  lr: 1.0e-3\n  warmup_steps: 10\n  lr: 2.0e-3\n", "lr", 4, 2),
    ("train: {epochs: 2}\noptim: {lr: 1.0e-3}\ntrain: {epochs: 3}\n", "train", 3, 1),
])
def test_duplicate_keys_in_a_recipe_are_refused_naming_file_line_and_key(tmp_path, text, key, line, first):
    recipe = tmp_path / "dup.yaml"
    recipe.write_text(f"extends: {QUICKSTART}\n" + text)
    message = error_line(invoke("recipe", "validate", recipe))
    assert message.startswith(f"trm: error: {recipe}: invalid YAML (line {line + 1}, column ")
    assert message.endswith(f"duplicate key '{key}' (first given on line {first + 1})")


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    from trm.config import _read_yaml

    recipe = tmp_path / "merge.yaml"
    recipe.write_text("base: &b {lr: 1, warmup_steps: 2}\noptim:\n  <<: *b\n  lr: 3\n")
    assert _read_yaml(recipe)["optim"] == {"lr": 3, "warmup_steps": 2}


@pytest.mark.parametrize("override, problem", [
    ("optim.lrr=3", "$.optim.lrr: unknown key (did you mean 'lr'?)"),
    ("train.epochs=many", "$.train.epochs: expected int, got str 'many'"),
    ("backbone.name=atention", "$.backbone.name: unknown backbone 'atention' (did you mean 'attention'?)"),
    ("optim={lr: x}", "$.optim.lr: expected float, got str 'x'"),
    ("trian.epochs=3", "$.trian: unknown key (did you mean 'train'?)"),  # the override made the section
    ("eval.evaluators=5", "$.eval.evaluators: expected a list of names or {name, options} mappings, got int 5"),
])
def test_override_problems_are_blamed_on_the_command_line_not_the_recipe(override, problem):
    line = error_line(invoke("recipe", "validate", QUICKSTART, override))
    assert line.startswith(f"command line, override '{override}': {problem}"), line


def test_one_evaluator_may_be_given_without_a_list_and_its_problems_join_the_others(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"extends: {QUICKSTART}\neval: {{evaluators: exact_match}}\n")
    assert invoke("recipe", "validate", recipe).exit_code == 0  # one name, not a list of its letters
    recipe.write_text(f"extends: {QUICKSTART}\neval: {{evaluators: exact_matc}}\n")
    result = invoke("recipe", "validate", recipe, "train.epochs=0")
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert "command line, override 'train.epochs=0': $.train.epochs: must be >= 1 (got 0)" in lines
    assert any(line.startswith(f"{recipe}: $.eval.evaluators[0].name: unknown evaluator 'exact_matc' (did you "
                               "mean 'exact_match'?)") for line in lines), lines


def test_recipe_and_override_problems_are_each_attributed_to_their_origin(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"extends: {QUICKSTART}\ntrain: {{log_every: often}}\n")
    result = invoke("recipe", "validate", recipe, "optim.lr=fast")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{recipe}: $.train.log_every: expected int, got str 'often'" in result.stderr.splitlines()
    assert "command line, override 'optim.lr=fast': $.optim.lr: expected float, got str 'fast'" in \
        result.stderr.splitlines()


# ---------------------------------------------------------------------------------------------------------------
# Sudoku and Maze CSV sources
# ---------------------------------------------------------------------------------------------------------------

Q9 = "...7.2..5....95.8.19..8..67..4...6....79...2.26...1......5......39.....8....784.."
A9 = "846712935372695184195483267984237651517964823263851749728549316439126578651378492"
HEADER = "source,question,answer,rating\n"


def sudoku_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text(HEADER + "".join(f"x,{q},{a},3\n" for q, a in rows))
    return path


def augment_sudoku(tmp_path: Path, source: Path):
    """``trm augment sudoku`` on the directory of ``source`` (its train.csv), a good test.csv written beside it."""
    sudoku_csv(source.parent / "test.csv", [(Q9, A9)])
    return invoke("augment", "sudoku", "--source", source.parent, "--out", tmp_path / "s.zarr", "num_aug=1",
                  "--no-progress")


def _swap(board: str, i: int, j: int) -> str:
    cells = list(board)
    cells[i], cells[j] = cells[j], cells[i]
    return "".join(cells)


def test_a_sudoku_csv_that_is_not_utf8_names_file_and_byte_offset(tmp_path):
    source = tmp_path / "train.csv"
    source.write_bytes((HEADER + f"x,{Q9},{A9},3\n").encode() + b"caf\xe9," + f"{Q9},{A9},3\n".encode())
    line = error_line(augment_sudoku(tmp_path, source))
    offset = source.read_bytes().index(b"\xe9")
    assert line.startswith(f"trm: error: {source}: not UTF-8 text: byte 0xe9 at byte offset {offset} (line 3)")
    assert not (tmp_path / "s.zarr").exists()


def test_a_sudoku_csv_with_a_bom_is_accepted(tmp_path):
    from trm_sudoku.csv_source import read_csv

    source = tmp_path / "bom.csv"
    source.write_bytes(BOM + (HEADER + f"x,{Q9},{A9},3\n").encode())
    rows = read_csv(source, size=9)
    assert rows.questions.shape == (1, 81) and rows.ratings.tolist() == [3]


@pytest.mark.parametrize("answer, problem", [
    # swapping two cells that are blank in the question keeps the clues but breaks two columns
    (_swap(A9, 0, 1), "answer is not a valid Sudoku solution: column 1 holds 4 2 times"),
    (A9[:80] + "1", "answer is not a valid Sudoku solution: row 9 holds 1 2 times"),
    ("0" + A9[1:], "answer is incomplete: blank at row 1, column 1"),
    (_swap(A9, 3, 4), "answer disagrees with its clues at row 1, column 4 (clue 7, answer 1)"),
])
def test_a_sudoku_answer_that_is_not_a_valid_solution_names_file_and_line(tmp_path, answer, problem):
    source = sudoku_csv(tmp_path / "train.csv", [(Q9, A9), (Q9, A9), (Q9, answer)])
    assert error_line(augment_sudoku(tmp_path, source)) == f"trm: error: {source}:4: {problem}"


def test_a_bad_sudoku_answer_is_named_by_line_even_after_the_rating_filter(tmp_path):
    from trm_sudoku.csv_source import read_csv

    source = tmp_path / "train.csv"
    source.write_text(HEADER + f"x,{Q9},{A9},1\nx,{Q9},{A9},9\nx,{Q9},{A9[:80]}1,9\n")
    with pytest.raises(UserError, match=rf"^{source}:4: answer is not a valid"):
        read_csv(source, min_rating=5)


def test_a_csv_record_the_csv_module_refuses_names_file_and_line(tmp_path):
    source = tmp_path / "train.csv"
    source.write_text(HEADER + f"x,{Q9},{A9},3\n" + 'x,"' + "1" * 200_000 + "\n")
    line = error_line(augment_sudoku(tmp_path, source))
    assert line.startswith(f"trm: error: {source}:3: not a valid CSV record (field larger than field limit")


MAZE = "S    " " ### " " ### " " ### " "    G"


def _maze_row() -> tuple[str, str]:
    from trm_maze.grid import decode, encode, solve

    return MAZE, decode(solve(encode(MAZE)))


def test_a_maze_csv_that_is_not_utf8_names_file_and_byte_offset(tmp_path):
    question, answer = _maze_row()
    source = tmp_path / "train.csv"
    source.write_bytes((HEADER + f"x,{question},{answer},0\n").encode() + b"\xff\xfe" + f",{question},{answer},0\n".encode())
    result = invoke("augment", "maze", "--source", source, "--out", tmp_path / "m.zarr", "--no-progress")
    offset = source.read_bytes().index(b"\xff")
    assert error_line(result).startswith(f"trm: error: {source}: not UTF-8 text: byte 0xff at byte offset {offset} "
                                         "(line 3)")


def test_a_maze_csv_with_a_bom_is_accepted(tmp_path):
    from trm_maze.csv_source import peek_seq_len, read_csv

    question, answer = _maze_row()
    source = tmp_path / "train.csv"
    source.write_bytes(BOM + (HEADER + f"x,{question},{answer},0\n").encode())
    questions, _ = read_csv(source)
    assert questions.shape == (1, 25) and peek_seq_len(source) == 25


# ---------------------------------------------------------------------------------------------------------------
# ARC JSON sources
# ---------------------------------------------------------------------------------------------------------------

CHALLENGES = "arc-agi_training_challenges.json"
SOLUTIONS = "arc-agi_training_solutions.json"


def arc_files(directory: Path, edit_challenges=None, edit_solutions=None) -> Path:
    challenges = {"t1": {"train": [{"input": [[1, 2], [3, 4]], "output": [[4, 3], [2, 1]]}],
                         "test": [{"input": [[1, 1], [2, 2]]}]}}
    solutions = {"t1": [[[2, 2], [1, 1]]]}
    if edit_challenges:
        edit_challenges(challenges)
    if edit_solutions:
        edit_solutions(solutions)
    (directory / CHALLENGES).write_text(json.dumps(challenges))
    (directory / SOLUTIONS).write_text(json.dumps(solutions))
    return directory


def augment_arc(tmp_path: Path, source: Path):
    return invoke("augment", "arc", "--source", source, "--out", tmp_path / "a.zarr", "subsets=[training]",
                  "test_subset=null", "num_aug=1", "--no-progress")


def _set(path: str, value):
    """An edit setting ``path`` (keys and indices separated by '/') of the JSON to ``value``."""
    def edit(data):
        *parents, last = path.split("/")
        for key in parents:
            data = data[int(key)] if isinstance(data, list) else data[key]
        if value is KeyError:
            del data[last]
        elif isinstance(data, list):
            data[int(last)] = value
        else:
            data[last] = value
    return edit


CHALLENGE_CASES = [
    ("t1/train/0/output", KeyError, "task t1: train[0] has no 'output'"),
    ("t1/test/0/input", KeyError, "task t1: test[0] has no 'input'"),
    ("t1/train/0", "oops", "task t1: train[0] is a string \"oops\", expected an object with 'input' and 'output'"),
    ("t1/train", {"input": [[1]]}, "task t1: 'train' is an object, expected a list of pairs"),
    ("t1", [1, 2], "task t1: expected an object with 'train' and 'test' lists, got a list"),
    ("t1/test", KeyError, "task t1: expected an object with 'train' and 'test' lists, got keys 'train'"),
    ("t1/train/0/input", [[1, 2], [3]], "task t1: train[0].input: ragged grid: row 1 has 1 cells, row 0 has 2"),
    ("t1/train/0/input", [[1] * 31], "task t1: train[0].input: a grid must be 1..30 x 1..30, got 1x31"),
    ("t1/train/0/output", [[1]] * 31, "task t1: train[0].output: a grid must be 1..30 x 1..30, got 31x1"),
    ("t1/train/0/input", [1, 2], "task t1: train[0].input: row 0 is an integer 1, expected a list of colours"),
    ("t1/test/0/input", [], "task t1: test[0].input: expected a grid (a list of rows of colours), got a list"),
    ("t1/test/0/input", "1,2", "task t1: test[0].input: expected a grid (a list of rows of colours), got a string"),
]
COLOURS = [(1.5, "1.5"), ("3", '"3"'), (True, "true"), (-1, "-1"), (10, "10"), (None, "null")]


@pytest.mark.parametrize("path, value, problem", CHALLENGE_CASES)
def test_malformed_arc_challenges_name_file_task_and_field(tmp_path, path, value, problem):
    source = arc_files(tmp_path, edit_challenges=_set(path, value))
    line = error_line(augment_arc(tmp_path, source))
    assert line.startswith(f"trm: error: {source / CHALLENGES}: {problem}"), line


@pytest.mark.parametrize("value, shown", COLOURS)
def test_arc_colours_are_strict_integers_0_to_9_named_in_the_challenges(tmp_path, value, shown):
    source = arc_files(tmp_path, edit_challenges=_set("t1/train/0/output/1/0", value))
    assert error_line(augment_arc(tmp_path, source)) == (
        f"trm: error: {source / CHALLENGES}: task t1: train[0].output: colour {shown} at row 1, column 0: "
        "colours are integers 0..9")


@pytest.mark.parametrize("value, shown", COLOURS)
def test_arc_colours_are_strict_integers_0_to_9_named_in_the_solutions(tmp_path, value, shown):
    source = arc_files(tmp_path, edit_solutions=_set("t1/0/0/1", value))
    assert error_line(augment_arc(tmp_path, source)) == (
        f"trm: error: {source / SOLUTIONS}: task t1: solution 0: colour {shown} at row 0, column 1: "
        "colours are integers 0..9")


SOLUTION_CASES = [
    ("t1", 5, "task t1: expected a list of grids (one per test input), got an integer 5"),
    ("t1", {"0": [[1]]}, "task t1: expected a list of grids (one per test input), got an object"),
    ("t1", [[2, 2], [1, 1]], "task t1: expected a list of grids (one per test input), got one grid; wrap it in"),
    ("t1", [[2, 2]], "task t1: solution 0: row 0 is an integer 2, expected a list of colours"),
    ("t1", [[[2, 2], [1]]], "task t1: solution 0: ragged grid: row 1 has 1 cells, row 0 has 2"),
    ("t1", [[[2] * 31]], "task t1: solution 0: a grid must be 1..30 x 1..30, got 1x31"),
    ("t1", [], "task t1: 0 solutions for 1 test inputs"),
]


@pytest.mark.parametrize("path, value, problem", SOLUTION_CASES)
def test_malformed_arc_solutions_name_file_task_and_field(tmp_path, path, value, problem):
    source = arc_files(tmp_path, edit_solutions=_set(path, value))
    line = error_line(augment_arc(tmp_path, source))
    assert line.startswith(f"trm: error: {source / SOLUTIONS}: {problem}"), line


def test_a_task_missing_from_the_solutions_is_named(tmp_path):
    source = arc_files(tmp_path, edit_solutions=_set("t1", KeyError))
    assert error_line(augment_arc(tmp_path, source)) == f"trm: error: {source / SOLUTIONS}: no solutions for task t1"


@pytest.mark.parametrize("name", [CHALLENGES, SOLUTIONS])
def test_arc_json_that_is_not_utf8_names_file_and_byte_offset(tmp_path, name):
    source = arc_files(tmp_path)
    data = (source / name).read_bytes()
    (source / name).write_bytes(data[:2] + b"\xc3(" + data[2:])  # a truncated two-byte sequence inside the key
    assert error_line(augment_arc(tmp_path, source)).startswith(
        f"trm: error: {source / name}: not UTF-8 text: byte 0xc3 at byte offset 2 (line 1)")


def test_arc_json_with_a_bom_is_accepted(tmp_path):
    from trm_arc.kaggle import load_subset

    source = arc_files(tmp_path)
    for name in (CHALLENGES, SOLUTIONS):
        (source / name).write_bytes(BOM + (source / name).read_bytes())
    task = load_subset(source, "training")["t1"]
    assert task.test[0][1].tolist() == [[2, 2], [1, 1]]


def test_arc_json_that_does_not_parse_is_named(tmp_path):
    source = arc_files(tmp_path)
    (source / SOLUTIONS).write_text('{"t1": [[[2, 2], [1, 1]]]')
    assert error_line(augment_arc(tmp_path, source)).startswith(f"trm: error: {source / SOLUTIONS}: not valid JSON (")


def test_a_well_formed_arc_subset_still_builds(tmp_path):
    source = arc_files(tmp_path)
    result = augment_arc(tmp_path, source)
    assert result.exit_code == 0, result.output


# ---------------------------------------------------------------------------------------------------------------
# --out naming an existing directory
# ---------------------------------------------------------------------------------------------------------------

def test_convert_out_dot_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    (tmp_path / "recipe.yaml").write_text("mine\n")
    monkeypatch.chdir(tmp_path)
    result = invoke("convert", "reference", tmp_path / "model.pt", "--recipe", QUICKSTART, "--out", ".")
    assert error_line(result) == "trm: error: .: is a directory that is not empty; --out names a new run directory " \
                                 "to create"
    assert (tmp_path / "recipe.yaml").read_text() == "mine\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "recipe.yaml"]


@pytest.mark.parametrize("command", [["eval", "runs/x"], ["bench", "--tiny"]])
def test_json_out_that_is_a_directory_is_refused(tmp_path, command):
    result = invoke(*command, "--out", tmp_path)  # click's usage error, told in one line as trm's own are
    assert result.exit_code == 2 and "Traceback" not in result.output
    line = result.stderr.strip()  # CliRunner calls the program `cli`
    assert line == (f"trm: error: Invalid value for '--out': File '{tmp_path}' is a directory; "
                    f"see `cli {command[0]} --help`")


# ---------------------------------------------------------------------------------------------------------------
# plugins
# ---------------------------------------------------------------------------------------------------------------

def test_an_unknown_trm_load_plugins_name_is_named_up_front():
    env = {**__import__("os").environ, "TRM_LOAD_PLUGINS": "sudoku,attentoin"}
    result = subprocess.run([sys.executable, "-m", "trm", "list", "tasks"], capture_output=True, text=True, env=env,
                            cwd=REPO, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "trm: error: TRM_LOAD_PLUGINS: no installed trm plugin is named 'attentoin' (did you mean 'attention'?) "
        "(installed: ")


def test_a_module_name_in_trm_load_plugins_gets_the_plugin_name(monkeypatch, fresh_global_host):
    monkeypatch.setenv(plugins.ENV_LOAD, "trm_sudoku")
    with pytest.raises(UserError, match=r"'trm_sudoku' is the module of plugin 'sudoku'; TRM_LOAD_PLUGINS takes "
                                        r"plugin names"):
        plugins.PluginHost(warn=False)


@attrs.frozen
class _Options:
    width: int = 1


def _backbone(name="bad"):
    return BackboneSpec(name, _Options, lambda options, shape: None, "a backbone")


def _returning(value):
    class Plugin:
        @hookimpl
        def trm_backbones(self):
            return value() if callable(value) else value
    return Plugin()


@pytest.mark.parametrize("value, problem", [
    ({"bad": "x"}, "trm_backbones() returned dict {'bad': 'x'}, expected a list of BackboneSpec"),
    ("attention", "trm_backbones() returned str 'attention', expected a list of BackboneSpec"),
    (7, "trm_backbones() returned int 7, expected a list of BackboneSpec"),
    ([{"name": "bad"}], "trm_backbones() returned dict {'name': 'bad'} as item 0, expected BackboneSpec"),
    (lambda: [TaskSpec("bad", _Options, lambda o, w: None, "a task")],
     "trm_backbones() returned TaskSpec TaskSpec(name='bad'"),
    (lambda: [_backbone(""),], "trm_backbones(): item 0 has name '', expected a non-empty string"),
    (lambda: [BackboneSpec("bad", {"width": 1}, lambda o, s: None, "b")],
     "trm_backbones(): backbone 'bad' has options_class {'width': 1}, expected an attrs class"),
    (lambda: (_ for _ in ()).throw(RuntimeError("boom")), "trm_backbones() failed: RuntimeError: boom"),
])
def test_a_registration_hook_returning_the_wrong_type_names_the_plugin(monkeypatch, value, problem):
    host = plugins.PluginHost(load_entry_points=False, warn=False)
    host.register(_returning(value), "my-plugin")
    monkeypatch.setattr(plugins, "_host", host)
    line = error_line(invoke("list", "backbones"), exit_code=3)  # the plugin's bug, not the user's mistake
    assert line.startswith(f"trm: error: plugin 'my-plugin': {problem}"), line


def test_a_generator_of_records_is_a_fine_return_value(empty_host):
    empty_host.register(_returning(lambda: (spec for spec in [_backbone("gen")])), "gen-plugin")
    assert empty_host.registry("backbones").names() == ["gen"]


def test_a_convert_identifiers_file_that_is_not_utf8_is_named(tmp_path):
    from trm.convert import _identifier_names

    names = tmp_path / "identifiers.json"
    names.write_bytes(b'["<blank>", "caf\xe9"]')
    with pytest.raises(UserError, match=rf"^{names}: not UTF-8 text: byte 0xe9 at byte offset 16 \(line 1\)"):
        _identifier_names(names, None)


def test_a_usage_mistake_is_one_line_naming_the_help():
    """click prints usage, a hint and the message; trm says it in one line, as its other errors."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "trm", "eval", "runs/x", "--max-steps", "0"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == ("trm: error: Invalid value for '--max-steps': 0 is not in the range x>=1; "
                                     "see `trm eval --help`")


@pytest.mark.parametrize("args, line", [
    (["list"], "trm: error: Missing argument '{backbones|tasks|halting|evaluators}'. Choose from: backbones, tasks, "
               "halting, evaluators; see `trm list --help`"),
    (["run", "--resume"], "trm: error: Option '--resume' requires an argument; see `trm run --help`"),
    (["--data-root"], "trm: error: Option '--data-root' requires an argument; see `trm --help`"),
])
def test_usage_mistakes_that_click_tells_on_several_lines_or_without_a_command_are_one_line_naming_the_help(
        args, line):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "trm", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.strip() == line
