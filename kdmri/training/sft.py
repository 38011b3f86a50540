"""SFT-KD-Recon (Matcha et al., arXiv:2304.05057): a student-friendly teacher, then KD.

Step 1, ``sft-teacher``: an :class:`SFTTeacher` -- the DC-CNN teacher plus student cascades
2..5 -- is trained with :func:`sft_loss`. After teacher cascade ``i`` (``i = 1..4``) a
*hybrid branch* continues from the teacher's image through student cascades ``i+1..5``
(each followed by DC); the teacher learns to reconstruct *and* to hand the student
cascades intermediate images they can finish well.

Step 2, ``sft-feature`` then ``sft-kd``: the usual feature and KD stages of
:mod:`kdmri.training.engine` with the SFT teacher as the frozen teacher; the student's cascades
2..5 start from the SFT-trained branch cascades (:func:`init_student_from_sft`), cascade 1
from its random initialisation.

Every SFT stage writes to method ``sft`` whatever ``cfg.method`` says, so its folders sit
beside the KD-MRI ones for comparison::

    experiments/<dataset>/acc_<acc>/sft_teacher/   sft-teacher
    experiments/<dataset>/acc_<acc>/sft_feature/   sft-feature (student)
    experiments/<dataset>/acc_<acc>/sft_kd/        sft-kd      (student)

At inference the SFT teacher *is* the teacher: :meth:`SFTTeacher.forward` runs only the
teacher cascades (141,765 parameters, :meth:`SFTTeacher.inference_parameters`); the
branch cascades (4 x 9,857 parameters) exist for training and for initialising students.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from kdmri.checkpoint import BEST, load_checkpoint
from kdmri.config import Config
from kdmri.distill.losses import imitation_loss
from kdmri.errors import DataError
from kdmri.models.dccnn import DCCNN, STUDENT, TEACHER, ConvBlock, DataConsistency, DCCNNConfig, ReconOutput
from kdmri.models.dccnn import count_parameters as _count
from kdmri.training.engine import FeatureStage, KDStage, Stage

#: Experiment prefix of every SFT-KD-Recon stage.
SFT_METHOD = "sft"


# ---------------------------------------------------------------------------- the network


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
    Shapes as in :mod:`kdmri.models.dccnn`: images ``(B, 1, H, W)``.
    """

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
        self.dc = DataConsistency()

    # ---- architecture metadata (checkpoint.arch_of / build_from_arch)
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
        return _count(self.teacher)

    def feature_names(self) -> list[str]:
        return self.teacher.feature_names()

    # ---- forward passes
    def forward(self, x: torch.Tensor, kspace_us: torch.Tensor, mask: torch.Tensor,
                return_features: bool = True) -> ReconOutput:
        """The teacher's reconstruction (branches are not run)."""
        return self.teacher(x, kspace_us, mask, return_features=return_features)

    def branch_step(self, j: int, x: torch.Tensor, kspace_us: torch.Tensor,
                    mask: torch.Tensor) -> torch.Tensor:
        """Branch cascade ``j`` (0-based; student cascade ``j + 2``) and its DC layer."""
        out, _ = self.branch_cascades[j](x)
        if self.student_config.residual:
            out = x + out
        return self.dc(out, kspace_us, mask)

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


# ---------------------------------------------------------------------------- the loss


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


# ---------------------------------------------------------------------------- student init


