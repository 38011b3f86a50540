"""The model registry: checkpoints name their network by ``arch["kind"]`` and are rebuilt here.

A model class registers itself with :func:`register_model` and provides
``arch() -> dict`` (plain metadata, ``{"kind": ..., ...}``) and
``from_arch(arch: dict)`` (its inverse). :func:`build_from_arch` looks the kind up; no
if-chain on class names anywhere. Adding a network is one new file that registers itself.

Any other network is named by import path: :func:`build_network` takes a registered kind
(``"unet"``, with ``from_arch`` options), ``"package.module:Class"`` (with constructor
keyword arguments) or a module object. A network built from an import path records
``{"kind": "import", "target": ..., "options": ...}`` as its arch, so its checkpoints rebuild
it (the module is imported then); a registered class defined outside kdmri records its
``module`` so that a fresh process imports it before looking the kind up.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

import torch
from torch import nn

from kdmri.errors import ConfigError, DataError
from kdmri.registry import Registry

#: Network classes by kind; importing :mod:`kdmri.models` (or any module in it) fills it.
MODELS: Registry[type[nn.Module]] = Registry("model kind")


def register_model(kind: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: register a model class under ``kind`` (its checkpoint name)."""

    def decorator(cls: type[nn.Module]) -> type[nn.Module]:
        for method in ("arch", "from_arch"):
            if not hasattr(cls, method):
                raise TypeError(f"register_model({kind!r}): {cls.__name__} needs a {method}() method")
        MODELS.add(kind, cls)
        cls.kind = kind
        return cls

    return decorator


#: Bounds of the size fields of a stored ``arch`` (any network, nested dicts included):
#: checked before a checkpoint's network is built, so a corrupt or hostile file cannot ask
#: for terabytes. The published networks use 1 input channel, 32-64 channels, 5 cascades
#: of 3-5 convs, 20 VDSR layers.
ARCH_LIMITS: dict[str, tuple[int, int]] = {
    "channels": (1, 1024), "in_channels": (1, 16), "n_cascades": (1, 64), "n_convs": (1, 64),
    "n_layers": (1, 256), "chans": (1, 1024), "in_chans": (1, 16), "out_chans": (1, 16),
    "num_pool_layers": (1, 8),
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


def import_object(target: str, what: str = "network"):
    """``"package.module:Name"`` (or ``Outer.Inner``) imported; a ConfigError names ``target``."""
    module_name, sep, qualname = str(target).partition(":")
    if not sep or not module_name or not qualname:
        raise ConfigError(f"{what} {target!r}: expected a registered kind {sorted(MODELS)} or an "
                          "import path 'package.module:Class'")
    try:
        obj = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{what} {target!r}: cannot import it ({type(exc).__name__}: {exc})") from exc
    return obj


def build_network(spec: str | nn.Module, options: Mapping | None = None,
                  what: str = "network") -> nn.Module:
    """A network from a registered kind, an import path or a module (see the module docstring)."""
    options = dict(options or {})
    if isinstance(spec, nn.Module):
        if options:
            raise ConfigError(f"{what}: options {sorted(options)} given for a network object")
        return spec
    if spec in MODELS:
        try:
            return MODELS[spec].from_arch(options)
        except (TypeError, ValueError, KeyError) as exc:
            raise ConfigError(f"{what} {spec!r} with options {options}: {exc}") from exc
    cls = import_object(spec, what)
    try:
        model = cls(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what} {spec!r} with options {options}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{what} {spec!r}: built a {type(model).__name__}, expected a torch nn.Module")
    if not hasattr(model, "arch"):
        model._kdmri_arch = {"kind": "import", "target": str(spec), "options": options}
    return model


def build_from_arch(arch: dict, source: str = "") -> nn.Module:
    """Rebuild a network from the ``arch`` metadata stored in a checkpoint (``source``: the
    file, for messages); its size fields and parameter count are checked first."""
    where = f"{source}: checkpoint" if source else "checkpoint"
    arch = dict(arch) if isinstance(arch, dict) else {}
    kind, module = arch.get("kind"), arch.pop("module", None)
    if kind == "import":
        check_arch(dict(arch.get("options") or {}), source, "arch.options")
        try:
            return build_network(arch["target"], arch.get("options"), "checkpoint network")
        except (ConfigError, KeyError) as exc:
            raise DataError(f"{where} arch {arch!r}: cannot rebuild the network ({exc})") from exc
    if kind not in MODELS and module:
        try:
            importlib.import_module(module)  # registers the kind
        except ImportError as exc:
            raise DataError(f"{where} arch kind {kind!r}: its module {module!r} does not import "
                            f"({exc})") from exc
    if kind not in MODELS:
        hint = ("; the checkpoint holds a network object that was never registered: build it and "
                "load the weights with kdmri.checkpoint.load_weights") if kind == "object" else ""
        raise DataError(f"{where} arch kind {kind!r}: expected one of {sorted(MODELS)}{hint}")
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
    """Plain-dict architecture description of a model (inverse of :func:`build_from_arch`):
    its ``arch()``; for a network built from an import path, that path and its options; for
    any other module ``{"kind": "object", "target": "module:Class"}`` (not rebuildable)."""
    if hasattr(model, "arch"):
        arch = model.arch()
        module = type(model).__module__
        if not module.startswith("kdmri.") and "module" not in arch:
            arch = {**arch, "module": module}
        return arch
    if hasattr(model, "_kdmri_arch"):
        return dict(model._kdmri_arch)
    cls = type(model)
    return {"kind": "object", "target": f"{cls.__module__}:{cls.__qualname__}"}
