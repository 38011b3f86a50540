"""How training runs: the strategy decides device placement, the sampler, how sums are
reduced across processes, numeric precision and which process writes files.

* :class:`SingleProcess` (the default): one process, one device.
* :class:`Distributed`: PyTorch DDP, chosen when the process was launched with
  ``WORLD_SIZE > 1`` (``torchrun``); NCCL on CUDA, gloo on CPU. ``batch_size`` stays the
  *global* batch, split evenly over the processes; rank 0 alone writes files; sums (training
  losses, the validation loss) are all-reduced; the frozen teacher's output cache is
  computed once, each process doing its share. The processes wait ``KDMRI_DDP_TIMEOUT``
  seconds (default 300) for each other at start, then stop with one line naming
  ``MASTER_ADDR``/``MASTER_PORT`` and the world size.

Both visit the training slices of epoch ``e`` in the permutation ``torch.randperm(n)`` of a
generator seeded with ``seed * 100_003 + e`` (PyTorch's ``DistributedSampler`` with that
seed), rank ``r`` of ``W`` taking positions ``r, r + W, ...``. So a global batch of a
W-process run holds the same slices as the single-process batch, a run resumed after epoch
k sees the same batches as an uninterrupted one, and with equal per-rank batches the
averaged DDP gradient equals the single-process one. (A last batch that does not divide
evenly is padded by DistributedSampler with slices from the start of the permutation;
keep the number of training slices a multiple of the global batch for exact agreement.)

Fast paths, all in the configuration: ``precision: bf16`` (autocast; the FFTs and data
consistency stay in complex64), ``channels_last``, ``compile`` (``torch.compile``).
``precision: auto`` (:func:`resolve_precision`) takes bf16 only where it is fast: on a GPU
that supports it, and on a CPU whose oneDNN has bf16 kernels (AVX-512 and later). On an
AVX2 CPU bf16 is emulated: a DC-CNN training step took 8-11x (with channels-last) to
14x (without) as long as in fp32 on an AMD EPYC (benchmarks/fastpath_avx2.md), so there
``auto`` is fp32. The checkpoint records the precision a run used (``precision_used``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import timedelta

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler, Subset

from kdmri.config_checks import env_int, env_number
from kdmri.errors import ConfigError, WaitTimeout

#: Multiplier of the seed in the per-epoch permutation seed (kept from the first release).
EPOCH_SEED_STRIDE = 100_003
PRECISIONS = ("fp32", "bf16", "auto")
#: ``ONEDNN_MAX_CPU_ISA`` values (prefixes) under which oneDNN may still use its bf16 kernels;
#: any other cap (SSE41, AVX, AVX2, ...) makes ``auto`` choose fp32.
BF16_ISAS = ("ALL", "DEFAULT", "AVX512", "AVX10")


def cpu_bf16_fast() -> bool:
    """Whether bf16 convolutions run on oneDNN's bf16 kernels on this CPU (AVX-512 BW/VL/DQ
    or later, not capped by ``ONEDNN_MAX_CPU_ISA``/``DNNL_MAX_CPU_ISA``); on AVX2 they are
    emulated and several times slower than fp32."""
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        cap = os.environ.get(name, "").strip().upper()
        if cap and not cap.startswith(BF16_ISAS):
            return False
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> str:
    """``fp32`` or ``bf16``: ``precision`` itself, or for ``auto`` bf16 where it is fast
    (a CUDA device that supports it; a CPU with :func:`cpu_bf16_fast`), else fp32."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision={precision!r}: expected one of {list(PRECISIONS)}")
    if precision != "auto":
        return precision
    kind = torch.device(device).type
    if kind == "cuda":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if kind == "cpu" and cpu_bf16_fast() else "fp32"


