"""The cost plan of a batch (``python -m kdmri batch --plan --params ...``): the job graph
and, per job, an estimate of the training compute, before anything is submitted.

Approximate but explicit:

* **Stages per notebook** (:data:`NOTEBOOK_STAGES`): what each notebook trains, read from
  the notebook's parameters (``kd_epochs``, ``feature_losses``, ``ablations``,
  ``sr_epochs``, ``sr_max_train_slices``, ``sr_batch_size``: the params file's
  ``notebook_parameters``, else
  the notebook's defaults). A stage is counted once, in the first job that trains it (an
  experiment folder is trained once; later jobs find it finished).
* **Slices**: ``manifest.json`` of the prepared dataset, else the dataset's
  ``approx_slices`` (:class:`kdmri.datasets.registry.DatasetSpec`: the full download as
  kdmri converts it; approximate), capped by ``max_train_slices`` /
  ``max_val_slices``.
* **Throughput**: the training rows of ``benchmarks/results.md`` (slices/s of the teacher,
  student and KD steps per size and device). A size not measured is scaled by pixel count
  from the measured size nearest in pixel count; a network not measured (SFT teacher,
  VDSR) is scaled from the DC-CNN teacher by parameter count (convolutions at stride 1
  cost one multiply-add per weight and pixel). Stages with a frozen teacher: the KD step's
  measured cost (cached teacher outputs), or the network's step plus a teacher forward
  (a third of its step) when teacher features are needed every step. Validation: one
  forward (a third of a step) per validation slice per epoch. Evaluation and notebook
  overhead are not counted.
* **This machine** (CPU): the benchmark file states the calibration step of the machine
  that measured it (:mod:`kdmri.training.calibration`; ``Calibration: <ms> ms``); the plan
  measures the calibration here and scales every time by the ratio, so the estimate is for
  this machine and says so.
* **Fast paths**: a configuration with ``precision: bf16`` / ``channels_last`` / ``compile``
  divides the step by that variant's measured speed-up over fp32 (the table of
  ``benchmarks/fastpath.md``: teacher, student, KD columns; CPU).

Hours = epochs x (training slices x s/slice + validation slices x s/slice / 3) / 3600.
"""

from __future__ import annotations

import ast
import functools
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdmri.config import Config
from kdmri.errors import ConfigError
from kdmri.paths import project_root
from kdmri.tools.batch import Job, dependencies
from kdmri.training.plan import NOTEBOOK_STAGES

# =========================================================================== inputs


def slice_counts(cfg: Config) -> tuple[int, int, str]:
    """(training, validation) slices of ``cfg``'s dataset and where the figures come from."""
    path = cfg.data_path / "manifest.json"
    if path.is_file():
        m = json.loads(path.read_text())
        if "splits" in m:  # a converted dataset
            return m["splits"]["train"]["slices"], m["splits"]["validation"]["slices"], f"{path}"
        if "train_slices" in m:  # the demo
            return m["train_slices"], m["validation_slices"], f"{path}"
    from kdmri.datasets.registry import DATASETS

    approx = getattr(DATASETS.get(cfg.dataset), "approx_slices", None)
    if approx is None:
        raise ConfigError(f"{path}: not found, and no approximate size of dataset {cfg.dataset!r} is "
                          f"known (its DatasetSpec's approx_slices); prepare it first")
    train, val, what = approx
    return train, val, f"approximate ({what}); not prepared here"


@dataclass(frozen=True)
class Throughput:
    """One training row of a benchmark file: slices/s of each step at one size."""

    device: str
    size: tuple[int, int]
    rates: dict  # {"teacher": ..., "student": ..., "kd": ...}
    source: str
    calibration_ms: float | None = None  # the measuring machine's calibration step, if stated


