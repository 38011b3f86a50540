"""Typed configuration: a dataclass merged with a YAML file from params/ and overrides.

``load_config("params/demo_4x.yaml", overrides={"epochs": 2})`` -> :class:`Config`.
Unknown keys are errors (a typo must not silently fall back to a default). The resolved
configuration is written as ``config.yaml`` next to every checkpoint.
"""

from __future__ import annotations

import dataclasses
import random
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from kdmri.config_checks import check_device, coerce, keeps_text
from kdmri.errors import ConfigError
from kdmri.io import atomic_text
from kdmri.paths import (
    acc_tag,
    datasets_dir,
    experiment_dir,
    experiments_dir,
    mask_path,
    params_dir,
    project_root,
)
from kdmri.registry import Registry


@dataclass
class Config:
    """Every setting of a run. Defaults are the KD-MRI reference settings (docs/REFERENCE.md)
    on the demo data; ``params/*.yaml`` override them."""

    # data
    dataset: str = "demo"
    acc: str = "4x"
    data_root: str | None = None  # default: datasets/<dataset>
    mask: str | None = None  # .npy path; default: the mask stored in each HDF5 file
    # "reference": the KD-MRI repository's own masks, us_masks/reference/<dataset>/ (fetched
    # by `python -m kdmri masks --reference`); "kdmri": kdmri's (the HDF5's / `mask`)
    mask_source: str = "kdmri"
    in_memory: bool = True
    max_train_slices: int | None = None  # small runs (CI): first N training slices
    max_val_slices: int | None = None
    num_workers: int = 0
    # optimisation (reference: Adam 1e-3, StepLR 40 / 0.1, batch 4, 150 epochs, L1)
    epochs: int = 150
    batch_size: int = 4
    lr: float = 1e-3
    lr_step: int = 40
    lr_gamma: float = 0.1
    seed: int = 42
    device: str = "cpu"  # "cpu", "cuda", "cuda:<n>", "mps" or "auto"
    # fast paths (kdmri.training.strategy): bf16 autocast (FFTs and DC stay complex64),
    # channels-last memory format, torch.compile
    precision: str = "fp32"  # "fp32", "bf16" or "auto" (bf16 where it is fast: strategy.resolve_precision)
    channels_last: bool = False
    compile: bool = False
    # experiment layout: experiments/<dataset>/acc_<acc>/<method>_<role>/
    experiments_root: str | None = None
    method: str = "kdmri"
    teacher_method: str | None = None  # whose teacher the KD stages use (default: method)
    # architecture: DC(CNN(x)) per cascade as in both references; True: DC(x + CNN(x))
    residual: bool = False
    # networks other than the stage's preset (DC-CNN / VDSR teacher, student): a registered
    # kind ("dccnn", "vdsr", "unet", ...) or an import path "package.module:Class", built
    # with the options (from_arch fields of a kind, keyword arguments of a class)
    teacher_model: str | None = None
    teacher_model_options: dict[str, Any] = field(default_factory=dict)
    student_model: str | None = None
    student_model_options: dict[str, Any] = field(default_factory=dict)
    # the frozen teacher of the KD stages: any checkpoint file or state dict (.pt, loaded
    # with a key-mismatch report) or pretrained:NAME; None: <teacher_method>_teacher/best_model.pt
    teacher_checkpoint: str | None = None
    # feature (attention) stage
    feature_loss: str = "at_kdmri"
    at_mode: str = "sample"  # "sample" (published AT) or "batch" (KD-MRI reference code)
    feature_pairs: list | None = None  # [[student_layer, teacher_layer], ...]
    feature_weight: float = 1.0
    feature_target_weight: float = 0.0  # L1-to-target term added in the feature stage
    feature_options: dict = field(default_factory=dict)
    # "reference": sp/cc/fsp/fitnet on the cascade outputs in SFT-KD-Recon's forms;
    # "kdmri": kdmri's earlier conv-layer pairs and forms (docs/FIDELITY.md)
    feature_forms: str = "reference"
    feature_init: str = "scratch"
    # KD stage: L1(student, target) + imitation_weight * L1(student, teacher)
    # student init for the feature stage: "scratch", "student" (the plain student's best),
    # "sft" (cascades 2..5 from the SFT branches), "sft-student" (the sft-student stage's
    # best), or a checkpoint path
    kd_init: str = "feature"  # "feature" (KD-MRI), "scratch", or a checkpoint path
    imitation_weight: float = 1.0
    imitation_reduction: str = "mean"  # "mean" or "reference" (divided by element count)
    kd_feature_weight: float = 0.0  # optional feature term during the KD stage
    teacher_cache: bool = True  # compute the frozen teacher's outputs once per run
    # super-resolution
    sr_keep: int = 24  # central k-space block kept (paper: 64 of 256; demo: 24 of 96)
    # train the SR stages on one random sr_patch x sr_patch patch of every slice per epoch
    # (VDSR's recipe: many cheap steps); None: whole slices, as the KD-MRI reference does
    sr_patch: int | None = None
    # L1-to-target weight in the SR feature stage (the reference: 0, attention alone, which
    # leaves the student's layers after the attention pair untrained when KD starts)
    sr_feature_target_weight: float = 0.0
    # SFT-KD-Recon
    sft_branch_weight: float = 1.0
    sft_imitation_weight: float = 1.0
    # branch-imitation term of the SFT teacher loss: "reference" (SFT-KD-Recon: divided by
    # the element count) or "mean"
    sft_imitation_reduction: str = "reference"
    sft_student_init: str = "sft"  # init of the sft-student stage (as feature_init)
    # SFT comparison protocol: "reference" (both arms' feature stages start from a trained
    # student: plain student / sft-student) or "kdmri" (standard arm from scratch, SFT arm
    # from the SFT branches: kdmri's earlier, confounded protocol)
    sft_protocol: str = "reference"
    # experiment tracking: TensorBoard event files in <experiment>/tensorboard/ (needs the
    # `tracking` extra), and more callbacks of the training loop by import path
    # ("package.module:Class", built with no arguments; kdmri.training.callbacks)
    tensorboard: bool = False
    callbacks: list = field(default_factory=list)
    # bookkeeping
    resume: bool = True
    progress: bool = True
    notes: str = ""

    def __post_init__(self):
        # every value as its declared type (kdmri.config_checks), then the value checks
        for name, hint in FIELD_TYPES.items():
            if name != "acc":  # acc: an integer acceleration, normalised to its tag
                setattr(self, name, coerce(name, getattr(self, name), hint))
        self.acc = acc_tag(self.acc)
        _check_mask(self)
        check_device(self.device)
        if self.at_mode not in ("sample", "batch"):
            raise ConfigError(f"at_mode={self.at_mode!r}: expected 'sample' or 'batch'")
        if self.precision not in ("fp32", "bf16", "auto"):
            raise ConfigError(f"precision={self.precision!r}: expected 'fp32', 'bf16' or 'auto'")
        for name in ("imitation_reduction", "sft_imitation_reduction"):
            if getattr(self, name) not in ("mean", "reference"):
                raise ConfigError(f"{name}={getattr(self, name)!r}: expected 'mean' or 'reference'")
        _choice(self, "feature_forms", ("reference", "kdmri"))
        _choice(self, "sft_protocol", ("reference", "kdmri"))
        _choice(self, "mask_source", ("kdmri", "reference"))
        if self.sr_patch is not None and int(self.sr_patch) < 1:
            raise ConfigError(f"sr_patch={self.sr_patch!r}: expected a positive patch size or null")
        for name in ("epochs", "batch_size", "lr_step"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name}={getattr(self, name)!r}: expected a positive integer")

    # ---- paths -------------------------------------------------------------------------
    @property
    def data_path(self) -> Path:
        return _rooted(self.data_root) if self.data_root else datasets_dir() / self.dataset

    @property
    def train_dir(self) -> Path:
        return self.data_path / "train"

    @property
    def val_dir(self) -> Path:
        return self.data_path / "validation"

    @property
    def experiments_path(self) -> Path:
        return _rooted(self.experiments_root) if self.experiments_root else experiments_dir()

    def experiment(self, role: str, method: str | None = None) -> Path:
        """``experiments/<dataset>/acc_<acc>/<method>_<role>``."""
        return experiment_dir(self.dataset, self.acc, method or self.method, role,
                              self.experiments_path)

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> Config:
        return merge(self, changes)