#: Seconds the processes of a DDP run wait for each other to start (and for any collective),
#: unless the environment variable :data:`DDP_TIMEOUT_ENV` says otherwise.
DDP_TIMEOUT_S = 300.0
DDP_TIMEOUT_ENV = "KDMRI_DDP_TIMEOUT"


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of the training-set permutation of ``epoch`` (0-based)."""
    return seed * EPOCH_SEED_STRIDE + epoch


def to_device(batch: dict, device: torch.device) -> dict:
    """Move the tensors of a batch dict to ``device`` (other values as they are)."""
    return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


class Strategy:
    """One process on one device; subclasses change how several processes cooperate."""

    rank: int = 0
    world_size: int = 1

    def __init__(self, device: torch.device | str = "cpu", precision: str = "fp32",
                 channels_last: bool = False, compile: bool = False):
        self.device = torch.device(device)
        # what the run uses: ``auto`` resolved for this device (resolve_precision)
        self.precision = resolve_precision(precision, self.device)
        self.channels_last, self.compile = channels_last, compile

    @property
    def is_writer(self) -> bool:
        """Whether this process writes checkpoints, logs, configs and reports."""
        return self.rank == 0

    def prepare_frozen(self, model: nn.Module) -> nn.Module:
        """A frozen network (the teacher) in the memory format the batches come in: with
        ``channels_last`` its weights are converted too, so its convolutions do not convert
        layouts at every layer (never compiled, never wrapped for DDP)."""
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """The module to train: channels-last / compiled as configured (parameters shared)."""
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.compile:
            model = torch.compile(model)
        return model

    def eval_model(self, net: nn.Module) -> nn.Module:
        """The module to run validation with (no gradient synchronisation needed)."""
        return net

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def per_rank_batch(self, batch_size: int) -> int:
        if batch_size % self.world_size:
            raise ConfigError(f"batch_size={batch_size} is the global batch: it must divide evenly "
                              f"over the {self.world_size} processes")
        return batch_size // self.world_size

    def train_loader(self, ds: Dataset, batch_size: int, seed: int, epoch: int,
                     num_workers: int = 0) -> DataLoader:
        gen = torch.Generator().manual_seed(epoch_seed(seed, epoch))
        return DataLoader(ds, batch_size=batch_size, sampler=RandomSampler(ds, generator=gen),
                          num_workers=num_workers)

    def shard(self, ds: Dataset) -> Dataset:
        """This process's share of ``ds`` (items ``rank, rank + W, ...``), for evaluation work."""
        if self.world_size == 1:
            return ds
        return Subset(ds, range(self.rank, len(ds), self.world_size))

    def eval_loader(self, ds: Dataset, batch_size: int) -> DataLoader:
        return DataLoader(self.shard(ds), batch_size=batch_size, shuffle=False)

    def batches(self, loader: DataLoader) -> Iterator[dict]:
        for batch in loader:
            batch = to_device(batch, self.device)
            if self.channels_last:
                batch["input"] = batch["input"].contiguous(memory_format=torch.channels_last)
            yield batch

    # ---- cooperation between processes (identities in one process)
    def reduce_sum(self, values: list[float]) -> list[float]:
        return values

    def all_reduce_sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def average_gradients(self, module: nn.Module) -> None:
        """Average the gradients of parameters outside the data-parallel wrapper."""

    def barrier(self) -> None:
        """Wait for every process."""

    def progress(self) -> bool:
        return self.is_writer


class SingleProcess(Strategy):
    """One process, one device (``cfg.device``: cpu, cuda or auto)."""


