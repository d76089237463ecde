"""Writing a maze store: CSV or generated mazes -> groups of puzzles through trm's dataset writer.

Follows the reference's ``build_maze_dataset.py`` (docs/reference-code.md 1.2): tokens PAD 0 + ``"# SGo"`` as 1..5 (vocab 6),
seq_len side*side, labels the full answer grid (nothing ignored), one group per maze, every puzzle identifier 0 so
all mazes share the single puzzle-embedding row (``num_puzzle_identifiers`` = 1, only ``"<blank>"``). With
``dihedral_aug`` a training group holds the 8 dihedral versions (ids 0..7 in order, docs/reference-code.md 1.3); the test
split is never augmented. Differences from the reference: the training subsample is seeded, and every label is
checked to be a BFS-shortest path (``verify``).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from trm.errors import UserError
from trm.heldout import Deduplicator, find_shared, symmetry_key
from trm.symmetry import NUM_DIHEDRAL, dihedral_flat
from trm.types import TaskDims
from trm_maze.csv_source import peek_seq_len, read_csv, split_files
from trm_maze.generate import generate_mazes
from trm_maze.grid import PATH, TOKEN_NAMES, VOCAB_SIZE, WALL, side_of
from trm_maze.options import MazeOptions

BLANK_IDENTIFIER = 0  # every maze shares the "<blank>" puzzle-embedding row, as in the reference


def check_options(options: MazeOptions) -> None:
    """UserError naming the first option out of range."""
    problems = []
    if options.subsample_size is not None and options.subsample_size < 1:
        problems.append(f"subsample_size must be >= 1 or null, got {options.subsample_size}")
    if options.source == "generate":
        if options.size < 2:
            problems.append(f"size must be >= 2, got {options.size}")
        if options.min_path_length < 1:
            problems.append(f"min_path_length must be >= 1 move, got {options.min_path_length}")
        if not 0.0 <= options.wall_density < 1.0:
            problems.append(f"wall_density must be in [0, 1), got {options.wall_density}")
        if options.num_train < 1 or options.num_test < 0:
            problems.append(f"num_train must be >= 1 and num_test >= 0, got {options.num_train}, {options.num_test}")
    if problems:
        raise UserError("maze task options: " + "; ".join(problems))


def load_splits(options: MazeOptions, rng: np.random.Generator, progress: Any = None) -> dict[str, tuple]:
    """Split name -> (questions, answers) token arrays [N, side*side], before subsampling and augmentation."""
    if options.source == "generate":
        seen = Deduplicator()  # one for both splits: no maze is in two splits (nor twice in one)
        splits = {}
        for name, count in (("train", options.num_train), ("test", options.num_test)):
            if count == 0:
                continue
            pairs = generate_mazes(rng, count=count, side=options.size, min_path_length=options.min_path_length,
                                   wall_density=options.wall_density, seen=seen, split=name)
            if progress is not None:
                pairs = progress(pairs, total=count, desc=f"generating {name}")
            try:
                pairs = list(pairs)
            except ValueError as exc:  # the length target is out of reach for this size
                raise UserError(f"maze task options: {exc}") from None
            splits[name] = (np.stack([q for q, _ in pairs]), np.stack([a for _, a in pairs]))
        return splits
    return {name: read_csv(path, verify=options.verify)
            for name, path in split_files(options.source, options.train_file, options.test_file).items()}


def warn_symmetric_overlap(train: np.ndarray, test: np.ndarray, side: int) -> None:
    """Warn (stderr) when test mazes equal a rotation or reflection of a training maze: with ``dihedral_aug`` that
    version is trained on, so the test score would count it. Only a warning: the store stays as built."""
    key = symmetry_key(dihedral_group=True)
    shared = find_shared({"train": [q.reshape(side, side) for q in train], "test": [q.reshape(side, side) for q in test]},
                         key)
    if shared:
        tests = sorted({index for _, _, _, index in shared})
        print(f"warning: {len(tests)} test maze(s) (e.g. row {tests[0]}) equal a rotation or reflection of a training "
              "maze, which dihedral_aug trains on; their test scores are not held out", file=sys.stderr)


def split_stats(questions: np.ndarray, answers: np.ndarray) -> dict[str, float]:
    """Path lengths (moves = path cells + 1) and wall fractions of one split, recorded in the store's extras."""
    moves = (answers == PATH).sum(axis=1) + 1
    walls = (questions == WALL).mean(axis=1)
    return {"mazes": int(len(questions)), "path_moves_min": int(moves.min()),
            "path_moves_mean": round(float(moves.mean()), 2), "path_moves_max": int(moves.max()),
            "wall_fraction_mean": round(float(walls.mean()), 4)}


def build(options: MazeOptions, writer: Any) -> None:
    """Read or generate the mazes and write both splits through ``writer`` (seeded, deterministic)."""
    check_options(options)
    rng = np.random.default_rng(options.seed)
    splits = load_splits(options, rng, progress=writer.progress)
    seq_len = splits["train"][0].shape[1]
    for name, (questions, _) in splits.items():
        if questions.shape[1] != seq_len:
            raise UserError(f"maze {name} split has {questions.shape[1]} cells per maze, train has {seq_len}")
    side = side_of(seq_len)
    writer.set_vocabulary(vocab_size=VOCAB_SIZE, seq_len=seq_len, pad_id=0, ignore_label_id=0,
                          token_names=TOKEN_NAMES)
    if options.subsample_size is not None and options.subsample_size < len(splits["train"][0]):
        keep = np.sort(rng.choice(len(splits["train"][0]), size=options.subsample_size, replace=False))
        splits["train"] = (splits["train"][0][keep], splits["train"][1][keep])
    if options.dihedral_aug and "test" in splits:
        warn_symmetric_overlap(splits["train"][0], splits["test"][0], side)
    stats = {}
    for name, (questions, answers) in splits.items():
        transforms = range(NUM_DIHEDRAL) if (options.dihedral_aug and name == "train") else (0,)
        out = writer.split(name)
        for question, answer in writer.progress(zip(questions, answers), total=len(questions), desc=name):
            out.add_group([
                (BLANK_IDENTIFIER, dihedral_flat(question, tid, side)[None], dihedral_flat(answer, tid, side)[None])
                for tid in transforms
            ])
        stats[name] = split_stats(questions, answers)
    writer.set_extra("maze", {"side": side, "dihedral_aug": bool(options.dihedral_aug), "splits": stats})


def dims(options: MazeOptions) -> TaskDims:
    """Sizes a build would have: size*size when generating, else the first CSV row's length (900 if unreadable)."""
    if options.source == "generate":
        seq_len = options.size * options.size
    else:
        try:
            train = split_files(options.source, options.train_file, options.test_file)["train"]
            seq_len = peek_seq_len(train) or 900
        except UserError:
            seq_len = 900
    return TaskDims(vocab_size=VOCAB_SIZE, seq_len=seq_len, num_puzzle_identifiers=1)
