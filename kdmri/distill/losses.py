"""Distillation losses: feature losses behind one interface, and the imitation loss.

Feature losses
--------------
Models return their intermediate activations as a dict ``name -> tensor (B, C, H, W)``,
e.g. ``features["cascade1.conv3"]`` (see :mod:`kdmri.models.dccnn`). A feature loss is
configured with the layer ``pairs`` it compares, ``[(student_name, teacher_name), ...]``,
and is called as ``loss(student_feats, teacher_feats)``; it returns a scalar tensor, the
**mean over its pairs** of the per-pair loss (papers that sum over layers differ from this
by the constant number of pairs). Teacher features are detached: they are targets.

Losses are registered by name in :data:`FEATURE_LOSSES` and built with
:func:`build_feature_loss`:

==============  ===========================================================  ==========
name            method                                                       options
==============  ===========================================================  ==========
``at_kdmri``    KD-MRI attention transfer (Murugesan et al. 2020), L1         ``mode``
``at``          attention transfer (Zagoruyko & Komodakis 2017), squared     ``p``
``fitnet``      FitNets hints (Romero et al. 2015), 1x1-conv regressor       channels
``sp``          similarity preserving (Tung & Mori 2019)                     --
``cc``          correlation congruence (Peng et al. 2019)                    kernel...
``fsp``         flow of solution procedure (Yim et al. 2017)                 --
==============  ===========================================================  ==========

``fitnet`` owns trainable parameters (its regressors) when channel counts differ: give
``loss.parameters()`` to the optimiser together with the student's.

Imitation loss
--------------
:func:`imitation_loss` is KD-MRI's output-level term ``L1(student_out, teacher_out)``,
with the reference code's division by the element count available as a named reduction.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kdmri.errors import KDMRIError

FeatureDict = Mapping[str, torch.Tensor]
"""Named activations of one forward pass, ``name -> (B, C, H, W)``."""

LayerPair = tuple[str, str]
"""``(student_layer, teacher_layer)``."""

FSPPair = tuple[tuple[str, str], tuple[str, str]]
"""``((student_a, student_b), (teacher_a, teacher_b))`` for :class:`FSPLoss`."""

ATTENTION_MODES: tuple[str, ...] = ("sample", "batch")
IMITATION_REDUCTIONS: tuple[str, ...] = ("mean", "reference")


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
    """Both (B, C, H, W), same batch and spatial size: what attention maps need."""
    _expect_4d(student, f"{where}: student")
    _expect_4d(teacher, f"{where}: teacher")
    _same_batch(student, teacher, where)
    _same_spatial(student, teacher, where)


def attention_map(f: torch.Tensor, mode: str = "sample") -> torch.Tensor:
    """KD-MRI attention map of features ``f`` ``(B, C, H, W)`` -> ``(B, H*W)``.

    The map is the channel sum of the squared activations, ``sum_c f[:, c]**2``, flattened
    and L2-normalised. Two normalisations exist:

    * ``"sample"`` (default; attention transfer as published, Zagoruyko & Komodakis 2017
      and the KD-MRI paper): each sample's map is divided by its L2 norm over space, so
      every row of the result has unit norm and a sample's map does not depend on the
      other samples of the batch.
    * ``"batch"`` (the KD-MRI reference code, ``F.normalize(am, dim=0)``): every spatial
      position is divided by its L2 norm **across the batch**. The map then depends on the
      batch composition, and at batch size 1 every non-zero entry becomes exactly 1, so a
      loss between two such maps vanishes (unless one side is zero where the other is not).
    """
    _expect_4d(f, "f")
    if mode not in ATTENTION_MODES:
        raise ValueError(f"mode: expected one of {list(ATTENTION_MODES)}, got {mode!r}")
    am = f.pow(2).sum(dim=1).reshape(f.shape[0], -1)
    return F.normalize(am, p=2, dim=1 if mode == "sample" else 0)


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

    def _where(self, index: int) -> str:
        return f"{self.name or type(self).__name__} pair {index} {self.pairs[index]}"

    def extra_repr(self) -> str:
        return f"pairs={self.pairs}"


FEATURE_LOSSES: dict[str, type[FeatureLoss]] = {}
"""Registry ``name -> FeatureLoss subclass``; fill it with :func:`register_feature_loss`."""


def register_feature_loss(name: str) -> Callable[[type[FeatureLoss]], type[FeatureLoss]]:
    """Class decorator adding a :class:`FeatureLoss` subclass to :data:`FEATURE_LOSSES`."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: expected a non-empty string, got {name!r}")

    def decorator(cls: type[FeatureLoss]) -> type[FeatureLoss]:
        if not (isinstance(cls, type) and issubclass(cls, FeatureLoss)):
            raise TypeError(f"register_feature_loss({name!r}): expected a FeatureLoss subclass")
        if name in FEATURE_LOSSES and FEATURE_LOSSES[name] is not cls:
            raise ValueError(
                f"name: feature loss {name!r} is already registered "
                f"({FEATURE_LOSSES[name].__name__})"
            )
        cls.name = name
        FEATURE_LOSSES[name] = cls
        return cls

    return decorator


