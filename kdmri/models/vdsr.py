"""VDSR (Kim et al. 2016) teacher and student for the KD-MRI super-resolution extension.

Shapes: input and output images ``(B, 1, H, W)`` real, the low-resolution image at full
size (see :func:`kdmri.data.sr.truncate_kspace`); the output has the input's shape.

One network, two configurations: ``n_layers`` 3x3 convolutions (padding 1, bias)
``1 -> 64 -> ... -> 64 -> 1`` with ReLU after every conv but the last, and a global
residual connection ``out = x + net(x)``.

* teacher: 11 layers (1->64, nine 64->64, 64->1): 333,569 parameters
* student: 7 layers (1->64, five 64->64, 64->1): 185,857 parameters

The body is the same looped :class:`~kdmri.models.blocks.ConvBlock` a DC-CNN cascade uses.
Features are named ``"conv1"`` .. ``"conv<n>"`` (post-ReLU, the last one raw); the
KD-MRI attention pair is teacher ``conv6`` <-> student ``conv4``
(:data:`VDSR_DEFAULT_PAIRS`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from kdmri.models.blocks import ConvBlock, ReconOutput
from kdmri.models.registry import register_model


@dataclass(frozen=True)
class VDSRConfig:
    """Architecture of a VDSR: ``n_layers`` 3x3 convs of width ``channels``.

    Attributes:
        n_layers: number of conv layers (>= 2), first and last included.
        channels: width of the hidden layers.
        in_channels: image channels (input = output).
        residual: global residual ``out = x + net(x)`` (VDSR's default).
    """

    n_layers: int
    channels: int = 64
    in_channels: int = 1
    residual: bool = True

    def __post_init__(self) -> None:
        if self.n_layers < 2:
            raise ValueError(f"n_layers={self.n_layers}: VDSR needs at least 2 conv layers")
        if self.channels < 1 or self.in_channels < 1:
            raise ValueError(f"channels={self.channels}, in_channels={self.in_channels}: "
                             "expected positive widths")

    def to_dict(self) -> dict:
        """Plain dict for checkpoint metadata."""
        return asdict(self)


VDSR_TEACHER = VDSRConfig(11)
VDSR_STUDENT = VDSRConfig(7)

#: Default attention-transfer pair for SR distillation, as ``(student_name, teacher_name)``.
VDSR_DEFAULT_PAIRS: list[tuple[str, str]] = [("conv4", "conv6")]


@register_model("vdsr")
class VDSR(nn.Module):
    """Very deep super-resolution network with a global residual connection.

    ``forward(x)`` takes the low-resolution image ``(B, C, H, W)`` and returns a
    :class:`~kdmri.models.dccnn.ReconOutput` with ``image`` ``(B, C, H, W)``, the named
    activations ``features["conv<j>"]`` (``(B, channels, H, W)``, the last ``(B, C, H, W)``
    before the residual is added) and ``cascades == []``.
    """

    task = "sr"  # the problem it solves (kdmri.models.tasks)
    forward_inputs = ("image",)

    def __init__(self, config: VDSRConfig = VDSR_TEACHER):
        super().__init__()
        self.config = config
        self.body = ConvBlock(config.n_layers, config.channels, config.in_channels)

    # ---- checkpoint metadata (kdmri.models.registry)
    def arch(self) -> dict:
        return {"kind": "vdsr", **self.config.to_dict()}

    @classmethod
    def from_arch(cls, arch: dict) -> VDSR:
        return cls(VDSRConfig(**arch))

    def feature_paths(self) -> dict[str, str]:
        """Module path of every feature name: ``"conv<j>"`` -> ``"body.acts.<j-1>"``
        (post-ReLU), the last -> ``"body.convs.<n-1>"``."""
        return {name: path for name, path in self.body.layer_paths("body.").items() if name != "out"}

    @staticmethod
    def default_feature_pairs() -> list[tuple[str, str]]:
        """KD-MRI's super-resolution attention pair: student ``conv4`` <-> teacher ``conv6``
        (module paths ``body.acts.3`` <-> ``body.acts.5``)."""
        return list(VDSR_DEFAULT_PAIRS)

    def forward(self, x: torch.Tensor, return_features: bool = True) -> ReconOutput:
        """Super-resolve ``x`` ``(B, C, H, W)``; ``return_features=False`` leaves the dict empty."""
        if x.dim() != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"x: expected (B, {self.config.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        out, feats = self.body(x)
        if self.config.residual:
            out = x + out
        return ReconOutput(out, feats if return_features else {}, [])

    def feature_names(self) -> list[str]:
        """Names of the activations :meth:`forward` returns."""
        return [f"conv{j + 1}" for j in range(self.config.n_layers)]


def build_vdsr(role: str | VDSRConfig) -> VDSR:
    """``build_vdsr("teacher")``, ``build_vdsr("student")`` or from a :class:`VDSRConfig`."""
    if isinstance(role, VDSRConfig):
        return VDSR(role)
    presets = {"teacher": VDSR_TEACHER, "student": VDSR_STUDENT}
    if role not in presets:
        raise ValueError(f"model role {role!r}: expected one of {sorted(presets)} or a VDSRConfig")
    return VDSR(presets[role])
