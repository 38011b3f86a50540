"""The model registry: checkpoints name their network by ``arch["kind"]`` and are rebuilt here.

A model class registers itself with :func:`register_model` and provides
``arch() -> dict`` (plain metadata, ``{"kind": ..., ...}``) and
``from_arch(arch: dict)`` (its inverse). :func:`build_from_arch` looks the kind up; no
if-chain on class names anywhere. Adding a network is one new file that registers itself.
"""

from __future__ import annotations

from collections.abc import Callable

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


def build_from_arch(arch: dict) -> nn.Module:
    """Rebuild a network from the ``arch`` metadata stored in a checkpoint."""
    kind = (arch or {}).get("kind")
    if kind not in MODELS:
        raise DataError(f"checkpoint arch kind {kind!r}: expected one of {sorted(MODELS)}")
    try:
        return MODELS[kind].from_arch({k: v for k, v in arch.items() if k != "kind"})
    except (TypeError, ValueError, KeyError) as exc:
        raise DataError(f"checkpoint arch {arch!r}: cannot rebuild a {kind!r} network ({exc})") from exc


def arch_of(model: nn.Module) -> dict:
    """Plain-dict architecture description of a registered model (inverse of build_from_arch)."""
    if not hasattr(model, "arch"):
        raise TypeError(f"{type(model).__name__}: not a registered kdmri model (no arch())")
    return model.arch()
