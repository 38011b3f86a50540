r"""Stages described as data, in one registry.

A :class:`StageSpec` says which network a stage trains (``arch`` of a ``task``), where it
writes (``role``; method from the config or fixed), which frozen teacher it learns from,
how its network is initialised (a config field naming an initialiser) and its objective
(named terms with named weights, :mod:`kdmri.distill.objective`). The engine
(:mod:`kdmri.training.engine`) runs any of them; adding a stage is one
:func:`register_stage` call, and the SR family is the same four specs on the ``sr`` task.

=================  ========  =========  =========================================================
stage              network   init       objective (weight)
=================  ========  =========  =========================================================
``teacher``        teacher   --         l1
``student``        student   --         l1
``feature``        student   feature\_  feature (feature_weight) + l1 (feature_target_weight);
                             init       KD-MRI attention transfer by default
``kd``             student   kd_init    l1 + imitation (imitation_weight)
                                        + feature (kd_feature_weight)
``sr-*``           VDSR      as above   the same four stages for super-resolution (the feature
                                        stage's L1 weight: ``sr_feature_target_weight``)
``sft-teacher``    SFT       --         sft (SFT-KD-Recon: teacher + branches)
``sft-student``    student   sft_stud-  l1 (SFT-KD-Recon's "studentSFTN": cascades 2..5 from the
                             ent_init   SFT branches, then L1 alone); writes ``sft_student``
``sft-feature``    student   sft        as ``feature``, teacher ``sft_teacher``
``sft-kd``         student   feature    as ``kd``, teacher ``sft_teacher``
=================  ========  =========  =========================================================

Initialisers (:data:`INITIALISERS`): ``scratch``; ``feature`` (this method's feature-stage
best checkpoint); ``student`` (the plain student trained with the teacher's method,
``<teacher_method>_student``); ``sft`` (cascades 2..5 from the SFT teacher's student
branches: SFT-KD-Recon loads the SFT checkpoint into the student by parameter name, and
its ``scascade1`` is never trained, so cascade 1 keeps a fresh initialisation);
``sft-student`` (the ``sft-student`` stage's best); any other value is a checkpoint path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from kdmri.checkpoint import BEST, load_checkpoint
from kdmri.config import Config
from kdmri.errors import DataError
from kdmri.models.sft import init_student_from_sft
from kdmri.models.tasks import RECON, SR, Task, get_task
from kdmri.registry import Registry

#: The SFT-KD-Recon experiment method (its teacher lives in ``sft_teacher``).
SFT_METHOD = "sft"


@dataclass(frozen=True)
class StageSpec:
    """One trainable stage. ``objective``: ``((term, weight or config field), ...)``."""

    name: str
    task: str
    role: str
    arch: str
    objective: tuple[tuple[str, float | str], ...]
    validate: str = "l1"  # "l1": L1 of the output to the target; "objective": the training loss
    teacher: bool = False  # learns from a frozen teacher
    init_field: str | None = None  # Config field naming the initialiser ("feature_init", "kd_init")
    method: str | None = None  # fixed method; None: cfg.method (the task's default method)
    method_family: str | None = None  # cfg.method if it starts with this, else this
    teacher_method: str | None = None  # fixed teacher method; None: cfg.teacher_method or cfg.method
    init_defaults: dict = field(default_factory=dict)  # {init value: replacement}, e.g. scratch -> sft
    description: str = ""

    @property
    def task_obj(self) -> Task:
        return get_task(self.task)

    def configure(self, cfg: Config) -> Config:
        """The configuration this stage runs with: its method, teacher method and init."""
        task = self.task_obj
        changes: dict = {}
        if self.method is not None:
            changes["method"] = self.method
        elif self.method_family is not None:
            if not cfg.method.startswith(self.method_family):
                changes["method"] = self.method_family
        elif task_method(cfg, task) != cfg.method:
            changes["method"] = task_method(cfg, task)
        if self.teacher_method is not None:
            changes["teacher_method"] = self.teacher_method
        if self.init_field and getattr(cfg, self.init_field) in self.init_defaults:
            changes[self.init_field] = self.init_defaults[getattr(cfg, self.init_field)]
        return cfg.replace(**changes) if changes else cfg

    def experiment(self, cfg: Config) -> Path:
        """Experiment folder of this stage for an already configured ``cfg``."""
        return cfg.experiment(self.role)

    def teacher_path(self, cfg: Config) -> Path:
        return cfg.experiment("teacher", cfg.teacher_method or cfg.method) / BEST


def task_method(cfg: Config, task: Task) -> str:
    """The experiment method of ``task``'s stages: ``cfg.method``, except that the generic
    default (``kdmri``) becomes the task's own (``sr-keep<sr_keep>`` for super-resolution)."""
    return task.method_for(cfg) if cfg.method == RECON.default_method else cfg.method


STAGES: Registry[StageSpec] = Registry("stage")


def register_stage(spec: StageSpec) -> StageSpec:
    """Add a stage to the registry (its name must be new)."""
    get_task(spec.task)  # must exist
    return STAGES.add(spec.name, spec)


def get_stage(name: str) -> StageSpec:
    return STAGES.lookup(name)


# ------------------------------------------------------------------ initialisers

