"""Relational feature KD: similarity preserving (``sp``) and correlation congruence (``cc``).
Both compare samples of a batch with each other, so they vanish at batch size 1."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from kdmri.distill.registry import (
    FeatureLoss,
    LayerPair,
    _same_batch,
    build_feature_loss,
    reference_output_pairs,
    register_feature_loss,
)


@register_feature_loss("sp")
class SimilarityPreservingLoss(FeatureLoss):
    """Similarity-preserving KD (Tung & Mori, ICCV 2019, arXiv:1907.09682).

    Per pair: flatten each sample, ``Q = f.reshape(B, -1)``; ``G = Q Q^T`` ``(B, B)``;
    L2-normalise each row of ``G``; loss ``||G_s - G_t||_F^2 / B^2``. Student and teacher
    may differ in every dimension but the batch. At batch size 1 the loss is 0.
    """

    reference = ('Tung & Mori, "Similarity-preserving knowledge distillation", ICCV 2019,'
                 ' arXiv:1907.09682')

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

    @classmethod
    def from_config(cls, cfg: Any, default_pairs: Sequence[Any], probe: dict) -> FeatureLoss:
        """Default layers as SFT-KD-Recon (``git_cardiac/train_feature_sp.py``): the outputs
        of cascades 1..4 (``feature_forms: kdmri``: the conv pairs)."""
        pairs = reference_output_pairs(cfg, default_pairs, probe, range(1, 5))
        pairs = pairs or [tuple(p) for p in (cfg.feature_pairs or default_pairs)]
        return build_feature_loss(cls.name, pairs, **cls.config_options(cfg))


CC_KERNELS: tuple[str, ...] = ("reference", "gaussian", "bilinear")


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

    ``kernel="reference"`` is instead the form of SFT-KD-Recon's code
    (``git_cardiac/train_feature_cc.py``, ``correlaion_congruence``; also ``Correlation`` in
    its ``kd_methods.py``): with ``d = |s - t|`` ``(B, C, H, W)``, the loss is
    ``mean_{b, h, w} sum_c d[b] * d[b + 1]`` over consecutive samples ``b = 0..B-2``
    (0 at batch size 1). Training builds that form on the outputs of all five cascades
    (:meth:`from_config`); ``feature_forms: kdmri`` keeps the Gaussian kernel on the conv
    pairs, whose gradient at initialisation is ~1e-13 (below Adam's eps).
    """

    reference = ('Peng et al., "Correlation congruence for knowledge distillation", ICCV'
                 ' 2019, arXiv:1904.01802')

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
        if self.kernel == "reference":
            if student.shape != teacher.shape:
                raise ValueError(f"{where}: the reference form needs equal shapes, got student "
                                 f"{tuple(student.shape)} and teacher {tuple(teacher.shape)}")
            delta = (student - teacher).abs()
            return (delta[:-1] * delta[1:]).sum(1).mean() if delta.shape[0] > 1 else delta.sum() * 0
        k_s = self.correlation(self._embed(student, f"{where}: student"))
        k_t = self.correlation(self._embed(teacher, f"{where}: teacher"))
        return (k_s - k_t).pow(2).mean()

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, kernel={self.kernel!r}, gamma={self.gamma}, "
                f"order={self.order}")

    @classmethod
    def from_config(cls, cfg: Any, default_pairs: Sequence[Any], probe: dict) -> FeatureLoss:
        """SFT-KD-Recon's form on the outputs of cascades 1..5 by default; with
        ``feature_forms: kdmri`` (or explicit ``feature_pairs``) the Gaussian kernel on the
        configured/conv pairs. ``feature_options: {kernel: ...}`` overrides the form."""
        options = cls.config_options(cfg)
        pairs = reference_output_pairs(cfg, default_pairs, probe, range(1, 6))
        options.setdefault("kernel", "reference" if pairs else "gaussian")
        pairs = pairs or [tuple(p) for p in (cfg.feature_pairs or default_pairs)]
        return build_feature_loss(cls.name, pairs, **options)
