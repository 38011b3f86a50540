"""Features by module path, for any ``nn.Module``, and how to call any network.

**Layers.** A feature is the output of a named submodule, its *module path* as
``model.named_modules()`` spells it (``"cascades.2.acts.1"``, ``"down_sample_layers.1"``),
recorded by a forward hook (torchdistill's forward-hook pattern): no network has to return
its activations by name. kdmri's own networks also declare *feature names* -- the names
they have always documented (``"cascade1.conv2"``, VDSR's ``"conv4"``) -- each mapped to a
module path by the network's ``feature_paths()``; a layer may be given either way
(:func:`resolve_layer`). A hooked module that returns a tuple (a ``ConvBlock`` returns
``(out, features)``) or a :class:`~kdmri.models.blocks.ReconOutput` is recorded as its
first tensor.

**Calling a network.** :func:`network_inputs` says what a network's ``forward`` takes:
its ``forward_inputs`` attribute (``("image",)`` or ``("image", "kspace", "mask")``), else
its signature (one required argument: the image; three: image, k-space, mask).
:func:`as_output` turns what it returns (a tensor, a tuple, a ``ReconOutput``) into a
``ReconOutput``. The tasks (:mod:`kdmri.models.tasks`) call every network through these.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterable, Iterator, Mapping

import torch
from torch import nn

from kdmri.errors import ConfigError
from kdmri.models.blocks import ReconOutput

#: Inputs a network may take, in call order, and the batch key each comes from.
INPUT_KEYS = {"image": "input", "kspace": "kspace", "mask": "mask"}
_BY_ARITY = {1: ("image",), 3: ("image", "kspace", "mask")}


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside a DDP / ``torch.compile`` wrapper (the module itself otherwise)."""
    while True:
        inner = getattr(model, "_orig_mod", None) or (
            model.module if type(model).__name__ == "DistributedDataParallel" else None)
        if inner is None:
            return model
        model = inner


def _forward_params(model: nn.Module) -> list[inspect.Parameter]:
    return list(inspect.signature(unwrap(model).forward).parameters.values())


def network_inputs(model: nn.Module) -> tuple[str, ...]:
    """What ``model.forward`` takes, by name (see the module docstring)."""
    net = unwrap(model)
    declared = getattr(net, "forward_inputs", None)
    if declared is not None:
        return tuple(declared)
    required = [p for p in _forward_params(net) if p.default is p.empty
                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(required) not in _BY_ARITY:
        raise ConfigError(f"{type(net).__name__}.forward takes {len(required)} required arguments; "
                          "expected 1 (image) or 3 (image, kspace, mask), or set its forward_inputs "
                          "attribute, e.g. ('image',)")
    return _BY_ARITY[len(required)]


def accepts_return_features(model: nn.Module) -> bool:
    return any(p.name == "return_features" or p.kind is p.VAR_KEYWORD for p in _forward_params(model))


def as_output(result) -> ReconOutput:
    """A network's return value as a :class:`ReconOutput` (tensor -> image, no features)."""
    if isinstance(result, ReconOutput):
        return result
    if isinstance(result, torch.Tensor):
        return ReconOutput(result, {}, [])
    if isinstance(result, (tuple, list)) and result and isinstance(result[0], torch.Tensor):
        return ReconOutput(result[0], {}, [])
    raise ConfigError(f"a network returned {type(result).__name__}; expected a tensor (B, C, H, W), "
                      "a tuple starting with one, or a ReconOutput")


def call_network(model: nn.Module, batch: Mapping, available: Iterable[str], task: str,
                 features: bool = False) -> ReconOutput:
    """``model`` on ``batch`` with the inputs it takes (of those the task ``available``)."""
    wanted = network_inputs(model)
    missing = [n for n in wanted if n not in available]
    if missing:
        raise ConfigError(f"{type(unwrap(model)).__name__} takes {list(wanted)}; the {task!r} task "
                          f"gives only {list(available)}")
    kwargs = {"return_features": features} if accepts_return_features(model) else {}
    return as_output(model(*(batch[INPUT_KEYS[n]] for n in wanted), **kwargs))


def feature_paths(model: nn.Module) -> dict[str, str]:
    """The network's feature names and their module paths (``{}`` for a foreign network)."""
    net = unwrap(model)
    return dict(net.feature_paths()) if hasattr(net, "feature_paths") else {}


def resolve_layer(model: nn.Module, name: str, side: str = "model") -> str:
    """The module path of layer ``name`` (a module path, or a feature name of the network)."""
    net = unwrap(model)
    modules = dict(net.named_modules())
    if name in modules and name:
        return name
    aliases = feature_paths(net)
    if name in aliases:
        return aliases[name]
    paths = [p for p in modules if p]
    shown = paths if len(paths) <= 40 else paths[:20] + ["..."] + paths[-10:]
    raise ConfigError(f"{side} layer {name!r}: not a submodule of {type(net).__name__} nor one of its "
                      f"feature names {sorted(aliases)[:12]}; module paths: {shown}")


def _first_tensor(value):
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, ReconOutput):
        return value.image
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    return value


class FeatureRecorder:
    """Forward hooks recording the outputs of named layers of ``model``.

    ``names`` are module paths or feature names (:func:`resolve_layer`); the records are keyed
    by the name given. ``with FeatureRecorder(model, names) as rec: model(...)``, then
    ``rec.features``; the hooks are removed on exit. A layer run twice in one pass keeps its
    last output.
    """

    def __init__(self, model: nn.Module, names: Iterable[str], side: str = "model"):
        net = unwrap(model)
        self.features: dict[str, torch.Tensor] = {}
        self._targets: dict[str, list[str]] = {}
        for name in dict.fromkeys(names):
            self._targets.setdefault(resolve_layer(net, name, side), []).append(name)
        self._modules = {path: net.get_submodule(path) for path in self._targets}
        self._handles: list = []

    def __enter__(self) -> FeatureRecorder:
        self.features = {}
        if not self._handles:
            for path, module in self._modules.items():
                self._handles.append(module.register_forward_hook(self._hook(self._targets[path])))
        return self

    attach = __enter__  # keep the hooks until detach() (training: registered before compiling)

    def _hook(self, names: list[str]):
        def hook(module, inputs, output):
            value = _first_tensor(output)
            for name in names:
                self.features[name] = value
        return hook

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def detach(self) -> None:
        self.__exit__()

    @property
    def names(self) -> list[str]:
        return [name for names in self._targets.values() for name in names]


@contextlib.contextmanager
def record_all(model: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Every submodule's output (by module path) and every feature name's, for one pass: the
    probe from which losses read channel counts and sizes."""
    net = unwrap(model)
    names = [p for p, _ in net.named_modules() if p] + list(feature_paths(net))
    with FeatureRecorder(net, names) as rec:
        yield rec.features


def layer_names(pairs) -> tuple[list[str], list[str]]:
    """The student and teacher layer names of a loss's ``pairs`` (``(s, t)`` or, for FSP,
    ``((s_a, s_b), (t_a, t_b))``), each once, in order."""
    sides: tuple[dict, dict] = ({}, {})
    for pair in pairs:
        for side, names in zip(sides, pair, strict=True):
            for name in (names,) if isinstance(names, str) else names:
                side[name] = None
    return list(sides[0]), list(sides[1])
