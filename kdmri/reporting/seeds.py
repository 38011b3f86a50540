"""Findings over seeds: a comparison of two experiments repeated with several training
seeds, summarised by the mean over seeds and a 95 % interval paired per seed.

One seed's comparison (:mod:`kdmri.reporting.statistics`) pairs validation slices and its
interval covers slice-to-slice variation only; a second training seed can move a 0.2 dB
difference by more than that. Here each seed contributes one number -- its mean per-slice
difference ``a - b`` -- and the interval is the Student-t interval over those numbers
(:func:`kdmri.metrics.paired_difference` applied to the per-seed means). A finding is
``within seed spread`` when that interval contains 0.

Runs: ``python -m kdmri batch --params demo_4x --seeds 42 43 44 --notebooks 03 04 05``
writes ``experiments/seeds/seed<s>/...`` (one experiments root per seed) and
``runs/seeds/seed<s>/...``; :func:`seed_experiments` finds them again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from kdmri.errors import DataError
from kdmri.metrics import paired_difference
from kdmri.reporting.statistics import paired_slices

#: Experiments root of seed ``s`` under a base root (what ``batch --seeds`` writes).
SEED_FOLDER = "seed{seed}"


def seed_root(base: Path | str, seed: int) -> Path:
    """``<base>/seed<seed>``: the experiments root (or runs folder) of one seed."""
    return Path(base) / SEED_FOLDER.format(seed=int(seed))


def seed_comparison(pairs: Mapping[int, tuple[Path | str, Path | str]], metric: str = "psnr",
                    confidence: float = 0.95, min_seeds: int = 3) -> dict:
    """Comparison ``a - b`` over seeds: ``pairs = {seed: (experiment_a, experiment_b)}``.

    Returns ``{"metric", "seeds", "per_seed" (mean slice difference per seed), "mean",
    "std" (sample std over seeds), "ci_low", "ci_high", "a_mean", "b_mean",
    "within_seed_spread" (the interval contains 0), "verdict"}``. Needs at least
    ``min_seeds`` seeds (an interval from two is uninformative).
    """
    if len(pairs) < min_seeds:
        raise DataError(f"pairs: {len(pairs)} seed(s) given ({sorted(pairs)}); a seed interval "
                        f"needs at least {min_seeds}")
    per_seed, a_means, b_means = {}, [], []
    for seed, (exp_a, exp_b) in sorted(pairs.items()):
        merged = paired_slices(exp_a, exp_b)
        a, b = merged[f"{metric}_a"].astype(float), merged[f"{metric}_b"].astype(float)
        per_seed[int(seed)] = float((a - b).mean())
        a_means.append(float(a.mean()))
        b_means.append(float(b.mean()))
    d = paired_difference(a_means, b_means, confidence)
    within = bool(d["ci_low"] <= 0 <= d["ci_high"])
    verdict = (f"{metric} a - b = {d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] over "
               f"{d['n']} seeds: " + ("within seed-to-seed spread (the interval contains 0)"
                                       if within else "larger than seed-to-seed spread"))
    return {"metric": metric, "seeds": sorted(per_seed), "per_seed": per_seed, "mean": d["mean"],
            "std": d["std"], "ci_low": d["ci_low"], "ci_high": d["ci_high"],
            "a_mean": sum(a_means) / len(a_means), "b_mean": sum(b_means) / len(b_means),
            "within_seed_spread": within, "verdict": verdict}


def seed_table(comparisons: Mapping[str, Mapping[int, tuple[Path | str, Path | str]]],
               metric: str = "psnr", confidence: float = 0.95) -> pd.DataFrame:
    """One row per named comparison (``{label: {seed: (a, b)}}``) of :func:`seed_comparison`."""
    rows = {}
    for label, pairs in comparisons.items():
        r = seed_comparison(pairs, metric, confidence)
        rows[label] = {"seeds": len(r["seeds"]), f"a_{metric}": r["a_mean"], f"b_{metric}": r["b_mean"],
                       f"d_{metric}_mean": r["mean"], f"d_{metric}_ci_low": r["ci_low"],
                       f"d_{metric}_ci_high": r["ci_high"], "within_seed_spread": r["within_seed_spread"]}
    return pd.DataFrame.from_dict(rows, orient="index")


def seed_experiments(base: Path | str, seeds: Sequence[int], dataset: str, acc: str,
                     a: tuple[str, str], b: tuple[str, str]) -> dict[int, tuple[Path, Path]]:
    """``{seed: (experiment a, experiment b)}`` under ``<base>/seed<s>`` for
    ``a``/``b`` = ``(method, role)``, e.g. ``("kdmri", "kd"), ("kdmri", "student")``."""
    from kdmri.paths import acc_tag, experiment_dir

    return {int(s): tuple(experiment_dir(dataset, acc_tag(acc), m, r, seed_root(base, s))
                          for m, r in (a, b)) for s in seeds}


#: The comparisons a seed study reports: ``(label, (method, role) a, (method, role) b)``;
#: ``{sr}`` is the SR method of the params file (``sr-keep<sr_keep>``).
STUDY_COMPARISONS: tuple[tuple[str, tuple[str, str], tuple[str, str]], ...] = (
    ("teacher - student", ("kdmri", "teacher"), ("kdmri", "student")),
    ("KD student - student", ("kdmri", "kd"), ("kdmri", "student")),
    ("teacher - KD student", ("kdmri", "teacher"), ("kdmri", "kd")),
    ("student - ZF", ("kdmri", "student"), ("kdmri", "zf")),
    ("SFT teacher - teacher", ("sft", "teacher"), ("kdmri", "teacher")),
    ("SFT student init - student (L1 only)", ("sft", "student"), ("kdmri", "student")),
    ("SFT-KD - standard KD (05)", ("sft-at_kdmri", "kd"), ("std-at_kdmri", "kd")),
    ("SFT head start: crossed - standard KD (05)", ("mix-at_kdmri", "kd"), ("std-at_kdmri", "kd")),
    ("SFT friendlier teacher: SFT-KD - crossed (05)", ("sft-at_kdmri", "kd"), ("mix-at_kdmri", "kd")),
    ("SR: teacher - student", ("{sr}", "teacher"), ("{sr}", "student")),
    ("SR: KD student - student", ("{sr}", "kd"), ("{sr}", "student")),
    ("SR: student - LR", ("{sr}", "student"), ("{sr}", "lr")),
)


def study_base(experiments_path: Path | str) -> Path:
    """The seed-study folder that belongs with an experiments root: ``<root>/seeds``, or,
    for the root of one seed of a study (``.../seeds/seed43``), that study's folder."""
    path = Path(experiments_path)
    tail = path.name[len("seed"):] if path.name.startswith("seed") else ""
    if tail.isdigit() and path.parent.name == "seeds":
        return path.parent
    return path / "seeds"


