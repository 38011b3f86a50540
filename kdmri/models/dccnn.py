"""Data consistency and the DC-CNN (Schlemper et al. 2018) as used by KD-MRI.

Shapes: images ``(B, 1, H, W)`` real; measured k-space ``(B, 1, H, W)`` complex in the
unshifted layout; masks ``(H, W)``, ``(B, H, W)`` or ``(B, 1, H, W)`` (per-sample masks
allowed), unshifted, values in {0, 1}.

One :class:`ConvBlock` implementation is looped over cascades; the teacher and the student
differ only in their :class:`DCCNNConfig`:

* teacher: 5 cascades x 5 convs (1->32->32->32->32->1): 141,765 parameters
* student: 5 cascades x 3 convs (1->32->32->1): 49,285 parameters

The forward pass returns a :class:`ReconOutput` with the final image, the image after
every cascade and the named intermediate activations ``"cascade<i>.conv<j>"`` (1-based;
post-ReLU for every conv but the last) that feature distillation pairs by name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
from torch import nn

from kdmri.physics.fft import fft2, ifft2


class ReconOutput(NamedTuple):
    """What a reconstruction network returns."""

    image: torch.Tensor
    """Final reconstruction ``(B, 1, H, W)``."""
    features: dict[str, torch.Tensor]
    """Named intermediate activations, e.g. ``features["cascade1.conv3"]``."""
    cascades: list[torch.Tensor]
    """Image after each cascade (after its DC layer)."""


def _mask_as_batch(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Broadcastable ``(B or 1, 1, H, W)`` real mask on the device/dtype of ``like``."""
    if mask.dim() == 2:
        mask = mask[None, None]
    elif mask.dim() == 3:
        mask = mask[:, None]
    elif mask.dim() != 4:
        raise ValueError(f"mask: expected (H, W), (B, H, W) or (B, 1, H, W), got {tuple(mask.shape)}")
    if mask.shape[-2:] != like.shape[-2:]:
        raise ValueError(
            f"mask: spatial shape {tuple(mask.shape[-2:])} does not match image {tuple(like.shape[-2:])}"
        )
    return mask.to(device=like.device, dtype=like.real.dtype if like.is_complex() else like.dtype)


def data_consistency(x: torch.Tensor, kspace_us: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``Re F^-1[ m * k_us + (1 - m) * F(x) ]`` for a real image batch ``x`` ``(B, 1, H, W)``.

    Where ``m == 1`` the measured samples replace the network's; elsewhere the network's
    k-space is kept. ``F`` is the orthonormal unshifted 2-D DFT.
    """
    if not torch.is_complex(kspace_us):
        raise TypeError(f"kspace_us: expected a complex tensor, got {kspace_us.dtype}")
    if kspace_us.shape[-2:] != x.shape[-2:]:
        raise ValueError(
            f"kspace_us: shape {tuple(kspace_us.shape)} does not match image {tuple(x.shape)}"
        )
    m = _mask_as_batch(mask, x)
    k_pred = fft2(x.to(kspace_us.dtype))
    k = m * kspace_us + (1 - m) * k_pred
    return ifft2(k).real.to(x.dtype)


class DataConsistency(nn.Module):
    """Module form of :func:`data_consistency` (no parameters; the mask comes with the data)."""

    def forward(self, x: torch.Tensor, kspace_us: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return data_consistency(x, kspace_us, mask)


@dataclass(frozen=True)
class DCCNNConfig:
    """Architecture of a DC-CNN: ``n_cascades`` x (``n_convs`` 3x3 convs + DC)."""

    n_cascades: int = 5
    n_convs: int = 5
    channels: int = 32
    in_channels: int = 1
    residual: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


TEACHER = DCCNNConfig(n_cascades=5, n_convs=5, channels=32)
STUDENT = DCCNNConfig(n_cascades=5, n_convs=3, channels=32)


class ConvBlock(nn.Module):
    """``n_convs`` 3x3 convolutions in_ch -> ch -> ... -> ch -> in_ch, ReLU between.

    Returns the block output and its activations, named ``conv1`` .. ``conv<n>``
    (post-ReLU for all but the last conv).
    """

    def __init__(self, n_convs: int, channels: int, in_channels: int = 1):
        super().__init__()
        if n_convs < 2:
            raise ValueError(f"n_convs={n_convs}: a cascade needs at least 2 conv layers")
        widths = [in_channels] + [channels] * (n_convs - 1) + [in_channels]
        self.convs = nn.ModuleList(
            nn.Conv2d(widths[i], widths[i + 1], kernel_size=3, padding=1) for i in range(n_convs)
        )
        self.act = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        feats = {}
        last = len(self.convs) - 1
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i < last:
                x = self.act(x)
            feats[f"conv{i + 1}"] = x
        return x, feats


class DCCNN(nn.Module):
    """Cascade of CNN blocks, each followed by data consistency.

    ``forward(x, kspace_us, mask)`` with the zero-filled image ``x``; see the module
    docstring for shapes.
    """

    def __init__(self, config: DCCNNConfig = TEACHER):
        super().__init__()
        self.config = config
        self.cascades = nn.ModuleList(
            ConvBlock(config.n_convs, config.channels, config.in_channels)
            for _ in range(config.n_cascades)
        )
        self.dc = DataConsistency()

    def cascade_step(self, i: int, x, kspace_us, mask, feats: dict | None = None):
        """Run cascade ``i`` (0-based) and its DC layer; record features as ``cascade<i+1>.*``."""
        out, block_feats = self.cascades[i](x)
        if self.config.residual:
            out = x + out
        if feats is not None:
            for name, value in block_feats.items():
                feats[f"cascade{i + 1}.{name}"] = value
        return self.dc(out, kspace_us, mask)

    def forward(self, x: torch.Tensor, kspace_us: torch.Tensor, mask: torch.Tensor,
                return_features: bool = True) -> ReconOutput:
        feats: dict[str, torch.Tensor] = {}
        images = []
        for i in range(len(self.cascades)):
            x = self.cascade_step(i, x, kspace_us, mask, feats if return_features else None)
            images.append(x)
        return ReconOutput(x, feats, images)

    def feature_names(self) -> list[str]:
        """Names of the activations :meth:`forward` returns."""
        return [
            f"cascade{i + 1}.conv{j + 1}"
            for i in range(self.config.n_cascades)
            for j in range(self.config.n_convs)
        ]


def build_dccnn(role: str | DCCNNConfig) -> DCCNN:
    """``build_dccnn("teacher")``, ``build_dccnn("student")`` or from a config."""
    if isinstance(role, DCCNNConfig):
        return DCCNN(role)
    presets = {"teacher": TEACHER, "student": STUDENT}
    if role not in presets:
        raise ValueError(f"model role {role!r}: expected one of {sorted(presets)}")
    return DCCNN(presets[role])


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
