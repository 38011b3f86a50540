"""Named experiment recipes built from the one training loop: ablations and SFT-KD grids.

Each recipe is a list of stages plus config changes, written to its own method folder
(``experiments/<dataset>/acc_<acc>/<method>_<role>``) and always distilling from the
KD-MRI teacher (``kdmri_teacher``) or the SFT teacher (``sft_teacher``), so papermill can run
a grid by changing one parameter.

* :data:`ABLATIONS`: attention only, imitation only, both, neither; the other feature
  methods; layer pairs; imitation weights; the reference-code normalisations.
* :func:`run_sft_comparison`: for each feature method, the student distilled from the
  standard teacher and from the SFT teacher (the SFT-KD-Recon table).
* :func:`run_ablations` / :func:`ablation_summary` and :func:`sft_summary`: the same
  experiments as :func:`kdmri.reporting.results.comparison_table` frames (both sides' mean +/- std and
  the paired difference with its confidence interval), for the notebooks' tables and figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from kdmri.config import Config
from kdmri.errors import ConfigError
from kdmri.evaluation.evaluate import evaluate
from kdmri.reporting.results import comparison_table
from kdmri.training.engine import train
from kdmri.training.stages import SFT_METHOD, get_stage


@dataclass(frozen=True)
class Variant:
    """An ablation: ``stages`` run in order with ``changes``; ``final`` is evaluated."""

    description: str
    stages: tuple[str, ...]
    changes: dict = field(default_factory=dict)

    @property
    def final(self) -> str:
        return self.stages[-1]


def _pairs(student: str, teacher: str, n: int = 5) -> list[list[str]]:
    return [[f"cascade{i}.{student}", f"cascade{i}.{teacher}"] for i in range(1, n + 1)]


ABLATIONS: dict[str, Variant] = {
    "neither": Variant("plain student: L1 to the target only", ("student",)),
    "imitation": Variant("imitation only: KD stage from scratch, no feature stage", ("kd",),
                         {"kd_init": "scratch"}),
    "attention": Variant("attention only: feature stage, then L1 fine-tuning (imitation weight 0)",
                         ("feature", "kd"), {"imitation_weight": 0.0}),
    "both": Variant("KD-MRI: attention feature stage, then L1 + imitation", ("feature", "kd")),
    "attention-batch": Variant("both, with the reference code's batch-axis attention normalisation",
                               ("feature", "kd"), {"at_mode": "batch"}),
    "imitation-reference": Variant("both, with the reference code's imitation term / element count",
                                   ("feature", "kd"), {"imitation_reduction": "reference"}),
    "imitation-0.1": Variant("both, imitation weight 0.1", ("feature", "kd"), {"imitation_weight": 0.1}),
    "imitation-10": Variant("both, imitation weight 10", ("feature", "kd"), {"imitation_weight": 10.0}),
    "pairs-early": Variant("both, pairs teacher conv1 <-> student conv1", ("feature", "kd"),
                           {"feature_pairs": _pairs("conv1", "conv1")}),
    "pairs-late": Variant("both, pairs teacher conv4 <-> student conv2", ("feature", "kd"),
                          {"feature_pairs": _pairs("conv2", "conv4")}),
    **{f"method-{m}": Variant(f"feature stage with {m}, then L1 + imitation", ("feature", "kd"),
                              {"feature_loss": m})
       for m in ("at", "fitnet", "sp", "cc", "fsp")},
}


def variant_config(cfg: Config, name: str) -> Config:
    """The config of ablation ``name``: method ``abl-<name>``, the KD-MRI teacher."""
    if name not in ABLATIONS:
        raise ConfigError(f"ablation {name!r}: expected one of {sorted(ABLATIONS)}")
    return cfg.replace(method=f"abl-{name}", teacher_method=cfg.teacher_method or cfg.method,
                       **ABLATIONS[name].changes)


def run_ablation(cfg: Config, name: str) -> dict:
    """Train the stages of ablation ``name`` (the teacher must exist) and evaluate it."""
    vcfg = variant_config(cfg, name)
    for stage in ABLATIONS[name].stages:
        train(vcfg, stage)
    return evaluate(vcfg, ABLATIONS[name].final)


def sft_method_configs(cfg: Config, feature_loss: str) -> tuple[Config, Config]:
    """(standard-teacher config, SFT-teacher config) distilling with ``feature_loss``.

    Standard: method ``std-<loss>`` with the KD-MRI teacher; SFT: method ``sft-<loss>`` with
    ``sft_teacher`` and the student's cascades 2..5 initialised from the SFT branches.
    """
    std = cfg.replace(method=f"std-{feature_loss}", teacher_method=cfg.teacher_method or cfg.method,
                      feature_loss=feature_loss)
    sft = cfg.replace(method=f"sft-{feature_loss}", feature_loss=feature_loss)
    return std, sft


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


def variant_experiment(cfg: Config, name: str) -> Path:
    """The experiment folder of ablation ``name``'s final (evaluated) stage."""
    vcfg = variant_config(cfg, name)
    spec = get_stage(ABLATIONS[name].final)
    return spec.configure(vcfg).experiment(spec.role)


def ablation_summary(cfg: Config, names, baseline: str = "neither", metrics=("psnr", "ssim"),
                     confidence: float = 0.95) -> pd.DataFrame:
    """One row per ablation in ``names`` (index ``variant``), ``baseline`` (the plain student)
    always first: its description, mean +/- std per slice and the paired difference to the
    baseline with its confidence interval (:func:`kdmri.reporting.results.comparison_table`; side ``a`` =
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
    """The SFT-KD-Recon comparison as a :func:`kdmri.reporting.results.comparison_table` frame: side
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
