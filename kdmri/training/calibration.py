"""The machine's speed as one figure, so wall times carry across machines.

:func:`calibrate` times the *calibration step*: one fp32 training step of the DC-CNN
teacher (the ``teacher`` stage's objective, Adam) at 96 x 96 with batch 4, on the CPU,
through the engine's own :meth:`~kdmri.training.engine.StageRunner.step` -- what
``python -m kdmri fastpath --size 96 96 --variants fp32`` reports in its teacher column.
The batch is synthetic and already in memory (a smooth image undersampled with a 4x line
mask), so no data is read. Warm-up steps, then the **median** of ``steps`` steps (a few
seconds), with torch's current intra-op thread count unless ``threads`` is given: the batch
runner calls it in its own process, whose thread count the notebook kernels inherit
(``OMP_NUM_THREADS``), so the calibration and the demo's training use the same threads.

A wall time ``T`` measured on a machine of calibration ``c`` ms corresponds to about
``T * ref / c`` on a machine of calibration ``ref`` ms (:func:`scaled_minutes`); the
demo's training is almost all convolution steps of the same networks, so the ratio holds
to within the spread of the measurements (10-25 % on a shared machine).
"""

from __future__ import annotations

import contextlib
import math
import platform
import statistics
import time
from dataclasses import asdict, dataclass

import torch

from kdmri.config import Config
from kdmri.physics.masks import cartesian_mask
from kdmri.physics.operators import CartesianUndersampling
from kdmri.training.engine import StageRunner
from kdmri.training.stages import get_stage
from kdmri.training.strategy import SingleProcess

#: The calibration step: network, size, batch, precision (fixed: changing them changes the unit).
SIZE, BATCH = (96, 96), 4
#: A reference calibration (ms): the machine of the first user report (README).
REFERENCE_MS = 270.0


@dataclass(frozen=True)
class Calibration:
    """Milliseconds per calibration step (median) on ``cpu`` with ``threads`` torch threads."""

    ms: float
    cpu: str
    threads: int
    steps: int
    torch: str

    def line(self) -> str:
        """``calibration: 181.3 ms/step (fp32 DC-CNN teacher, 96x96, batch 4; <cpu>, 2 threads)``."""
        return (f"calibration: {self.ms:.1f} ms/step (fp32 DC-CNN teacher training step, "
                f"{SIZE[0]}x{SIZE[1]}, batch {BATCH}, median of {self.steps}; {self.cpu}, "
                f"{self.threads} torch threads)")

    def to_dict(self) -> dict:
        return asdict(self)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def calibration_batch(seed: int = 0) -> dict:
    """A synthetic reconstruction batch of the calibration size (input, k-space, mask, target)."""
    gen = torch.Generator().manual_seed(seed)
    h, w = SIZE
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    base = torch.exp(-(yy**2 + xx**2) * 3)
    target = (base * (0.8 + 0.2 * torch.rand(BATCH, 1, 1, 1, generator=gen))
              + 0.05 * torch.rand(BATCH, 1, h, w, generator=gen)).float()
    target = target / target.amax()
    op = CartesianUndersampling(cartesian_mask(SIZE, 4, seed=0))
    kspace = op(target)
    return {"input": op.adjoint(kspace).abs().float(), "kspace": kspace.to(torch.complex64),
            "mask": op.mask.expand(BATCH, 1, h, w).contiguous(), "target": target,
            "index": torch.arange(BATCH)}


@contextlib.contextmanager
def _threads(n: int | None):
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def calibrate(steps: int = 20, warmup: int = 3, threads: int | None = None) -> Calibration:
    """Time the calibration step (module docstring): median of ``steps`` after ``warmup``."""
    if steps < 1:
        raise ValueError(f"steps={steps}: expected at least one timed step")
    with _threads(threads) as n, torch.random.fork_rng():
        torch.manual_seed(0)  # torch's generator only, restored afterwards (fork_rng)
        cfg = Config(dataset="calibration", batch_size=BATCH, device="cpu", progress=False)
        runner = StageRunner(get_stage("teacher"), cfg, SingleProcess("cpu"))
        model = runner.build_model()
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        batch = calibration_batch()
        times = []
        for _ in range(warmup + steps):
            t0 = time.perf_counter()
            runner.step(model, batch, opt)
            times.append(time.perf_counter() - t0)
    ms = statistics.median(times[warmup:]) * 1e3
    return Calibration(round(ms, 2), cpu_model(), n, steps, torch.__version__)


def scaled_minutes(seconds: float, measured_ms: float, reference_ms: float = REFERENCE_MS) -> float:
    """Minutes that ``seconds`` of wall time on a machine of calibration ``measured_ms``
    correspond to on one of ``reference_ms`` (time proportional to the calibration step)."""
    if not (measured_ms > 0 and math.isfinite(measured_ms)):
        raise ValueError(f"measured_ms={measured_ms}: expected a positive calibration")
    return seconds / 60 * reference_ms / measured_ms


@dataclass(frozen=True)
class RunTiming:
    """A run's wall time with the calibration measured at its start and end (same process,
    same threads): what a wall-time claim states beside it."""

    seconds: float
    start: Calibration
    end: Calibration
    reference_ms: float = REFERENCE_MS

    @property
    def calibration_ms(self) -> float:
        """The machine's calibration during the run: the mean of start and end."""
        return round((self.start.ms + self.end.ms) / 2, 2)

    @property
    def reference_minutes(self) -> float:
        return round(scaled_minutes(self.seconds, self.calibration_ms, self.reference_ms), 2)

    def lines(self) -> list[str]:
        """The three lines printed at the end of a batch run."""
        return [f"wall time: {self.seconds / 60:.1f} min ({self.seconds:.0f} s)",
                f"{self.start.line()} at the start, {self.end.ms:.1f} ms at the end",
                f"= {self.reference_minutes:.1f} min on a {self.reference_ms:.0f} ms machine "
                f"(wall time x {self.reference_ms:.0f} / {self.calibration_ms:.1f})"]

    def to_dict(self) -> dict:
        return {"wall_seconds": round(self.seconds, 1), "calibration_ms": self.calibration_ms,
                "calibration_start_ms": self.start.ms, "calibration_end_ms": self.end.ms,
                "cpu": self.start.cpu, "threads": self.start.threads, "torch": self.start.torch,
                "reference_ms": self.reference_ms, "reference_minutes": self.reference_minutes}


def timed(fn, threads: int | None = None, steps: int = 20):
    """Run ``fn()`` between two calibrations; returns ``(fn's result, RunTiming)``. The wall
    time covers the calibrations too (a few seconds each): what the user waits for."""
    t0 = time.perf_counter()
    start = calibrate(steps, threads=threads)
    result = fn()
    end = calibrate(steps, threads=threads)
    return result, RunTiming(time.perf_counter() - t0, start, end)
