"""``trm arc ...``: the ARC plugin's commands (added through the ``trm_commands`` hook).

``trm arc check-leakage`` reports test answers found among the training examples (docs/reference-code.md 1.3 and 10.4:
ARC-AGI-2's training2 holds 376 ARC-AGI-1 evaluation tasks). It exits 1 when leakage is found, so scripts can stop.
``trm arc stats`` prints the sizes a build would have, without writing anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from trm.errors import UserError


DEFAULT_SUBSETS = "training,evaluation,concept"


def _options(source: str | None, subsets: str | None, test_subset: str | None, store: str | None,
             num_aug: int | None):
    """The build options to plan: a STORE's recorded options, each replaced by a flag the user gave (a flag not
    given is None), or, without STORE, the flags with their documented defaults."""
    from trm_arc.options import ArcOptions

    if store is not None:
        from trm.store import open_store

        info = open_store(Path(store), expect_task="arc").info
        values = dict(info.task_options)
        given = {"source": source, "subsets": _names(subsets), "test_subset": test_subset, "num_aug": num_aug}
        values.update({key: value for key, value in given.items() if value is not None})
        if test_subset == "":  # given as '': no test split
            values["test_subset"] = None
        return ArcOptions(**values)
    if source is None:
        raise UserError("trm arc: give --source DIR (with --subsets/--test-subset) or a built STORE")
    return ArcOptions(source=source, subsets=_names(subsets or DEFAULT_SUBSETS),
                      test_subset=(test_subset if test_subset is not None else "evaluation") or None,
                      num_aug=1000 if num_aug is None else num_aug)


def _names(subsets: str | None) -> list[str] | None:
    return None if subsets is None else [s.strip() for s in subsets.split(",") if s.strip()]


@click.group(name="arc")
def arc_group() -> None:
    """ARC task tools: leakage check and build statistics."""


def _build_choice(command: Any) -> Any:
    """STORE and the flags that stand for (or override) its recorded build options, shared by both commands."""
    for decorator in reversed((
        click.argument("store", required=False),
        click.option("--source", help="Directory of the Kaggle JSON files (default: the store's recorded source)."),
        click.option("--subsets", default=None,
                     help=f"Comma-separated subsets to build from (default: the store's, else {DEFAULT_SUBSETS})."),
        click.option("--test-subset", default=None,
                     help="The scored subset; '' for none (default: the store's, else evaluation)."),
    )):
        command = decorator(command)
    return command


@arc_group.command(name="check-leakage")
@_build_choice
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
def check_leakage_command(store, source, subsets, test_subset, as_json) -> None:
    """Report test pairs that occur among the training examples (exactly or up to augmentation).

    Reads STORE's recorded build options, or the flags without STORE; a flag overrides the store's option.
    Exits 1 if any leaked, 0 if clean.
    """
    from trm_arc.build import _route, load_tasks
    from trm_arc.leakage import check_leakage

    options = _options(source, subsets, test_subset, store, 0)
    loaded = load_tasks(options)
    training = []
    for role, task in loaded:
        pairs, _ = _route(role, task, options)
        if pairs:
            training.append((task.subset, task.task_id, pairs))
    report = check_leakage(training, [task for role, task in loaded if role != "train"])
    click.echo(json.dumps(report.to_json(), indent=1) if as_json else "\n".join(report.lines()))
    raise SystemExit(0 if report.clean else 1)


@arc_group.command(name="stats")
@_build_choice
@click.option("--num-aug", type=click.IntRange(min=0), default=None,
              help="Augmented versions per task (default: the store's, else 1000).")
def stats_command(store, source, subsets, test_subset, num_aug) -> None:
    """Groups, puzzles, examples and identifiers a build would have (plans the augmentation, writes nothing).

    Reads STORE's recorded build options, or the flags without STORE; a flag overrides the store's option.
    """
    from trm_arc.build import plan_build, plan_statistics

    plan = plan_build(_options(source, subsets, test_subset, store, num_aug))
    for key, value in plan_statistics(plan).items():
        click.echo(f"{key:28s} {value:.5f}" if isinstance(value, float) else f"{key:28s} {value}")