def build_feature_loss(name: str, pairs: Sequence[Any], **options: Any) -> FeatureLoss:
    """Build the registered feature loss ``name`` for layer ``pairs`` with its ``options``.

    Example: ``build_feature_loss("at_kdmri", default_pairs(), mode="batch")``.
    An unknown ``name`` or option raises ValueError listing what is accepted.
    """
    if name not in FEATURE_LOSSES:
        raise ValueError(f"name: unknown feature loss {name!r}; known: {sorted(FEATURE_LOSSES)}")
    cls = FEATURE_LOSSES[name]
    params = list(inspect.signature(cls.__init__).parameters)[2:]  # drop self, pairs
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise ValueError(
            f"options: unknown option(s) {unknown} for feature loss {name!r}; "
            f"accepted: {params or 'none'}"
        )
    return cls(pairs, **options)


# --------------------------------------------------------------------------- losses


@register_feature_loss("at_kdmri")
class AttentionKDMRILoss(FeatureLoss):
    """KD-MRI attention transfer (Murugesan et al., MIDL 2020, arXiv:2004.05319).

    Per pair: ``mean_{b, j} |A(s)[b, j] - A(t)[b, j]|`` (L1, mean absolute difference) with
    ``A`` = :func:`attention_map` ``(B, H*W)``: channel sum of squared activations,
    flattened, L2-normalised. ``mode="sample"`` (default) normalises each sample over
    space as published; ``mode="batch"`` normalises along the batch axis as the KD-MRI
    reference code does (depends on batch composition; vanishes at batch size 1). Student
    and teacher may have different channel counts but need the same ``H, W``.
    """

    def __init__(self, pairs: Sequence[LayerPair], mode: str = "sample"):
        super().__init__(pairs)
        if mode not in ATTENTION_MODES:
            raise ValueError(f"mode: expected one of {list(ATTENTION_MODES)}, got {mode!r}")
        self.mode = mode

    def pair_loss(self, index: int, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        _check_map_pair(student, teacher, self._where(index))
        diff = attention_map(student, self.mode) - attention_map(teacher, self.mode)
        return diff.abs().mean()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mode={self.mode!r}"


@register_feature_loss("at")
class AttentionTransferLoss(FeatureLoss):
    """Attention transfer (Zagoruyko & Komodakis, ICLR 2017, arXiv:1612.03928).

    Map ``Q = normalize(mean_c |f[:, c]|**p)`` flattened to ``(B, H*W)`` and L2-normalised
    per sample (``p = 2`` by default). Per pair, as in the authors' code:
    ``mean_{b, j} (Q_s[b, j] - Q_t[b, j])**2`` -- the mean squared difference, i.e.
    ``||Q_s - Q_t||_2^2 / (B * H * W)``, rather than the paper's (unsquared)
    ``beta/2 * ||Q_s - Q_t||_2`` per sample. With ``p = 2`` the map equals KD-MRI's
    per-sample map (the channel mean and sum differ by a constant that the normalisation
    removes), so ``at`` and ``at_kdmri`` differ only by squared vs absolute error.
    """

    def __init__(self, pairs: Sequence[LayerPair], p: float = 2.0):
        super().__init__(pairs)
        if not isinstance(p, (int, float)) or not p > 0:
            raise ValueError(f"p: expected a positive number, got {p!r}")
        self.p = float(p)

    def _map(self, f: torch.Tensor) -> torch.Tensor:
        return F.normalize(f.abs().pow(self.p).mean(dim=1).reshape(f.shape[0], -1), dim=1)

    def pair_loss(self, index: int, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        _check_map_pair(student, teacher, self._where(index))
        return (self._map(student) - self._map(teacher)).pow(2).mean()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}"


def _per_pair(value: int | Sequence[int] | None, n: int, name: str) -> list[int | None]:
    if value is None:
        return [None] * n
    if isinstance(value, int):
        values = [value] * n
    elif isinstance(value, Sequence) and len(value) == n:
        values = list(value)
    else:
        raise ValueError(f"{name}: expected an int or a list of {n} ints (one per pair), "
                         f"got {value!r}")
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name}: expected positive channel counts, got {value!r}")
    return values


