"""Which stages of a params file's notebooks are identical to another one and will be reused
(:mod:`kdmri.training.identity`), known before anything trains: the batch plan shows them.

The stages are those notebooks 03-07 train (:data:`NOTEBOOK_STAGES`, the one table of them):
the base stages at ``epochs``; the SFT comparison (05) and the ablations (07) at
``kd_epochs``; the SR stages (06) where the papers ran them, with the SR run settings. A
dependency's key is the key of the stage that trains it in this plan (the teachers at
``epochs``), so the plan needs no trained checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from kdmri.config import Config, load_config, notebook_parameters
from kdmri.data.sr_settings import sr_enabled, sr_run_config
from kdmri.training.identity import content_key
from kdmri.training.recipes import ABLATIONS, sft_crossed_config, sft_method_configs, variant_config
from kdmri.training.stages import SFT_METHOD, StageSpec, get_stage


def _planned_dependency(base: Config):
    def dependency(cfg: Config, spec: StageSpec, kind: str) -> str | None:
        prefix = spec.task_obj.stage_prefix
        if kind == "sft" or (kind == "teacher" and cfg.teacher_method == SFT_METHOD):
            return content_key(base, "sft-teacher", dependency)
        if kind == "teacher":
            return content_key(base.replace(method=cfg.teacher_method or cfg.method), prefix + "teacher",
                               dependency)
        feature = "sft-feature" if spec.name.startswith("sft-") else prefix + "feature"
        return content_key(cfg, feature, dependency)

    return dependency


def _kd_cfg(cfg: Config, p: Mapping) -> Config:
    return cfg if p.get("kd_epochs") is None else cfg.replace(epochs=p["kd_epochs"])


def _fixed(*stages: str) -> Callable:
    return lambda cfg, p: [(cfg, s) for s in stages]


def sft_arms(kd: Config, feature_losses: Sequence[str]) -> list[tuple[Config, str]]:
    """What :func:`kdmri.runs.run_sft_comparison` trains after the two teachers, in order:
    under ``sft_protocol: reference`` the two starting students (plain, ``sft-student``),
    then per feature loss the standard arm, the SFT arm and (reference) the crossed arm."""
    reference = kd.sft_protocol == "reference"
    out: list[tuple[Config, str]] = []
    if reference:
        out += [(kd.replace(method=kd.teacher_method or kd.method), "student"), (kd, "sft-student")]
    for loss in feature_losses:
        std, sft = sft_method_configs(kd, loss)
        out += [(std, "feature"), (std, "kd"), (sft, "sft-feature"), (sft, "sft-kd")]
        if reference:
            out += [(sft_crossed_config(kd, loss), s) for s in ("feature", "kd")]
    return out


def ablation_stages(kd: Config, names: Sequence[str], baseline: str = "neither"
                    ) -> list[tuple[Config, str]]:
    """What :func:`kdmri.runs.run_ablations` trains: ``baseline`` and every ablation in
    ``names``, each its variant's stages, in order (the teacher must exist)."""
    return [(variant_config(kd, name), stage) for name in dict.fromkeys([baseline, *names])
            for stage in ABLATIONS[name].stages]


def _sft_grid(cfg: Config, p: Mapping) -> list[tuple[Config, str]]:
    return [(cfg, "teacher"), (cfg, "sft-teacher"),
            *sft_arms(_kd_cfg(cfg, p), p.get("feature_losses") or ["at_kdmri"])]


def _super_resolution(cfg: Config, p: Mapping) -> list[tuple[Config, str]]:
    if not sr_enabled(cfg):
        return []
    sr = sr_run_config(cfg, p.get("sr_epochs"), p.get("sr_max_train_slices"), p.get("sr_batch_size"))
    return [(sr, s) for s in ("sr-teacher", "sr-student", "sr-feature", "sr-kd")]


def _ablations(cfg: Config, p: Mapping) -> list[tuple[Config, str]]:
    return [(cfg, "teacher"), *ablation_stages(_kd_cfg(cfg, p), p.get("ablations") or [])]


#: The one table of what each notebook trains: notebook stem -> ``stages(cfg, notebook
#: parameters) -> [(config, stage), ...]``. The notebooks' grids run it (:mod:`kdmri.runs`:
#: :func:`sft_arms`, :func:`ablation_stages`), the reuse plan (:func:`planned_stages`) and the
#: cost estimate (:mod:`kdmri.tools.costs`) read it; ``tests/test_plan_agrees.py`` checks
#: that they agree for every params file.
NOTEBOOK_STAGES: dict[str, Callable[[Config, Mapping], list[tuple[Config, str]]]] = {
    "03_teacher_student": _fixed("teacher", "student"),
    "04_kd_mri": _fixed("teacher", "student", "feature", "kd"),
    "05_sft_kd": _sft_grid,
    "06_super_resolution": _super_resolution,
    "07_ablations": _ablations,
}


def planned_stages(cfg: Config, knobs: Mapping | None = None) -> list[tuple[str, str, Config]]:
    """``[(experiment folder name, stage, config)]`` the notebooks train for ``cfg`` and the
    notebook-only ``knobs`` (``kd_epochs``, ``ablations``, ``feature_losses``, ``sr_*``), in
    notebook order, each folder once (:data:`NOTEBOOK_STAGES`)."""
    knobs = knobs or {}
    out, seen = [], set()
    for stages in NOTEBOOK_STAGES.values():
        for c, s in stages(cfg, knobs):
            spec = get_stage(s)
            folder = spec.experiment(spec.configure(c)).name
            if folder not in seen:
                seen.add(folder)
                out.append((folder, s, c))
    return out


def reused_stages(params_file: str | Path, overrides: dict | None = None) -> list[str]:
    """One line per stage of ``params_file``'s notebooks identical to an earlier one in the
    plan (``abl-neither_student = kdmri_student (student)``): trained once, reused after."""
    cfg = load_config(params_file, overrides)
    dependency = _planned_dependency(cfg)
    first: dict[str, str] = {}
    lines = []
    for folder, stage, c in planned_stages(cfg, notebook_parameters(params_file)):
        key = content_key(c, stage, dependency)
        if key in first and first[key] != folder:
            lines.append(f"{folder} = {first[key]} ({stage})")
        first.setdefault(key, folder)
    return lines
