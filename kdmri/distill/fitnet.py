"""FitNets hints (``fitnet``): a learned 1x1 regressor from student to teacher channels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kdmri.distill.attention import attention_map
from kdmri.distill.registry import (
    FeatureLoss,
    LayerPair,
    _check_map_pair,
    _expect_4d,
    build_feature_loss,
    reference_output_pairs,
    register_feature_loss,
    resize_map,
)


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
    (one per pair); leaving both out means identity for every pair. A hint of another
    resolution than the teacher's layer is interpolated (bilinear) to the teacher's ``H, W``.
    Train the regressors with the student: pass ``loss.parameters()`` to the optimiser.

    ``form="attention"`` is what SFT-KD-Recon's "fitnets" script
    (``git_cardiac/train_feature_fitnets.py``) computes instead: the L1 distance of
    attention maps ``sum_c f**2`` normalised along the *batch* axis
    (:func:`kdmri.distill.attention.attention_map` with ``mode="batch"``), no regressor.
    Training's default (:meth:`from_config`) is that form on the output of cascade 3;
    ``feature_forms: kdmri`` keeps the hint form on the conv pairs.
    """

    reference = 'Romero et al., "FitNets: hints for thin deep nets", ICLR 2015, arXiv:1412.6550'

    def __init__(self, pairs: Sequence[LayerPair],
                 student_channels: int | Sequence[int] | None = None,
                 teacher_channels: int | Sequence[int] | None = None, form: str = "hint"):
        super().__init__(pairs)
        if form not in ("hint", "attention"):
            raise ValueError(f"form: expected 'hint' or 'attention', got {form!r}")
        self.form = form
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
        if self.form == "attention":
            _check_map_pair(student, teacher, where)
            return (attention_map(student, "batch")
                    - attention_map(teacher, "batch", student.shape[-2:])).abs().mean()
        regressor = self.regressors[index]
        if isinstance(regressor, nn.Conv2d) and student.shape[1] != regressor.in_channels:
            raise ValueError(
                f"{where}: student has {student.shape[1]} channels, the regressor expects "
                f"student_channels={regressor.in_channels}"
            )
        hint = resize_map(regressor(student), teacher.shape[-2:])
        if hint.shape != teacher.shape:
            raise ValueError(
                f"{where}: student hint shape {tuple(hint.shape)} does not match teacher "
                f"{tuple(teacher.shape)}; set student_channels/teacher_channels for a regressor"
            )
        return F.mse_loss(hint, teacher)

    @classmethod
    def from_config(cls, cfg: Any, default_pairs: Sequence[Any], probe: dict) -> FeatureLoss:
        """Channel counts of the paired layers from ``probe`` (one forward pass), unless
        ``cfg.feature_options`` gives them."""
        options = cls.config_options(cfg)
        pairs = reference_output_pairs(cfg, default_pairs, probe, (3,))
        if pairs:
            options.setdefault("form", "attention")
        pairs = pairs or [tuple(p) for p in (cfg.feature_pairs or default_pairs)]
        if probe and options.get("form", "hint") == "hint":
            options.setdefault("student_channels", [probe["student"][a][1] for a, _ in pairs])
            options.setdefault("teacher_channels", [probe["teacher"][b][1] for _, b in pairs])
        return build_feature_loss(cls.name, pairs, **options)
