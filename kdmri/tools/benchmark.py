"""Speed benchmarks (``python -m kdmri benchmark --out benchmarks/results.md``).

Measured, not asserted: the committed results file is the record, with the command and the
machine that produced it. Every time is the fastest of N runs after warm-up
(:func:`kdmri.reporting.latency.fastest`), the figure least disturbed by other load. Figures:

1. training throughput (slices/s) of the teacher, student and KD stages, through the real
   stage losses, optimiser and DataLoader over an in-memory HDF5 folder, at the demo size
   (96 x 96) and at 240 x 240;
2. the full training step against the pure convolution forward + backward of the same
   network (cascades without DC layers, random tensors already in memory): the overhead
   of the DC layers and data loading (target <= 1.25x);
3. the KD-stage step against the student-only step (target <= 1.3x; the frozen teacher's
   outputs are computed once per run, ``teacher_cache``);
4. inference latency of student against teacher (batch 1; target >= 1.8x; the paper
   reports 2x on CPU) and the parameter reduction (65 %), on CPU and on CUDA when present;
5. CPU latency of the exported ONNX model under onnxruntime against PyTorch eager
   (:func:`onnx_latency`; skipped when onnxruntime is not installed);
6. data loading: ms per training item read from a 640 x 368 volume on disk, contiguous
   against per-slice chunked HDF5 (:func:`kdmri.data.chunking.time_slice_reads`).
"""

from __future__ import annotations

import contextlib
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from kdmri.checkpoint import BEST, arch_of, atomic_save
from kdmri.config import Config, seed_everything
from kdmri.data import write_volume
from kdmri.data.chunking import time_slice_reads
from kdmri.inference.export import TorchDCCNN, example_inputs, save_onnx
from kdmri.io import atomic_text
from kdmri.models.dccnn import build_dccnn, count_parameters
from kdmri.physics.masks import cartesian_mask
from kdmri.reporting.latency import fastest, measure_latency
from kdmri.training.calibration import calibrate
from kdmri.training.engine import StageRunner
from kdmri.training.stages import get_stage
from kdmri.training.strategy import SingleProcess


def _synthetic_root(tmp: Path, size: tuple[int, int], n_slices: int) -> Path:
    rng = np.random.default_rng(0)
    h, w = size
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    base = np.exp(-(yy**2 + xx**2) * 3)
    vol = np.stack([base * (0.8 + 0.2 * rng.random()) + 0.05 * rng.random((h, w))
                    for _ in range(n_slices)], axis=-1)
    mask = {4: cartesian_mask(size, 4, seed=0)}
    for split in ("train", "validation"):
        write_volume(tmp / "data" / split / "bench.h5", (vol / vol.max()).astype(np.float32), mask)
    return tmp / "data"