Initialiser = Callable[[nn.Module, Config, StageSpec, torch.device], None]
INITIALISERS: Registry[Initialiser] = Registry("initialiser")


def register_initialiser(name: str) -> Callable[[Initialiser], Initialiser]:
    """Function decorator: register an initialiser under ``name`` (a config field's value)."""
    return INITIALISERS.register(name)


@register_initialiser("scratch")
def _init_scratch(model, cfg, spec, device) -> None:
    """Keep the random initialisation (seeded)."""


@register_initialiser("feature")
def _init_feature(model, cfg, spec, device) -> None:
    """The best checkpoint of this method's feature stage (KD-MRI: KD starts from it)."""
    model.load_state_dict(load_checkpoint(cfg.experiment("feature") / BEST, device)["model"])


def load_sft_branches(student: nn.Module, path: Path | str, device: torch.device | str = "cpu") -> list[str]:
    """Cascades 2..5 of ``student`` from the SFT checkpoint at ``path`` (its student branches);
    a clear DataError if the file is not an SFT checkpoint. Returns the names set."""
    ckpt = load_checkpoint(path, device)
    kind = (ckpt.get("arch") or {}).get("kind")
    if kind != "sft":
        raise DataError(f"{path}: not an SFT checkpoint (arch kind {kind!r}, expected 'sft'); "
                        "train stage sft-teacher first")
    return init_student_from_sft(student, ckpt["model"], str(path))


@register_initialiser("sft")
def _init_sft(model, cfg, spec, device) -> None:
    """Cascades 2..5 from the SFT teacher's student branches (SFT-KD-Recon)."""
    load_sft_branches(model, cfg.experiment("teacher", SFT_METHOD) / BEST, device)


def _load_trained(model, path: Path, stage: str, device) -> None:
    if not path.is_file():
        raise DataError(f"{path}: no trained student there; train stage {stage} first")
    model.load_state_dict(load_checkpoint(path, device)["model"])


@register_initialiser("student")
def _init_student(model, cfg, spec, device) -> None:
    """The plain student's best checkpoint (trained with L1 alone, the teacher's method)."""
    _load_trained(model, cfg.experiment("student", cfg.teacher_method or cfg.method) / BEST,
                  "student", device)


@register_initialiser("sft-student")
def _init_sft_student(model, cfg, spec, device) -> None:
    """The ``sft-student`` stage's best: the SFT-initialised student trained with L1 alone."""
    _load_trained(model, cfg.experiment("student", SFT_METHOD) / BEST, "sft-student", device)


def initialise(model: nn.Module, cfg: Config, spec: StageSpec, device: torch.device) -> None:
    """Apply the initialiser named by ``cfg.<spec.init_field>`` (a name or a checkpoint path)."""
    if spec.init_field is None:
        return
    value = getattr(cfg, spec.init_field)
    if value in INITIALISERS:
        INITIALISERS[value](model, cfg, spec, device)
        return
    model.load_state_dict(load_checkpoint(value, device)["model"])


# ------------------------------------------------------------------ the stages

_BASE = (
    StageSpec("teacher", "recon", "teacher", "teacher", (("l1", 1.0),),
              description="teacher: L1 to the target"),
    StageSpec("student", "recon", "student", "student", (("l1", 1.0),),
              description="student from scratch: L1 to the target"),
    StageSpec("feature", "recon", "feature", "student",
              (("feature", "feature_weight"), ("l1", "feature_target_weight")), validate="objective",
              teacher=True, init_field="feature_init",
              description="feature distillation (KD-MRI: attention transfer) from the frozen teacher"),
    StageSpec("kd", "recon", "kd", "student",
              (("l1", 1.0), ("imitation", "imitation_weight"), ("feature", "kd_feature_weight")),
              teacher=True, init_field="kd_init",
              description="KD-MRI stage 3: L1 + imitation of the teacher, from the feature stage"),
)
#: Weights the SR stages read from their own config fields (the reconstruction stages' stay apart).
SR_WEIGHT_FIELDS = {"feature_target_weight": "sr_feature_target_weight"}

for _spec in _BASE:
    register_stage(_spec)
    register_stage(replace(_spec, name=SR.stage_prefix + _spec.name, task=SR.name,
                           objective=tuple((t, SR_WEIGHT_FIELDS.get(w, w)) for t, w in _spec.objective),
                           description=_spec.description + " (super-resolution, VDSR)"))

register_stage(StageSpec("sft-teacher", "recon", "teacher", "sft", (("sft", 1.0),),
                         method=SFT_METHOD,
                         description="SFT-KD-Recon student-friendly teacher (teacher + branches)"))
register_stage(StageSpec("sft-student", "recon", "student", "student", (("l1", 1.0),),
                         init_field="sft_student_init", method=SFT_METHOD,
                         description="SFT-KD-Recon's student: cascades 2..5 from the SFT branches, "
                                     "then L1 to the target"))
register_stage(replace(STAGES["feature"], name="sft-feature", method_family=SFT_METHOD,
                       teacher_method=SFT_METHOD, init_defaults={"scratch": "sft"},
                       description="feature stage from the SFT teacher, cascades 2..5 from its branches"))
register_stage(replace(STAGES["kd"], name="sft-kd", method_family=SFT_METHOD, teacher_method=SFT_METHOD,
                       description="KD from the SFT teacher, initialised from sft-feature"))
