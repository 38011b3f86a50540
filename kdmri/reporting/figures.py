"""The panel helpers every figure of :mod:`kdmri.reporting.plots` is drawn with: a grid of
axes on a ``Figure`` (never ``pyplot``), an image panel without ticks, a 2-D image from an
array or tensor, and the log scale k-space is shown on."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

PANEL = 2.3  # inches per image panel
Box = tuple[int, int, int, int]  # (row0, row1, col0, col1), end-exclusive


def grid(nrows: int, ncols: int, panel: float = PANEL,
         height: float | None = None) -> tuple[Figure, np.ndarray]:
    """A constrained-layout figure of ``nrows x ncols`` axes (a 2-D array), ``panel`` inches
    wide (and ``height`` or ``panel`` high) per axes."""
    fig = Figure(figsize=(ncols * panel, nrows * (height or panel)), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def show(ax, img: np.ndarray, title: str | None = None, cmap: str = "gray", vmin=None, vmax=None):
    """Draw ``img`` on ``ax`` without ticks (nearest-neighbour pixels), with a small title."""
    im = ax.imshow(np.asarray(img), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return im


def as_image(x, name: str) -> np.ndarray:
    """A real 2-D numpy image from an array or tensor, squeezing leading unit axes."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D image (H, W), got shape {arr.shape}")
    return arr


def log_magnitude(k: np.ndarray) -> np.ndarray:
    """``log(1 + 1e4 |k| / max |k|)``: k-space magnitudes on a viewable scale."""
    return np.log1p(np.abs(k) / (np.abs(k).max() + 1e-12) * 1e4)
