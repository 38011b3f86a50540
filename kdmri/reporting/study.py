"""The study's results (``python -m kdmri study-report --root R --out docs/RESULTS.md``):
every comparison of the protocol, on both test sets, over seeds; the figures.

Each comparison ``a - b`` is :func:`kdmri.reporting.seeds.seed_comparison` over the seeds
that evaluated both sides on the test set (``<experiment>/test_<set>/metrics.csv``): the mean
over seeds of the per-seed mean slice difference, its 95 % t interval over seeds and the
verdict. The fraction of the teacher - student gap that KD recovers is the ratio of the two
mean differences (no interval: a ratio of two noisy means). Nothing here selects anything.

Convergence: every run's held-out curve (:func:`run_curves`; the protocol's score,
:func:`kdmri.training.study.score`) and the pilot's (:func:`pilot_curves`), and their
*flatness* (:func:`flatness`): the protocol's rule (:func:`kdmri.training.study.window_gain`,
0.05 dB over 10 epochs) applied at the epoch each run selected. Cost: the epochs' seconds,
each unit's recorded wall time and the calibrations recorded at each start (:func:`cost_markdown`).
The figures are :mod:`kdmri.reporting.studyfigs`; notebook 08 draws the same from the
published ``summary.json`` (:func:`kdmri.reporting.published.published_findings`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from kdmri.paths import experiment_dir
from kdmri.reporting.flatness import flatness, flatness_markdown  # noqa: F401  (re-exported)
from kdmri.reporting.seeds import seed_comparison, seed_root
from kdmri.training import study as protocol

DATASET = "demo"
TEST_LABELS = {"slab": "demo validation slab (MNI152 template, 16 slices)",
               "shift": "domain-shift set (two real scans shipped with nibabel, 49 slices)"}
#: ``(label, (method, role) a, (method, role) b, accelerations)``; ``{sr}``: the SR method.
COMPARISONS: tuple[tuple[str, tuple[str, str], tuple[str, str], tuple[str, ...]], ...] = (
    ("teacher - student", ("kdmri", "teacher"), ("kdmri", "student"), ("4x", "5x", "8x")),
    ("KD student - student", ("kdmri", "kd"), ("kdmri", "student"), ("4x", "5x", "8x")),
    ("teacher - KD student", ("kdmri", "teacher"), ("kdmri", "kd"), ("4x", "5x", "8x")),
    ("KD student - equal-compute control", ("kdmri", "kd"), ("ctl", "student"), ("4x", "5x", "8x")),
    ("student - ZF", ("kdmri", "student"), ("kdmri", "zf"), ("4x", "5x", "8x")),
    ("ablation: imitation only - neither (control)", ("abl-imitation", "kd"), ("ctl", "student"), ("4x",)),
    ("ablation: attention only - neither (control)", ("abl-attention", "kd"), ("ctl", "student"), ("4x",)),
    ("ablation: both (KD-MRI) - neither (control)", ("kdmri", "kd"), ("ctl", "student"), ("4x",)),
    ("ablation: both - attention only", ("kdmri", "kd"), ("abl-attention", "kd"), ("4x",)),
    ("ablation: both - imitation only", ("kdmri", "kd"), ("abl-imitation", "kd"), ("4x",)),
    ("SFT teacher - teacher", ("sft", "teacher"), ("kdmri", "teacher"), ("4x",)),
    ("SFT student init - student (L1 only)", ("sft", "student"), ("kdmri", "student"), ("4x",)),
    ("SFT-KD - standard KD", ("sft-at_kdmri", "kd"), ("std-at_kdmri", "kd"), ("4x",)),
    ("SFT head start: crossed - standard KD", ("mix-at_kdmri", "kd"), ("std-at_kdmri", "kd"), ("4x",)),
    ("SFT friendlier teacher: SFT-KD - crossed", ("sft-at_kdmri", "kd"), ("mix-at_kdmri", "kd"), ("4x",)),
    ("standard KD (from student) - equal-compute control", ("std-at_kdmri", "kd"), ("ctl-sft", "student"),
     ("4x",)),
    ("SFT-KD - equal-compute control", ("sft-at_kdmri", "kd"), ("ctl-sft", "student"), ("4x",)),
    ("SR: teacher - student", ("{sr}", "teacher"), ("{sr}", "student"), ("4x",)),
    ("SR: KD student - student", ("{sr}", "kd"), ("{sr}", "student"), ("4x",)),
    ("SR: KD student - equal-compute control", ("{sr}", "kd"), ("{sr}-ctl", "student"), ("4x",)),
    ("SR: student - LR", ("{sr}", "student"), ("{sr}", "lr"), ("4x",)),
)


def study_seeds(root: Path | str) -> list[int]:
    base = Path(root) / "seeds"
    if not base.is_dir():
        return []
    return sorted(int(p.name[4:]) for p in base.glob("seed*") if p.name[4:].isdigit())


def test_folder(root: Path | str, seed: int, acc: str, model: tuple[str, str], test: str) -> Path:
    method, role = model
    return experiment_dir(DATASET, acc, method, role, seed_root(Path(root) / "seeds", seed)) / f"test_{test}"


def comparison_rows(root: Path | str, test: str, sr: str = "sr-keep24", min_seeds: int = 3
                    ) -> tuple[pd.DataFrame, list[str]]:
    """Every :data:`COMPARISONS` row with ``min_seeds`` seeds on ``test``; ``(table, missing)``."""
    seeds = study_seeds(root)
    rows, missing = [], []
    for label, a, b, accs in COMPARISONS:
        a, b = ((m.format(sr=sr), r) for m, r in (a, b))
        for acc in accs:
            pairs = {s: (test_folder(root, s, acc, a, test), test_folder(root, s, acc, b, test))
                     for s in seeds}
            pairs = {s: p for s, p in pairs.items() if all((x / "metrics.csv").is_file() for x in p)}
            if len(pairs) < min_seeds:
                missing.append(f"{label} at {acc}: {len(pairs)} seed(s), needs {min_seeds}")
                continue
            r = seed_comparison(pairs, "psnr", 0.95, min_seeds)
            rows.append({"comparison": label, "acc": acc, "seeds": len(r["seeds"]), "a": r["a_mean"],
                         "b": r["b_mean"], "difference": r["mean"], "ci_low": r["ci_low"],
                         "ci_high": r["ci_high"], "per_seed": r["per_seed"],
                         "verdict": ("within seed spread" if r["within_seed_spread"]
                                     else "beyond seed spread")})
    return pd.DataFrame(rows), missing


def gap_recovered(table: pd.DataFrame) -> dict[str, float]:
    """``{acc: (KD - student) / (teacher - student)}`` from the mean differences over seeds."""
    out = {}
    for acc, rows in table.groupby("acc") if len(table) else ():
        d = dict(zip(rows["comparison"], rows["difference"]))
        if "teacher - student" in d and "KD student - student" in d and d["teacher - student"] != 0:
            out[acc] = d["KD student - student"] / d["teacher - student"]
    return out


def model_values(root: Path | str, test: str) -> pd.DataFrame:
    """One row per (acc, model, seed): the mean PSNR over the test set's slices."""
    rows = []
    for folder in Path(root).glob(f"seeds/seed*/{DATASET}/acc_*/*/test_{test}/metrics.csv"):
        exp = folder.parent.parent
        rows.append({"seed": int(exp.parents[2].name[4:]), "acc": exp.parent.name[4:], "model": exp.name,
                     "psnr": float(pd.read_csv(folder)["psnr"].mean())})
    return pd.DataFrame(rows, columns=["seed", "acc", "model", "psnr"])