def read_throughput(paths: Sequence[str | Path] | None = None) -> list[Throughput]:
    """The training-throughput rows of benchmark result files (default
    ``benchmarks/results.md``), one device per ``# kdmri benchmarks (<device>)`` section."""
    paths = list(paths) if paths else [project_root() / "benchmarks" / "results.md"]
    rows: list[Throughput] = []
    for path in map(Path, paths):
        if not path.is_file():
            raise ConfigError(f"{path}: benchmark results not found (python -m kdmri benchmark --out {path})")
        device, in_training, calibration = None, False, None
        for line in path.read_text().splitlines():
            if m := re.match(r"#\s*kdmri benchmarks \((\w+)\)", line):
                device, calibration = m.group(1), None
            elif m := re.match(r"Calibration:\s*([\d.]+)\s*ms", line):
                calibration = float(m.group(1))
            elif line.startswith("## "):
                in_training = line.startswith("## Training")
            elif in_training and device and (m := re.match(
                    r"\|\s*(\d+)x(\d+)\s*\|\s*([\d.]+)\s*\|\s*([\d.]+)\s*\|\s*([\d.]+)\s*\|", line)):
                rates = dict(zip(("teacher", "student", "kd"), map(float, m.groups()[2:])))
                rows.append(Throughput(device, (int(m.group(1)), int(m.group(2))), rates, str(path),
                                       calibration))
    if not rows:
        raise ConfigError(f"{', '.join(map(str, paths))}: no training-throughput rows "
                          "('## Training' table of `python -m kdmri benchmark`)")
    return rows


# =========================================================================== estimate


@dataclass
class StageCost:
    stage: str
    experiment: Path
    epochs: int
    train_slices: int
    val_slices: int
    hours: float


@dataclass
class JobCost:
    job: Job
    needs: list[int]
    stages: list[StageCost] = field(default_factory=list)
    shared: list[str] = field(default_factory=list)  # stages another job trains first

    @property
    def hours(self) -> float:
        return sum(s.hours for s in self.stages)


def read_fastpath(path: str | Path | None = None) -> dict[str, dict[str, float]]:
    """Speed-up over fp32 of each fast-path variant, ``{variant: {"teacher": x, "student": x,
    "kd": x}}``, from the table of ``benchmarks/fastpath.md`` (``python -m kdmri fastpath``);
    ``{}`` when the file is missing."""
    path = Path(path) if path else project_root() / "benchmarks" / "fastpath.md"
    if not path.is_file():
        return {}
    out = {}
    cell = r"\s*[\d.]+\s*\(([\d.]+)x\)\s*"
    for line in path.read_text().splitlines():
        if m := re.match(rf"\|\s*([\w +]+?)\s*\|{cell}\|{cell}\|{cell}\|", line):
            out[m.group(1)] = dict(zip(("teacher", "student", "kd"), map(float, m.groups()[1:])))
    return out


def fastpath_variant(cfg: Config) -> str:
    """The name of ``cfg``'s fast-path variant as :mod:`kdmri.tools.fastpath` names it."""
    from kdmri.training.strategy import resolve_precision

    bf16 = resolve_precision(cfg.precision, cfg.torch_device()) == "bf16"
    parts = [p for p, on in (("bf16", bf16), ("channels_last", cfg.channels_last),
                             ("compile", cfg.compile)) if on]
    return " + ".join(parts) or "fp32"


