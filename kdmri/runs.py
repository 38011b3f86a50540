"""Running experiment grids end to end: train the stages of a recipe, evaluate, tabulate.

The recipes themselves are data in :mod:`kdmri.training.recipes` (ablations, the SFT-KD
comparison); these functions run them with the one engine (finished stages return at once)
and summarise them with :mod:`kdmri.reporting` (both sides' mean +/- std and the paired
difference with its confidence interval), for the notebooks' tables and figures.
"""

from __future__ import annotations

import pandas as pd

from kdmri.config import Config
from kdmri.errors import ConfigError
from kdmri.evaluation import evaluate
from kdmri.reporting.statistics import comparison_table
from kdmri.training import train
from kdmri.training.recipes import (
    ABLATIONS,
    sft_method_configs,
    variant_config,
    variant_experiment,
)
from kdmri.training.stages import SFT_METHOD


def run_ablation(cfg: Config, name: str) -> dict:
    """Train the stages of ablation ``name`` (the teacher must exist) and evaluate it."""
    vcfg = variant_config(cfg, name)
    for stage in ABLATIONS[name].stages:
        train(vcfg, stage)
    return evaluate(vcfg, ABLATIONS[name].final)


def run_sft_comparison(cfg: Config, feature_losses=("at_kdmri",)) -> pd.DataFrame:
    """SFT-KD-Recon table: for each method, PSNR/SSIM of the student distilled from the
    standard teacher vs from the SFT teacher (both teachers must be trained)."""
    rows = []
    for loss in feature_losses:
        std, sft = sft_method_configs(cfg, loss)
        for stage in ("feature", "kd"):
            train(std, stage)
        for stage in ("sft-feature", "sft-kd"):
            train(sft, stage)
        r_std, r_sft = evaluate(std, "kd"), evaluate(sft, "sft-kd")
        rows.append({
            "method": loss,
            "standard PSNR": r_std["metrics"]["psnr"]["mean"],
            "SFT PSNR": r_sft["metrics"]["psnr"]["mean"],
            "standard SSIM": r_std["metrics"]["ssim"]["mean"],
            "SFT SSIM": r_sft["metrics"]["ssim"]["mean"],
        })
    table = pd.DataFrame(rows).set_index("method")
    table["SFT - standard PSNR"] = table["SFT PSNR"] - table["standard PSNR"]
    return table


def ablation_summary(cfg: Config, names, baseline: str = "neither", metrics=("psnr", "ssim"),
                     confidence: float = 0.95) -> pd.DataFrame:
    """One row per ablation in ``names`` (index ``variant``), ``baseline`` (the plain student)
    always first: its description, mean +/- std per slice and the paired difference to the
    baseline with its confidence interval (:func:`kdmri.reporting.statistics.comparison_table`; side ``a`` =
    the variant, ``b`` = the baseline). Every variant and the baseline must have been evaluated."""
    names = list(dict.fromkeys([baseline, *names]))
    for name in [baseline, *names]:
        if name not in ABLATIONS:
            raise ConfigError(f"ablation {name!r}: expected one of {sorted(ABLATIONS)}")
    base = variant_experiment(cfg, baseline)
    table = comparison_table({n: (variant_experiment(cfg, n), base) for n in names}, tuple(metrics),
                             confidence)
    table.insert(0, "description", [ABLATIONS[n].description for n in names])
    table.index.name = "variant"
    return table


def run_ablations(cfg: Config, names, baseline: str = "neither", metrics=("psnr", "ssim"),
                  confidence: float = 0.95) -> pd.DataFrame:
    """Run (:func:`run_ablation`) ``baseline`` and every ablation in ``names`` -- finished
    stages return at once -- and return their :func:`ablation_summary`. The KD-MRI teacher
    must exist."""
    names = list(dict.fromkeys(names))
    for name in dict.fromkeys([baseline, *names]):
        run_ablation(cfg, name)
    return ablation_summary(cfg, names, baseline, metrics, confidence)


def sft_summary(cfg: Config, feature_losses=("at_kdmri",), metrics=("psnr", "ssim"),
                confidence: float = 0.95) -> pd.DataFrame:
    """The SFT-KD-Recon comparison as a :func:`kdmri.reporting.statistics.comparison_table` frame: side
    ``a`` = with the SFT teacher, ``b`` = with the standard teacher; rows ``teacher`` (the two
    teachers themselves) and one per feature method (the distilled students of
    :func:`run_sft_comparison`). Everything must have been evaluated."""
    teacher = cfg.experiment("teacher", cfg.teacher_method or cfg.method)
    pairs = {"teacher": (cfg.experiment("teacher", SFT_METHOD), teacher)}
    for loss in feature_losses:
        std, sft = sft_method_configs(cfg, loss)
        pairs[f"{loss} student"] = (sft.experiment("kd"), std.experiment("kd"))
    table = comparison_table(pairs, tuple(metrics), confidence)
    table.index.name = "model"
    return table
