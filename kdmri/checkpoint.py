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

from collections.abc import Mapping
from pathlib import Path

import torch

from kdmri.errors import DataError
from kdmri.io import atomic_save  # noqa: F401  (re-exported: checkpoints are written with it)
from kdmri.models import (  # noqa: F401  (importing kdmri.models registers every network)
    arch_of,
    build_from_arch,
    build_network,
)

#: Containers of a state dict in checkpoint files of other code (Lightning, fastMRI, ...).
STATE_KEYS = ("model", "state_dict", "model_state_dict", "net", "params")

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


def state_dict_of(source: Mapping | Path | str, where: str = "weights") -> tuple[dict, dict]:
    """``(state dict, checkpoint)`` of a checkpoint file or dict: a kdmri checkpoint, a dict
    holding one under a key of :data:`STATE_KEYS`, or a plain state dict."""
    ckpt: Mapping
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise DataError(f"{where} {path}: file not found")
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise DataError(f"{where} {path}: not a readable torch checkpoint ({exc})") from exc
    else:
        ckpt = source
    if not isinstance(ckpt, Mapping):
        raise DataError(f"{where}: expected a state dict or a checkpoint dict, got {type(ckpt).__name__}")
    for key in STATE_KEYS:
        if isinstance(ckpt.get(key), Mapping):
            return dict(ckpt[key]), dict(ckpt)
    if ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return dict(ckpt), {}
    raise DataError(f"{where}: no state dict found; expected tensors or one of the keys "
                    f"{list(STATE_KEYS)}, got keys {sorted(ckpt)[:10]}")


def _strip_prefix(state: dict, own: set[str]) -> dict:
    """``state`` with one common key prefix removed (``module.``, ``unet.``) when that makes
    its keys the model's."""
    if set(state) == own or not state:
        return state
    for key in own:
        for k in state:
            if k.endswith("." + key):
                prefix = k[: -len(key)]
                stripped = {s[len(prefix):]: v for s, v in state.items() if s.startswith(prefix)}
                if set(stripped) == own:
                    return stripped
        break
    return state


def load_weights(model: torch.nn.Module, source: Mapping | Path | str,
                 where: str = "weights") -> dict:
    """Load a state dict (from :func:`state_dict_of`'s sources) into ``model``, strictly.

    A common key prefix (``module.``, ``unet.``) is removed when that makes the keys match.
    Missing keys, unexpected keys and shape mismatches raise one DataError listing them
    (the key-mismatch report). Returns ``{"loaded": n, "checkpoint": the dict read}``.
    """
    state, ckpt = state_dict_of(source, where)
    own = model.state_dict()
    state = _strip_prefix(state, set(own))
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in set(own) & set(state)
                    if tuple(state[k].shape) != tuple(own[k].shape))
    if missing or unexpected or shapes:
        def show(keys):
            return f"{len(keys)} {keys[:8]}{' ...' if len(keys) > 8 else ''}"
        raise DataError(f"{where}: the weights do not fit {type(model).__name__}: missing "
                        f"{show(missing)}, unexpected {show(unexpected)}, shape mismatches (file vs "
                        f"model) {show(shapes)}")
    model.load_state_dict(state)
    return {"loaded": len(state), "checkpoint": ckpt}


def load_network(source: Path | str, spec=None, options: Mapping | None = None,
                 map_location: str | torch.device = "cpu", where: str = "teacher_checkpoint"
                 ) -> tuple[torch.nn.Module, dict]:
    """A network with the weights of ``source`` (any checkpoint file or state dict).

    The network is ``spec`` (a registered kind, an import path or a module, with ``options``;
    :func:`kdmri.models.registry.build_network`) when given, else the ``arch`` the checkpoint
    stores. Weights load with the key-mismatch report of :func:`load_weights`. Returns
    ``(model, checkpoint dict)``.
    """
    from_file = not isinstance(source, Mapping)
    label = f"{where} {source}" if from_file else where
    state, ckpt = state_dict_of(source, label)
    if spec is not None:
        model = build_network(spec, options, where)
    elif ckpt.get("arch"):
        model = build_from_arch(ckpt["arch"])
    else:
        raise DataError(f"{label}: a plain state dict names no network; name it with teacher_model "
                        "(a registered kind or 'package.module:Class') and its options")
    load_weights(model, state, label)
    return model.to(map_location), ckpt
