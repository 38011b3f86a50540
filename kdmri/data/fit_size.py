"""Centre crop / zero pad to a size: the one rule every image of kdmri is fitted to its
dataset's size with (the converters, the demo build and the example writers).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def fit_to_size(volume: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Centre-crop or zero-pad the first two axes of ``volume`` to ``size``.

    Per axis of length ``n`` and target ``t``: if ``n > t`` keep ``[(n - t) // 2,
    (n - t) // 2 + t)``; if ``n < t`` pad ``(t - n) // 2`` zeros before and the rest after.
    Works on ``(H, W)`` and ``(H, W, slices)`` arrays.
    """
    out = np.asarray(volume)
    for axis, target in enumerate(size[:2]):
        n = out.shape[axis]
        if n > target:
            start = (n - target) // 2
            out = np.take(out, np.arange(start, start + target), axis=axis)
        elif n < target:
            before = (target - n) // 2
            widths = [(0, 0)] * out.ndim
            widths[axis] = (before, target - n - before)
            out = np.pad(out, widths)
    return out


def fit_action(shape: Sequence[int], size: Sequence[int]) -> str:
    """``'none'``, ``'crop'``, ``'pad'`` or ``'crop+pad'``: what :func:`fit_to_size` does."""
    actions = {"crop" if n > t else "pad" for n, t in zip(shape[:2], size[:2]) if n != t}
    return "+".join(sorted(actions)) if actions else "none"
