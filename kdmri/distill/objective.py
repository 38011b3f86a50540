"""Objectives: a weighted sum of named terms, every weight named in the configuration.

A stage declares its objective as ``[(term, weight), ...]`` where ``weight`` is a number or
the name of a :class:`~kdmri.config.Config` field (``"imitation_weight"``...). The terms
are registered here by name and share one signature, ``term(ctx) -> (value, logs)``, with
a :class:`TermContext` holding the student's output, the batch and lazy access to the
frozen teacher. Terms whose resolved weight is 0 are not computed, so an ablation (e.g.
"attention only": ``imitation_weight: 0``) is a configuration, not code.

==================  ==============================================================
term                value
==================  ==============================================================
``l1``              ``L1(student, target)``
``imitation``       ``L1(student, teacher)`` (:func:`~kdmri.distill.imitation.imitation_loss`,
                    reduction ``cfg.imitation_reduction``)
``feature``         the configured feature loss on student / teacher features
``sft``             SFT-KD-Recon's teacher loss (:func:`~kdmri.distill.sft.sft_loss`; its
                    inner weights ``sft_branch_weight``, ``sft_imitation_weight``, and
                    ``sft_imitation_reduction``, "reference" by default as in its code)
==================  ==============================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from kdmri.distill.imitation import imitation_loss
from kdmri.distill.sft import sft_loss
from kdmri.errors import ConfigError
from kdmri.registry import Registry

TermResult = tuple[torch.Tensor, dict[str, float]]
Term = Callable[["TermContext"], TermResult]
TERMS: Registry[Term] = Registry("objective term")
#: Terms that need the teacher's intermediate features (not just its output image).
NEEDS_TEACHER_FEATURES: set[str] = set()
#: Terms that use the frozen teacher at all (its output or its features).
USES_TEACHER: set[str] = set()


def register_term(name: str, teacher_features: bool = False, teacher: bool = False) -> Callable[[Term], Term]:
    """Function decorator: register an objective term under ``name``; ``teacher``: it uses
    the frozen teacher's output, ``teacher_features``: also its intermediate features."""

    def decorator(fn: Term) -> Term:
        TERMS.add(name, fn)
        if teacher_features:
            NEEDS_TEACHER_FEATURES.add(name)
        if teacher or teacher_features:
            USES_TEACHER.add(name)
        return fn

    return decorator


class CachedTeacher(NamedTuple):
    """The frozen teacher's part of a batch, looked up in a cache computed once per run: its
    output ``image`` and, per feature-loss pair, the loss's teacher target
    (:meth:`~kdmri.distill.registry.FeatureLoss.teacher_targets`)."""

    image: torch.Tensor
    targets: list


@dataclass
class TermContext:
    """What a term may use. ``teacher(features)`` runs (or looks up) the frozen teacher."""

    cfg: Any
    batch: dict
    student: Any  # the network's output (ReconOutput, or (ReconOutput, branches) for SFT)
    teacher: Callable[[bool], Any] | None = None
    feature_loss: torch.nn.Module | None = None
    cache: dict = field(default_factory=dict)

    def teacher_output(self, features: bool = False):
        """The teacher's output for this batch, computed once (a tensor when it comes from a
        cache of teacher images, else a ReconOutput; the stage asks for features whenever
        any term of the objective needs them)."""
        if "out" not in self.cache:
            if self.teacher is None:
                raise ConfigError("this stage has no teacher, but its objective needs one")
            self.cache["out"] = self.teacher(features)
        return self.cache["out"]


@register_term("l1")
def l1_term(ctx: TermContext) -> TermResult:
    value = F.l1_loss(ctx.student.image, ctx.batch["target"])
    return value, {"l1": value.item()}


@register_term("imitation", teacher=True)
def imitation_term(ctx: TermContext) -> TermResult:
    teacher = ctx.teacher_output(features=False)
    image = teacher if isinstance(teacher, torch.Tensor) else teacher.image
    value = imitation_loss(ctx.student.image, image, reduction=ctx.cfg.imitation_reduction)
    return value, {"imitation": value.item()}


@register_term("feature", teacher_features=True)
def feature_term(ctx: TermContext) -> TermResult:
    if ctx.feature_loss is None:
        raise ConfigError("objective term 'feature' needs a feature loss (cfg.feature_loss)")
    teacher = ctx.teacher_output(features=True)
    if isinstance(teacher, CachedTeacher):
        value = ctx.feature_loss.from_targets(ctx.student.features, teacher.targets)
    else:
        value = ctx.feature_loss(ctx.student.features, teacher.features)
    return value, {"feature": value.item()}


@register_term("sft")
def sft_term(ctx: TermContext) -> TermResult:
    teacher_out, branches = ctx.student
    cfg = ctx.cfg
    return sft_loss(teacher_out.image, branches, ctx.batch["target"], cfg.sft_branch_weight,
                    cfg.sft_imitation_weight, cfg.sft_imitation_reduction)


class Objective:
    """``sum_i weight_i * term_i`` over the terms with a non-zero weight, in declared order."""

    def __init__(self, terms: Sequence[tuple[str, float]]):
        unknown = [name for name, _ in terms if name not in TERMS]
        if unknown:
            raise ConfigError(f"objective terms {unknown}: expected names from {sorted(TERMS)}")
        self.terms = [(name, float(w)) for name, w in terms if float(w) != 0.0]
        if not self.terms:
            raise ConfigError(f"objective {list(terms)}: every weight is 0; nothing to train")

    @classmethod
    def from_spec(cls, spec: Sequence[tuple[str, float | str]], cfg: Any) -> Objective:
        """Resolve weights given as config field names (``"imitation_weight"``) to numbers."""
        resolved = []
        for name, weight in spec:
            if isinstance(weight, str):
                if not hasattr(cfg, weight):
                    raise ConfigError(f"objective term {name!r}: weight field {weight!r} is not a "
                                      "configuration setting")
                weight = getattr(cfg, weight)
            resolved.append((name, weight))
        return cls(resolved)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.terms]

    @property
    def uses_teacher(self) -> bool:
        """Whether a term with a non-zero weight uses the frozen teacher (a KD stage whose
        teacher terms are all weighted 0 trains without loading it)."""
        return any(name in USES_TEACHER for name in self.names)

    @property
    def needs_teacher_features(self) -> bool:
        return any(name in NEEDS_TEACHER_FEATURES for name in self.names)

    def __call__(self, ctx: TermContext) -> TermResult:
        total, logs = None, {}
        for name, weight in self.terms:
            value, term_logs = TERMS[name](ctx)
            weighted = value if weight == 1.0 else weight * value
            total = weighted if total is None else total + weighted
            logs.update(term_logs)
        return total, logs