@contextlib.contextmanager
def bench_config(size, batch: int, device: str):
    """A config over a temporary synthetic dataset of ``size`` slices, with a (random) teacher
    checkpoint in place so the KD stage can run; everything is removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = _synthetic_root(tmp, size, n_slices=max(4 * batch, 16))
        cfg = Config(dataset="bench", data_root=str(root), experiments_root=str(tmp / "exp"),
                     batch_size=batch, device=device, progress=False, kd_init="scratch")
        teacher = build_dccnn("teacher")
        atomic_save({"model": teacher.state_dict(), "arch": arch_of(teacher)},
                    cfg.experiment("teacher") / BEST)
        yield cfg


def _batches(strategy: SingleProcess, ds, cfg: Config):
    """Training batches without end, a new shuffled epoch when one runs out."""
    epoch = 0
    while True:
        yield from strategy.batches(strategy.train_loader(ds, cfg.batch_size, cfg.seed, epoch))
        epoch += 1


def _time_stage(cfg: Config, stage: str, steps: int, warmup: int = 3) -> float:
    """Seconds per training step (batch of cfg.batch_size, data loading included) of
    ``stage``: the fastest of ``steps`` steps after ``warmup``
    (:func:`kdmri.reporting.latency.fastest`), through the engine's own
    :meth:`StageRunner.step`."""
    seed_everything(0)
    strategy = SingleProcess(cfg.device, cfg.precision, cfg.channels_last, cfg.compile)
    runner = StageRunner(get_stage(stage), cfg, strategy)
    ds = runner.task.dataset(runner.cfg, "train")
    model = runner.build_model().to(strategy.device)
    runner.setup(model, ds)
    net = strategy.prepare_model(model)  # the configured fast path (bf16 / channels-last / compile)
    opt = torch.optim.Adam(list(model.parameters()) + list(runner.extra.parameters()), lr=1e-3)
    batches = _batches(strategy, ds, cfg)
    return fastest(lambda: runner.step(net, next(batches), opt), steps, warmup, cfg.device)


def _time_pure_conv(arch: str, size, batch: int, steps: int, device: str, warmup: int = 3) -> float:
    """Seconds per step of the cascades' convolutions alone (no DC, no data loading),
    fastest of ``steps``."""
    seed_everything(0)
    model = build_dccnn(arch).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(batch, 1, *size, device=device)
    y = torch.rand(batch, 1, *size, device=device)

    def step():
        out = x
        for block in model.cascades:
            out = block(out)[0]  # the convolutions alone: no residual, no DC
        loss = F.l1_loss(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return fastest(step, steps, warmup, device)


@torch.no_grad()
def onnx_latency(arch: str = "student", size=(240, 240), runs: int = 20, warmup: int = 3) -> dict:
    """CPU latency (batch 1, fastest of ``runs``) of a DC-CNN (random weights) in PyTorch eager
    and exported to ONNX (:mod:`kdmri.inference.export`) under onnxruntime with as many intra-op
    threads as torch uses. Returns ``{"arch", "size", "eager_ms", "onnxruntime_ms", "threads"}``.
    """
    import onnxruntime as ort

    seed_everything(0)
    net = build_dccnn(arch).eval()
    inputs = example_inputs(net, tuple(size))
    eager = TorchDCCNN(net).eval()
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "model.onnx")
        save_onnx(net, tuple(size), path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    feed = {n: t.numpy() for n, t in zip(("image", "kspace", "mask"), inputs)}

    return {"arch": arch, "size": f"{size[0]}x{size[1]}", "threads": threads,
            "eager_ms": fastest(lambda: eager(*inputs), runs, warmup) * 1e3,
            "onnxruntime_ms": fastest(lambda: session.run(None, feed), runs, warmup) * 1e3}


def run_benchmarks(sizes=((96, 96), (240, 240)), batch: int = 4, steps: int = 20,
                   latency_sizes=((240, 240), (640, 368)), device: str = "cpu",
                   read_size: tuple[int, int] = (640, 368)) -> dict:
    """All figures as a dict (see the module docstring)."""
    res: dict = {"training": [], "latency": []}
    for size in sizes:
        with bench_config(size, batch, device) as cfg:
            t = {s: _time_stage(cfg, s, steps) for s in ("teacher", "student", "kd")}
            pure = {a: _time_pure_conv(a, size, batch, steps, device) for a in ("teacher", "student")}
        res["training"].append({
            "size": f"{size[0]}x{size[1]}",
            "slices_per_s": {s: batch / v for s, v in t.items()},
            "step_over_pure_conv": {"teacher": t["teacher"] / pure["teacher"],
                                    "student": t["student"] / pure["student"]},
            "kd_over_student": t["kd"] / t["student"],
        })
    for size in latency_sizes:
        res["latency"].append(measure_latency(size, device))
    try:
        import onnxruntime  # noqa: F401  (optional: the `deploy` extra)
    except ImportError:
        res["onnx"] = []
    else:
        res["onnx"] = [onnx_latency(a, size) for size in latency_sizes[:1] for a in ("teacher", "student")]
    nt, ns = count_parameters(build_dccnn("teacher")), count_parameters(build_dccnn("student"))
    res["slice_reads"] = time_slice_reads(read_size)
    res["parameters"] = {"teacher": nt, "student": ns, "reduction": 1 - ns / nt}
    res["machine"] = {"device": device, "cpu": platform.processor() or platform.machine(),
                      "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "python": platform.python_version(), "calibration": calibrate().to_dict()}
    if device == "cuda":
        res["machine"]["gpu"] = torch.cuda.get_device_name(0)
    return res


def to_markdown(res: dict, command: str) -> str:
    m = res["machine"]
    lines = [f"# kdmri benchmarks ({m['device']})", "",
             f"Command: `{command}`  ", f"Machine: {m.get('gpu', m['cpu'])}, {m['threads']} torch "
             f"threads, torch {m['torch']}, Python {m['python']}  "]
    if m.get("calibration"):  # read by the cost plan (kdmri.tools.costs) to scale to another machine
        c = m["calibration"]
        lines.append(f"Calibration: {c['ms']:.1f} ms/step (kdmri.training.calibration: fp32 DC-CNN teacher "
                     f"step, 96x96, batch 4, median; {c['cpu']}, {c['threads']} threads)")
    lines += ["",
             "## Training (batch 4, fastest of N steps, robust to other load; real stage losses, "
             "optimiser, DataLoader)", "",
             "| size | teacher slices/s | student slices/s | KD slices/s | teacher step / pure conv "
             "| student step / pure conv | KD step / student step |", "|---|---|---|---|---|---|---|"]
    for r in res["training"]:
        s, p = r["slices_per_s"], r["step_over_pure_conv"]
        lines.append(f"| {r['size']} | {s['teacher']:.1f} | {s['student']:.1f} | {s['kd']:.1f} | "
                     f"{p['teacher']:.2f}x | {p['student']:.2f}x | {r['kd_over_student']:.2f}x |")
    lines += ["", "Targets: step / pure conv <= 1.25x; KD step / student step <= 1.3x.", "",
              "## Inference latency (batch 1, fastest of 20 runs)", "",
              "| size | teacher ms | student ms | student speed-up |", "|---|---|---|---|"]
    for r in res["latency"]:
        lines.append(f"| {r['size']} | {r['teacher_ms']:.1f} | {r['student_ms']:.1f} | "
                     f"{r['speedup']:.2f}x |")
    p = res["parameters"]
    lines += ["", f"Target: >= 1.8x (paper: 2x on CPU, 1.5x on GPU). Parameters: teacher "
              f"{p['teacher']:,}, student {p['student']:,} ({100 * p['reduction']:.1f} % fewer).", ""]
    if res.get("onnx"):
        lines += ["## ONNX Runtime against PyTorch eager (CPU, batch 1, fastest of 20 runs)", "",
                  "| model | size | PyTorch eager ms | onnxruntime ms | eager / onnxruntime |",
                  "|---|---|---|---|---|"]
        for r in res["onnx"]:
            lines.append(f"| {r['arch']} | {r['size']} | {r['eager_ms']:.1f} | "
                         f"{r['onnxruntime_ms']:.1f} | {r['eager_ms'] / r['onnxruntime_ms']:.2f}x |")
        lines += ["", "ONNX graph: kdmri.inference.export (data consistency as DFT matrix products).", ""]
    if "slice_reads" in res:
        r = res["slice_reads"]
        lines += [f"Data loading ({r['size']} volume of {r['slices']} slices on disk, {r['reads']} "
                  f"random items): contiguous HDF5 {r['contiguous_ms']:.1f} ms/item, per-slice "
                  f"chunks {r['chunked_ms']:.1f} ms/item ({r['speedup']:.1f}x).", ""]
    return "\n".join(lines)


def register_cli(sub) -> None:
    p = sub.add_parser("benchmark", help="measure training throughput and inference latency")
    p.add_argument("--out", type=Path, default=None, help="write markdown results here")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--steps", type=int, default=20, help="timed training steps per model (default 20)")

    def run(args):
        import sys

        res = run_benchmarks(steps=args.steps, device=args.device)
        text = to_markdown(res, "python -m kdmri " + " ".join(sys.argv[1:]))
        print(text)
        if args.out:
            atomic_text(args.out, text)
        return 0

    p.set_defaults(func=run)
