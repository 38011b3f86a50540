"""Data consistency and the DC-CNN (Schlemper et al. 2018) as used by KD-MRI.

Shapes: images ``(B, 1, H, W)`` real; measured k-space ``(B, 1, H, W)`` complex in the
unshifted layout; masks ``(H, W)``, ``(B, H, W)`` or ``(B, 1, H, W)`` (per-sample masks
allowed), unshifted, values in {0, 1}.

One :class:`ConvBlock` implementation is looped over cascades; the teacher and the student
differ only in their :class:`DCCNNConfig`:

* teacher: 5 cascades x 5 convs (1->32->32->32->32->1): 141,765 parameters
* student: 5 cascades x 3 convs (1->32->32->1): 49,285 parameters

Each cascade is ``DC(CNN(x))``, as in both reference implementations (KD-MRI's
``reconstruction/`` models and SFT-KD-Recon's ``git_cardiac/models.py``);
``residual=True`` selects ``DC(x + CNN(x))``, kdmri's earlier default (config field
``residual``; checkpoints store it, so older ones still load as they were trained).

The forward pass returns a :class:`ReconOutput` with the final image, the image after
every cascade and the named intermediate activations ``"cascade<i>.conv<j>"`` (1-based;
post-ReLU for every conv but the last) and ``"cascade<i>.out"`` (the cascade CNN's
1-channel output before DC, the same tensor as its last conv) that feature distillation
pairs by name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from kdmri.models.blocks import (
    ConvBlock,
    ReconOutput,
    cascade_step,
    count_parameters,  # noqa: F401  (re-exported for older imports)
)
from kdmri.models.registry import register_model


@dataclass(frozen=True)
class DCCNNConfig:
    """Architecture of a DC-CNN: ``n_cascades`` x (``n_convs`` 3x3 convs + DC)."""

    n_cascades: int = 5
    n_convs: int = 5
    channels: int = 32
    in_channels: int = 1
    residual: bool = False  # True: DC(x + CNN(x)) (kdmri's earlier default)

    def to_dict(self) -> dict:
        return asdict(self)


TEACHER = DCCNNConfig(n_cascades=5, n_convs=5, channels=32)
STUDENT = DCCNNConfig(n_cascades=5, n_convs=3, channels=32)


@register_model("dccnn")
class DCCNN(nn.Module):
    """Cascade of CNN blocks, each followed by data consistency.

    ``forward(x, kspace_us, mask)`` with the zero-filled image ``x``; see the module
    docstring for shapes.
    """

    task = "recon"  # the problem it solves (kdmri.models.tasks)
    forward_inputs = ("image", "kspace", "mask")

    def __init__(self, config: DCCNNConfig = TEACHER):
        super().__init__()
        self.config = config
        self.cascades = nn.ModuleList(
            ConvBlock(config.n_convs, config.channels, config.in_channels)
            for _ in range(config.n_cascades)
        )

    # ---- checkpoint metadata (kdmri.models.registry)
    def arch(self) -> dict:
        return {"kind": "dccnn", **self.config.to_dict()}

    @classmethod
    def from_arch(cls, arch: dict) -> DCCNN:
        return cls(DCCNNConfig(**arch))

    def forward(self, x: torch.Tensor, kspace_us: torch.Tensor, mask: torch.Tensor,
                return_features: bool = True) -> ReconOutput:
        feats: dict[str, torch.Tensor] = {}
        images = []
        for i, block in enumerate(self.cascades):
            x = cascade_step(block, x, kspace_us, mask, self.config.residual,
                             feats if return_features else None, f"cascade{i + 1}.")
            images.append(x)
        return ReconOutput(x, feats, images)

    def real_dc_forward(self, image: torch.Tensor, k_re: torch.Tensor, k_im: torch.Tensor,
                        mask: torch.Tensor, dft) -> torch.Tensor:
        """:meth:`forward` in real arithmetic for export: k-space as real and imaginary parts,
        the DC layers' DFT as matrix products (``dft``: :class:`kdmri.tools.export.MatrixDFT2`)."""
        m_k_re, m_k_im = mask * k_re, mask * k_im  # measured samples, constant across cascades
        keep = 1 - mask
        x = image
        for block in self.cascades:
            out = block(x)[0]
            x = x + out if self.config.residual else out
            p_re, p_im = dft.forward_real(x)
            x = dft.inverse_real_part(m_k_re + keep * p_re, m_k_im + keep * p_im)
        return x

    def feature_names(self) -> list[str]:
        """Names of the activations :meth:`forward` returns."""
        return [
            f"cascade{i + 1}.{layer}"
            for i in range(self.config.n_cascades)
            for layer in [f"conv{j + 1}" for j in range(self.config.n_convs)] + ["out"]
        ]

    def feature_paths(self) -> dict[str, str]:
        """Module path of every feature name: ``"cascade<i>.conv<j>"`` ->
        ``"cascades.<i-1>.acts.<j-1>"`` (post-ReLU), the last conv and ``"cascade<i>.out"`` ->
        ``"cascades.<i-1>.convs.<n-1>"`` (:mod:`kdmri.models.features`)."""
        return {f"cascade{i + 1}.{name}": path for i, block in enumerate(self.cascades)
                for name, path in block.layer_paths(f"cascades.{i}.").items()}

    @staticmethod
    def default_feature_pairs(n_cascades: int = 5, student_layer: str = "conv2",
                              teacher_layer: str = "conv3") -> list[tuple[str, str]]:
        """KD-MRI's layer pairs: student ``conv2`` <-> teacher ``conv3`` in every cascade.

        ``[("cascade1.conv2", "cascade1.conv3"), ..., ("cascade5.conv2", "cascade5.conv3")]``:
        feature names, i.e. the module paths ``("cascades.0.acts.1", "cascades.0.acts.2")``
        ... of the student and teacher (:meth:`feature_paths`).
        """
        if not isinstance(n_cascades, int) or isinstance(n_cascades, bool) or n_cascades < 1:
            raise ValueError(f"n_cascades: expected a positive int, got {n_cascades!r}")
        return [(f"cascade{i}.{student_layer}", f"cascade{i}.{teacher_layer}")
                for i in range(1, n_cascades + 1)]


PRESETS = {"teacher": TEACHER, "student": STUDENT}


def preset(role: str, residual: bool | None = None) -> DCCNNConfig:
    """The ``teacher`` / ``student`` architecture, with ``residual`` if given."""
    if role not in PRESETS:
        raise ValueError(f"model role {role!r}: expected one of {sorted(PRESETS)}")
    return PRESETS[role] if residual is None else replace(PRESETS[role], residual=bool(residual))


def build_dccnn(role: str | DCCNNConfig, residual: bool | None = None) -> DCCNN:
    """``build_dccnn("teacher")``, ``build_dccnn("student", residual=True)`` or from a config."""
    if isinstance(role, DCCNNConfig):
        return DCCNN(role)
    return DCCNN(preset(role, residual))
