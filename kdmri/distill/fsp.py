"""Flow of solution procedure (``fsp``, Yim et al. 2017)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from kdmri.distill.registry import (
    FeatureLoss,
    FSPPair,
    _expect_4d,
    build_feature_loss,
    reference_output_pairs,
    register_feature_loss,
)


@register_feature_loss("fsp")
class FSPLoss(FeatureLoss):
    """Flow of solution procedure (Yim et al., CVPR 2017).

    Configured with pairs of layer pairs ``[((student_a, student_b), (teacher_a,
    teacher_b)), ...]`` (see :func:`default_fsp_pairs`). The FSP matrix of two layers of
    the same spatial size, ``F1`` ``(B, C1, H, W)`` and ``F2`` ``(B, C2, H, W)``, is
    ``G = F1 F2^T / (H * W)`` ``(B, C1, C2)`` (flattened over space). Per pair:
    ``mean_{b, i, j} (G_s - G_t)**2`` (the paper's ``||G_s - G_t||_2^2`` up to a
    constant); the student's and teacher's ``(C1, C2)`` must agree. ``square=True`` squares
    each layer first (``sum_c f**2``, one channel), as SFT-KD-Recon's script does.

    Training's default (:meth:`from_config`) is SFT-KD-Recon's (``git_cardiac/
    train_feature_fsp.py`` with ``FSP`` of its ``kd_methods.py``): the squared outputs of
    cascades 1..4, FSP between consecutive ones (1-2, 2-3, 3-4), i.e. per pair
    ``mean_b (mean_hw(s_i**2 s_j**2) - mean_hw(t_i**2 t_j**2))**2``. ``feature_forms:
    kdmri`` keeps :func:`default_fsp_pairs` without squaring.
    """

    reference = ('Yim et al., "A gift from knowledge distillation: fast optimization,'
                 ' network minimization and transfer learning", CVPR 2017')

    def __init__(self, pairs: Sequence[Any], square: bool = False):
        super().__init__(pairs)
        self.square = bool(square)

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
        if self.square:
            student = tuple(f.pow(2).sum(1, keepdim=True) for f in student)
            teacher = tuple(f.pow(2).sum(1, keepdim=True) for f in teacher)
        g_s = self.fsp_matrix(*student, what=f"{where}: student")
        g_t = self.fsp_matrix(*teacher, what=f"{where}: teacher")
        if g_s.shape != g_t.shape:
            raise ValueError(
                f"{where}: student FSP matrix {tuple(g_s.shape)} does not match teacher "
                f"{tuple(g_t.shape)}; pair layers with the same channel counts"
            )
        return (g_s - g_t).pow(2).mean()

    @classmethod
    def from_config(cls, cfg: Any, default_pairs: Sequence[Any], probe: dict) -> FeatureLoss:
        """``cfg.feature_pairs`` (pairs of layer pairs); else SFT-KD-Recon's consecutive
        squared cascade outputs, or :func:`default_fsp_pairs` with ``feature_forms: kdmri``."""
        options = cls.config_options(cfg)
        outputs = reference_output_pairs(cfg, default_pairs, probe, range(1, 5))
        if outputs:
            names = [s for s, _ in outputs]
            pairs = [((a, b), (a, b)) for a, b in zip(names[:-1], names[1:])]
            options.setdefault("square", True)
        else:
            pairs = cfg.feature_pairs or default_fsp_pairs()
        return build_feature_loss(cls.name, pairs, **options)



def default_fsp_pairs(n_cascades: int = 5, student_layers: tuple[str, str] = ("conv1", "conv2"),
                      teacher_layers: tuple[str, str] = ("conv1", "conv3")) -> list[FSPPair]:
    """FSP layer pairs per cascade: the flow from the first conv to the KD-MRI paired layer.

    Default: ``(("cascade<i>.conv1", "cascade<i>.conv2"), ("cascade<i>.conv1",
    "cascade<i>.conv3"))`` for every cascade (32x32 FSP matrices on both sides of the
    DC-CNN teacher/student). This choice of layers is kdmri's, not a paper's.
    """
    if not isinstance(n_cascades, int) or isinstance(n_cascades, bool) or n_cascades < 1:
        raise ValueError(f"n_cascades: expected a positive int, got {n_cascades!r}")
    return [
        ((f"cascade{i}.{student_layers[0]}", f"cascade{i}.{student_layers[1]}"),
         (f"cascade{i}.{teacher_layers[0]}", f"cascade{i}.{teacher_layers[1]}"))
        for i in range(1, n_cascades + 1)
    ]
