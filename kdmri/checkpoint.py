"""Checkpoints: state dicts plus plain metadata, written atomically, read with weights_only.

Two files per experiment folder:

* ``model.pt``  the last epoch: model, optimiser, scheduler and loss-module states, the
  epoch count, the per-epoch history and the configuration, so training can resume;
* ``best_model.pt`` the model with the lowest validation loss, with its architecture so it
  can be rebuilt without the code that trained it.

Both are written to a temporary file and renamed (``os.replace`` is atomic on POSIX), so a
crash mid-write leaves the previous file intact.
"""

from __future__ import annotations

from pathlib import Path

import torch

from kdmri.errors import DataError
from kdmri.io import atomic_save  # noqa: F401  (re-exported: checkpoints are written with it)
from kdmri.models import arch_of, build_from_arch  # noqa: F401  (importing kdmri.models registers every network)

LAST = "model.pt"
BEST = "best_model.pt"


def load_checkpoint(path: Path | str, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; clear errors for missing/corrupt files."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found (train the stage that makes it first)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise DataError(f"{path}: not a readable kdmri checkpoint ({exc})") from exc
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise DataError(f"{path}: expected a kdmri checkpoint dict with a 'model' state dict")
    return ckpt


def load_model(path: Path | str, map_location: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild and load the model of a checkpoint; returns ``(model, checkpoint)``."""
    ckpt = load_checkpoint(path, map_location)
    if "arch" not in ckpt:
        raise DataError(f"{path}: checkpoint has no 'arch' entry; cannot rebuild the model")
    model = build_from_arch(ckpt["arch"], source=str(path))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise DataError(f"{path}: weights do not fit the stored architecture ({exc})") from exc
    return model.to(map_location), ckpt
