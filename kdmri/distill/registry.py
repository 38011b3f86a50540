"""The feature-loss registry: one interface, one signature, wiring owned by each loss.

Features are the outputs of named layers, ``name -> tensor (B, C, H, W)``: a module path of
any network (``"cascades.2.acts.1"``, ``"down_sample_layers.1"``) or a feature name of
kdmri's networks (``"cascade1.conv3"``), recorded by forward hooks
(:class:`kdmri.models.features.FeatureRecorder`). Pairs of different channel counts or
resolutions are adapted by the loss: FitNets' learnable 1x1 regressor and interpolation of
its hint to the teacher's size, attention maps interpolated to the student's size
(:func:`resize_map`); a loss that cannot compare two layers says so. A feature loss is
configured with the layer ``pairs`` it compares, ``[(student_name, teacher_name), ...]``,
and is called as ``loss(student_feats, teacher_feats)``; it returns a scalar tensor, the
**mean over its pairs** of the per-pair loss (papers that sum over layers differ from this
by the constant number of pairs). Teacher features are detached: they are targets.

Each loss is one file that registers its class with :func:`register_feature_loss` and may
override :meth:`FeatureLoss.from_config` -- how it reads its options, default pairs and
channel counts from the run's configuration (as torchdistill's registry does). Training
builds every feature loss through :func:`feature_loss_from_config`, so a figure and a run
always build the same loss.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kdmri.errors import ConfigError, KDMRIError
from kdmri.registry import Registry

FeatureDict = Mapping[str, torch.Tensor]
"""Named activations of one forward pass, ``name -> (B, C, H, W)``."""

LayerPair = tuple[str, str]
"""``(student_layer, teacher_layer)``."""

FSPPair = tuple[tuple[str, str], tuple[str, str]]
"""``((student_a, student_b), (teacher_a, teacher_b))`` for :class:`FSPLoss`."""

class MissingFeatureError(KDMRIError, ValueError, KeyError):
    """A feature name configured in a loss is absent from the model's feature dict.

    A ValueError (like every kdmri input error) that is also a KeyError.
    """

    __str__ = BaseException.__str__  # KeyError would quote the whole message


# --------------------------------------------------------------------------- helpers


def _expect_4d(x: torch.Tensor, what: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what}: expected a torch.Tensor (B, C, H, W), got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{what}: expected a (B, C, H, W) tensor, got shape {tuple(x.shape)}")


def _same_batch(s: torch.Tensor, t: torch.Tensor, what: str) -> None:
    if s.shape[0] != t.shape[0]:
        raise ValueError(
            f"{what}: student batch size {s.shape[0]} does not match teacher batch size "
            f"{t.shape[0]}"
        )


def _same_spatial(s: torch.Tensor, t: torch.Tensor, what: str) -> None:
    if s.shape[2:] != t.shape[2:]:
        raise ValueError(
            f"{what}: student spatial size {tuple(s.shape[2:])} does not match teacher "
            f"{tuple(t.shape[2:])}; pair layers of the same resolution"
        )


def _check_map_pair(student: torch.Tensor, teacher: torch.Tensor, where: str) -> None:
    """Both (B, C, H, W) with the same batch: what attention maps need (a teacher map of
    another resolution is interpolated to the student's, :func:`resize_map`)."""
    _expect_4d(student, f"{where}: student")
    _expect_4d(teacher, f"{where}: teacher")
    _same_batch(student, teacher, where)


def resize_map(m: torch.Tensor, size: tuple[int, int] | torch.Size | None) -> torch.Tensor:
    """The adapter of spatial maps ``(B, H, W)`` or ``(B, C, H, W)`` of another resolution:
    bilinear interpolation to ``size`` (``(H, W)``); unchanged when the size already agrees."""
    if size is None or tuple(m.shape[-2:]) == tuple(size):
        return m
    x = m[:, None] if m.dim() == 3 else m
    x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
    return x[:, 0] if m.dim() == 3 else x



def _normalise_pair(pair: Any, index: int) -> LayerPair:
    if isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(k, str) for k in pair):
        return (pair[0], pair[1])
    raise ValueError(
        f"pairs[{index}]: expected (student_layer, teacher_layer) as two strings, got {pair!r}"
    )


def _lookup(feats: FeatureDict, key: str, side: str) -> torch.Tensor:
    if not isinstance(feats, Mapping):
        raise TypeError(
            f"{side}: expected a dict of named features (name -> tensor), "
            f"got {type(feats).__name__}"
        )
    try:
        return feats[key]
    except KeyError:
        raise MissingFeatureError(
            f"{side}: no feature named {key!r}; available: {sorted(feats)}"
        ) from None