def all_model_values(root: Path | str) -> pd.DataFrame:
    """:func:`model_values` of every test set, with a ``test`` column (the figures' input)."""
    frames = [model_values(root, test).assign(test=test) for test in TEST_LABELS]
    return pd.concat(frames, ignore_index=True)[["test", "seed", "acc", "model", "psnr"]]


# ---------------------------------------------------------------- convergence


def study_settings(root: Path | str) -> protocol.Settings | None:
    """The settings of the study in ``root`` (``study.json``), ``None`` when there is none."""
    path = Path(root) / "study.json"
    return protocol.Settings.from_dict(json.loads(path.read_text())) if path.is_file() else None


def run_records(root: Path | str, settings: protocol.Settings, seed: int | None = None,
                units=None) -> list[dict]:
    """One record per run of the study's seed units (of ``seed`` when given; ``units``: these
    units instead), trained or not: ``{"unit", "run", "cfg", "experiment"}`` (the run's
    experiment folder)."""
    from kdmri.training.stages import get_stage
    from kdmri.training.study import base_config, run_config, units_of

    root = Path(root)
    out = []
    for unit in units_of(root, settings) if units is None else units:
        if unit.pilot or (seed is not None and unit.seed != seed):
            continue
        base = base_config(root, settings, unit)
        for run in unit.runs:
            cfg = run_config(base, run)
            stage = get_stage(run.stage)
            out.append({"unit": unit, "run": run, "cfg": cfg,
                        "experiment": stage.experiment(stage.configure(cfg))})
    return out


