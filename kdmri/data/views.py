"""Dataset views shared by training and evaluation."""

from __future__ import annotations

import numpy as np
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
