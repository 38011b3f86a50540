"""How training runs: the strategy decides device placement, the sampler, how losses are
reduced across processes and which process writes files.

:class:`SingleProcess` (the default) trains on one device. Every epoch visits the
training slices in a seeded permutation, ``torch.randperm(n)`` from a generator seeded with
``seed * 100_003 + epoch`` -- the permutation PyTorch's ``DistributedSampler`` draws with
that seed on one rank -- so a resumed run (and, with the distributed strategy, a run over
several processes) sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler

#: Multiplier of the seed in the per-epoch permutation seed (kept from the first release).
EPOCH_SEED_STRIDE = 100_003


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of the training-set permutation of ``epoch`` (0-based)."""
    return seed * EPOCH_SEED_STRIDE + epoch


def to_device(batch: dict, device: torch.device) -> dict:
    """Move the tensors of a batch dict to ``device`` (other values as they are)."""
    return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


class Strategy:
    """Interface of a training strategy (see :class:`SingleProcess`)."""

    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def is_writer(self) -> bool:
        """Whether this process writes checkpoints, logs, configs and reports."""
        return self.rank == 0

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """The module to train (e.g. wrapped for data parallelism)."""
        return model

    def unwrap(self, model: nn.Module) -> nn.Module:
        """The plain model (what checkpoints store)."""
        return model

    def train_loader(self, ds: Dataset, batch_size: int, seed: int, epoch: int,
                     num_workers: int = 0) -> DataLoader:
        raise NotImplementedError

    def eval_loader(self, ds: Dataset, batch_size: int) -> DataLoader:
        return DataLoader(ds, batch_size=batch_size, shuffle=False)

    def reduce_sum(self, values: list[float]) -> list[float]:
        """Sum ``values`` over processes (identity in one process)."""
        return values

    def autocast(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def barrier(self) -> None:
        """Wait for every process (no-op in one process)."""

    def progress(self) -> bool:
        return self.is_writer

    def batches(self, loader: DataLoader) -> Iterator[dict]:
        for batch in loader:
            yield to_device(batch, self.device)


class SingleProcess(Strategy):
    """One process, one device (``cfg.device``: cpu, cuda or auto)."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)

    def train_loader(self, ds, batch_size, seed, epoch, num_workers=0) -> DataLoader:
        gen = torch.Generator().manual_seed(epoch_seed(seed, epoch))
        return DataLoader(ds, batch_size=batch_size, sampler=RandomSampler(ds, generator=gen),
                          num_workers=num_workers)


def default_strategy(cfg) -> Strategy:
    """The strategy for ``cfg`` in this process."""
    return SingleProcess(cfg.torch_device())
