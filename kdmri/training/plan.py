"""Which stages of a params file's notebooks are identical to another one and will be reused
(:mod:`kdmri.training.identity`), known before anything trains: the batch plan shows them.

The stages are those notebooks 03-07 train: the base stages at ``epochs``; the SFT
comparison (05) and the ablations (07) at ``kd_epochs``; the SR stages (06) where the papers
ran them. A dependency's key is the key of the stage that trains it in this plan (the
teachers at ``epochs``), so the plan needs no trained checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from kdmri.config import Config, load_config, notebook_parameters
from kdmri.data.sr_settings import sr_enabled
from kdmri.training.identity import content_key
from kdmri.training.recipes import ABLATIONS, sft_method_configs, variant_config
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


def planned_stages(cfg: Config, knobs: dict | None = None) -> list[tuple[str, str, Config]]:
    """``[(experiment folder name, stage, config)]`` the notebooks train for ``cfg`` and the
    notebook-only ``knobs`` (``kd_epochs``, ``ablations``, ``feature_losses``), in order."""
    knobs = knobs or {}
    kd_cfg = cfg.replace(epochs=knobs["kd_epochs"]) if knobs.get("kd_epochs") else cfg
    runs: list[tuple[Config, str]] = [(cfg, s) for s in ("teacher", "student", "feature", "kd")]
    runs.append((cfg, "sft-teacher"))
    for loss in knobs.get("feature_losses") or ():
        std, sft = sft_method_configs(kd_cfg, loss)
        runs += [(std, "feature"), (std, "kd"), (sft, "sft-feature"), (sft, "sft-kd")]
    for name in knobs.get("ablations") or ():
        runs += [(variant_config(kd_cfg, name), s) for s in ABLATIONS[name].stages]
    if sr_enabled(cfg):
        runs += [(cfg, f"sr-{s}") for s in ("teacher", "student", "feature", "kd")]
    return [(get_stage(s).experiment(get_stage(s).configure(c)).name, s, c) for c, s in runs]


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
