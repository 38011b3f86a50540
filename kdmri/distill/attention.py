"""Attention transfer: KD-MRI's attention maps (``at_kdmri``) and Zagoruyko & Komodakis's
(``at``). Both compare spatial maps of the paired layers; see each class."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from kdmri.distill.registry import (
    FeatureLoss,
    LayerPair,
    _check_map_pair,
    _expect_4d,
    register_feature_loss,
    resize_map,
)

ATTENTION_MODES: tuple[str, ...] = ("sample", "batch")


def attention_map(f: torch.Tensor, mode: str = "sample", size=None) -> torch.Tensor:
    """KD-MRI attention map of features ``f`` ``(B, C, H, W)`` -> ``(B, H*W)``; with ``size``
    ``(H', W')`` the map is interpolated to that size before it is normalised (``(B, H'*W')``).

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
    return normalise_map(f.pow(2).sum(dim=1), mode, size)


def normalise_map(am: torch.Tensor, mode: str = "sample", size=None) -> torch.Tensor:
    """Channel-sum maps ``(B, H, W)`` -> attention maps ``(B, H*W)`` (:func:`attention_map`):
    interpolated to ``size`` if given, flattened, L2-normalised per sample or per position."""
    am = resize_map(am, size).reshape(am.shape[0], -1)
    return F.normalize(am, p=2, dim=1 if mode == "sample" else 0)



@register_feature_loss("at_kdmri")
class AttentionKDMRILoss(FeatureLoss):
    """KD-MRI attention transfer (Murugesan et al., MIDL 2020, arXiv:2004.05319).

    Per pair: ``mean_{b, j} |A(s)[b, j] - A(t)[b, j]|`` (L1, mean absolute difference) with
    ``A`` = :func:`attention_map` ``(B, H*W)``: channel sum of squared activations,
    flattened, L2-normalised. ``mode="sample"`` (default) normalises each sample over
    space as published; ``mode="batch"`` normalises along the batch axis as the KD-MRI
    reference code does (depends on batch composition; vanishes at batch size 1). Student
    and teacher may differ in channel count and resolution (the teacher's map is
    interpolated to the student's ``H, W``).
    """

    reference = ('Murugesan et al., "KD-MRI: A knowledge distillation framework for image'
                 ' reconstruction and image restoration in MRI workflow", MIDL 2020, arXiv:2004.05319')
    config_fields = {"mode": "at_mode"}  # the attention mode is the Config field at_mode

    def __init__(self, pairs: Sequence[LayerPair], mode: str = "sample"):
        super().__init__(pairs)
        if mode not in ATTENTION_MODES:
            raise ValueError(f"mode: expected one of {list(ATTENTION_MODES)}, got {mode!r}")
        self.mode = mode

    def pair_loss(self, index: int, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        _check_map_pair(student, teacher, self._where(index))
        return self.target_loss(index, student, self.teacher_target(index, teacher))

    def teacher_target(self, index: int, teacher: torch.Tensor) -> torch.Tensor:
        """The teacher's channel-sum map ``sum_c t[:, c]**2`` ``(B, H, W)``: per sample in both
        modes, so it can be cached; the interpolation to the student's size and the
        normalisation (over space or over the batch) follow in :meth:`target_loss`."""
        _expect_4d(teacher, f"{self._where(index)}: teacher")
        return teacher.pow(2).sum(dim=1)

    def target_loss(self, index: int, student: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _expect_4d(student, f"{self._where(index)}: student")
        if target.dim() != 3 or target.shape[0] != student.shape[0]:
            raise ValueError(f"{self._where(index)}: teacher map {tuple(target.shape)} does not match "
                             f"the student's batch: expected ({student.shape[0]}, H, W)")
        diff = attention_map(student, self.mode) - normalise_map(target, self.mode, student.shape[-2:])
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
    removes), so ``at`` and ``at_kdmri`` differ only by squared vs absolute error. A teacher
    map of another resolution is interpolated to the student's.
    """

    reference = ('Zagoruyko & Komodakis, "Paying more attention to attention", ICLR 2017,'
                 ' arXiv:1612.03928')

    def __init__(self, pairs: Sequence[LayerPair], p: float = 2.0):
        super().__init__(pairs)
        if not isinstance(p, (int, float)) or not p > 0:
            raise ValueError(f"p: expected a positive number, got {p!r}")
        self.p = float(p)

    def _map(self, f: torch.Tensor, size=None) -> torch.Tensor:
        q = resize_map(f.abs().pow(self.p).mean(dim=1), size)
        return F.normalize(q.reshape(f.shape[0], -1), dim=1)

    def pair_loss(self, index: int, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        _check_map_pair(student, teacher, self._where(index))
        return (self._map(student) - self._map(teacher, student.shape[-2:])).pow(2).mean()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}"
