"""The SFT-KD-Recon student-friendly teacher network (Matcha et al., arXiv:2304.05057).

:class:`SFTTeacher` = the DC-CNN teacher plus the student cascades 2..5 it is trained with.
After teacher cascade ``i`` (``i = 1..4``) a *hybrid branch* continues from the teacher's
image through student cascades ``i+1..5`` (each followed by DC). At inference the SFT
teacher *is* the teacher: :meth:`SFTTeacher.forward` runs only the teacher cascades
(141,765 parameters, :meth:`SFTTeacher.inference_parameters`); the branch cascades
(4 x 9,857 parameters) exist for training and for initialising students
(:func:`init_student_from_sft`). Its training loss is :func:`kdmri.distill.sft.sft_loss`.
Shapes as in :mod:`kdmri.models.dccnn`: images ``(B, 1, H, W)``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from kdmri.errors import DataError
from kdmri.models.blocks import ConvBlock, ReconOutput, cascade_step, count_parameters
from kdmri.models.dccnn import DCCNN, STUDENT, TEACHER, DCCNNConfig
from kdmri.models.registry import register_model


@register_model("sft")
class SFTTeacher(nn.Module):
    """DC-CNN teacher plus the student cascades 2..5 it is trained with.

    * ``teacher``: a :class:`~kdmri.models.dccnn.DCCNN` (``teacher_config``, default
      :data:`~kdmri.models.dccnn.TEACHER`);
    * ``branch_cascades``: ``n_cascades - 1`` :class:`ConvBlock` of the student
      architecture (default :data:`~kdmri.models.dccnn.STUDENT`: 3 convs, 32 channels);
      ``branch_cascades[j]`` is student cascade ``j + 2`` (1-based). Residual and DC as in
      the DC-CNN.

    :meth:`forward` is exactly the teacher's (same output, same feature names
    ``"cascade<i>.conv<j>"``), so the feature and KD stages use an SFT teacher unchanged;
    :meth:`forward_branches` adds the hybrid branches for SFT training.
    """

    task = "recon"  # the problem it solves (kdmri.models.tasks)
    forward_inputs = ("image", "kspace", "mask")

    def __init__(self, teacher_config: DCCNNConfig = TEACHER, student_config: DCCNNConfig = STUDENT):
        super().__init__()
        if teacher_config.n_cascades != student_config.n_cascades:
            raise ValueError(f"student_config.n_cascades={student_config.n_cascades}: must equal the "
                             f"teacher's n_cascades={teacher_config.n_cascades}")
        if teacher_config.in_channels != student_config.in_channels:
            raise ValueError(f"student_config.in_channels={student_config.in_channels}: must equal "
                             f"the teacher's in_channels={teacher_config.in_channels}")
        self.teacher_config, self.student_config = teacher_config, student_config
        self.teacher = DCCNN(teacher_config)
        s = student_config
        self.branch_cascades = nn.ModuleList(
            ConvBlock(s.n_convs, s.channels, s.in_channels) for _ in range(s.n_cascades - 1)
        )

    # ---- checkpoint metadata (kdmri.models.registry)
    def arch(self) -> dict:
        return {"kind": "sft", "teacher": self.teacher_config.to_dict(),
                "student": self.student_config.to_dict()}

    @classmethod
    def from_arch(cls, arch: dict) -> SFTTeacher:
        """Inverse of :meth:`arch` (the ``kind`` entry may be present or already removed)."""
        try:
            return cls(DCCNNConfig(**arch["teacher"]), DCCNNConfig(**arch["student"]))
        except (KeyError, TypeError) as exc:
            raise DataError(f"SFT checkpoint arch {arch!r}: expected 'teacher' and 'student' "
                            f"DC-CNN configurations ({exc})") from exc

    def inference_parameters(self) -> int:
        """Parameters used at inference: the teacher's only (141,765 for the defaults)."""
        return count_parameters(self.teacher)

    def feature_names(self) -> list[str]:
        return self.teacher.feature_names()

    def feature_paths(self) -> dict[str, str]:
        """The teacher's feature names and module paths, under ``teacher.``: at inference the
        SFT teacher *is* its teacher, so ``"cascades.0.acts.2"`` means
        ``"teacher.cascades.0.acts.2"`` too."""
        inner = {**self.teacher.feature_paths(),
                 **{p: p for p, _ in self.teacher.named_modules() if p}}
        return {name: f"teacher.{path}" for name, path in inner.items()}

    def inference_network(self) -> DCCNN:
        """The network that runs at inference (and is exported): the teacher DC-CNN."""
        return self.teacher

    default_feature_pairs = staticmethod(DCCNN.default_feature_pairs)

    # ---- forward passes
    def forward(self, x: torch.Tensor, kspace_us: torch.Tensor, mask: torch.Tensor,
                return_features: bool = True, branches: bool = False):
        """The teacher's reconstruction (branches are not run); with ``branches=True``,
        :meth:`forward_branches` (so that a data-parallel wrapper sees the training pass)."""
        if branches:
            return self.forward_branches(x, kspace_us, mask, return_features)
        return self.teacher(x, kspace_us, mask, return_features=return_features)

    def branch_step(self, j: int, x: torch.Tensor, kspace_us: torch.Tensor,
                    mask: torch.Tensor) -> torch.Tensor:
        """Branch cascade ``j`` (0-based; student cascade ``j + 2``) and its DC layer."""
        return cascade_step(self.branch_cascades[j], x, kspace_us, mask, self.student_config.residual)

    def forward_branches(self, x: torch.Tensor, kspace_us: torch.Tensor, mask: torch.Tensor,
                         return_features: bool = False) -> tuple[ReconOutput, list[torch.Tensor]]:
        """Teacher output and the ``n_cascades - 1`` hybrid-branch outputs.

        Branch ``i`` (1-based, ``i = 1..4``) starts from the teacher's image after cascade
        ``i`` and runs student cascades ``i+1..5``, each with DC. Nothing is detached: the
        branch losses reach the teacher cascades ``1..i`` the branch starts from (as in
        SFT-KD-Recon's reference code).
        """
        teacher_out = self.teacher(x, kspace_us, mask, return_features=return_features)
        branches = []
        for i, start in enumerate(teacher_out.cascades[:-1]):
            y = start
            for j in range(i, len(self.branch_cascades)):
                y = self.branch_step(j, y, kspace_us, mask)
            branches.append(y)
        return teacher_out, branches


