"""The study's protocol as data: the convergence rule, the epochs it picks, the runs and the
layout of a study folder (``python -m kdmri study``; docs/RESULTS.md states it in prose).

* **Selection split.** The demo's training volumes are split by volume
  (:func:`kdmri.tools.srselect.split_training`: every third volume is held out): the
  networks train on the rest, and the held-out *training* volumes are the engine's
  validation set -- they pick each stage's epochs (the pilot) and its best checkpoint. They
  are never trained on. The demo's validation slab and the domain-shift set
  (:mod:`kdmri.datasets.shift`) are test sets only.
* **Pilot.** Once per study, seed :data:`PILOT_SEED`, each stage kind trains at a constant
  learning rate until :func:`converged_epoch` fires on the held-out score (or the kind's
  cap). That epoch ``E`` fixes the kind's schedule for every seed and acceleration
  (:func:`schedule`): ``lr_step = E`` (the learning rate drops where the constant-rate run
  stopped improving) and ``round(E / DECAY_AT)`` epochs in all (the demo's 15-of-20 shape).
  Fixed epochs keep the seeds comparable (the same schedule, so a seed interval measures
  seeds, not stopping points) and make the cost known before the seeds run.
* **Score.** Held-out PSNR (``val_psnr``) for stages selected on L1; for the feature stages,
  which select on their objective, the objective in dB (``-10 log10 val_loss``), so one
  threshold in dB serves both.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kdmri.config import Config, load_config
from kdmri.errors import ConfigError
from kdmri.io import atomic_text
from kdmri.paths import project_root

#: The convergence rule: held-out score improves by less than DELTA_DB over WINDOW epochs.
WINDOW = 10
DELTA_DB = 0.05
#: Where the learning rate drops in a run of the chosen length (demo: 15 of 20 epochs).
DECAY_AT = 0.75
PILOT_SEED = 0
#: Epochs the pilot trains between two looks at the rule (each look resumes from model.pt).
PILOT_CHUNK = 5

#: Stage kinds the pilot sizes, with their epoch caps (the pilot's most epochs at lr 1e-3).
#: Amendment 2 (docs/RESULTS.md) raised feature 16 -> 60, kd 30 -> 60 and sr-feature 30 -> 60:
#: the first study's pilot hit those caps and its feature and KD stages were still rising.
CAPS: dict[str, int] = {"teacher": 40, "student": 40, "feature": 60, "kd": 60,
                        "sft-teacher": 40, "sr-teacher": 60, "sr-student": 60,
                        "sr-feature": 60, "sr-kd": 40}
#: The first study's caps (its ``study.json``; the published checkpoints were trained under them).
CAPS_FIRST_STUDY: dict[str, int] = {**CAPS, "feature": 16, "kd": 30, "sr-feature": 30}
#: Pilot order: a kind's teacher or initialisation comes before it.
PILOT_ORDER = tuple(CAPS)

SEEDS_4X = (42, 43, 44, 45, 46)
SEEDS_OTHER = (42, 43, 44)  # 5x, 8x; and at 4x the SFT, ablation and SR families
ACCS = ("4x", "5x", "8x")
TEST_SETS = ("slab", "shift")  # <data>/slab: the demo validation slab; <data>/shift
SR_BATCH = 16

#: Experiment methods of the study's extra runs.
CONTROL = "ctl"  # plain student trained as long as the KD student's stages together
SFT_CONTROL = "ctl-sft"  # ... as long as the SFT arms' student + feature + KD stages
SR_CONTROL_SUFFIX = "-ctl"  # sr-keep24-ctl


#: The name of the held-out score (:func:`score`) of a stage selected on L1 (False) or on its
#: objective (True).
SCORE_NAMES = {False: "val_psnr", True: "objective dB"}


def score(row: dict, objective: bool) -> float:
    """A held-out score in dB of one ``train_log.csv`` row (higher is better)."""
    if objective:
        loss = float(row["val_loss"])
        return -10.0 * math.log10(loss) if loss > 0 else 100.0
    return float(row["val_psnr"])


def window_gain(scores: Sequence[float], epoch: int, window: int = WINDOW) -> float:
    """The rule's gain at ``epoch`` (1-based): the best score of the first ``epoch`` epochs
    minus the best of the first ``epoch - window``; NaN when ``epoch <= window`` (no window
    of that length before it) or ``epoch`` is past the scores."""
    if not window < epoch <= len(scores):
        return math.nan
    return max(map(float, scores[:epoch])) - max(map(float, scores[:epoch - window]))


def final_lr_gain(scores: Sequence[float], lr_step: float, window: int = WINDOW) -> tuple[float, int]:
    """``(gain, epochs)`` at the final learning rate, the drop's step left out: the best score
    of the run minus the best up to epoch ``max(len - window, lr_step + 1)`` (the first epoch
    at the final rate, or later), and the number of epochs that gain is over (``window``, or
    fewer when fewer than ``window + 1`` epochs follow the drop). Without a drop (``lr_step``
    NaN or at or past the run's end, as in the pilot) it is the end rule's gain over
    ``window`` epochs; ``(NaN, 0)`` when no epoch at the final rate follows its first."""
    n = len(scores)
    if lr_step is None or math.isnan(float(lr_step)) or int(lr_step) >= n:
        return window_gain(scores, n, window), min(window, max(n - 1, 0))
    start = max(n - window, int(lr_step) + 1)
    if start >= n:
        return math.nan, 0
    return max(map(float, scores)) - max(map(float, scores[:start])), n - start


def converged_epoch(scores: Sequence[float], window: int = WINDOW, delta_db: float = DELTA_DB
                    ) -> int | None:
    """The first epoch ``e`` (1-based, ``e > window``) at which the best score so far exceeds
    the best score of the first ``e - window`` epochs by less than ``delta_db``
    (:func:`window_gain`); ``None`` if the rule never fires."""
    for e in range(window + 1, len(scores) + 1):
        if window_gain(scores, e, window) < delta_db:
            return e
    return None


def selected_epoch(log) -> int:
    """The epoch a run selected: lowest held-out ``val_loss`` of its ``train_log.csv`` (a
    DataFrame), the one ``best_model.pt`` holds (the first of equal losses, as the engine
    keeps only a strictly lower one); the last epoch for a log without ``val_loss``."""
    if "val_loss" in log:
        return int(log.loc[log["val_loss"].idxmin(), "epoch"])
    return int(log["epoch"].iloc[-1])


def schedule(chosen: int) -> tuple[int, int]:
    """``(epochs, lr_step)`` of a study run of a kind whose pilot chose ``chosen``."""
    return max(chosen + 1, round(chosen / DECAY_AT)), chosen


def scaled(epochs: int) -> tuple[int, int]:
    """``(epochs, lr_step)`` of a run of ``epochs`` (an equal-compute control): the drop at
    :data:`DECAY_AT` of it."""
    return epochs, max(1, round(epochs * DECAY_AT))


@dataclass(frozen=True)
class Settings:
    """What a study is, fixed when it starts (``<root>/study.json``); a resumed study reads
    it back. ``params``: the params file of each acceleration (``{acc}`` filled in);
    ``source``: the dataset folder (``train``, ``validation``, ``shift``); ``overrides``:
    config changes for every run (tests: tiny sizes)."""

    params: str = "demo_{acc}"
    source: str | None = None  # default: datasets/demo
    overrides: dict = field(default_factory=dict)
    caps: dict[str, int] = field(default_factory=lambda: dict(CAPS))
    window: int = WINDOW
    delta_db: float = DELTA_DB
    seeds_4x: tuple[int, ...] = SEEDS_4X
    seeds_other: tuple[int, ...] = SEEDS_OTHER
    accs: tuple[str, ...] = ACCS
    families: tuple[str, ...] = ("core", "ablation", "sft", "sr")

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: dict) -> Settings:
        tuples = {"seeds_4x", "seeds_other", "accs", "families"}
        return cls(**{k: (tuple(v) if k in tuples else v) for k, v in data.items()})


# ---------------------------------------------------------------- runs


@dataclass(frozen=True)
class Run:
    """One training stage of the study: ``stage`` under ``changes`` (method, init...) for
    ``epochs`` with the drop at ``lr_step``; ``evaluate``: on the test sets when done."""

    stage: str
    changes: dict = field(default_factory=dict)
    epochs: int = 1
    lr_step: int = 1
    evaluate: bool = True
    kind: str = ""  # the cost kind (stage whose step cost it has)


@dataclass(frozen=True)
class Unit:
    """A group of runs trained in order in one process: ``name`` (``seed42-4x-core``),
    ``seed``, ``acc``, the runs, the baselines evaluated, and the units it needs."""

    name: str
    seed: int
    acc: str
    runs: tuple[Run, ...]
    baselines: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    pilot: bool = False


def _run(stage: str, chosen: dict[str, int], kind: str | None = None, **changes) -> Run:
    epochs, step = schedule(chosen[kind or stage])
    return Run(stage, changes, epochs, step, kind=kind or stage)


def _control(stage: str, epochs: int, kind: str, **changes) -> Run:
    e, step = scaled(epochs)
    return Run(stage, changes, e, step, kind=kind)


def family_runs(family: str, chosen: dict[str, int], sr_method: str = "sr-keep24") -> tuple[Run, ...]:
    """The runs of one family at the epochs ``chosen`` by the pilot (``{kind: E}``)."""
    n = {k: schedule(v)[0] for k, v in chosen.items()}
    if family == "core":
        return (_run("teacher", chosen), _run("student", chosen),
                Run("feature", {}, *schedule(chosen["feature"]), evaluate=False, kind="feature"),
                _run("kd", chosen),
                _control("student", n["feature"] + n["kd"], "student", method=CONTROL))
    if family == "ablation":
        return (_control("kd", n["feature"] + n["kd"], "kd", method="abl-imitation", teacher_method="kdmri",
                         kd_init="scratch"),
                Run("feature", {"method": "abl-attention", "teacher_method": "kdmri",
                                "imitation_weight": 0.0},
                    *schedule(chosen["feature"]), evaluate=False, kind="feature"),
                _run("kd", chosen, method="abl-attention", teacher_method="kdmri", imitation_weight=0.0))
    if family == "sft":
        runs = [_run("sft-teacher", chosen), _run("sft-student", chosen, kind="student")]
        arms = (("std-at_kdmri", "feature", "kd", {"teacher_method": "kdmri", "feature_init": "student"}),
                ("sft-at_kdmri", "sft-feature", "sft-kd", {"feature_init": "sft-student"}),
                ("mix-at_kdmri", "feature", "kd", {"teacher_method": "kdmri", "feature_init": "sft-student"}))
        for method, feat, kd, extra in arms:
            runs.append(Run(feat, {"method": method, **extra}, *schedule(chosen["feature"]),
                            evaluate=False, kind="feature"))
            runs.append(_run(kd, chosen, kind="kd", method=method, **extra))
        runs.append(_control("student", n["student"] + n["feature"] + n["kd"], "student",
                             method=SFT_CONTROL))
        return tuple(runs)
    if family == "sr":
        out = []
        for stage in ("sr-teacher", "sr-student", "sr-feature", "sr-kd"):
            e, step = schedule(chosen[stage])
            out.append(Run(stage, {"method": sr_method, "batch_size": SR_BATCH}, e, step,
                           evaluate=stage != "sr-feature",
                           kind=stage))
        e, step = scaled(n["sr-feature"] + n["sr-kd"])
        out.append(Run("sr-student", {"method": sr_method + SR_CONTROL_SUFFIX, "batch_size": SR_BATCH},
                       e, step,
                       kind="sr-student"))
        return tuple(out)
    raise ValueError(f"family {family!r}: expected core, ablation, sft or sr")


def pilot_units(settings: Settings = Settings()) -> tuple[Unit, ...]:
    """The pilot, in independent units (reconstruction, SFT teacher, SR) of the families run."""
    caps = settings.caps

    def pilot(name, stages):
        runs = tuple(Run(s, {"batch_size": SR_BATCH} if s.startswith("sr-") else {}, caps[s], caps[s] + 1,
                         False, s) for s in stages)
        return Unit(name, PILOT_SEED, "4x", runs, pilot=True)
    units = [pilot("pilot-kdmri", ("teacher", "student", "feature", "kd"))]
    if "sft" in settings.families:
        units.append(pilot("pilot-sft", ("sft-teacher",)))
    if "sr" in settings.families:
        units.append(pilot("pilot-sr", ("sr-teacher", "sr-student", "sr-feature", "sr-kd")))
    return tuple(units)


def pilot_kinds(settings: Settings) -> list[str]:
    """The stage kinds the pilot sizes for ``settings``."""
    return [r.stage for u in pilot_units(settings) for r in u.runs]


def study_units(settings: Settings, chosen: dict[str, int] | None, sr_method: str = "sr-keep24"
                ) -> list[Unit]:
    """Every unit, pilot first, then by seed: the 4x core, its families, 5x and 8x. With
    a kind missing from ``chosen`` (its pilot has not ended) its cap stands in for the pilot's epochs: a pilot
    whose rule never fires chooses its cap, so this is an upper bound of the cost (each
    run then trains ``round(cap / DECAY_AT)`` epochs)."""
    chosen = {**settings.caps, **(chosen or {})}
    units = list(pilot_units(settings))
    seeds_4x, seeds_other = settings.seeds_4x, settings.seeds_other
    for seed in dict.fromkeys([*seeds_other, *seeds_4x]):
        for acc in settings.accs:
            if seed not in (seeds_4x if acc == "4x" else seeds_other):
                continue
            core = f"seed{seed}-{acc}-core"
            units.append(Unit(core, seed, acc, family_runs("core", chosen), ("zf",), ("pilot-kdmri",)))
            if acc != "4x" or seed not in seeds_other:
                continue
            if "ablation" in settings.families:
                units.append(Unit(f"seed{seed}-4x-ablation", seed, acc, family_runs("ablation", chosen),
                                  needs=(core,)))
            if "sft" in settings.families:
                units.append(Unit(f"seed{seed}-4x-sft", seed, acc, family_runs("sft", chosen),
                                  needs=(core, "pilot-sft")))
            if "sr" in settings.families:
                units.append(Unit(f"seed{seed}-4x-sr", seed, acc, family_runs("sr", chosen, sr_method),
                                  ("sr-lr",), ("pilot-sr",)))
    return units


def experiments_root(root: Path, unit: Unit) -> Path:
    """``<root>/pilot`` or ``<root>/seeds/seed<s>`` (:func:`kdmri.reporting.seeds.seed_root`)."""
    return Path(root) / "pilot" if unit.pilot else Path(root) / "seeds" / f"seed{unit.seed}"


# ---------------------------------------------------------------- the study folder


ROOT_ENV = "KDMRI_STUDY_ROOT"


def study_root(root: str | Path | None = None) -> Path:
    """``root``, else ``$KDMRI_STUDY_ROOT``, else ``experiments/study`` (absolute)."""
    value = root or os.environ.get(ROOT_ENV) or str(project_root() / "experiments" / "study")
    return Path(value).expanduser().resolve()


def load_settings(root: Path, settings: Settings | None = None) -> Settings:
    """The study's settings: ``<root>/study.json`` when it exists (a different ``settings``
    is an error), else ``settings`` (default :class:`Settings`), written there."""
    path = root / "study.json"
    if path.is_file():
        stored = Settings.from_dict(json.loads(path.read_text()))
        if settings is not None and settings != stored:
            raise ConfigError(f"{path}: this study was started with other settings; use another --root")
        return stored
    settings = settings or Settings()
    atomic_text(path, json.dumps(settings.to_dict(), indent=2))
    return settings


def base_config(root: Path, settings: Settings, unit: Unit) -> Config:
    return load_config(settings.params.format(acc=unit.acc),
                       {"progress": False, **settings.overrides, "data_root": str(root / "data"),
                        "experiments_root": str(experiments_root(root, unit)), "seed": unit.seed})


def run_config(base: Config, run: Run) -> Config:
    return base.replace(**run.changes, epochs=run.epochs, lr_step=run.lr_step)


def chosen_epochs(root: Path) -> dict[str, int] | None:
    """The epochs the pilot chose so far, per stage kind (``<root>/pilot/<kind>.json``; a
    unit needs only its own kinds, so the 4x core can start before the SR pilot ends);
    ``None`` before the first pilot run ends."""
    records = {p.stem: json.loads(p.read_text()) for p in sorted((root / "pilot").glob("*.json"))}
    return {k: int(v["chosen"]) for k, v in records.items()} or None


def units_of(root: Path, settings: Settings) -> list[Unit]:
    return study_units(settings, chosen_epochs(root))


def is_done(root: Path, name: str) -> bool:
    return (root / "units" / f"{name}.json").is_file()
