"""Checkpoints on the Hugging Face Hub for ``trm convert reference``: ``hf:OWNER/REPO[/PATH][@REVISION]``.

A reference is parsed, its file's size read from the Hub's metadata (a HEAD request) and compared with the size the
recipe's model implies *before* the file is downloaded, so a checkpoint of another model (the MLP variant for an
attention recipe, another task's vocabulary) is refused in seconds instead of after gigabytes. The download goes
through ``huggingface_hub`` into its usual cache (``HF_HOME``/``HF_HUB_CACHE``; ``HF_ENDPOINT`` honoured), which
resumes interrupted transfers. :data:`KNOWN_CHECKPOINTS` lists the public TRM checkpoints we know of, with the
trm recipe each corresponds to (docs/convert.md has the same table).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import attrs

from trm.errors import UserError
from trm.fetch import sha256_file

HUB_PREFIX = "hf:"
_REF = re.compile(r"^hf:(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:/(?P<path>[^@]+?))?/?(?:@(?P<rev>[\w./-]+))?$")


@attrs.frozen
class HubRef:
    repo_id: str
    path: str | None
    revision: str | None

    def __str__(self) -> str:
        return f"hf:{self.repo_id}{'/' + self.path if self.path else ''}{'@' + self.revision if self.revision else ''}"


@attrs.frozen
class KnownCheckpoint:
    """A public checkpoint of the reference code and the trm recipe describing its model."""

    repo_id: str
    path: str
    recipe: str | None  # a shipped recipe's name; None: not confirmed which one (the size check tells)
    size: int | None  # bytes, where a public source states it
    origin: str


KNOWN_CHECKPOINTS: tuple[KnownCheckpoint, ...] = (
    KnownCheckpoint("arcprize/trm_arc_prize_verification", "arc_v1_public/step_518071", "arc1_attn",
                    1_822_205_258, "ARC Prize Foundation's re-training with the official code (ARC-AGI-1, MIT)"),
    KnownCheckpoint("arcprize/trm_arc_prize_verification", "arc_v2_public/step_723914", "arc2_attn",
                    2_467_988_810, "ARC Prize Foundation's re-training with the official code (ARC-AGI-2, MIT)"),
    KnownCheckpoint("alphaXiv/trm-model-maze", "maze_hard_step_32550", "maze_attn", None,
                    "alphaXiv's independent reproduction (Maze-Hard)"),
    KnownCheckpoint("alphaXiv/trm-model-sudoku", "step_39060_sudoku_epoch_60k", None, None,
                    "alphaXiv's independent reproduction (Sudoku-Extreme; MLP or attention not confirmed)"),
    KnownCheckpoint("alphaXiv/trm-model-sudoku", "step_39060_sudoku_60k_epoch_attn_type", None, None,
                    "alphaXiv's independent reproduction (Sudoku-Extreme; MLP or attention not confirmed)"),
)


def is_hub_ref(text: str) -> bool:
    return str(text).startswith(HUB_PREFIX)


def parse_hub_ref(text: str) -> HubRef:
    """``hf:OWNER/REPO[/PATH][@REVISION]``; without PATH, the repository's one known checkpoint."""
    match = _REF.match(text.strip())
    if match is None:
        raise UserError(f"checkpoint '{text}': expected hf:OWNER/REPO[/PATH][@REVISION], "
                        "e.g. hf:arcprize/trm_arc_prize_verification/arc_v1_public/step_518071")
    ref = HubRef(match.group("repo"), match.group("path"), match.group("rev"))
    if ref.path is None:
        known = [k for k in KNOWN_CHECKPOINTS if k.repo_id.lower() == ref.repo_id.lower()]
        if len(known) != 1:
            choices = ", ".join(f"hf:{k.repo_id}/{k.path}" for k in known) or "name the file after the repository"
            raise UserError(f"checkpoint '{text}': which file of {ref.repo_id}? ({choices})")
        ref = attrs.evolve(ref, path=known[0].path)
    return ref


def known_checkpoint(ref: HubRef) -> KnownCheckpoint | None:
    return next((k for k in KNOWN_CHECKPOINTS
                 if k.repo_id.lower() == ref.repo_id.lower() and k.path == ref.path), None)


