"""A 2-D U-Net in the form of fastMRI's single-coil baseline (Zbontar et al. 2018,
arXiv:1811.08839; Ronneberger et al. 2015), optionally followed by data consistency.

Layout (kdmri's own code; the module names and their order follow fastMRI's
``fastmri/models/unet.py`` so that its state dicts load by key):

* ``down_sample_layers.<i>`` (``i = 0..num_pool_layers-1``): a conv block ``in -> chans``,
  then ``c -> 2c``; each followed by 2x2 average pooling;
* ``conv``: the bottleneck conv block ``c -> 2c``;
* ``up_transpose_conv.<i>``: 2x2 stride-2 transposed conv ``2c -> c`` + InstanceNorm +
  LeakyReLU(0.2); then concatenation with the skip and ``up_conv.<i>``: a conv block
  ``2c -> c``; the last ``up_conv`` is ``Sequential(conv block, 1x1 conv c -> out_chans)``.

A conv block is ``layers = Sequential(conv3x3 (no bias), InstanceNorm2d, LeakyReLU(0.2),
Dropout2d, conv3x3 (no bias), InstanceNorm2d, LeakyReLU(0.2), Dropout2d)``, so its weights
are ``layers.0.weight`` and ``layers.4.weight``; InstanceNorm has no affine parameters and
no running statistics. Odd sizes are handled by reflect-padding the upsampled map by one
pixel on the right/bottom, as fastMRI does.

``dc=True`` appends kdmri's data-consistency step (:func:`kdmri.physics.operators.data_consistency`)
to the U-Net output, so the network takes ``(image, kspace, mask)`` like the DC-CNN; with
``dc=False`` it takes the image alone (fastMRI's baseline: zero-filled image in, image out).
Features are recorded by module path (:mod:`kdmri.models.features`), e.g.
``"down_sample_layers.1"``, ``"conv"``, ``"up_conv.0"``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kdmri.models.blocks import ReconOutput
from kdmri.models.registry import register_model
from kdmri.physics.operators import data_consistency


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of a U-Net (fastMRI's arguments, plus ``dc``)."""

    in_chans: int = 1
    out_chans: int = 1
    chans: int = 32
    num_pool_layers: int = 4
    drop_prob: float = 0.0
    dc: bool = False  # data consistency after the U-Net: forward(image, kspace, mask)

    def __post_init__(self) -> None:
        if min(self.in_chans, self.out_chans, self.chans, self.num_pool_layers) < 1:
            raise ValueError(f"in_chans, out_chans, chans, num_pool_layers: expected positive "
                             f"integers, got {self}")
        if not 0.0 <= self.drop_prob < 1.0:
            raise ValueError(f"drop_prob={self.drop_prob}: expected a probability in [0, 1)")


class UNetConvBlock(nn.Module):
    """Two (3x3 conv, InstanceNorm, LeakyReLU 0.2, Dropout2d) in ``layers``."""

    def __init__(self, in_chans: int, out_chans: int, drop_prob: float):
        super().__init__()
        stages = []
        for c_in in (in_chans, out_chans):
            stages += [nn.Conv2d(c_in, out_chans, kernel_size=3, padding=1, bias=False),
                       nn.InstanceNorm2d(out_chans), nn.LeakyReLU(0.2), nn.Dropout2d(drop_prob)]
        self.layers = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class UNetUpBlock(nn.Module):
    """2x2 stride-2 transposed conv, InstanceNorm, LeakyReLU 0.2, in ``layers``."""

    def __init__(self, in_chans: int, out_chans: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.ConvTranspose2d(in_chans, out_chans, kernel_size=2, stride=2, bias=False),
            nn.InstanceNorm2d(out_chans), nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@register_model("unet")
class UNet(nn.Module):
    """fastMRI-form U-Net (see the module docstring); ``forward`` returns a ReconOutput."""

    task = "recon"  # the problem it solves (kdmri.models.tasks); the sr task can train it too

    def __init__(self, config: UNetConfig | None = None, **options):
        super().__init__()
        config = config or UNetConfig(**options)
        self.config = config
        c, p = config.chans, config.drop_prob
        self.down_sample_layers = nn.ModuleList([UNetConvBlock(config.in_chans, c, p)])
        for _ in range(config.num_pool_layers - 1):
            self.down_sample_layers.append(UNetConvBlock(c, 2 * c, p))
            c *= 2
        self.conv = UNetConvBlock(c, 2 * c, p)
        self.up_conv = nn.ModuleList()
        self.up_transpose_conv = nn.ModuleList()
        for _ in range(config.num_pool_layers - 1):
            self.up_transpose_conv.append(UNetUpBlock(2 * c, c))
            self.up_conv.append(UNetConvBlock(2 * c, c, p))
            c //= 2
        self.up_transpose_conv.append(UNetUpBlock(2 * c, c))
        self.up_conv.append(nn.Sequential(UNetConvBlock(2 * c, c, p),
                                          nn.Conv2d(c, config.out_chans, kernel_size=1)))

    @property
    def forward_inputs(self) -> tuple[str, ...]:
        return ("image", "kspace", "mask") if self.config.dc else ("image",)

    # ---- checkpoint metadata (kdmri.models.registry)
    def arch(self) -> dict:
        return {"kind": "unet", **asdict(self.config)}

    @classmethod
    def from_arch(cls, arch: dict) -> UNet:
        return cls(UNetConfig(**arch))

    def unet(self, image: torch.Tensor) -> torch.Tensor:
        """The U-Net alone, ``(B, in_chans, H, W) -> (B, out_chans, H, W)``."""
        stack, x = [], image
        for layer in self.down_sample_layers:
            x = layer(x)
            stack.append(x)
            x = F.avg_pool2d(x, kernel_size=2, stride=2)
        x = self.conv(x)
        for transpose_conv, conv in zip(self.up_transpose_conv, self.up_conv, strict=True):
            skip = stack.pop()
            x = transpose_conv(x)
            pad = [0, int(x.shape[-1] != skip.shape[-1]), 0, int(x.shape[-2] != skip.shape[-2])]
            if any(pad):
                x = F.pad(x, pad, "reflect")
            x = conv(torch.cat([x, skip], dim=1))
        return x

    def forward(self, image: torch.Tensor, kspace_us: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, return_features: bool = False) -> ReconOutput:
        """The U-Net's image, then ``DC(image)`` with ``dc=True`` (k-space and mask needed)."""
        if image.dim() != 4 or image.shape[1] != self.config.in_chans:
            raise ValueError(f"image: expected (B, {self.config.in_chans}, H, W), got {tuple(image.shape)}")
        out = self.unet(image)
        if self.config.dc:
            if kspace_us is None or mask is None:
                raise ValueError("a U-Net with dc=True takes (image, kspace, mask)")
            out = data_consistency(out, kspace_us, mask)
        return ReconOutput(out, {}, [])

    def real_dc_forward(self, image, k_re, k_im, mask, dft) -> torch.Tensor:
        """``forward`` in real arithmetic for export: DC with the DFT as matrix products
        (``dft``: :class:`kdmri.tools.export.MatrixDFT2`; only with ``dc=True``)."""
        x = self.unet(image)
        if not self.config.dc:
            return x
        keep = 1 - mask
        p_re, p_im = dft.forward_real(x)
        return dft.inverse_real_part(mask * k_re + keep * p_re, mask * k_im + keep * p_im)

