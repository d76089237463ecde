"""The ``arc_vote`` evaluator: de-augment predictions, vote across versions, pass@K, Kaggle submission.

docs/reference-code.md 7 (ARC) and 10.5. For every valid row of the test split: crop the predicted and the input canvas,
undo the version's dihedral transform and colour map (parsed from its identifier name), find which test input of
which held-out task the de-augmented input is, and vote for the de-augmented prediction.

Two flavours of every score, clearly named:

* ``pass@K``: votes of this evaluation only (one checkpoint voted over its augmented versions);
* ``pass@K_accumulated``: votes of every evaluation of this evaluator object so far, the reference's behaviour
  (its evaluator is built once per run and never cleared, so the reported number ensembles all checkpoints).

The training loop builds the evaluator once per run and calls ``compute()`` after each evaluation pass; the next
``update()`` after a ``compute()`` starts a new round. Every process receives the same gathered batches, so every
process computes the same numbers; artefacts are written only by ``write()``. No torch.distributed is needed
(the reference requires it even on one GPU, docs/reference-code.md 10.7).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from trm.errors import UserError
from trm.types import EvalContext
from trm_arc.canvas import CANVAS, COLOUR_OFFSET, crop_sizes
from trm_arc.options import ArcVoteOptions
from trm_arc.submission import write_submission
from trm_arc.transforms import INVERSE_DIHEDRAL, dihedral, inverse_colours, parse_name
from trm_arc.vote import HeldOutTasks, VoteTable, grid_key, key_grid, pass_at_k


def _extras(info: Any) -> Mapping[str, Any]:
    extras = getattr(info, "extras", None)
    return extras() if callable(extras) else (extras or {})


def _identifier_names(info: Any) -> Any:
    names = getattr(info, "identifier_names", None)
    return names() if callable(names) else names


class ArcVoteEvaluator:
    """Votes across augmented versions; see the module docstring."""

    def __init__(self, options: ArcVoteOptions, test_puzzles: Mapping[str, Any], identifier_names: Any):
        self.options = options
        self.tasks = HeldOutTasks(test_puzzles)
        self.names = identifier_names
        self.fallback = np.array(options.fallback_grid, dtype=np.uint8)
        if self.fallback.ndim != 2 or self.fallback.size == 0:
            raise UserError(f"arc_vote: fallback_grid must be a non-empty grid, got {options.fallback_grid}")
        self._versions: dict[int, tuple[str, int, np.ndarray] | None] = {}
        self.accumulated = VoteTable()
        self.round = VoteTable()
        self.rounds = 0
        self._round_open = False
        self._rows = self._unmatched = self._unknown = 0

    # -- per identifier: which task, and how to undo its augmentation -----------------------------------------
    def _version(self, identifier: int) -> tuple[str, int, np.ndarray] | None:
        if identifier not in self._versions:
            version = None
            if 0 < identifier < len(self.names):
                task_id, tid, colour_map = parse_name(self.names[identifier])
                if task_id in self.tasks.slots_by_input:
                    version = (task_id, INVERSE_DIHEDRAL[tid], inverse_colours(colour_map))
            self._versions[identifier] = version
        return self._versions[identifier]

    def _start_round_if_needed(self) -> None:
        if not self._round_open:
            self.round = VoteTable()
            self.rounds += 1
            self._round_open = True
            self._rows = self._unmatched = self._unknown = 0

    def update(self, batch: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> None:
        self._start_round_if_needed()
        valid = np.asarray(batch["valid"]).astype(bool)
        identifiers = np.asarray(batch["puzzle_identifiers"])[valid]
        keep = identifiers != 0  # the blank identifier only pads
        identifiers = identifiers[keep]
        inputs = np.asarray(batch["inputs"])[valid][keep].reshape(-1, CANVAS, CANVAS)
        preds = np.asarray(outputs["preds"])[valid][keep].reshape(-1, CANVAS, CANVAS)
        q_halt = np.asarray(outputs["q_halt"], dtype=np.float64)[valid][keep]
        confidence = 1.0 / (1.0 + np.exp(-q_halt))
        in_rows, in_cols = crop_sizes(inputs)
        out_rows, out_cols = crop_sizes(preds)
        for r in range(len(identifiers)):
            self._rows += 1
            version = self._version(int(identifiers[r]))
            if version is None:
                self._unknown += 1
                continue
            task_id, undo_tid, undo_colours = version
            grid = inputs[r, :in_rows[r], :in_cols[r]].astype(np.uint8) - COLOUR_OFFSET
            slots = self.tasks.slots_by_input[task_id].get(grid_key(undo_colours[dihedral(grid, undo_tid)]))
            if not slots:
                self._unmatched += 1
                continue
            pred = preds[r, :out_rows[r], :out_cols[r]].astype(np.uint8) - COLOUR_OFFSET
            key = grid_key(undo_colours[dihedral(pred, undo_tid)])
            for index in slots:
                self.round.add((task_id, index), key, float(confidence[r]))
                self.accumulated.add((task_id, index), key, float(confidence[r]))

    def compute(self) -> dict[str, float]:
        self._round_open = False
        metrics: dict[str, float] = {}
        for suffix, table in (("", self.round), ("_accumulated", self.accumulated)):
            for k, value in pass_at_k(table, self.tasks, self.options.pass_at).items():
                metrics[f"pass@{k}{suffix}"] = value
        slots = list(self.tasks.slots())
        voted = [self.round.num_votes(slot) for slot in slots]
        metrics["scored_tasks"] = float(len(self.tasks.scored_tasks()))
        metrics["test_inputs"] = float(len(slots))
        metrics["test_inputs_without_votes"] = float(sum(v == 0 for v in voted))
        metrics["mean_votes_per_input"] = float(np.mean(voted)) if voted else math.nan
        metrics["unmatched_rows"] = float(self._unmatched)  # input not recognised: a corrupt store or wrong split
        metrics["unknown_identifier_rows"] = float(self._unknown)
        metrics["rounds_accumulated"] = float(self.rounds)
        return metrics

    def _votes_report(self, table: VoteTable) -> dict[str, Any]:
        report: dict[str, Any] = {}
        for task_id in self.tasks.task_ids:
            entries = []
            for index in range(self.tasks.num_inputs[task_id]):
                answer = self.tasks.answers[(task_id, index)]
                ranked = table.ranked((task_id, index))
                entries.append({
                    "votes": table.num_votes((task_id, index)),
                    "candidates": [{"grid": key_grid(key).tolist(), "count": count, "mean_q": round(mean_q, 6),
                                    "correct": None if answer is None else key == answer}
                                   for key, count, mean_q in ranked[:self.options.top_candidates]],
                })
            report[task_id] = entries
        return report

    def write(self, directory: Path) -> list[Path]:
        """``submission.json`` (Kaggle format, from the votes chosen by ``submission_votes``) and ``votes.json``
        (the top candidates of every test input, both flavours)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        table = self.accumulated if self.options.submission_votes == "accumulated" else self.round
        written = [write_submission(directory / "submission.json", table, self.tasks, self.fallback)]
        votes = directory / "votes.json"
        votes.write_text(json.dumps({"round": self._votes_report(self.round),
                                     "accumulated": self._votes_report(self.accumulated)}))
        written.append(votes)
        return written


def build_evaluator(options: ArcVoteOptions, context: EvalContext) -> ArcVoteEvaluator:
    """EvaluatorSpec.build of ``arc_vote``: reads the held-out tasks and identifier names from the store."""
    info = context.store_info
    test_puzzles = _extras(info).get("test_puzzles")
    if test_puzzles is None:
        raise UserError("arc_vote: the store has no 'test_puzzles' extra; evaluate a store built by `trm augment arc`")
    names = _identifier_names(info)
    if names is None:
        raise UserError("arc_vote: the store's metadata has no identifier names")
    return ArcVoteEvaluator(options, test_puzzles, names)