def init_student_from_sft(student: DCCNN, sft_checkpoint_path: Path | str,
                          device: str | torch.device = "cpu") -> list[str]:
    """Copy the SFT-trained branch cascades into ``student.cascades[1:]`` (cascades 2..5).

    Cascade 1 keeps its initialisation. Raises :class:`~kdmri.errors.DataError` if the file
    is not an SFT checkpoint or a weight's shape does not fit. Returns the student
    parameter names that were set.
    """
    path = Path(sft_checkpoint_path)
    ckpt = load_checkpoint(path, device)
    kind = (ckpt.get("arch") or {}).get("kind")
    if kind != "sft":
        raise DataError(f"{path}: not an SFT checkpoint (arch kind {kind!r}, expected 'sft'); "
                        "train stage sft-teacher first")
    state = ckpt["model"]
    n_branches = len({k.split(".")[1] for k in state if k.startswith("branch_cascades.")})
    if n_branches != len(student.cascades) - 1:
        raise DataError(f"{path}: {n_branches} SFT branch cascades do not fit a student with "
                        f"{len(student.cascades)} cascades (expected {len(student.cascades) - 1})")
    new = {}
    own = student.state_dict()
    for j in range(n_branches):
        prefix, target = f"branch_cascades.{j}.", f"cascades.{j + 1}."
        mine = {k for k in own if k.startswith(target)}
        theirs = {target + k[len(prefix):] for k in state if k.startswith(prefix)}
        if mine != theirs:
            raise DataError(f"{path}: branch cascade {j + 2} has weights {sorted(theirs)}, the "
                            f"student's cascade {j + 2} has {sorted(mine)}")
        for key in sorted(mine):
            value = state[prefix + key[len(target):]]
            if value.shape != own[key].shape:
                raise DataError(f"{path}: {prefix + key[len(target):]} has shape {tuple(value.shape)}, "
                                f"the student's {key} has {tuple(own[key].shape)}")
            new[key] = value
    student.load_state_dict({**own, **new})
    return sorted(new)


# ---------------------------------------------------------------------------- stages


class _SFTMethod(Stage):
    """Mixin: SFT stages write to a method starting with ``sft`` (see :meth:`configure`);
    the SFT teacher itself always lives in ``sft_teacher``."""

    @classmethod
    def configure(cls, cfg: Config) -> Config:
        """Method ``sft`` unless ``cfg.method`` already starts with ``sft`` (e.g. ``sft-fitnet``
        keeps the students of several feature methods apart, all using ``sft_teacher``)."""
        return cfg.replace(method=cfg.method if cfg.method.startswith(SFT_METHOD) else SFT_METHOD)

    def __init__(self, cfg: Config, task, device: torch.device):
        super().__init__(self.configure(cfg), task, device)

    def method(self) -> str:
        return self.cfg.method

    def teacher_path(self) -> Path:
        return self.cfg.experiment("teacher", SFT_METHOD) / BEST


class SFTTeacherStage(_SFTMethod):
    """``sft-teacher``: train an :class:`SFTTeacher` with :func:`sft_loss`.

    Weights ``cfg.sft_branch_weight``, ``cfg.sft_imitation_weight``; reduction of the
    imitation term ``cfg.imitation_reduction``. Validation loss: L1 of the teacher output
    to the target (as for a plain teacher). Folder ``sft_teacher``.
    """

    arch, role = "sft", "teacher"

    @classmethod
    def configure(cls, cfg: Config) -> Config:
        return cfg.replace(method=SFT_METHOD)

    def build_model(self) -> nn.Module:
        return SFTTeacher(TEACHER, STUDENT)

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        teacher_out, branches = model.forward_branches(batch["input"], batch["kspace"], batch["mask"])
        cfg = self.cfg
        return sft_loss(teacher_out.image, branches, batch["target"], cfg.sft_branch_weight,
                        cfg.sft_imitation_weight, cfg.imitation_reduction)


class SFTFeatureStage(_SFTMethod, FeatureStage):
    """``sft-feature``: feature distillation from the frozen SFT teacher (any
    ``cfg.feature_loss``) into a student whose cascades 2..5 start from the SFT branches.

    ``feature_init`` ``scratch`` (the default) is read as ``sft``; a checkpoint path is
    honoured. Folder ``sft_feature``.
    """

    @classmethod
    def configure(cls, cfg: Config) -> Config:
        cfg = super().configure(cfg).replace(teacher_method=SFT_METHOD)
        if cfg.feature_init == "scratch":
            cfg = cfg.replace(feature_init="sft")
        return cfg

    def init_student(self, model) -> None:
        if self.cfg.feature_init == "sft":
            init_student_from_sft(model, self.teacher_path(), self.device)
            return
        super().init_student(model)


class SFTKDStage(_SFTMethod, KDStage):
    """``sft-kd``: L1 + imitation of the frozen SFT teacher, initialised from ``sft-feature``
    (``kd_init="feature"``, the default). Folder ``sft_kd``."""

    @classmethod
    def configure(cls, cfg: Config) -> Config:
        return super().configure(cfg).replace(teacher_method=SFT_METHOD)


SFT_STAGES: dict[str, type[Stage]] = {
    "sft-teacher": SFTTeacherStage,
    "sft-feature": SFTFeatureStage,
    "sft-kd": SFTKDStage,
}
