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
from kdmri.evaluation.evaluate import train_then_evaluate
from kdmri.reporting.statistics import comparison_table
from kdmri.training import train
from kdmri.training.plan import ablation_stages, sft_arms
from kdmri.training.recipes import (
    ABLATIONS,
    sft_crossed_config,
    sft_method_configs,
    variant_config,
    variant_experiment,
)
from kdmri.training.stages import SFT_METHOD

#: Stages of the SFT comparison whose result is reported.
FINAL_STAGES = ("student", "sft-student", "kd", "sft-kd")


def run_ablation(cfg: Config, name: str) -> dict:
    """Train the stages of ablation ``name`` (the teacher must exist) and evaluate it."""
    stages = [stage for _, stage in ablation_stages(cfg, [], baseline=name)]  # the one table
    assert stages[-1] == ABLATIONS[name].final, name
    return train_then_evaluate(variant_config(cfg, name), stages)


def run_sft_comparison(cfg: Config, feature_losses=("at_kdmri",), confidence: float = 0.95
                       ) -> pd.DataFrame:
    """Train and evaluate the SFT-KD-Recon comparison (both teachers must be trained) and
    return :func:`sft_summary`. Under ``sft_protocol: reference`` this first trains the two
    starting students (``student`` with the teacher's method, ``sft-student``) and, per
    method, three arms: standard (standard teacher, standard student init), crossed
    (standard teacher, SFT student init) and SFT (SFT teacher, SFT student init)."""
    evaluate(cfg.replace(method=cfg.teacher_method or cfg.method), "teacher")
    evaluate(cfg, "sft-teacher")
    for stage_cfg, stage in sft_arms(cfg, feature_losses):  # the one table (training.plan)
        if stage in FINAL_STAGES:  # the starting students and each arm's last stage
            train_then_evaluate(stage_cfg, stage)
        else:
            train(stage_cfg, stage)
    return sft_summary(cfg, feature_losses, confidence=confidence)


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
    """The SFT-KD-Recon comparison as a :func:`kdmri.reporting.statistics.comparison_table`
    frame (paired per slice; side ``a`` minus side ``b``). Rows:

    * ``teacher``: SFT teacher vs standard teacher;
    * ``student init``: the ``sft-student`` vs the plain student (both L1 only) -- the head
      start before any distillation (``sft_protocol: reference``);
    * ``<loss>: SFT-KD vs standard``: the two arms as published;
    * ``<loss>: head start``: crossed arm (standard teacher, SFT init) vs standard arm;
    * ``<loss>: friendlier teacher``: SFT arm vs crossed arm (same init, other teacher).

    With ``sft_protocol: kdmri`` only the teacher and SFT-KD-vs-standard rows exist (its
    arms differ in both teacher and initialisation). Everything must have been evaluated."""
    teacher_method = cfg.teacher_method or cfg.method
    pairs = {"teacher": (cfg.experiment("teacher", SFT_METHOD), cfg.experiment("teacher", teacher_method))}
    reference = cfg.sft_protocol == "reference"
    if reference:
        pairs["student init"] = (cfg.experiment("student", SFT_METHOD),
                                 cfg.experiment("student", teacher_method))
    for loss in feature_losses:
        std, sft = sft_method_configs(cfg, loss)
        pairs[f"{loss}: SFT-KD vs standard"] = (sft.experiment("kd"), std.experiment("kd"))
        if reference:
            mix = sft_crossed_config(cfg, loss).experiment("kd")
            pairs[f"{loss}: head start"] = (mix, std.experiment("kd"))
            pairs[f"{loss}: friendlier teacher"] = (sft.experiment("kd"), mix)
    table = comparison_table(pairs, tuple(metrics), confidence)
    table.index.name = "comparison"
    return table
