"""Inference latency of the DC-CNN teacher and student, and the timing primitive it uses.

* :func:`fastest`: seconds of the fastest of N calls of a step (after warm-up calls), the
  one timing rule of :mod:`kdmri.tools.benchmark` too -- the minimum is the figure least
  disturbed by other load on the machine;
* :func:`inference_latency` / :func:`measure_latency`: batch-1 inference time of teacher and
  student at one image size, fastest of 20 runs;
* :func:`read_benchmark_latency`: the latency rows recorded in ``benchmarks/results.md``
  by ``python -m kdmri benchmark``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import torch


def fastest(step: Callable[[], object], runs: int, warmup: int = 3, device: str = "cpu") -> float:
    """Seconds taken by the fastest of ``runs`` calls of ``step``, after ``warmup`` calls that
    are not counted. On CUDA the device is synchronised around each call, so the time covers
    the work and not only its launch."""
    if runs < 1:
        raise ValueError(f"runs={runs}: expected at least one timed run")
    cuda = str(device).startswith("cuda")
    times = []
    for _ in range(runs + warmup):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times[warmup:])


@torch.no_grad()
def inference_latency(arch: str | torch.nn.Module, size: tuple[int, int], device: str = "cpu",
                      runs: int = 20, warmup: int = 3) -> float:
    """Seconds of one batch-1 forward of the DC-CNN ``arch`` (``"teacher"`` / ``"student"``)
    or of any network given as a module, called through its task
    (:func:`kdmri.models.tasks.task_of`), on a ``size`` image with a 4x mask, fastest of
    ``runs`` (:func:`fastest`)."""
    from kdmri.models.dccnn import build_dccnn
    from kdmri.models.tasks import task_of
    from kdmri.physics.masks import cartesian_mask

    model = (build_dccnn(arch) if isinstance(arch, str) else arch).to(device).eval()
    x = torch.rand(1, 1, *size, device=device)
    k = torch.fft.fft2(x.to(torch.complex64), norm="ortho")
    m = torch.from_numpy(cartesian_mask(size, 4)).to(device)
    batch, task = {"input": x, "kspace": k * m, "mask": m}, task_of(model)
    return fastest(lambda: task.forward(model, batch, features=False), runs, warmup, device)


def measure_latency(shape: tuple[int, int] = (96, 96), device: str = "cpu", runs: int = 20) -> dict:
    """Inference latency (batch 1, fastest of ``runs``) of the DC-CNN teacher and student at
    ``shape``: ``{"size": "HxW", "teacher_ms", "student_ms", "speedup", "source"}``; ``source``
    says where it was measured (here and now: the device and the torch threads)."""
    size = tuple(int(s) for s in shape)
    t, s = inference_latency("teacher", size, device, runs), inference_latency("student", size, device, runs)
    return {"size": f"{size[0]}x{size[1]}", "teacher_ms": t * 1e3, "student_ms": s * 1e3, "speedup": t / s,
            "source": f"measured in this run ({device}, {torch.get_num_threads()} threads)"}


_LATENCY_ROW = re.compile(r"^\|\s*(\d+x\d+)\s*\|\s*([\d.]+)\s*\|\s*([\d.]+)\s*\|\s*([\d.]+)x\s*\|\s*$")
_BENCH_DEVICE = re.compile(r"^# kdmri benchmarks \((\w+)\)")


def read_benchmark_latency(path: Path | str | None = None, device: str = "cpu") -> list[dict]:
    """The latency rows of ``benchmarks/results.md`` (``path``; default: the project's) written
    by ``python -m kdmri benchmark``, as :func:`measure_latency` dicts (``source``: the file);
    ``[]`` when the file does not exist or was measured on another device than ``device``."""
    from kdmri.paths import project_root

    path = Path(path) if path is not None else project_root() / "benchmarks" / "results.md"
    if not path.is_file():
        return []
    text = path.read_text()
    header = _BENCH_DEVICE.match(text)
    if header and header.group(1) != device:
        return []
    rows, inside = [], False
    for line in text.splitlines():
        if line.startswith("## "):
            inside = "latency" in line.lower()
            continue
        hit = _LATENCY_ROW.match(line.strip()) if inside else None
        if hit:
            size, t, s, x = hit.groups()
            rows.append({"size": size, "teacher_ms": float(t), "student_ms": float(s), "speedup": float(x),
                         "source": f"recorded in {path.name} (python -m kdmri benchmark)"})
    return rows
