"""Named experiment recipes built from the one training loop: ablations and SFT-KD grids.

Each recipe is a list of stages plus config changes, written to its own method folder
(``experiments/<dataset>/acc_<acc>/<method>_<role>``) and always distilling from the
KD-MRI teacher (``kdmri_teacher``) or the SFT teacher (``sft_teacher``), so papermill can run
a grid by changing one parameter.

* :data:`ABLATIONS`: attention only, imitation only, both, neither; the other feature
  methods; layer pairs; imitation weights; the reference-code normalisations.
* :func:`sft_method_configs`: for each feature method, the student distilled from the
  standard teacher and from the SFT teacher (the SFT-KD-Recon table).

:mod:`kdmri.runs` runs them (train, evaluate) and tabulates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kdmri.config import Config
from kdmri.registry import Registry
from kdmri.training.stages import get_stage


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


ABLATIONS: Registry[Variant] = Registry("ablation")
ABLATIONS.update({
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
})


def register_ablation(name: str, variant: Variant) -> Variant:
    """Add a named ablation (one call from anywhere; ``variant.stages`` must be registered)."""
    for stage in variant.stages:
        get_stage(stage)
    return ABLATIONS.add(name, variant)


#: Experiment-method prefixes of the grids: ablations, and the arms of the SFT comparison.
ABLATION_PREFIX, STANDARD_PREFIX, SFT_PREFIX, CROSSED_PREFIX = "abl-", "std-", "sft-", "mix-"


def ablation_method(name: str) -> str:
    """Experiment method of ablation ``name`` (``abl-<name>``)."""
    return ABLATION_PREFIX + name


def variant_config(cfg: Config, name: str) -> Config:
    """The config of ablation ``name``: method ``abl-<name>``, the KD-MRI teacher."""
    changes = ABLATIONS.lookup(name).changes
    return cfg.replace(method=ablation_method(name), teacher_method=cfg.teacher_method or cfg.method,
                       **changes)


def sft_method_configs(cfg: Config, feature_loss: str) -> tuple[Config, Config]:
    """(standard-teacher config, SFT-teacher config) distilling with ``feature_loss``.

    Standard: method ``std-<loss>`` with the KD-MRI teacher; SFT: method ``sft-<loss>`` with
    ``sft_teacher``. ``cfg.sft_protocol`` decides where the feature stages start:

    * ``"reference"`` (SFT-KD-Recon's protocol): both from a trained student of the same
      kind -- the standard arm from the plain ``student`` stage, the SFT arm from the
      ``sft-student`` stage (cascades 2..5 from the SFT branches, then L1), equal epochs;
    * ``"kdmri"`` (kdmri's earlier protocol): the standard arm from ``cfg.feature_init``
      (scratch), the SFT arm from the SFT branches -- a head start confounded with the teacher.
    """
    std = cfg.replace(method=STANDARD_PREFIX + feature_loss,
                      teacher_method=cfg.teacher_method or cfg.method, feature_loss=feature_loss)
    sft = cfg.replace(method=SFT_PREFIX + feature_loss, feature_loss=feature_loss)
    if cfg.sft_protocol == "reference":
        std, sft = std.replace(feature_init="student"), sft.replace(feature_init="sft-student")
    return std, sft


def sft_crossed_config(cfg: Config, feature_loss: str) -> Config:
    """The crossed arm of the SFT comparison: the *standard* teacher distilling into a student
    that starts from the ``sft-student`` stage (method ``mix-<loss>``). Against the standard
    arm it measures the head start alone; the SFT arm against it, the friendlier teacher."""
    std, _ = sft_method_configs(cfg, feature_loss)
    return std.replace(method=CROSSED_PREFIX + feature_loss, feature_init="sft-student")


def variant_experiment(cfg: Config, name: str) -> Path:
    """The experiment folder of ablation ``name``'s final (evaluated) stage."""
    vcfg = variant_config(cfg, name)
    spec = get_stage(ABLATIONS[name].final)
    return spec.configure(vcfg).experiment(spec.role)
