"""The ``--device`` option of the commands that compute (``trm bench``, ``trm solve``): parsed and checked to exist
before any work, so that a mistake is one line (docs/cli.md, "Errors") instead of torch's traceback."""

from __future__ import annotations

import torch

from trm.errors import UserError


def resolve_device(device: str | None, *, default: str = "auto") -> torch.device:
    """``device`` parsed and checked to exist; :class:`UserError` if not. None gives ``default``: ``auto`` is cuda
    when available, else cpu."""
    if device is None:
        return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if default == "auto" else default)
    try:
        target = torch.device(device)
    except (RuntimeError, ValueError):
        raise UserError(f"--device {device!r}: not a device; expected e.g. cpu, cuda or cuda:1") from None
    if target.type == "cuda":
        # is_available() is False both on a machine without a GPU and on a torch built without CUDA.
        if not torch.cuda.is_available():
            raise UserError(f"--device {device}: CUDA is not available to this torch ({torch.__version__}); "
                            "use --device cpu")
        if target.index is not None and target.index >= torch.cuda.device_count():
            raise UserError(f"--device {device}: no such GPU; this machine has {torch.cuda.device_count()}")
    elif target.type != "cpu":
        raise UserError(f"--device {device}: expected cpu or cuda (cuda:N for one GPU of several)")
    return target