# --------------------------------------------------------------------------- base + registry


class FeatureLoss(nn.Module):
    """Base class: mean over layer ``pairs`` of :meth:`pair_loss`.

    ``forward(student_feats, teacher_feats) -> scalar tensor``: for each configured pair,
    looks up both features by name (a missing name raises :class:`MissingFeatureError`
    listing the available names), detaches the teacher's, and averages the per-pair losses.
    Subclasses implement ``pair_loss(index, student, teacher)``; ``student``/``teacher``
    are tensors for ordinary pairs and tuples of tensors for :class:`FSPLoss`.
    """

    name: str = ""
    """Registry name, set by :func:`register_feature_loss`."""

    reference: str = ""
    """The source of the method (authors, venue, year, arXiv id); every built-in loss names it."""

    config_fields: Mapping[str, str] = {}
    """Options whose value is a :class:`~kdmri.config.Config` field (``{"mode": "at_mode"}``):
    the field is their one source; ``feature_options`` may repeat it but not contradict it."""

    def __init__(self, pairs: Sequence[LayerPair]):
        super().__init__()
        if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence) or not pairs:
            raise ValueError(
                f"pairs: expected a non-empty list of (student_layer, teacher_layer), "
                f"got {pairs!r}"
            )
        self.pairs = [self._normalise(p, i) for i, p in enumerate(pairs)]

    def _normalise(self, pair: Any, index: int) -> Any:
        return _normalise_pair(pair, index)

    def _gather(self, feats: FeatureDict, key: Any, side: str, detach: bool) -> Any:
        if isinstance(key, tuple):
            return tuple(self._gather(feats, k, side, detach) for k in key)
        x = _lookup(feats, key, side)
        return x.detach() if detach else x

    def forward(self, student_feats: FeatureDict, teacher_feats: FeatureDict) -> torch.Tensor:
        total = None
        for i, (s_key, t_key) in enumerate(self.pairs):
            s = self._gather(student_feats, s_key, "student_feats", detach=False)
            t = self._gather(teacher_feats, t_key, "teacher_feats", detach=True)
            value = self.pair_loss(i, s, t)
            total = value if total is None else total + value
        return total / len(self.pairs)

    def pair_loss(self, index: int, student: Any, teacher: Any) -> torch.Tensor:
        """Loss of pair ``index`` (scalar tensor)."""
        raise NotImplementedError

    # ---- the teacher side on its own, so a frozen teacher's part can be computed once
    def teacher_target(self, index: int, teacher: Any) -> Any:
        """What pair ``index`` needs of the teacher's feature, **row ``b`` depending on
        sample ``b`` alone** (so it may be computed once per training slice and cached):
        the feature itself by default; a loss with a per-sample teacher transform (an
        attention map) returns the transformed, usually far smaller, tensor."""
        return teacher

    def target_loss(self, index: int, student: Any, target: Any) -> torch.Tensor:
        """Loss of pair ``index`` given :meth:`teacher_target` of the teacher's feature;
        equal to :meth:`pair_loss` on the feature itself."""
        return self.pair_loss(index, student, target)

    def teacher_targets(self, teacher_feats: FeatureDict) -> list[Any]:
        """:meth:`teacher_target` of every pair (detached), in pair order."""
        return [self.teacher_target(i, self._gather(teacher_feats, t_key, "teacher_feats", detach=True))
                for i, (_, t_key) in enumerate(self.pairs)]

    def from_targets(self, student_feats: FeatureDict, targets: Sequence[Any]) -> torch.Tensor:
        """The loss from precomputed :meth:`teacher_targets` (e.g. a cache): the same value
        as ``forward(student_feats, teacher_feats)``."""
        if len(targets) != len(self.pairs):
            raise ValueError(f"targets: expected one per pair ({len(self.pairs)}), got {len(targets)}")
        total = None
        for i, ((s_key, _), target) in enumerate(zip(self.pairs, targets)):
            s = self._gather(student_feats, s_key, "student_feats", detach=False)
            value = self.target_loss(i, s, target)
            total = value if total is None else total + value
        return total / len(self.pairs)

    def _where(self, index: int) -> str:
        return f"{self.name or type(self).__name__} pair {index} {self.pairs[index]}"

    def extra_repr(self) -> str:
        return f"pairs={self.pairs}"

    @classmethod
    def from_config(cls, cfg: Any, default_pairs: Sequence[Any], probe: dict) -> FeatureLoss:
        """Build from a run configuration: ``cfg.feature_pairs`` or ``default_pairs``, and
        ``cfg.feature_options`` as keyword options. Losses that need more override this."""
        pairs = [tuple(p) for p in (cfg.feature_pairs or default_pairs)]
        return build_feature_loss(cls.name, pairs, **cls.config_options(cfg))

    @classmethod
    def config_options(cls, cfg: Any) -> dict[str, Any]:
        """``cfg.feature_options`` with the options of :attr:`config_fields` taken from their
        Config fields; :class:`ConfigError` when ``feature_options`` contradicts one."""
        options = dict(cfg.feature_options)
        for option, field_name in cls.config_fields.items():
            value = getattr(cfg, field_name)
            if option in options and options[option] != value:
                raise ConfigError(f"feature_options.{option}={options[option]!r} contradicts "
                                  f"{field_name}={value!r}: the {cls.name} loss takes its {option} "
                                  f"from {field_name}; set it there (once)")
            options[option] = value
        return options