def default_recipe(ref: HubRef) -> str:
    """The shipped recipe's name of a known checkpoint (``--recipe`` left out; trm/recipe_catalog.py finds it)."""
    known = known_checkpoint(ref)
    if known is None or known.recipe is None:
        raise UserError(f"{ref}: no recipe is known for this checkpoint; pass --recipe (docs/convert.md lists the "
                        "known public checkpoints)")
    return known.recipe


def expected_bytes(model: Any, rows: int | None) -> tuple[int, int]:
    """(bytes of every tensor but the puzzle-embedding table, bytes per table row) of the reference's state dict
    for ``model``: the reference saves float32 weights (its two bf16 init vectors are a few KB)."""
    fixed, per_row = 0, 0
    for name, tensor in model.state_dict().items():
        if name == "puzzle_emb.weights":
            per_row = int(tensor.shape[1]) * 4 if tensor.ndim == 2 else 0
        else:
            fixed += tensor.numel() * 4
    return fixed, per_row


def check_size(ref: HubRef, size: int | None, fixed: int, per_row: int, rows: int | None) -> str:
    """UserError when a checkpoint of ``size`` bytes cannot hold the recipe's model; else a line saying what was
    checked. With ``rows`` known the size must match, within 1% + 64 KiB (torch's zip container and pickle), the
    float32 size or, for a checkpoint saved in bfloat16, half of it; without, it must at least hold the weights."""
    if size is None:
        return f"{ref}: the Hub did not report a size; checked after the download instead"
    mib = 2 ** 20

    def fits(expected: float) -> bool:
        return abs(size - expected) <= 0.01 * expected + 64 * 2 ** 10

    if rows is not None:
        expected = fixed + rows * per_row
        if not (fits(expected) or fits(expected / 2)):
            raise UserError(f"{ref} is {size / mib:,.2f} MiB but the recipe's model with {rows:,} puzzle "
                            f"identifier(s) takes about {expected / mib:,.2f} MiB in the reference's format: it is "
                            "the checkpoint of another model (other backbone, sizes or data); nothing was downloaded")
        return f"{ref}: {size / mib:,.2f} MiB, as the recipe's model implies ({expected / mib:,.2f} MiB)"
    if size < 0.99 * fixed / 2:
        raise UserError(f"{ref} is {size / mib:,.2f} MiB, smaller than the {fixed / mib:,.2f} MiB of the recipe's "
                        "weights without the puzzle embeddings: it is the checkpoint of another model; nothing was "
                        "downloaded")
    implied = max(size - fixed, 0) // per_row if per_row else 0
    return (f"{ref}: {size / mib:,.2f} MiB, room for the recipe's weights and about {implied:,} float32 "
            "puzzle-embedding rows (checked against the store once it exists)")


def hub_metadata(ref: HubRef) -> Any:
    """The Hub's metadata of the file (size, commit, ETag) from a HEAD request; UserError when unreachable."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    endpoint = os.environ.get("HF_ENDPOINT") or None
    try:
        return get_hf_file_metadata(hf_hub_url(ref.repo_id, ref.path, revision=ref.revision, endpoint=endpoint),
                                    endpoint=endpoint)
    except Exception as exc:  # noqa: BLE001 - offline, 404, auth: one line
        raise UserError(f"{ref}: cannot read it from the Hub ({_reason(exc)}); check the name, or download the file "
                        "yourself and pass its path") from None


def download(ref: HubRef, size: int | None, etag: str | None = None) -> Path:
    """The file, downloaded into huggingface_hub's cache (resumed there if interrupted) and checked against the
    announced size and, for LFS files, the SHA-256 the Hub gives as ETag."""
    from huggingface_hub import hf_hub_download

    endpoint = os.environ.get("HF_ENDPOINT") or None
    try:
        path = Path(hf_hub_download(ref.repo_id, ref.path, revision=ref.revision, endpoint=endpoint))
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{ref}: download failed ({_reason(exc)}); run the command again to resume") from None
    if size is not None and path.stat().st_size != size:
        raise UserError(f"{path}: {path.stat().st_size:,} bytes but the Hub announced {size:,}; delete it and retry")
    digest = (etag or "").strip('"').lower()
    if len(digest) == 64 and all(c in "0123456789abcdef" for c in digest):
        got = sha256_file(path)
        if got != digest:
            path.unlink(missing_ok=True)
            raise UserError(f"{ref}: the download has SHA-256 {got[:16]}... but the Hub announced {digest[:16]}...; "
                            "the corrupt copy was deleted, run the command again")
    return path


def _reason(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]