def run_curves(records: list[dict]) -> tuple[pd.DataFrame, list[str]]:
    """The held-out curve of every finished run of ``records`` (:func:`run_records`): one row
    per epoch with the stage kind, acc, model (experiment folder), seed, the protocol's score
    (``val_psnr``, or the objective in dB for the stages selected on it), the run's
    ``lr_step`` and its selected epoch (:func:`kdmri.training.study.selected_epoch`).
    Returns ``(curves, unfinished)``: the runs whose log is shorter than their epochs."""
    from kdmri.reporting.studyfigs import CURVE_COLUMNS
    from kdmri.training.stages import get_stage

    rows, unfinished = [], []
    for rec in records:
        unit, run, exp = rec["unit"], rec["run"], rec["experiment"]
        log = exp / "train_log.csv"
        frame = pd.read_csv(log) if log.is_file() else pd.DataFrame()
        if len(frame) < run.epochs:
            if len(frame):
                unfinished.append(f"{unit.name} {exp.name}: {len(frame)} of {run.epochs} epochs")
            continue
        objective = get_stage(run.stage).validate == "objective"
        selected = protocol.selected_epoch(frame)
        rows += [{"kind": run.kind, "acc": unit.acc, "model": exp.name, "seed": unit.seed,
                  "epoch": int(r["epoch"]), "score": protocol.score(r, objective),
                  "score_name": protocol.SCORE_NAMES[objective], "lr_step": run.lr_step,
                  "selected": selected} for r in frame.to_dict("records")]
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS)), unfinished


def pilot_curves(root: Path | str) -> pd.DataFrame:
    """The pilot's held-out curves (``<root>/pilot/<kind>.json``), in :func:`run_curves`' columns:
    model ``pilot``, no learning-rate drop (NaN), the rule's chosen epoch as ``selected``."""
    from kdmri.reporting.studyfigs import CURVE_COLUMNS

    rows = []
    order = {k: i for i, k in enumerate(protocol.PILOT_ORDER)}
    paths = sorted(Path(root, "pilot").glob("*.json"), key=lambda p: (order.get(p.stem, len(order)), p.stem))
    for path in paths:
        r = json.loads(path.read_text())
        rows += [{"kind": path.stem, "acc": "4x", "model": "pilot", "seed": protocol.PILOT_SEED,
                  "epoch": e, "score": float(v), "score_name": r["score"], "lr_step": float("nan"),
                  "selected": int(r["chosen"])} for e, v in enumerate(r["scores"], 1)]
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS))


# ---------------------------------------------------------------- cost


def unit_family(name: str) -> str:
    """``pilot-kdmri`` -> ``pilot``; ``seed42-4x-core`` -> ``4x core``."""
    if name.startswith("pilot"):
        return "pilot"
    _, acc, family = name.split("-", 2)
    return f"{acc} {family}"


def read_calibrations(root: Path | str) -> list[dict]:
    """The calibrations recorded at each start of the study (``<root>/calibrations.json``)."""
    path = Path(root) / "calibrations.json"
    return json.loads(path.read_text()) if path.is_file() else []


