"""KD-MRI's imitation loss: the output-level term ``L1(student_out, teacher_out)``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IMITATION_REDUCTIONS: tuple[str, ...] = ("mean", "reference")


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
