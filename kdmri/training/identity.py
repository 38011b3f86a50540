"""Experiment identity from content: a stage whose resolved settings equal those of an already
trained stage reuses it instead of training again.

:func:`content_key` hashes what determines a stage's result: the configuration fields that
stage uses (without bookkeeping such as ``progress``, ``notes``, ``experiments_root``, the
method names or the device), the stage spec (task, network, objective, teacher, initialiser)
and the content keys of the stages it depends on (its frozen teacher, the checkpoint it
starts from). So the ablation ``abl-neither`` is the plain ``student``, ``abl-both`` and
``std-at_kdmri`` are ``kd``, and ``abl-attention``'s feature stage is KD-MRI's (the
imitation weight is not used by a feature stage).

A finished stage writes :data:`IDENTITY_FILE` (its key) into its folder;
:func:`find_identical` looks through the sibling folders
``experiments/<dataset>/acc_<acc>/*/`` for a finished stage with the same key, and
:func:`adopt` copies its checkpoints and log into the new folder (the stored configuration
rewritten to the new one, ``reused_from`` recorded), so the new folder is a complete,
resumable experiment. A dependency without a key (trained before keys existed) gives no
key: nothing is reused then.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from kdmri.checkpoint import BEST, LAST, load_checkpoint
from kdmri.config import Config, save_config
from kdmri.io import atomic_path, atomic_save, atomic_text
from kdmri.training.stages import INITIALISERS, SFT_METHOD, STAGES, StageSpec

#: Written into a stage's folder when it has finished: ``{"key", "stage", "epochs"}``.
IDENTITY_FILE = "identity.json"

#: Fields that never change what a stage computes.
BOOKKEEPING = frozenset({"progress", "notes", "experiments_root", "method", "teacher_method",
                         "resume", "num_workers", "device", "in_memory", "tensorboard", "callbacks"})

#: Fields of the feature loss, used only by stages whose objective has a ``feature`` term.
FEATURE_FIELDS = frozenset({"feature_loss", "at_mode", "feature_pairs", "feature_options"})

#: Network fields: part of a key only when set (keys made before they existed stay valid) and
#: only for the stages they concern (``teacher``: the teacher stage and the KD stages).
NETWORK_FIELDS = {"student_model": "student", "student_model_options": "student",
                  "teacher_model": "teacher", "teacher_model_options": "teacher",
                  "teacher_checkpoint": "frozen"}


def _network_field_used(name: str, cfg: Config, spec: StageSpec) -> bool:
    if getattr(cfg, name) in (None, {}):
        return False
    role = NETWORK_FIELDS[name]
    return spec.teacher if role == "frozen" else (spec.arch == role or (role == "teacher" and spec.teacher))


def _weight_fields() -> set[str]:
    return {w for spec in STAGES.values() for _, w in spec.objective if isinstance(w, str)}


def stage_fields(cfg: Config, spec: StageSpec) -> dict:
    """The configuration fields that determine ``spec``'s result under ``cfg``."""
    terms = {t for t, _ in spec.objective}
    own_weights = {w for _, w in spec.objective if isinstance(w, str)}
    skip = set(BOOKKEEPING) | (_weight_fields() - own_weights)
    skip |= {f for f in ("feature_init", "kd_init") if f != spec.init_field}
    if "feature" not in terms:
        skip |= FEATURE_FIELDS
    if "imitation" not in terms:
        skip.add("imitation_reduction")
    if "sft" not in terms:
        skip |= {"sft_branch_weight", "sft_imitation_weight"}
    if spec.task != "sr":
        skip |= {"sr_keep", "sr_patch"}
    if spec.task == "sr" or cfg.mask_source == "kdmri":  # keys made before the field stay valid
        skip.add("mask_source")
    skip |= {f for f in NETWORK_FIELDS if not _network_field_used(f, cfg, spec)}
    fields = {k: v for k, v in sorted(cfg.to_dict().items()) if k not in skip}
    if fields.get("precision") == "auto":  # what this machine computes in (bf16 or fp32)
        from kdmri.training.strategy import resolve_precision

        fields["precision"] = resolve_precision("auto", cfg.torch_device())
    return fields


def stored_key(folder: Path) -> str | None:
    """The content key a finished stage wrote into ``folder`` (``None``: none there)."""
    path = Path(folder) / IDENTITY_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())["key"]
    except (ValueError, KeyError):
        return None


def _file_digest(path: Path) -> str | None:
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "file:" + h.hexdigest()