@register_feature_loss("fitnet")
class FitNetLoss(FeatureLoss):
    """FitNets hints (Romero et al., ICLR 2015, arXiv:1412.6550).

    Per pair: ``mean((r(s) - t)**2)`` (MSE over all elements; the paper's
    ``1/2 ||u_h - r(v_g)||^2`` up to a constant) where ``r`` is a learned 1x1 convolution
    (with bias) from the student's to the teacher's channel count. A regressor is created
    only for pairs whose ``student_channels`` and ``teacher_channels`` differ; otherwise
    ``r`` is the identity (no parameters). Channel counts are an int (all pairs) or a list
    (one per pair); leaving both out means identity for every pair. Train the regressors
    with the student: pass ``loss.parameters()`` to the optimiser.
    """

    def __init__(self, pairs: Sequence[LayerPair],
                 student_channels: int | Sequence[int] | None = None,
                 teacher_channels: int | Sequence[int] | None = None):
        super().__init__(pairs)
        n = len(self.pairs)
        if (student_channels is None) != (teacher_channels is None):
            raise ValueError(
                "student_channels, teacher_channels: give both (to size the regressors) or "
                "neither (identity regressors)"
            )
        s_ch = _per_pair(student_channels, n, "student_channels")
        t_ch = _per_pair(teacher_channels, n, "teacher_channels")
        self.regressors = nn.ModuleList(
            nn.Conv2d(cs, ct, kernel_size=1) if cs is not None and cs != ct else nn.Identity()
            for cs, ct in zip(s_ch, t_ch, strict=True)
        )

    def pair_loss(self, index: int, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        where = self._where(index)
        _expect_4d(student, f"{where}: student")
        _expect_4d(teacher, f"{where}: teacher")
        regressor = self.regressors[index]
        if isinstance(regressor, nn.Conv2d) and student.shape[1] != regressor.in_channels:
            raise ValueError(
                f"{where}: student has {student.shape[1]} channels, the regressor expects "
                f"student_channels={regressor.in_channels}"
            )
        hint = regressor(student)
        if hint.shape != teacher.shape:
            raise ValueError(
                f"{where}: student hint shape {tuple(hint.shape)} does not match teacher "
                f"{tuple(teacher.shape)}; set student_channels/teacher_channels for a regressor"
            )
        return F.mse_loss(hint, teacher)


@register_feature_loss("sp")
class SimilarityPreservingLoss(FeatureLoss):
    """Similarity-preserving KD (Tung & Mori, ICCV 2019, arXiv:1907.09682).

    Per pair: flatten each sample, ``Q = f.reshape(B, -1)``; ``G = Q Q^T`` ``(B, B)``;
    L2-normalise each row of ``G``; loss ``||G_s - G_t||_F^2 / B^2``. Student and teacher
    may differ in every dimension but the batch. At batch size 1 the loss is 0.
    """

    @staticmethod
    def _similarity(f: torch.Tensor) -> torch.Tensor:
        q = f.reshape(f.shape[0], -1)
        return F.normalize(q @ q.t(), p=2, dim=1)

    def pair_loss(self, index: int, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        where = self._where(index)
        _same_batch(student, teacher, where)
        b = student.shape[0]
        diff = self._similarity(student) - self._similarity(teacher)
        return diff.pow(2).sum() / (b * b)


CC_KERNELS: tuple[str, ...] = ("gaussian", "bilinear")


@register_feature_loss("cc")
class CorrelationCongruenceLoss(FeatureLoss):
    """Correlation congruence (Peng et al., ICCV 2019, arXiv:1904.01802).

    Per pair: embeddings ``e = normalize(avgpool(f))`` ``(B, C)`` (global average pool
    over ``H, W``, then L2-normalised per sample; a ``(B, D)`` input is used as is).
    Correlation matrix ``K`` ``(B, B)``:

    * ``kernel="gaussian"`` (default): Gaussian RBF ``exp(-gamma ||e_i - e_j||^2)`` by its
      Taylor expansion of order ``order`` (P); for unit vectors
      ``||e_i - e_j||^2 = 2 - 2 e_i.e_j``, so
      ``K_ij = exp(-2 gamma) sum_{p=0..P} (2 gamma)^p / p! (e_i.e_j)^p``
      (defaults ``gamma=0.4``, ``order=2``);
    * ``kernel="bilinear"``: plain inner product ``K_ij = e_i.e_j``.

    Loss: ``mean_{i, j} (K_s[i, j] - K_t[i, j])**2`` = ``||K_s - K_t||_F^2 / B^2``.
    Like ``sp``, it compares samples with each other, so it is 0 at batch size 1.
    """

    def __init__(self, pairs: Sequence[LayerPair], kernel: str = "gaussian", gamma: float = 0.4,
                 order: int = 2):
        super().__init__(pairs)
        if kernel not in CC_KERNELS:
            raise ValueError(f"kernel: expected one of {list(CC_KERNELS)}, got {kernel!r}")
        if not isinstance(gamma, (int, float)) or not gamma > 0:
            raise ValueError(f"gamma: expected a positive number, got {gamma!r}")
        if not isinstance(order, int) or isinstance(order, bool) or order < 0:
            raise ValueError(f"order: expected a non-negative int, got {order!r}")
        self.kernel = kernel
        self.gamma = float(gamma)
        self.order = order

    def _embed(self, f: torch.Tensor, what: str) -> torch.Tensor:
        if f.dim() == 4:
            f = f.mean(dim=(2, 3))
        elif f.dim() != 2:
            raise ValueError(f"{what}: expected (B, C, H, W) or (B, D), got {tuple(f.shape)}")
        return F.normalize(f, p=2, dim=1)

    def correlation(self, e: torch.Tensor) -> torch.Tensor:
        """Correlation matrix ``(B, B)`` of L2-normalised embeddings ``e`` ``(B, D)``."""
        dot = e @ e.t()
        if self.kernel == "bilinear":
            return dot
        k = torch.zeros_like(dot)
        for p in range(self.order + 1):
            k = k + (2 * self.gamma) ** p / math.factorial(p) * dot.pow(p)
        return math.exp(-2 * self.gamma) * k

    def pair_loss(self, index: int, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        where = self._where(index)
        _same_batch(student, teacher, where)
        k_s = self.correlation(self._embed(student, f"{where}: student"))
        k_t = self.correlation(self._embed(teacher, f"{where}: teacher"))
        return (k_s - k_t).pow(2).mean()

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, kernel={self.kernel!r}, gamma={self.gamma}, "
                f"order={self.order}")


@register_feature_loss("fsp")
class FSPLoss(FeatureLoss):
    """Flow of solution procedure (Yim et al., CVPR 2017).

    Configured with pairs of layer pairs ``[((student_a, student_b), (teacher_a,
    teacher_b)), ...]`` (see :func:`default_fsp_pairs`). The FSP matrix of two layers of
    the same spatial size, ``F1`` ``(B, C1, H, W)`` and ``F2`` ``(B, C2, H, W)``, is
    ``G = F1 F2^T / (H * W)`` ``(B, C1, C2)`` (flattened over space). Per pair:
    ``mean_{b, i, j} (G_s - G_t)**2`` (the paper's ``||G_s - G_t||_2^2`` up to a
    constant); the student's and teacher's ``(C1, C2)`` must agree.
    """

    def _normalise(self, pair: Any, index: int) -> FSPPair:
        ok = (isinstance(pair, (list, tuple)) and len(pair) == 2
              and all(isinstance(side, (list, tuple)) and len(side) == 2
                      and all(isinstance(k, str) for k in side) for side in pair))
        if not ok:
            raise ValueError(
                f"pairs[{index}]: expected ((student_a, student_b), (teacher_a, teacher_b)) "
                f"as strings, got {pair!r}"
            )
        return (tuple(pair[0]), tuple(pair[1]))

    @staticmethod
    def fsp_matrix(f1: torch.Tensor, f2: torch.Tensor, what: str = "fsp") -> torch.Tensor:
        """FSP ``F1 F2^T / (H*W)`` ``(B, C1, C2)`` of ``(B, C1, H, W)``, ``(B, C2, H, W)``"""
        _expect_4d(f1, f"{what}: first layer")
        _expect_4d(f2, f"{what}: second layer")
        if f1.shape[0] != f2.shape[0] or f1.shape[2:] != f2.shape[2:]:
            raise ValueError(
                f"{what}: the two layers must share batch and spatial size, got "
                f"{tuple(f1.shape)} and {tuple(f2.shape)}"
            )
        b, hw = f1.shape[0], f1.shape[2] * f1.shape[3]
        a = f1.reshape(b, f1.shape[1], hw)
        c = f2.reshape(b, f2.shape[1], hw)
        return torch.bmm(a, c.transpose(1, 2)) / hw

    def pair_loss(self, index: int, student: tuple[torch.Tensor, torch.Tensor],
                  teacher: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        where = self._where(index)
        g_s = self.fsp_matrix(*student, what=f"{where}: student")
        g_t = self.fsp_matrix(*teacher, what=f"{where}: teacher")
        if g_s.shape != g_t.shape:
            raise ValueError(
                f"{where}: student FSP matrix {tuple(g_s.shape)} does not match teacher "
                f"{tuple(g_t.shape)}; pair layers with the same channel counts"
            )
        return (g_s - g_t).pow(2).mean()


# --------------------------------------------------------------------------- pairs, imitation


def _check_n_cascades(n_cascades: int) -> None:
    if not isinstance(n_cascades, int) or isinstance(n_cascades, bool) or n_cascades < 1:
        raise ValueError(f"n_cascades: expected a positive int, got {n_cascades!r}")


def default_pairs(n_cascades: int = 5, student_layer: str = "conv2",
                  teacher_layer: str = "conv3") -> list[LayerPair]:
    """KD-MRI's layer pairs: student ``conv2`` <-> teacher ``conv3`` in every cascade.

    ``default_pairs()`` == ``[("cascade1.conv2", "cascade1.conv3"), ...,
    ("cascade5.conv2", "cascade5.conv3")]``.
    """
    _check_n_cascades(n_cascades)
    return [(f"cascade{i}.{student_layer}", f"cascade{i}.{teacher_layer}")
            for i in range(1, n_cascades + 1)]


def default_fsp_pairs(n_cascades: int = 5, student_layers: tuple[str, str] = ("conv1", "conv2"),
                      teacher_layers: tuple[str, str] = ("conv1", "conv3")) -> list[FSPPair]:
    """FSP layer pairs per cascade: the flow from the first conv to the KD-MRI paired layer.

    Default: ``(("cascade<i>.conv1", "cascade<i>.conv2"), ("cascade<i>.conv1",
    "cascade<i>.conv3"))`` for every cascade (32x32 FSP matrices on both sides of the
    DC-CNN teacher/student). This choice of layers is kdmri's, not a paper's.
    """
    _check_n_cascades(n_cascades)
    return [
        ((f"cascade{i}.{student_layers[0]}", f"cascade{i}.{student_layers[1]}"),
         (f"cascade{i}.{teacher_layers[0]}", f"cascade{i}.{teacher_layers[1]}"))
        for i in range(1, n_cascades + 1)
    ]


def imitation_loss(student_out: torch.Tensor, teacher_out: torch.Tensor,
                   reduction: str = "mean") -> torch.Tensor:
    """KD-MRI imitation loss: L1 between student and (detached) teacher outputs.

    ``student_out`` and ``teacher_out`` have the same shape, e.g. ``(B, 1, H, W)``.

    * ``reduction="mean"``: mean absolute difference.
    * ``reduction="reference"``: mean absolute difference divided again by the number of
      elements, as the KD-MRI reconstruction reference code does (the super-resolution
      code does not); the term becomes tiny -- equivalent to a weight of ``1 / numel``.
    """
    if reduction not in IMITATION_REDUCTIONS:
        raise ValueError(
            f"reduction: expected one of {list(IMITATION_REDUCTIONS)}, got {reduction!r}"
        )
    if student_out.shape != teacher_out.shape:
        raise ValueError(
            f"teacher_out: shape {tuple(teacher_out.shape)} does not match student_out "
            f"{tuple(student_out.shape)}"
        )
    loss = F.l1_loss(student_out, teacher_out.detach(), reduction="mean")
    if reduction == "reference":
        loss = loss / student_out.numel()
    return loss
