"""Attention maps of any network's layers, by module path, for figures.

:func:`layer_attention_maps` records the named layers of a network with forward hooks
(:class:`kdmri.models.features.FeatureRecorder`, so any ``nn.Module`` works: a U-Net's
``"down_sample_layers.0"``, a DC-CNN's ``"cascades.0.acts.1"`` or its feature name
``"cascade1.conv2"``) during one pass through its task, and returns each layer's attention
map (:func:`kdmri.distill.attention.attention_map`: channel sum of squared activations,
L2-normalised) as an ``(H, W)`` array, interpolated to ``size`` (default: the input's) so
maps of layers at different resolutions line up, as the attention loss compares them.
:func:`kdmri.reporting.plots.attention_figure` draws them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from kdmri.distill.attention import attention_map
from kdmri.models.features import FeatureRecorder
from kdmri.models.tasks import task_of
from kdmri.training.strategy import to_device


@torch.no_grad()
def layer_attention_maps(model: torch.nn.Module, batch: Mapping[str, Any], layers: Iterable[str],
                         size: tuple[int, int] | None = None, mode: str = "sample") -> list[np.ndarray]:
    """Attention maps of ``layers`` (module paths or feature names) of ``model`` on the first
    item of ``batch``, each ``(H, W)`` (``size``, default the input's size), in order."""
    layers = list(layers)
    device = next(model.parameters()).device
    batch = to_device({k: v[:1] if isinstance(v, torch.Tensor) else v for k, v in batch.items()}, device)
    h, w = size or tuple(batch["input"].shape[-2:])
    was_training = model.training
    model.eval()
    try:
        with FeatureRecorder(model, layers) as rec:
            task_of(model).forward(model, batch, False)
    finally:
        model.train(was_training)
    return [attention_map(rec.features[name].float(), mode, size=(h, w))[0].reshape(h, w).cpu().numpy()
            for name in layers]