def init_student_from_sft(student: DCCNN, sft_state: Mapping[str, torch.Tensor],
                          source: str = "SFT checkpoint") -> list[str]:
    """Copy the SFT-trained branch cascades (an :class:`SFTTeacher` state dict) into
    ``student.cascades[1:]`` (cascades 2..5).

    Cascade 1 keeps its initialisation. Raises :class:`~kdmri.errors.DataError` naming
    ``source`` if a weight is missing or its shape does not fit. Returns the student
    parameter names that were set.
    """
    n_branches = len({k.split(".")[1] for k in sft_state if k.startswith("branch_cascades.")})
    if n_branches != len(student.cascades) - 1:
        raise DataError(f"{source}: {n_branches} SFT branch cascades do not fit a student with "
                        f"{len(student.cascades)} cascades (expected {len(student.cascades) - 1})")
    new = {}
    own = student.state_dict()
    for j in range(n_branches):
        prefix, target = f"branch_cascades.{j}.", f"cascades.{j + 1}."
        mine = {k for k in own if k.startswith(target)}
        theirs = {target + k[len(prefix):] for k in sft_state if k.startswith(prefix)}
        if mine != theirs:
            raise DataError(f"{source}: branch cascade {j + 2} has weights {sorted(theirs)}, the "
                            f"student's cascade {j + 2} has {sorted(mine)}")
        for key in sorted(mine):
            value = sft_state[prefix + key[len(target):]]
            if value.shape != own[key].shape:
                raise DataError(f"{source}: {prefix + key[len(target):]} has shape "
                                f"{tuple(value.shape)}, the student's {key} has {tuple(own[key].shape)}")
            new[key] = value
    student.load_state_dict({**own, **new})
    return sorted(new)
