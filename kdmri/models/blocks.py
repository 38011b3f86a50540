"""The building blocks every network shares: the looped conv block, the DC layer and the
cascade step (block, optional residual, data consistency) used by the DC-CNN, the SFT
teacher's branches and the benchmark.

Shapes: images ``(B, C, H, W)`` real; measured k-space ``(B, 1, H, W)`` complex (unshifted);
masks as :func:`kdmri.physics.operators.data_consistency` accepts.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from kdmri.physics.operators import data_consistency


class ReconOutput(NamedTuple):
    """What a network returns."""

    image: torch.Tensor
    """Final output ``(B, 1, H, W)``."""
    features: dict[str, torch.Tensor]
    """Named intermediate activations, e.g. ``features["cascade1.conv3"]``."""
    cascades: list[torch.Tensor]
    """Image after each cascade (after its DC layer); empty for networks without cascades."""


class ConvBlock(nn.Module):
    """``n_convs`` 3x3 convolutions in_ch -> ch -> ... -> ch -> in_ch, ReLU between.

    Returns the block output and its activations, named ``conv1`` .. ``conv<n>``
    (post-ReLU for all but the last conv). Each ReLU is its own module (``acts.<j>``, no
    parameters), so every activation is the output of one submodule: ``conv<j>`` is
    ``acts.<j-1>`` for ``j < n`` and ``convs.<n-1>`` for the last (:meth:`layer_paths`),
    which a forward hook can record (:mod:`kdmri.models.features`).
    """

    def __init__(self, n_convs: int, channels: int, in_channels: int = 1):
        super().__init__()
        if n_convs < 2:
            raise ValueError(f"n_convs={n_convs}: a cascade needs at least 2 conv layers")
        widths = [in_channels] + [channels] * (n_convs - 1) + [in_channels]
        self.convs = nn.ModuleList(
            nn.Conv2d(widths[i], widths[i + 1], kernel_size=3, padding=1) for i in range(n_convs)
        )
        self.acts = nn.ModuleList(nn.ReLU(inplace=False) for _ in range(n_convs - 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        feats = {}
        last = len(self.convs) - 1
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i < last:
                x = self.acts[i](x)
            feats[f"conv{i + 1}"] = x
        return x, feats

    def layer_paths(self, prefix: str = "") -> dict[str, str]:
        """``{"conv<j>": module path}`` of the activations :meth:`forward` names, and
        ``"out"`` (the last conv), each path under ``prefix``."""
        n = len(self.convs)
        paths = {f"conv{j + 1}": f"{prefix}acts.{j}" for j in range(n - 1)}
        paths[f"conv{n}"] = paths["out"] = f"{prefix}convs.{n - 1}"
        return paths


class DataConsistency(nn.Module):
    """Module form of :func:`data_consistency` (no parameters; the mask comes with the data)."""

    def forward(self, x: torch.Tensor, kspace_us: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return data_consistency(x, kspace_us, mask)


def cascade_step(block: ConvBlock, x: torch.Tensor, kspace_us: torch.Tensor, mask: torch.Tensor,
                 residual: bool, feats: dict | None = None, prefix: str = "") -> torch.Tensor:
    """One DC-CNN cascade: ``DC(block(x))`` as in both reference implementations (or
    ``DC(x + block(x))`` with ``residual``, kdmri's earlier default).

    Records the block's activations in ``feats`` as ``<prefix><conv name>`` when given, and
    the block's 1-channel output (its last conv, before the residual and DC) as
    ``<prefix>out``: the "cascade output" SFT-KD-Recon's feature-KD scripts pair.
    """
    out, block_feats = block(x)
    if feats is not None:
        for name, value in block_feats.items():
            feats[prefix + name] = value
        feats[prefix + "out"] = out
    if residual:
        out = x + out
    return data_consistency(out, kspace_us, mask)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