def cost_markdown(root: Path | str) -> list[str]:
    """The measured cost: training hours (the epochs' seconds), each kind of unit's recorded
    wall time, and the calibrations recorded at each start."""
    root = Path(root)
    seconds = {"pilot": 0.0, "seeds": 0.0}
    logs = list(root.rglob("train_log.csv"))
    for path in logs:
        part = "pilot" if path.relative_to(root).parts[0] == "pilot" else "seeds"
        seconds[part] += float(pd.read_csv(path)["seconds"].sum())
    total = sum(seconds.values()) / 3600
    lines = [f"Measured training time: **{total:.2f} h** over {len(logs)} stages (the sum of the "
             f"epochs' seconds in every train_log.csv: training and held-out validation; test-set "
             f"evaluations not included): pilot {seconds['pilot'] / 3600:.2f} h, seeds "
             f"{seconds['seeds'] / 3600:.2f} h. One process each; units ran `--jobs` at a time, so "
             "this is process time, not elapsed time.", ""]
    units = [json.loads(p.read_text()) for p in sorted((root / "units").glob("*.json"))]
    if units:
        frame = pd.DataFrame({"family": [unit_family(u["unit"]) for u in units],
                              "seconds": [float(u.get("seconds_this_session", float("nan"))) for u in units]})
        lines += ["Wall time of the finished units (`units/<unit>.json`, `seconds_this_session`: the "
                  "wall time of the session that finished the unit, test-set evaluations included; a "
                  "unit interrupted and resumed counts only its last session, so these are lower "
                  "bounds; the sum over sessions is not recorded):", "",
                  "| units | done | sum (h) | mean per unit (min) | max (min) |", "|---|---|---|---|---|"]
        for family, g in frame.groupby("family", sort=False):
            lines.append(f"| {family} | {len(g)} | {g['seconds'].sum() / 3600:.2f} | "
                         f"{g['seconds'].mean() / 60:.1f} | {g['seconds'].max() / 60:.1f} |")
        lines.append("")
    cals = read_calibrations(root)
    if cals:
        lines += ["Calibration measured at each start of the study (`calibrations.json`; the fp32 "
                  "DC-CNN teacher training step at 96 x 96, batch 4, median of 20: "
                  "`kdmri.training.calibration`):", "",
                  "| started (UTC) | calibration (ms) | CPU | torch threads | source |",
                  "|---|---|---|---|---|"]
        lines += [f"| {c['time']} | {c['ms']:.0f} | {c.get('cpu', '?')} | {c.get('threads') or '-'} | "
                  f"{c.get('source', '?')} |" for c in cals]
    else:
        lines += ["No calibration recorded in this study folder (`calibrations.json` is written at "
                  "each start of `python -m kdmri study` from this version on; a study started before "
                  "has none: the plan it printed at start states the calibration it used)."]
    return lines + [""]


# ---------------------------------------------------------------- markdown