class Distributed(Strategy):
    """PyTorch DistributedDataParallel over the processes ``torchrun`` started.

    Reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` from the environment; on CUDA each
    process uses GPU ``LOCAL_RANK`` and NCCL, on CPU gloo. Checkpoints store the unwrapped
    model, so they load in one process as well.
    """

    def __init__(self, device: torch.device | str = "cpu", precision: str = "fp32",
                 channels_last: bool = False, compile: bool = False, backend: str | None = None):
        import torch.distributed as dist

        super().__init__(device, precision, channels_last, compile)
        self.dist = dist
        for name in ("RANK", "WORLD_SIZE"):
            if name not in os.environ:
                raise ConfigError(f"distributed training: environment variable {name!r} is not set; "
                                  "launch with torchrun")
        self.rank, self.world_size = env_int("RANK"), env_int("WORLD_SIZE", minimum=1)
        self.local_rank = env_int("LOCAL_RANK", self.rank)
        if self.rank >= self.world_size:
            raise ConfigError(f"distributed training: RANK={self.rank} is not below "
                              f"WORLD_SIZE={self.world_size}")
        if self.device.type == "cuda":
            self.device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(self.device)
        if not dist.is_initialized():
            self._rendezvous(backend or ("nccl" if self.device.type == "cuda" else "gloo"))

    def _rendezvous(self, backend: str) -> None:
        """Join the process group, waiting at most ``KDMRI_DDP_TIMEOUT`` seconds for the peers
        (default :data:`DDP_TIMEOUT_S`), else :class:`WaitTimeout` naming MASTER_ADDR/PORT."""
        from torch.distributed.constants import default_pg_nccl_timeout, default_pg_timeout

        seconds = env_number(DDP_TIMEOUT_ENV, DDP_TIMEOUT_S)
        try:
            self.dist.init_process_group(backend, timeout=timedelta(seconds=seconds))
            # the short wait is for the start only: collectives keep torch's default timeout
            default = default_pg_nccl_timeout if backend == "nccl" else None
            set_timeout = getattr(self.dist.distributed_c10d, "_set_pg_timeout", None)
            if set_timeout is not None:
                set_timeout(default or default_pg_timeout)
        except (RuntimeError, ValueError) as exc:
            where = ", ".join(f"{k}={os.environ.get(k, '(unset)')}" for k in ("MASTER_ADDR", "MASTER_PORT"))
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise WaitTimeout(
                f"distributed training: rank {self.rank} of WORLD_SIZE={self.world_size} found no "
                f"process group at {where} within {seconds:g} s ({reason}); start all "
                f"{self.world_size} processes (torchrun), check that they reach MASTER_ADDR:MASTER_PORT, "
                f"or unset WORLD_SIZE/RANK for one process; {DDP_TIMEOUT_ENV} sets the wait") from None

    def prepare_model(self, model: nn.Module) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        model = super().prepare_model(model)
        ids = [self.device.index] if self.device.type == "cuda" else None
        # some stages leave parameters out of the loss (the feature stage's hooked layers never
        # reach the last conv of the last cascade); the set is the same every step, so a static
        # graph (DDP learns it in the first step). find_unused_parameters is not enough: it
        # traverses from the forward's outputs, and the image output reaches every parameter.
        return DistributedDataParallel(model, device_ids=ids, static_graph=True)

    def eval_model(self, net: nn.Module) -> nn.Module:
        return net.module

    def train_loader(self, ds, batch_size, seed, epoch, num_workers=0) -> DataLoader:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(ds, num_replicas=self.world_size, rank=self.rank, shuffle=True,
                                     seed=epoch_seed(seed, 0))
        sampler.set_epoch(epoch)
        return DataLoader(ds, batch_size=self.per_rank_batch(batch_size), sampler=sampler,
                          num_workers=num_workers)

    def reduce_sum(self, values: list[float]) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        self.dist.all_reduce(t)
        return t.tolist()

    def all_reduce_sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        t = tensor.to(self._comm_device())
        self.dist.all_reduce(t)
        tensor.copy_(t.to(tensor.device))
        return tensor

    def average_gradients(self, module: nn.Module) -> None:
        for p in module.parameters():
            if p.grad is not None:
                self.dist.all_reduce(p.grad)
                p.grad /= self.world_size

    def barrier(self) -> None:
        self.dist.barrier()

    def _comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")


def launched_distributed() -> bool:
    """Whether this process is one of several started by torchrun (``WORLD_SIZE > 1``); the
    launch variables must be integers (checked here, before any work)."""
    distributed = env_int("WORLD_SIZE", 1, minimum=1) > 1
    for name in ("RANK", "LOCAL_RANK"):
        if name in os.environ:
            env_int(name)
    return distributed


def default_strategy(cfg) -> Strategy:
    """The strategy for ``cfg`` in this process: DDP under torchrun, else one process."""
    options = dict(precision=cfg.precision, channels_last=cfg.channels_last, compile=cfg.compile)
    if launched_distributed():
        return Distributed(cfg.torch_device(), **options)
    return SingleProcess(cfg.torch_device(), **options)
