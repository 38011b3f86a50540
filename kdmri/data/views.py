"""Dataset views shared by training and evaluation."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


class Indexed(Dataset):
    """A dataset view adding ``item["index"]`` (position in the view), optionally limited to
    ``limit`` slices spread evenly over the dataset (for small CI runs)."""

    def __init__(self, base: Dataset, limit: int | None = None):
        self.base = base
        n = len(base)
        if limit is not None and limit < n:
            self.indices = np.unique(np.linspace(0, n - 1, int(limit)).round().astype(int)).tolist()
        else:
            self.indices = list(range(n))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.base[self.indices[i]])
        item["index"] = i
        return item


class RandomPatches(Dataset):
    """A training view of ``base`` that returns one random ``size x size`` patch of every
    item (``input`` and ``target`` cropped alike), a fresh patch each epoch.

    The super-resolution recipe of VDSR's authors: many cheap steps on small patches
    rather than few steps on whole slices. The patch of item ``i`` in epoch ``e`` is drawn
    from ``numpy.random.default_rng([seed, e, i])``, so it depends on nothing else: a
    resumed run, a DataLoader worker and every DDP rank draw the same patches as one
    uninterrupted process. :meth:`set_epoch` selects the epoch (the training loop calls it
    before each epoch's loader). Items gain ``crop`` = ``[top, left]`` (where the patch sits
    in the whole slice) and keep ``index``; :attr:`full` is the whole-slice view (the frozen
    teacher's outputs are computed on it once and cropped alike).
    """

    def __init__(self, base: Dataset, size: int, seed: int):
        if int(size) < 1:
            raise ValueError(f"sr_patch={size!r}: expected a positive patch size in pixels")
        first = base[0]["target"]
        h, w = first.shape[-2:]
        if size > min(h, w):
            raise ValueError(f"sr_patch={size}: larger than the {h} x {w} slices")
        self.full, self.size, self.seed, self.epoch = base, int(size), int(seed), 0
        self.shape = (int(h), int(w))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.full)

    def corner(self, i: int) -> tuple[int, int]:
        """``(top, left)`` of item ``i``'s patch in the current epoch."""
        rng = np.random.default_rng([self.seed, self.epoch, int(i)])
        return (int(rng.integers(0, self.shape[0] - self.size + 1)),
                int(rng.integers(0, self.shape[1] - self.size + 1)))

    def __getitem__(self, i: int) -> dict:
        item = dict(self.full[i])
        top, left = self.corner(i)
        window = (slice(top, top + self.size), slice(left, left + self.size))
        for key in ("input", "target"):
            item[key] = item[key][(..., *window)].contiguous()
        item["crop"] = np.array([top, left])
        return item


def crop_like(images, crops, size: int):
    """``images[b, ..., top:top + size, left:left + size]`` per sample, ``crops`` the
    ``(B, 2)`` corners of :class:`RandomPatches` (e.g. to crop cached whole-slice outputs)."""
    return torch.stack([img[..., int(top):int(top) + size, int(left):int(left) + size]
                        for img, (top, left) in zip(images, crops)])