class Estimator:
    """Seconds per training slice of a stage at a size, from the measured rows; on the CPU,
    scaled to this machine by its calibration (``calibration_ms``, measured here)."""

    def __init__(self, rows: list[Throughput], device: str, calibration_ms: float | None = None,
                 fastpath: dict[str, dict[str, float]] | None = None):
        self.notes: list[str] = []
        self.fastpath = fastpath or {}
        chosen = [r for r in rows if r.device == device]
        if not chosen:
            have = sorted({r.device for r in rows})
            chosen = [r for r in rows if r.device == have[0]]
            self.notes.append(f"no {device} throughput measured ({rows[0].source}): using the {have[0]} "
                              f"figures; measure with `python -m kdmri benchmark --out FILE` on a {device} "
                              "machine and pass --throughput FILE")
        self.rows, self.device = chosen, chosen[0].device
        self._params: dict[tuple[str, str], int] = {}
        self.scale = 1.0
        measured = chosen[0].calibration_ms
        if self.device == "cpu" and calibration_ms:
            if measured:
                self.scale = calibration_ms / measured
                self.notes.append(f"scaled to this machine: calibration {calibration_ms:.1f} ms here, "
                                  f"{measured:.1f} ms on the machine of {chosen[0].source} (times "
                                  f"x {self.scale:.2f})")
            else:
                self.notes.append(f"{chosen[0].source} states no calibration: its machine's times, "
                                  f"not scaled to this one (calibration {calibration_ms:.1f} ms here)")

    def parameters(self, task: str, arch: str) -> int:
        if (task, arch) not in self._params:
            from kdmri.models.blocks import count_parameters
            from kdmri.models.tasks import get_task

            self._params[task, arch] = count_parameters(get_task(task).build(arch))
        return self._params[task, arch]

    def row(self, size: tuple[int, int]) -> tuple[Throughput, float]:
        """The measured row nearest in pixel count and the factor (measured / wanted pixels)."""
        px = size[0] * size[1]
        best = min(self.rows, key=lambda r: abs(math.log(r.size[0] * r.size[1] / px)))
        factor = best.size[0] * best.size[1] / px
        if best.size != tuple(size):
            note = (f"{size[0]}x{size[1]} not measured on {self.device}: scaled from "
                    f"{best.size[0]}x{best.size[1]} by pixel count (x{1 / factor:.2f} the time)")
            if note not in self.notes:
                self.notes.append(note)
        return best, factor

    def step_seconds(self, task: str, arch: str, size: tuple[int, int]) -> float:
        """Seconds per slice of one training step of network ``arch``."""
        row, factor = self.row(size)
        if task == "recon" and arch in ("teacher", "student"):
            return self.scale / (row.rates[arch] * factor)
        scale = self.parameters(task, arch) / self.parameters("recon", "teacher")
        note = (f"{task} {arch} network not measured: the DC-CNN teacher's time x {scale:.2f} "
                "(parameter count)")
        if note not in self.notes:
            self.notes.append(note)
        return self.scale * scale / (row.rates["teacher"] * factor)

    def speedup(self, cfg: Config, column: str) -> float:
        """The measured speed-up of ``cfg``'s fast-path variant (1 for fp32 or unmeasured)."""
        variant = fastpath_variant(cfg)
        if variant == "fp32" or self.device != "cpu":
            return 1.0
        if variant not in self.fastpath:
            note = f"fast path {variant!r} not in benchmarks/fastpath.md: counted at fp32 speed"
        else:
            x = self.fastpath[variant]
            note = (f"fast path {variant!r}: steps / the speed-ups of benchmarks/fastpath.md (teacher "
                    f"{x['teacher']:.2f}x, student {x['student']:.2f}x, KD {x['kd']:.2f}x)")
        if note not in self.notes:
            self.notes.append(note)
        return self.fastpath.get(variant, {}).get(column, 1.0)

    def stage_hours(self, cfg: Config, stage: str, size: tuple[int, int],
                    slices: tuple[int, int]) -> StageCost:
        from kdmri.distill.objective import Objective
        from kdmri.training.stages import get_stage

        spec = get_stage(stage)
        scfg = spec.configure(cfg)
        train = min(slices[0], scfg.max_train_slices or slices[0])
        val = min(slices[1], scfg.max_val_slices or slices[1])
        column = "student" if spec.arch == "student" else "teacher"
        net = self.step_seconds(spec.task, spec.arch, size) / self.speedup(scfg, column)
        step = net
        if spec.teacher:
            if "feature" in Objective.from_spec(spec.objective, scfg).names:
                # the teacher's features are cached (a forward once per slice) unless on patches
                once = 1 if spec.task == "recon" or not scfg.sr_patch else scfg.epochs
                teacher = self.step_seconds(spec.task, "teacher", size) / self.speedup(scfg, "teacher") / 3
                step += teacher * once / scfg.epochs
            else:
                row, _ = self.row(size)
                step = (self.step_seconds(spec.task, spec.arch, size) * row.rates["student"] / row.rates["kd"]
                        / self.speedup(scfg, "kd"))
        # a random patch per slice (sr_patch) costs its share of the slice's pixels
        patch = (scfg.sr_patch ** 2 / (size[0] * size[1])) if spec.task == "sr" and scfg.sr_patch else 1.0
        seconds = scfg.epochs * (train * step * patch + val * net / 3)
        return StageCost(stage, spec.experiment(scfg), scfg.epochs, train, val, seconds / 3600)


def literal_defaults(info: Mapping[str, Any]) -> dict[str, Any]:
    """Notebook parameter defaults from ``papermill.inspect_notebook`` (literals only)."""
    out = {}
    for name, item in info.items():
        try:
            out[name] = ast.literal_eval(str(item.get("default")))
        except (ValueError, SyntaxError):
            continue
    return out