def _markdown(table: pd.DataFrame) -> list[str]:
    if table.empty:
        return ["No comparison has enough seeds yet."]
    lines = ["| comparison a - b | acc | seeds | a (dB) | b (dB) | a - b [95 % CI over seeds] | per seed "
             "| verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        per = ", ".join(f"{v:+.2f}" for v in r["per_seed"].values())
        lines.append(f"| {r['comparison']} | {r['acc']} | {r['seeds']} | {r['a']:.2f} | {r['b']:.2f} | "
                     f"{r['difference']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}] | {per} "
                     f"| {r['verdict']} |")
    return lines


def test_markdown(test: str, values: pd.DataFrame, table: pd.DataFrame, missing: list[str] = ()) -> list[str]:
    """One test set's results: the per-model means over seeds, every comparison with its
    interval and verdict, the fraction of the gap KD recovers, the rows that lack seeds."""
    lines = [f"### {TEST_LABELS.get(test, test)}", ""]
    if len(values):
        means = values.groupby(["acc", "model"])["psnr"].agg(["count", "mean", "std"]).round(3)
        lines += ["Per model: mean PSNR over the test slices, mean and std over seeds.", "",
                  "| acc | model | seeds | mean (dB) | std (dB) |", "|---|---|---|---|---|"]
        lines += [f"| {acc} | {m} | {int(r['count'])} | {r['mean']:.2f} | {r['std']:.3f} |"
                  for (acc, m), r in means.iterrows()]
        lines.append("")
    lines += _markdown(table) + [""]
    gaps = gap_recovered(table)
    if gaps:
        lines += ["Fraction of the teacher - student gap recovered by KD (ratio of the mean "
                  "differences): " + ", ".join(f"{acc} {g:.2f}" for acc, g in sorted(gaps.items())), ""]
    if missing:
        lines += ["Not enough seeds yet:", *[f"* {m}" for m in missing], ""]
    return lines


def convergence_markdown(curves: pd.DataFrame, pilot: pd.DataFrame, unfinished: list[str],
                         window: int = protocol.WINDOW, delta_db: float = protocol.DELTA_DB) -> list[str]:
    """The flatness of every finished run at its selected epoch, and of the pilot's curves at
    the epoch its rule chose (:func:`flatness`)."""
    lines = ["### Convergence: are the curves flat where the runs stopped?", "",
             f"The protocol's rule applied at the epoch each run selected (lowest held-out loss, what "
             f"`best_model.pt` holds): the best held-out score up to that epoch minus the best up to "
             f"{window} epochs earlier; **flat** when it is below {delta_db:g} dB for every seed. "
             "Score: held-out PSNR, the objective in dB for the feature stages. A window that contains "
             "the learning-rate drop includes the drop's step. The last two columns apply the same "
             "rule at each run's last epoch: flat there means more epochs at the final learning rate "
             "would not have helped.", ""]
    lines += flatness_markdown(flatness(curves, window, delta_db), window) + [""]
    if unfinished:
        lines += ["Not finished (left out above):", *[f"* {u}" for u in unfinished], ""]
    if len(pilot):
        lines += ["The pilot (seed 0, 4x, constant learning rate) at the epoch its rule chose, or "
                  "its cap where the rule did not fire:", ""]
        lines += flatness_markdown(flatness(pilot, window, delta_db), window, pilot=True) + [""]
    return lines


def results_markdown(root: Path | str, figures: Path | None = None, min_seeds: int = 3) -> str:
    """The results section: the chosen epochs, the convergence of every run, the measured
    cost, per-model means and every comparison on each test set; figures written to
    ``figures`` when given."""
    root = Path(root)
    settings = study_settings(root)
    window, delta = (settings.window, settings.delta_db) if settings else (protocol.WINDOW, protocol.DELTA_DB)
    seeds = ", ".join(map(str, study_seeds(root))) or "none yet"
    lines = [f"Study folder: `{root}`; seeds evaluated: {seeds}.", ""]
    epochs = root / "epochs.json"
    if epochs.is_file():
        lines += ["Epochs chosen by the pilot (held-out training volumes; rule fired or cap):", "",
                  "| stage kind | chosen E | rule fired | cap | pilot epochs trained |",
                  "|---|---|---|---|---|"]
        for kind, r in json.loads(epochs.read_text()).items():
            fired = "yes" if r["fired"] else "no (cap)"
            lines.append(f"| {kind} | {r['chosen']} | {fired} | {r['cap']} | {r['trained']} |")
        lines.append("")
    curves, unfinished = run_curves(run_records(root, settings)) if settings else (pd.DataFrame(), [])
    pilot = pilot_curves(root)
    if settings:
        lines += convergence_markdown(curves, pilot, unfinished, window, delta)
    lines += ["### Cost", ""] + cost_markdown(root)
    for test in TEST_LABELS:
        table, missing = comparison_rows(root, test, min_seeds=min_seeds)
        lines += test_markdown(test, model_values(root, test), table, missing)
    if figures is not None:
        from kdmri.reporting.studyfigs import save_study_figures

        names = save_study_figures(all_model_values(root), curves, pilot, Path(figures))
        if names:
            lines += ["### Figures", ""]
        for name in names:
            lines += [f"![{name}]({Path(figures).name}/{name})", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- the published findings


#: The line in docs/RESULTS.md below which ``study-report`` rewrites the file.
RESULTS_MARKER = "<!-- study-report: everything below is generated -->"


def write_results(root: Path | str, out: Path | str, min_seeds: int = 3) -> Path:
    """Rewrite the part of ``out`` below :data:`RESULTS_MARKER` (the protocol above it stays)."""
    from kdmri.errors import DataError
    from kdmri.io import atomic_text

    out = Path(out)
    text = out.read_text() if out.is_file() else ""
    if RESULTS_MARKER not in text:
        raise DataError(f"{out}: no line {RESULTS_MARKER!r}; expected the protocol above it")
    head = text.split(RESULTS_MARKER)[0]
    # RESULTS.md -> results_figures/; another report (an amendment's) keeps its own figures
    body = results_markdown(root, out.parent / f"{out.stem.lower()}_figures", min_seeds)
    atomic_text(out, head + RESULTS_MARKER + "\n\n" + body + "\n")
    return out
