"""The study's results (``python -m kdmri study-report --root R --out docs/RESULTS.md``):
every comparison of the protocol, on both test sets, over seeds; the figures.

Each comparison ``a - b`` is :func:`kdmri.reporting.seeds.seed_comparison` over the seeds
that evaluated both sides on the test set (``<experiment>/test_<set>/metrics.csv``): the mean
over seeds of the per-seed mean slice difference, its 95 % t interval over seeds and the
verdict. The fraction of the teacher - student gap that KD recovers is the ratio of the two
mean differences (no interval: a ratio of two noisy means). Nothing here selects anything.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from kdmri.paths import experiment_dir
from kdmri.reporting.seeds import seed_comparison, seed_root

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


def results_markdown(root: Path | str, figures: Path | None = None, min_seeds: int = 3) -> str:
    """The results section: the chosen epochs, measured cost, per-model means and every
    comparison on each test set; figures written to ``figures`` when given."""
    root = Path(root)
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
    logs = list(root.rglob("train_log.csv"))
    hours = sum(float(pd.read_csv(p)["seconds"].sum()) for p in logs) / 3600
    lines += [f"Measured training time: {hours:.2f} h over {len(logs)} stages (sum of the epochs' "
              "seconds).", ""]
    for test, title in TEST_LABELS.items():
        table, missing = comparison_rows(root, test, min_seeds=min_seeds)
        values = model_values(root, test)
        lines += [f"### {title}", ""]
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
                      "differences): "
                      + ", ".join(f"{acc} {g:.2f}" for acc, g in sorted(gaps.items())), ""]
        if missing:
            lines += ["Not enough seeds yet:", *[f"* {m}" for m in missing], ""]
        if figures is not None and len(values):
            from kdmri.reporting.studyfigs import save_study_figures

            for name in save_study_figures(values, table, root, Path(figures), test):
                lines += [f"![{name}]({Path(figures).name}/{name})", ""]
    return "\n".join(lines)


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
    body = results_markdown(root, out.parent / "results_figures", min_seeds)
    atomic_text(out, head + RESULTS_MARKER + "\n\n" + body + "\n")
    return out
