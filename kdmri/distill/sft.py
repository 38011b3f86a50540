"""SFT-KD-Recon's training loss of the student-friendly teacher (:class:`kdmri.models.sft.SFTTeacher`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdmri.distill.imitation import imitation_loss


def _imitation_both_ways(branch: torch.Tensor, teacher: torch.Tensor, reduction: str) -> torch.Tensor:
    """``imitation_loss(branch, teacher)`` with the gradient of an undetached L1 for both.

    :func:`kdmri.distill.losses.imitation_loss` detaches its second argument (right for a frozen
    teacher). The mirrored call supplies the teacher's gradient and adds zero to the value,
    so the value is exactly ``imitation_loss(branch, teacher)``.
    """
    to_branch = imitation_loss(branch, teacher, reduction=reduction)
    to_teacher = imitation_loss(teacher, branch, reduction=reduction)
    return to_branch + (to_teacher - to_teacher.detach())


def sft_loss(teacher_img: torch.Tensor, branch_imgs: list[torch.Tensor], target: torch.Tensor,
             branch_weight: float = 1.0, imitation_weight: float = 1.0, reduction: str = "mean",
             detach_teacher: bool = False) -> tuple[torch.Tensor, dict[str, float]]:
    """SFT-KD-Recon's training loss of the student-friendly teacher.

    ``L1(T, y) + branch_weight * mean_i L1(B_i, y) + imitation_weight * mean_i imit(B_i, T)``

    with the teacher output ``T``, the branch outputs ``B_i`` (all ``(B, 1, H, W)``), the
    target ``y`` and ``imit`` = :func:`kdmri.distill.losses.imitation_loss` with ``reduction``
    (``"mean"``, or ``"reference"``: divided again by the element count as the reference
    code does).

    Gradient flow: by default (``detach_teacher=False``) the imitation term is *not*
    detached from the teacher -- the branches learn to imitate the teacher and the teacher
    is pulled towards what the student branches can produce, which is what makes it
    student-friendly (SFT-KD-Recon's reference code applies ``F.l1_loss(branch, teacher)``
    to the undetached teacher output, following SFTN, Park et al. 2021).
    ``detach_teacher=True`` (an ablation) trains only the branches through this term.

    Returns ``(total, logs)`` with logs ``teacher_l1``, ``branch_l1`` (mean over branches),
    ``branch<i>_l1`` and ``imitation`` (mean over branches, unweighted).
    """
    if not branch_imgs:
        raise ValueError("branch_imgs: expected at least one branch output, got none")
    for i, b in enumerate(branch_imgs):
        if b.shape != teacher_img.shape:
            raise ValueError(f"branch_imgs[{i}]: shape {tuple(b.shape)} does not match the teacher "
                             f"output {tuple(teacher_img.shape)}")
    if target.shape != teacher_img.shape:
        raise ValueError(f"target: shape {tuple(target.shape)} does not match the teacher output "
                         f"{tuple(teacher_img.shape)}")
    n = len(branch_imgs)
    teacher_l1 = F.l1_loss(teacher_img, target)
    branch_l1s = [F.l1_loss(b, target) for b in branch_imgs]
    if detach_teacher:
        imits = [imitation_loss(b, teacher_img, reduction=reduction) for b in branch_imgs]
    else:
        imits = [_imitation_both_ways(b, teacher_img, reduction) for b in branch_imgs]
    branch_l1 = sum(branch_l1s) / n
    imitation = sum(imits) / n
    total = teacher_l1 + branch_weight * branch_l1 + imitation_weight * imitation
    logs = {"teacher_l1": teacher_l1.item(), "branch_l1": branch_l1.item(),
            **{f"branch{i + 1}_l1": v.item() for i, v in enumerate(branch_l1s)},
            "imitation": imitation.item()}
    return total, logs