def _choice(cfg: Config, name: str, allowed: tuple[str, ...]) -> None:
    if getattr(cfg, name) not in allowed:
        raise ConfigError(f"{name}={getattr(cfg, name)!r}: expected one of {list(allowed)}")


def _check_mask(cfg: Config) -> None:
    """An acceleration of a dataset with committed masks (us_masks/<dataset>/) must have its
    mask there, unless ``mask`` names one (other datasets' masks come with their HDF5 files)."""
    path = mask_path(cfg.dataset, cfg.acc)
    if cfg.mask is None and path.parent.is_dir() and not path.is_file():
        have = sorted((p.stem.removeprefix("mask_") for p in path.parent.glob("mask_*.npy")),
                      key=lambda tag: int(tag.rstrip("x")) if tag.rstrip("x").isdigit() else 0)
        raise ConfigError(f"acc={cfg.acc!r}: dataset {cfg.dataset!r} has no mask at this acceleration "
                          f"({path} is missing); expected one of {have}, or set mask to a .npy file")


def _rooted(path: str) -> Path:
    """Relative paths in configs are relative to the project root, not the working folder
    (notebooks run from notebooks/ under nbval and from anywhere under papermill)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else project_root() / p


#: Fields that may change between a run and its resumption.
# (a copied or moved folder is the same run; tracking writes beside the run, it changes no weight)
RESUMABLE_CHANGES = {"epochs", "progress", "resume", "num_workers", "device", "notes",
                     "experiments_root", "in_memory", "tensorboard", "callbacks"}


#: What a run stored before a field existed actually used (its default then), where the
#: default has changed since: a resumed run must not silently switch architecture or loss.
LEGACY_VALUES = {
    "residual": True,
    "feature_forms": "kdmri",
    "sft_protocol": "kdmri",
    "sft_imitation_reduction": lambda stored: stored.get("imitation_reduction", "mean"),
}


def check_resumable(stored: dict, cfg: Config, where: Path, fields: set[str] | None = None) -> None:
    """Refuse to resume a run whose stored configuration differs in anything that matters:
    every field, or only ``fields`` (the ones the stage uses: a changed SR setting does not
    stop a reconstruction stage from resuming)."""
    current = cfg.to_dict()
    # fields added since the run started count as the value the run actually used
    defaults = {**Config().to_dict(), **{k: (v(stored) if callable(v) else v)
                                         for k, v in LEGACY_VALUES.items()}}
    keys = (set(stored) | set(current)) if fields is None else set(fields)
    diff = sorted(k for k in keys
                  if k not in RESUMABLE_CHANGES and stored.get(k, defaults.get(k)) != current.get(k))
    if diff:
        details = ", ".join(f"{k}: {stored.get(k)!r} -> {current.get(k)!r}" for k in diff)
        raise ConfigError(f"{where}: an earlier run with different settings is there ({details}); "
                          "use another experiments_root or method, or set resume=False to restart")


FIELDS = {f.name for f in dataclasses.fields(Config)}
#: Declared type of every field (``int | None`` ...), which values are converted to.
FIELD_TYPES = typing.get_type_hints(Config)


def merge(cfg: Config, changes: dict[str, Any], source: str = "overrides") -> Config:
    """New config with ``changes`` applied; unknown keys raise :class:`ConfigError`."""
    unknown = sorted(set(changes) - FIELDS)
    if unknown:
        raise ConfigError(f"{source}: unknown parameter(s) {unknown}; known: {sorted(FIELDS)}")
    data = cfg.to_dict()
    data.update(changes)
    try:
        return Config(**data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def resolve_params(path: str | Path) -> Path:
    """A params file given as a path or as a bare name in params/ (``demo_4x``)."""
    p = Path(path)
    if p.is_file():
        return p
    for candidate in (params_dir() / p, params_dir() / f"{p}.yaml"):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"{path}: parameter file not found (looked in . and {params_dir()})")


def read_yaml_mapping(path: Path, what: str = "", expected: str = "a mapping") -> dict[str, Any]:
    """The mapping in the YAML file ``path`` (``{}`` for an empty file); a
    :class:`ConfigError` names ``what`` and the file when it is not valid YAML or not a mapping."""
    where = f"{what} {path}" if what else f"{path}"
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected {expected}")
    return data


def read_params(path: str | Path) -> dict[str, Any]:
    """Read a params YAML into a dict (``{}`` for an empty file), with clear errors."""
    return read_yaml_mapping(resolve_params(path), expected="a mapping of parameter names to values")


#: Key of a params YAML holding notebook-only parameters (not Config fields), e.g.
#: ``notebook_parameters: {ablations: [neither, both], kd_epochs: 6}``: part of the params
#: file's format, so :func:`load_config` skips it; the batch runner passes them to every
#: notebook that declares them in its ``parameters`` cell, and the notebooks' own names and
#: defaults are :data:`kdmri.notebook_knobs.NOTEBOOK_DEFAULTS` (tutorial layer).
NOTEBOOK_KEY = "notebook_parameters"


def notebook_parameters(path: str | Path) -> dict[str, Any]:
    """The ``notebook_parameters`` mapping of a params YAML (``{}`` if absent)."""
    value = read_params(path).get(NOTEBOOK_KEY) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{resolve_params(path)}: '{NOTEBOOK_KEY}' must be a mapping of "
                          "notebook parameter names to values")
    return value


#: Checks of a params file that :func:`load_config` runs after merging it,
#: ``check(data, cfg, source)`` raising :class:`ConfigError`. The layer that owns a policy
#: registers its check (:mod:`kdmri.data.sr_settings`: ``sr_keep`` only where a paper ran
#: super-resolution), so this base layer holds none.
PARAMS_CHECKS: Registry[Callable[[dict[str, Any], Config, str], None]] = Registry("params-file check")


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults <- params YAML (``path``) <- ``overrides`` (values ``None`` are ignored).
    The YAML's ``notebook_parameters`` section is not part of the Config. The file then
    passes every check of :data:`PARAMS_CHECKS` (a file that sets ``sr_keep`` where no paper
    ran super-resolution raises :class:`ConfigError`)."""
    cfg = Config()
    if path is not None:
        data = read_params(path)
        data.pop(NOTEBOOK_KEY, None)
        cfg = merge(cfg, data, source=str(resolve_params(path)))
        for check in PARAMS_CHECKS.values():
            check(data, cfg, str(resolve_params(path)))
    if overrides:
        cfg = merge(cfg, {k: v for k, v in overrides.items() if v is not None})
    return cfg


def parse_override(text: str) -> tuple[str, Any]:
    """``"epochs=3"`` -> ``("epochs", 3)`` (the value parsed as YAML; a text field keeps the
    text as written: ``notes=no`` is ``"no"``, not ``False``; ``null`` is ``None``)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value")
    key, raw = (part.strip() for part in text.split("=", 1))
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({exc})") from None
    if key in FIELD_TYPES and keeps_text(FIELD_TYPES[key]) and not isinstance(value, str | None):
        value = raw
    return key, value


def save_config(cfg: Config, path: Path) -> None:
    """Write the resolved configuration as YAML, atomically."""
    atomic_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=True))


def seed_everything(seed: int) -> None:
    """The one place seeds are set: python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
