"""Options of the ``arc`` task (``trm augment arc ... key=value``) and of the ``arc_vote`` evaluator."""

from __future__ import annotations

from typing import Literal

import attrs


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@attrs.frozen
class ArcOptions:
    """How to build an ARC store. Defaults reproduce the reference's ARC-AGI-1 build (docs/reference-code.md 1.3)."""

    source: str = attrs.field(default="", metadata=_help(
        "directory holding <file_prefix>_<subset>_challenges.json and _solutions.json (Kaggle format)"))
    subsets: list[str] = attrs.field(factory=lambda: ["training", "evaluation", "concept"], metadata=_help(
        "subsets to read, in order (ARC-AGI-1: training, evaluation, concept; ARC-AGI-2: training2, evaluation2, "
        "concept)"))
    test_subset: str | None = attrs.field(default="evaluation", metadata=_help(
        "the subset whose test pairs form the test split (must be in subsets); null: no test split"))
    hidden_test_subset: str | None = attrs.field(default=None, metadata=_help(
        "an extra subset without known answers (e.g. Kaggle's 'test'): demos go to train, test inputs to the test "
        "split with the dummy output [[0]]; loaded after subsets"))
    eval_demos_in_train: bool = attrs.field(default=True, metadata=_help(
        "put the test subsets' demonstration pairs in the train split (the reference does; the test tasks' puzzle "
        "embeddings are learned from them)"))
    num_aug: int = attrs.field(default=1000, validator=attrs.validators.ge(0), metadata=_help(
        "augmented versions per task besides the original (dihedral x colour permutation, de-duplicated)"))
    retries_factor: int = attrs.field(default=5, validator=attrs.validators.ge(1), metadata=_help(
        "at most retries_factor * num_aug candidate augmentations are tried per task"))
    translate: bool = attrs.field(default=True, metadata=_help(
        "randomly translate training examples on the 30x30 canvas (one example per version stays at the corner)"))
    seed: int = attrs.field(default=42, metadata=_help("seed of the task order, augmentations and translations"))
    task_ids: list[str] | None = attrs.field(default=None, metadata=_help(
        "keep only these task ids (from any subset); null keeps all"))
    max_tasks: int | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.ge(1)),
                                        metadata=_help(
        "keep only the first max_tasks task ids (sorted) of each subset; null keeps all"))
    file_prefix: str = attrs.field(default="arc-agi", metadata=_help("file name prefix of the Kaggle JSON files"))
    on_leakage: Literal["warn", "error"] = attrs.field(default="warn", metadata=_help(
        "what to do when test answers occur among the training examples: warn loudly, or refuse to build"))


@attrs.frozen
class ArcVoteOptions:
    """How ``arc_vote`` scores and what it writes (docs/reference-code.md 7)."""

    pass_at: list[int] = attrs.field(factory=lambda: [1, 2, 5, 10, 100, 1000], metadata=_help(
        "K values of pass@K (the paper reports pass@2)"))
    submission_votes: Literal["accumulated", "round"] = attrs.field(default="accumulated", metadata=_help(
        "which votes submission.json uses: all evaluation rounds so far (the reference) or the latest round only"))
    fallback_grid: list[list[int]] = attrs.field(factory=lambda: [[0]], metadata=_help(
        "attempt written for a test input that received no prediction"))
    top_candidates: int = attrs.field(default=10, validator=attrs.validators.ge(1), metadata=_help(
        "candidates per test input listed in votes.json (for inspection)"))