def study_of(cfg) -> tuple[Path, int | None]:
    """``(seed-study folder, sr_keep)`` of a configuration: the study that belongs with its
    experiments root (:func:`study_base`) and its SR setting (``None`` where notebook 06 does
    not train, :func:`kdmri.data.sr_settings.sr_enabled`)."""
    from kdmri.data.sr_settings import sr_enabled

    return study_base(cfg.experiments_path), (cfg.sr_keep if sr_enabled(cfg) else None)


def study_status(cfg, select: Sequence[str] | None = None) -> tuple[str, pd.DataFrame, list[str]]:
    """What a notebook shows of the study of ``cfg``: ``(status line, table, missing)`` with
    the table and missing rows of :func:`seed_study` (``select`` as there)."""
    base, sr_keep = study_of(cfg)
    table, missing = seed_study(base, cfg.dataset, cfg.acc, sr_keep, select=select)
    found = study_seeds(base, cfg.dataset, cfg.acc)
    status = f"seed study under {base}: seeds {', '.join(map(str, found)) or 'none yet'}"
    status += "\n" + ("\n".join(["not enough seeds yet:", *missing]) if missing
                       else "every comparison shown has enough seeds")
    return status, table, missing


def study_seeds(base: Path | str, dataset: str, acc: str) -> list[int]:
    """The seeds with a folder ``<base>/seed<s>/<dataset>/acc_<acc>`` (sorted)."""
    from kdmri.paths import acc_tag

    found = []
    for folder in Path(base).glob("seed*"):
        tail = folder.name[len("seed"):]
        if tail.isdigit() and (folder / dataset / f"acc_{acc_tag(acc)}").is_dir():
            found.append(int(tail))
    return sorted(found)