def estimate(jobs: Sequence[Job], device: str = "cpu", throughput: Sequence[str | Path] | None = None,
             defaults: Callable[[Path], Mapping[str, Any]] | None = None,
             calibration_ms: float | None = None) -> tuple[list[JobCost], list[str]]:
    """The cost of every job (plan order) and the notes on how it was estimated;
    ``calibration_ms``: this machine's calibration step (CPU estimates are scaled by it)."""
    from kdmri.datasets.registry import get_dataset

    est = Estimator(read_throughput(throughput), device, calibration_ms, read_fastpath())
    if defaults is None:
        from kdmri.tools.batch import notebook_parameters

        @functools.cache
        def defaults(nb):
            return literal_defaults(notebook_parameters(nb))
    edges = dependencies(jobs)
    trained: dict[Path, str] = {}
    costs = []
    for i, job in enumerate(jobs):
        cost = JobCost(job, edges[i])
        stages = NOTEBOOK_STAGES.get(job.notebook.stem)
        if stages is not None:
            params = {**defaults(job.notebook), **job.parameters}
            train, val, source = slice_counts(job.cfg)
            note = f"{job.cfg.dataset}: {train} training / {val} validation slices, {source}"
            if note not in est.notes:
                est.notes.append(note)
            size = tuple(get_dataset(job.cfg.dataset).shape)
            for cfg, stage in stages(job.cfg, params):
                sc = est.stage_hours(cfg, stage, size, (train, val))
                if sc.experiment in trained:
                    if trained[sc.experiment] != job.key:
                        cost.shared.append(f"{stage} ({trained[sc.experiment]})")
                    continue
                trained[sc.experiment] = job.key
                cost.stages.append(sc)
        costs.append(cost)
    return costs, est.notes


def critical_path_hours(costs: Sequence[JobCost]) -> float:
    """The longest chain of dependent jobs: the wall-clock time with unlimited parallel jobs."""
    finish: list[float] = []
    for c in costs:
        finish.append(c.hours + max((finish[d] for d in c.needs), default=0.0))
    return max(finish, default=0.0)


def hours_text(hours: float) -> str:
    """Hours with three significant digits at least: ``0.0123``, ``4.56``, ``30,904``."""
    return f"{hours:,.0f}" if hours >= 100 else f"{hours:.3g}"


def format_plan(costs: Sequence[JobCost], notes: Sequence[str], device: str) -> str:
    """The plan as text: one line per job, totals per params file and overall, the notes."""
    lines = [f"Batch plan: {len(costs)} jobs; training compute estimated for {device}", "",
             f"{'job':<38} {'runs after':<44} {'hours':>9}  training stages (epochs x slices)"]
    for c in costs:
        after = ", ".join(costs[d].job.notebook.stem[:2] for d in c.needs)
        if any(costs[d].job.params != c.job.params for d in c.needs):
            after = ", ".join(costs[d].job.key for d in c.needs)
        counts = Counter(f"{s.stage} {s.epochs}x{s.train_slices}" for s in c.stages)
        stages = "; ".join(k + (f" (x{n})" if n > 1 else "") for k, n in counts.items()) or "-"
        if c.shared:
            stages += f"  [trained by an earlier job: {', '.join(c.shared)}]"
        lines.append(f"{c.job.key:<38} {after or '-':<44} {hours_text(c.hours):>9}  {stages}")
    lines += ["", "Totals (hours of one job slot):"]
    per_file: dict[str, float] = {}
    for c in costs:
        per_file[c.job.params] = per_file.get(c.job.params, 0.0) + c.hours
    for params, hours in per_file.items():
        lines.append(f"  {params:<40} {hours_text(hours):>10} h  ({hours / 24:.3g} days)")
    total = sum(per_file.values())
    lines.append(f"  {'all':<40} {hours_text(total):>10} h  ({total / 24:.3g} days)")
    cp = critical_path_hours(costs)
    label = "longest chain (unlimited parallel jobs)"
    lines.append(f"  {label:<40} {hours_text(cp):>10} h  ({cp / 24:.3g} days)")
    lines += ["", "How this was estimated (approximate; evaluation and notebook overhead not counted):"]
    lines += [f"  - {n}" for n in notes]
    return "\n".join(lines)