def _stored_dependency(cfg: Config, spec: StageSpec, kind: str) -> str | None:
    """The key stored by the stage ``spec`` depends on: ``teacher``, ``feature`` or ``sft``."""
    if kind == "teacher":
        return stored_key(spec.teacher_path(cfg).parent)
    if kind == "feature":
        return stored_key(cfg.experiment("feature"))
    return stored_key(cfg.experiment("teacher", SFT_METHOD))


def _dependencies(cfg: Config, spec: StageSpec, dependency) -> dict | None:
    deps = {}
    if spec.teacher and cfg.teacher_checkpoint:  # a teacher from any file: its bytes
        deps["teacher"] = _file_digest(Path(cfg.teacher_checkpoint))
    elif spec.teacher:
        deps["teacher"] = dependency(cfg, spec, "teacher")
    if spec.init_field:
        value = getattr(cfg, spec.init_field)
        if value in ("feature", "sft"):
            deps["init"] = dependency(cfg, spec, value)
        elif value not in INITIALISERS:  # a checkpoint path: its bytes
            deps["init"] = _file_digest(Path(value))
        else:
            deps["init"] = value
    return None if any(v is None for v in deps.values()) else deps


def content_key(cfg: Config, stage: str | StageSpec, dependency=_stored_dependency) -> str | None:
    """The content key of ``stage`` with ``cfg`` (``None`` when a dependency has none).
    ``dependency(cfg, spec, kind)`` gives the key of a dependency (default: the stored one)."""
    spec = STAGES[stage] if isinstance(stage, str) else stage
    cfg = spec.configure(cfg)
    deps = _dependencies(cfg, spec, dependency)
    if deps is None:
        return None
    content = {"fields": stage_fields(cfg, spec), "deps": deps,
               "spec": {"task": spec.task, "arch": spec.arch, "objective": [list(t) for t in spec.objective],
                        "validate": spec.validate, "teacher": spec.teacher, "init_field": spec.init_field}}
    text = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def record(folder: Path, key: str | None, stage: str, epochs: int) -> None:
    """Mark ``folder`` as a finished stage with ``key``."""
    if key is not None:
        atomic_text(Path(folder) / IDENTITY_FILE,
                    json.dumps({"key": key, "stage": stage, "epochs": epochs}, indent=1) + "\n")


def find_identical(cfg: Config, stage: str | StageSpec, key: str | None = None) -> Path | None:
    """A finished experiment folder next to ``stage``'s own with the same content key."""
    spec = STAGES[stage] if isinstance(stage, str) else stage
    key = key or content_key(cfg, spec)
    own = spec.experiment(spec.configure(cfg))
    if key is None or not own.parent.is_dir():
        return None
    for folder in sorted(own.parent.iterdir()):
        if folder != own and stored_key(folder) == key and (folder / LAST).is_file() \
                and (folder / BEST).is_file():
            return folder
    return None


def adopt(source: Path, target: Path, cfg: Config, key: str, stage: str) -> None:
    """Make ``target`` a copy of the finished ``source``: checkpoints (their stored config
    rewritten to ``cfg``, ``reused_from`` added), training log, ``config.yaml``, key."""
    target.mkdir(parents=True, exist_ok=True)
    for name in (BEST, LAST):
        ckpt = load_checkpoint(source / name, "cpu")
        ckpt.update(config=cfg.to_dict(), stage=stage, reused_from=str(source), content_key=key)
        atomic_save(ckpt, target / name)
    if (source / "train_log.csv").is_file():
        with atomic_path(target / "train_log.csv") as tmp:
            shutil.copyfile(source / "train_log.csv", tmp)
    save_config(cfg, target / "config.yaml")
    record(target, key, stage, cfg.epochs)


def record_if_missing(folder: Path, cfg: Config, spec: StageSpec) -> None:
    """Give a finished stage trained before content keys existed its key."""
    if stored_key(folder) is None:
        record(folder, content_key(cfg, spec), spec.name, cfg.epochs)


def reuse_identical(cfg: Config, spec: StageSpec, out_dir: Path, writer: bool = True) -> bool:
    """If a finished stage identical to ``spec`` with ``cfg`` (already configured) exists,
    copy it into ``out_dir`` (on the writing process) and say so; else ``False``."""
    key = content_key(cfg, spec)
    source = find_identical(cfg, spec, key)
    if source is None:
        return False
    if writer:
        adopt(source, out_dir, cfg, key, spec.name)
        if cfg.progress:
            print(f"{spec.name} {cfg.dataset} {cfg.acc}: identical to {source.name}, reused (not retrained)")
    return True
