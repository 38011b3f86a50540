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
``runs/seed<s>/...``; :func:`seed_experiments` finds them again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

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
