"""Attention transfer: KD-MRI's attention maps (``at_kdmri``) and Zagoruyko & Komodakis's
(``at``). Both compare spatial maps of the paired layers; see each class."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from kdmri.distill.registry import (
    FeatureLoss,
    LayerPair,
    _check_map_pair,
    _expect_4d,
    build_feature_loss,
    register_feature_loss,
)

ATTENTION_MODES: tuple[str, ...] = ("sample", "batch")


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
        return self.target_loss(index, student, self.teacher_target(index, teacher))

    def teacher_target(self, index: int, teacher: torch.Tensor) -> torch.Tensor:
        """The teacher's attention map ``(B, H*W)`` in ``sample`` mode (per sample, so it can
        be cached); the feature itself in ``batch`` mode (its map depends on the batch)."""
        if self.mode != "sample":
            return teacher
        _expect_4d(teacher, f"{self._where(index)}: teacher")
        return attention_map(teacher, "sample")

    def target_loss(self, index: int, student: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.mode != "sample":
            _check_map_pair(student, target, self._where(index))
            return (attention_map(student, self.mode) - attention_map(target, self.mode)).abs().mean()
        _expect_4d(student, f"{self._where(index)}: student")
        if tuple(target.shape) != (student.shape[0], student.shape[2] * student.shape[3]):
            raise ValueError(f"{self._where(index)}: teacher attention map {tuple(target.shape)} does "
                             f"not match the student's (B, H*W) = ({student.shape[0]}, "
                             f"{student.shape[2] * student.shape[3]})")
        return (attention_map(student, "sample") - target).abs().mean()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mode={self.mode!r}"

    @classmethod
    def from_config(cls, cfg: Any, default_pairs: Sequence[Any], probe: dict) -> FeatureLoss:
        """Options from ``cfg.feature_options``; ``mode`` defaults to ``cfg.at_mode``."""
        options = dict(cfg.feature_options)
        options.setdefault("mode", cfg.at_mode)
        pairs = [tuple(p) for p in (cfg.feature_pairs or default_pairs)]
        return build_feature_loss(cls.name, pairs, **options)


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
