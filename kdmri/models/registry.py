"""The model registry: checkpoints name their network by ``arch["kind"]`` and are rebuilt here.

A model class registers itself with :func:`register_model` and provides
``arch() -> dict`` (plain metadata, ``{"kind": ..., ...}``) and
``from_arch(arch: dict)`` (its inverse). :func:`build_from_arch` looks the kind up; no
if-chain on class names anywhere. Adding a network is one new file that registers itself.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from kdmri.errors import DataError

MODELS: dict[str, type[nn.Module]] = {}


def register_model(kind: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: register a model class under ``kind`` (its checkpoint name)."""

    def decorator(cls: type[nn.Module]) -> type[nn.Module]:
        if kind in MODELS and MODELS[kind] is not cls:
            raise ValueError(f"model kind {kind!r} is already registered ({MODELS[kind].__name__})")
        for method in ("arch", "from_arch"):
            if not hasattr(cls, method):
                raise TypeError(f"register_model({kind!r}): {cls.__name__} needs a {method}() method")
        cls.kind = kind
        MODELS[kind] = cls
        return cls

    return decorator


#: Bounds of the size fields of a stored ``arch`` (any network, nested dicts included):
#: checked before a checkpoint's network is built, so a corrupt or hostile file cannot ask
#: for terabytes. The published networks use 1 input channel, 32-64 channels, 5 cascades
#: of 3-5 convs, 20 VDSR layers.
ARCH_LIMITS: dict[str, tuple[int, int]] = {
    "channels": (1, 1024), "in_channels": (1, 16), "n_cascades": (1, 64), "n_convs": (1, 64),
    "n_layers": (1, 256),
}
#: Most parameters a rebuilt network may have (counted on the meta device, nothing allocated).
MAX_PARAMETERS = 200_000_000


def check_arch(arch: dict, source: str = "", prefix: str = "arch") -> None:
    """:class:`DataError` naming ``source`` (the file) and the field when a size field of
    ``arch`` is not an integer within :data:`ARCH_LIMITS`."""
    for key, value in arch.items():
        if isinstance(value, dict):
            check_arch(value, source, f"{prefix}.{key}")
        elif key in ARCH_LIMITS:
            low, high = ARCH_LIMITS[key]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise DataError(f"{source + ': ' if source else ''}checkpoint {prefix}.{key}={value!r}: "
                                f"expected an integer from {low} to {high} (a corrupt checkpoint?)")


def build_from_arch(arch: dict, source: str = "") -> nn.Module:
    """Rebuild a network from the ``arch`` metadata stored in a checkpoint (``source``: the
    file, for messages); its size fields and parameter count are checked first."""
    where = f"{source}: checkpoint" if source else "checkpoint"
    kind = arch.get("kind") if isinstance(arch, dict) else None
    if kind not in MODELS:
        raise DataError(f"{where} arch kind {kind!r}: expected one of {sorted(MODELS)}")
    fields = {k: v for k, v in arch.items() if k != "kind"}
    check_arch(fields, source)
    try:
        with torch.device("meta"):  # count the parameters without allocating them
            size = sum(p.numel() for p in MODELS[kind].from_arch(fields).parameters())
    except (TypeError, ValueError, KeyError) as exc:
        raise DataError(f"{where} arch {arch!r}: cannot rebuild a {kind!r} network ({exc})") from exc
    if size > MAX_PARAMETERS:
        raise DataError(f"{where} arch {arch!r}: {size:,} parameters; expected at most "
                        f"{MAX_PARAMETERS:,} (kdmri.models.registry.MAX_PARAMETERS)")
    return MODELS[kind].from_arch(fields)


def arch_of(model: nn.Module) -> dict:
    """Plain-dict architecture description of a registered model (inverse of build_from_arch)."""
    if not hasattr(model, "arch"):
        raise TypeError(f"{type(model).__name__}: not a registered kdmri model (no arch())")
    return model.arch()
