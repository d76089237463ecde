"""Options of the ``maze`` task (``trm augment maze ... key=value``) and of the ``maze_path`` evaluator."""

from __future__ import annotations

import attrs


def _help(text: str) -> dict[str, str]:
    return {"help": text}


# Ranges as validators, so that `trm recipe validate` reports them and `trm list tasks` shows them; the builder's
# check_options repeats them for options made with validators off.
_at_least_one = attrs.validators.ge(1)


@attrs.frozen
class MazeOptions:
    """How to build a maze store. Defaults build the reference's Maze-Hard layout (docs/reference-code.md 1.2)."""

    source: str = attrs.field(default="generate", metadata=_help(
        "'generate' (the built-in generator), a directory holding the CSVs, or the training CSV file itself"))
    train_file: str | None = attrs.field(default=None, metadata=_help(
        "training CSV inside a source directory (default train.csv)"))
    test_file: str | None = attrs.field(default=None, metadata=_help(
        "test CSV inside the source directory / beside the source file (default test.csv if present)"))
    seed: int = attrs.field(default=0, metadata=_help("seed of the subsample and of the generator"))
    subsample_size: int | None = attrs.field(default=None, validator=attrs.validators.optional(_at_least_one),
                                             metadata=_help(
        "keep this many training mazes, drawn with the seed (the reference draws them unseeded); null keeps all"))
    dihedral_aug: bool = attrs.field(default=False, metadata=_help(
        "train split only: store the 8 dihedral versions of each maze in one group (the paper's text); off by "
        "default, as the reference builder's default and its README command"))
    verify: bool = attrs.field(default=True, metadata=_help(
        "check every CSV label is a BFS-shortest S-to-G path (generated mazes are always checked)"))
    size: int = attrs.field(default=30, validator=attrs.validators.ge(2), metadata=_help("generate: side of the square grid (Maze-Hard: 30)"))
    min_path_length: int = attrs.field(default=109, validator=_at_least_one, metadata=_help(
        "generate: minimum shortest-path length in moves (Maze-Hard: 'longer than 110' cells = 109 moves)"))
    wall_density: float = attrs.field(default=0.35, validator=attrs.validators.and_(
        attrs.validators.ge(0.0), attrs.validators.lt(1.0)), metadata=_help(
        "generate: probability that a cell starts as a wall, before hardening adds walls (0.35 ends near "
        "Maze-Hard's 37% walls)"))
    num_train: int = attrs.field(default=1000, validator=_at_least_one, metadata=_help("generate: training mazes"))
    num_test: int = attrs.field(default=1000, validator=attrs.validators.ge(0), metadata=_help("generate: test mazes (none shared with train)"))


@attrs.frozen
class MazePathOptions:
    """What ``maze_path`` writes besides its metrics."""

    write_examples: bool = attrs.field(default=True, metadata=_help(
        "write maze_path_examples.jsonl: one line per evaluated maze (exact, connects, shortest, lengths)"))
    render_failures: int = attrs.field(default=5, validator=attrs.validators.ge(0), metadata=_help(
        "write this many wrong predictions, rendered against the label, to maze_path_failures.txt"))
