"""The hardware's fast paths, measured: speed of each and of their combination, and their
accuracy cost (``python -m kdmri fastpath ...``).

Variants (:data:`VARIANTS`) are configuration changes (``precision: bf16`` autocast with
the FFTs and data consistency in complex64; ``channels_last``; ``compile``). Speed: the
fastest training step of the teacher, student and KD stages through the engine's own
:meth:`~kdmri.training.engine.StageRunner.step` (:func:`kdmri.tools.benchmark._time_stage`).
Accuracy: the KD-MRI pipeline (teacher, student, feature, KD) trained with a variant and
with fp32 from the same seed, and the paired per-slice PSNR difference of each stage on the
validation slices (variant - fp32).
"""

from __future__ import annotations

from pathlib import Path

from kdmri.config import load_config
from kdmri.evaluation.evaluate import train_then_evaluate
from kdmri.io import atomic_text
from kdmri.reporting.statistics import paired_comparison
from kdmri.tools.benchmark import _time_stage, bench_config
from kdmri.training.calibration import calibrate

VARIANTS: dict[str, dict] = {
    "fp32": {},
    "bf16": {"precision": "bf16"},
    "channels_last": {"channels_last": True},
    "compile": {"compile": True},
    "bf16 + channels_last": {"precision": "bf16", "channels_last": True},
    "bf16 + channels_last + compile": {"precision": "bf16", "channels_last": True, "compile": True},
}
STAGES = ("teacher", "student", "kd")
PIPELINE = ("teacher", "student", "feature", "kd")


def time_variants(size=(240, 240), batch: int = 4, steps: int = 10, device: str = "cpu",
                  variants: dict[str, dict] | None = None) -> list[dict]:
    """Seconds per training step of each stage under each variant, and the speed-up over fp32."""
    variants = variants or VARIANTS
    rows = []
    with bench_config(size, batch, device) as base:
        for name, changes in variants.items():
            cfg = base.replace(**changes)
            rows.append({"variant": name, **{s: _time_stage(cfg, s, steps) for s in STAGES}})
    fp32 = next((r for r in rows if r["variant"] == "fp32"), None)
    for r in rows:
        r["speedup"] = {s: fp32[s] / r[s] for s in STAGES} if fp32 else {}
    return rows


def accuracy_cost(params: str, variant: str, root: Path | str, epochs: int | None = None,
                  stages=PIPELINE) -> dict:
    """Train the KD-MRI pipeline of ``params`` with fp32 and with ``variant`` (same seed,
    experiments under ``root``); the paired per-slice PSNR difference (variant - fp32) of
    every stage's best checkpoint on the validation slices."""
    out = {}
    cfgs = {}
    for name in ("fp32", variant):
        overrides = {"experiments_root": str(Path(root) / name.replace(" ", "")), **VARIANTS[name]}
        if epochs is not None:
            overrides["epochs"] = epochs
        cfg = load_config(params, overrides)
        for stage in stages:
            train_then_evaluate(cfg, stage, save_reconstructions=False)
        cfgs[name] = cfg
    for stage in stages:
        out[stage] = paired_comparison(cfgs[variant].experiment(stage), cfgs["fp32"].experiment(stage))
    return out


def to_markdown(rows: list[dict], size, costs: dict[str, dict] | None = None, command: str = "",
                machine: str = "") -> str:
    lines = [f"# kdmri fast paths ({machine})", "", f"Command: `{command}`", "",
             f"Training step, fastest of N, batch 4, {size[0]} x {size[1]} (ms; speed-up over fp32):", "",
             "| variant | teacher | student | KD |", "|---|---|---|---|"]
    for r in rows:
        cells = [f"{r[s] * 1e3:.1f} ({r['speedup'].get(s, float('nan')):.2f}x)" for s in STAGES]
        lines.append(f"| {r['variant']} | " + " | ".join(cells) + " |")
    for variant, cost in (costs or {}).items():
        lines += ["", f"Accuracy cost of {variant}: paired per-slice PSNR, {variant} - fp32 (dB, 95 % CI):",
                  "", "| stage | difference | slices |", "|---|---|---|"]
        for stage, d in cost.items():
            interval = f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"
            lines.append(f"| {stage} | {d['mean']:+.3f} {interval} | {d['n']} |")
    return "\n".join(lines) + "\n"


def register_cli(sub) -> None:
    import platform
    import sys

    import torch

    p = sub.add_parser("fastpath", help="speed (and accuracy cost) of bf16 / channels_last / compile")
    p.add_argument("--size", type=int, nargs=2, default=[240, 240], metavar=("H", "W"),
                   help="image size of the timed steps (default 240 240)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per variant (default 10)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--variants", nargs="*", default=list(VARIANTS), help="names from VARIANTS")
    p.add_argument("--accuracy", nargs="*", default=[], metavar="VARIANT",
                   help="also train the KD-MRI pipeline with these variants and fp32 (slow)")
    p.add_argument("--params", default="demo_4x", help="params of the accuracy runs")
    p.add_argument("--epochs", type=int, default=None, help="epochs of the accuracy runs")
    p.add_argument("--root", default="experiments/fastpath", help="experiments of the accuracy runs")
    p.add_argument("--out", type=Path, default=None, help="write markdown results here")

    def run(args) -> int:
        rows = time_variants(tuple(args.size), steps=args.steps, device=args.device,
                             variants={v: VARIANTS[v] for v in args.variants})
        costs = {v: accuracy_cost(args.params, v, args.root, args.epochs) for v in args.accuracy}
        cal = calibrate()  # the machine's speed, so these times carry to another machine
        machine = (f"{args.device}, {platform.processor() or platform.machine()}, "
                   f"{torch.get_num_threads()} threads, torch {torch.__version__}; calibration "
                   f"{cal.ms:.1f} ms/step")
        text = to_markdown(rows, args.size, costs, "python -m kdmri " + " ".join(sys.argv[1:]), machine)
        print(text)
        if args.out:
            atomic_text(args.out, text)
        return 0

    p.set_defaults(func=run)