FEATURE_LOSSES: Registry[type[FeatureLoss]] = Registry("feature loss")
"""Registry ``name -> FeatureLoss subclass``; fill it with :func:`register_feature_loss`."""


def register_feature_loss(name: str) -> Callable[[type[FeatureLoss]], type[FeatureLoss]]:
    """Class decorator adding a :class:`FeatureLoss` subclass to :data:`FEATURE_LOSSES`."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: expected a non-empty string, got {name!r}")

    def decorator(cls: type[FeatureLoss]) -> type[FeatureLoss]:
        if not (isinstance(cls, type) and issubclass(cls, FeatureLoss)):
            raise TypeError(f"register_feature_loss({name!r}): expected a FeatureLoss subclass")
        FEATURE_LOSSES.add(name, cls)
        cls.name = name
        return cls

    return decorator


def build_feature_loss(name: str, pairs: Sequence[Any], **options: Any) -> FeatureLoss:
    """Build the registered feature loss ``name`` for layer ``pairs`` with its ``options``.

    Example: ``build_feature_loss("at_kdmri", default_pairs(), mode="batch")``.
    An unknown ``name`` or option raises ValueError listing what is accepted.
    """
    cls = FEATURE_LOSSES[name]
    params = list(inspect.signature(cls.__init__).parameters)[2:]  # drop self, pairs
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise ValueError(
            f"options: unknown option(s) {unknown} for feature loss {name!r}; "
            f"accepted: {params or 'none'}"
        )
    return cls(pairs, **options)



def reference_output_pairs(cfg: Any, default_pairs: Sequence[Any], probe: dict,
                           cascades: Sequence[int]) -> list[LayerPair] | None:
    """SFT-KD-Recon's layers: ``("cascade<i>.out", "cascade<i>.out")`` for ``cascades`` --
    the 1-channel output of each cascade's CNN (its last conv, before DC), what its
    ``train_feature_*.py`` scripts take as ``output[i][-1]``. ``None`` (use the configured or
    default pairs) when ``cfg.feature_pairs`` is set, ``cfg.feature_forms`` is ``"kdmri"``,
    or the networks have no cascade outputs (VDSR)."""
    if cfg.feature_pairs or getattr(cfg, "feature_forms", "reference") != "reference":
        return None
    names = set(probe.get("student", {})) if probe else {
        name for pair in default_pairs for name in (pair if isinstance(pair[0], str) else ())}
    if probe and "cascade1.out" not in names:
        return None
    if not probe and not any(str(n).startswith("cascade") for n in names):
        return None
    return [(f"cascade{i}.out", f"cascade{i}.out") for i in cascades]


def feature_probe(student_feats: FeatureDict, teacher_feats: FeatureDict) -> dict:
    """Shapes of a probe forward pass, ``{"student": {name: shape}, "teacher": {...}}``,
    for losses whose wiring depends on channel counts (FitNets)."""
    return {side: {k: tuple(v.shape) for k, v in feats.items() if isinstance(v, torch.Tensor)}
            for side, feats in (("student", student_feats), ("teacher", teacher_feats))}


def feature_loss_from_config(cfg: Any, default_pairs: Sequence[Any], probe: dict | None = None,
                             name: str | None = None) -> FeatureLoss:
    """The feature loss a run with configuration ``cfg`` trains with.

    ``name`` (default ``cfg.feature_loss``) picks the registered class; its
    :meth:`FeatureLoss.from_config` reads ``cfg.feature_pairs`` (else ``default_pairs``, the
    networks' own), ``cfg.feature_options`` and whatever else it needs (``probe``: the
    shapes of one forward pass, :func:`feature_probe`). Errors name the setting.
    """
    name = name or cfg.feature_loss
    cls = FEATURE_LOSSES.lookup(name, "feature_loss")
    try:
        return cls.from_config(cfg, default_pairs, probe or {})
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"feature_loss={name!r}: {exc}") from exc