def seed_study(base: Path | str, dataset: str, acc: str, sr_keep: int | None = None,
               metric: str = "psnr", confidence: float = 0.95, min_seeds: int = 3,
               select: Sequence[str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Every :data:`STUDY_COMPARISONS` row that at least ``min_seeds`` seeds of the study
    under ``base`` have evaluated (both sides' ``metrics.csv``), as one table: the mean of
    each side over seeds, the mean difference, its 95 % interval over seeds, the per-seed
    differences and whether the difference is within seed-to-seed spread. Returns
    ``(table, missing)``; ``missing`` names the rows left out and why. ``select``: only the
    rows whose label contains one of these strings (e.g. ``("SFT",)`` for notebook 05)."""
    seeds = study_seeds(base, dataset, acc)
    sr = f"sr-keep{int(sr_keep)}" if sr_keep is not None else None
    rows, missing = {}, []
    for label, a, b in STUDY_COMPARISONS:
        if ("{sr}" in a[0] and sr is None) or (select and not any(s in label for s in select)):
            continue
        a, b = ((m.format(sr=sr), r) for m, r in (a, b))
        pairs = {s: p for s, p in seed_experiments(base, seeds, dataset, acc, a, b).items()
                 if all((Path(x) / "metrics.csv").is_file() for x in p)}
        if len(pairs) < min_seeds:
            missing.append(f"{label}: evaluated for {len(pairs)} seed(s) {sorted(pairs)}, "
                           f"needs {min_seeds}")
            continue
        r = seed_comparison(pairs, metric, confidence, min_seeds)
        rows[label] = {"seeds": len(r["seeds"]), "a": r["a_mean"], "b": r["b_mean"],
                       "difference": r["mean"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                       "per_seed": ", ".join(f"{v:+.2f}" for v in r["per_seed"].values()),
                       "within_seed_spread": r["within_seed_spread"]}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "comparison"
    return table, missing


def seed_study_markdown(table: pd.DataFrame, metric: str = "psnr") -> str:
    """:func:`seed_study`'s table as markdown (dB for PSNR)."""
    if table.empty:
        return "No comparison has enough seeds yet."
    unit = " (dB)" if metric == "psnr" else ""
    lines = [f"| comparison a - b | seeds | a{unit} | b{unit} | a - b, mean [95 % CI over seeds] "
             "| per seed | verdict |", "|---|---|---|---|---|---|---|"]
    for label, r in table.iterrows():
        verdict = "within seed spread" if r["within_seed_spread"] else "beyond seed spread"
        lines.append(f"| {label} | {r['seeds']} | {r['a']:.2f} | {r['b']:.2f} | {r['difference']:+.2f} "
                     f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}] | {r['per_seed']} | {verdict} |")
    return "\n".join(lines)


def seed_model_means(base: Path | str, dataset: str, acc: str, sr_keep: int | None = None,
                     metric: str = "psnr") -> pd.DataFrame:
    """Each model of :data:`STUDY_COMPARISONS` over the seeds that evaluated it: mean over
    seeds of its mean per-slice ``metric``, the sample std over seeds and the per-seed values."""
    from kdmri.reporting.statistics import read_slice_metrics

    seeds = study_seeds(base, dataset, acc)
    sr = f"sr-keep{int(sr_keep)}" if sr_keep is not None else None
    models = dict.fromkeys((m, r) for _, a, b in STUDY_COMPARISONS for m, r in (a, b)
                           if sr is not None or "{sr}" not in m)
    rows = {}
    for method, role in models:
        method = method.format(sr=sr)
        values = {}
        found = seed_experiments(base, seeds, dataset, acc, (method, role), (method, role))
        for s, (exp, _) in found.items():
            if (Path(exp) / "metrics.csv").is_file():
                values[s] = float(read_slice_metrics(exp)[metric].astype(float).mean())
        if values:
            v = pd.Series(values)
            rows[f"{method}/{role}"] = {"seeds": len(v), "mean": v.mean(),
                                       "std": v.std(ddof=1) if len(v) > 1 else float("nan"),
                                       "per_seed": ", ".join(f"{x:.2f}" for x in v)}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "model"
    return table


def seed_study_report(cfg, command: str = "") -> str:
    """The whole seed study of ``cfg`` (:func:`study_of`) as markdown: per-model means over
    seeds, then every comparison with its interval over seeds, and the rows that lack seeds."""
    from kdmri.reporting.reports import to_markdown

    base, sr_keep = study_of(cfg)
    dataset, acc = cfg.dataset, cfg.acc
    seeds = study_seeds(base, dataset, acc)
    means = seed_model_means(base, dataset, acc, sr_keep)
    table, missing = seed_study(base, dataset, acc, sr_keep)
    lines = [f"# Seed study: {dataset} {acc}, seeds {', '.join(map(str, seeds)) or 'none'}", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += ["Per model: mean over seeds of the mean PSNR (dB) over the validation slices; std over "
              "seeds (sample).", "",
              to_markdown(means.round(3)) if len(means) else "No seed has been evaluated.", "",
              "Comparisons: the mean difference over seeds, a 95 % t interval over the per-seed "
              "differences (each seed's mean over the validation slices), and whether it is within "
              "seed-to-seed spread (the interval contains 0).", "", seed_study_markdown(table)]
    if missing:
        lines += ["", "Not enough seeds:", *[f"* {m}" for m in missing]]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- notebook cells


def show_study(cfg, select: Sequence[str] | None = None) -> Any:
    """A notebook's view of the seed study of ``cfg``: prints where it is and which rows lack
    seeds; returns the comparisons over seeds as rendered markdown (``select`` as in
    :func:`seed_study`)."""
    from IPython.display import Markdown

    status, table, _ = study_status(cfg, select)
    print(status)
    return Markdown(seed_study_markdown(table))


def show_model_means(cfg) -> Any:
    """Each model's mean PSNR over the seeds of ``cfg``'s study, as rendered markdown."""
    from IPython.display import Markdown

    from kdmri.reporting.reports import to_markdown

    base, sr_keep = study_of(cfg)
    means = seed_model_means(base, cfg.dataset, cfg.acc, sr_keep)
    return Markdown(to_markdown(means.round(3)) if len(means) else "No seed has been evaluated yet.")
