"""One table of what the notebooks train (``kdmri.training.plan.NOTEBOOK_STAGES``): for every
params file, the reuse plan (``planned_stages``), the cost estimate of ``batch --plan``
(``kdmri.tools.costs.estimate`` over the batch's jobs) and the runner's grids
(``kdmri.runs.run_sft_comparison``, ``run_ablations``, what notebooks 05 and 07 call) name the
same experiment folders. Nothing trains: what the runner would train is recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

import kdmri.runs as runs
from kdmri.config import load_config
from kdmri.data.sr_settings import sr_enabled
from kdmri.notebook_knobs import NOTEBOOK_DEFAULTS, resolve_knobs
from kdmri.paths import params_dir
from kdmri.tools import costs
from kdmri.tools.batch import plan
from kdmri.training.plan import planned_stages
from kdmri.training.stages import get_stage

PARAMS = sorted(params_dir().glob("*.yaml"))


def _knobs(params_file: Path) -> dict:
    values, _ = resolve_knobs(params_file, dict.fromkeys(NOTEBOOK_DEFAULTS))
    return dict(zip(NOTEBOOK_DEFAULTS, values))


def _folder(cfg, stage: str) -> str:
    spec = get_stage(stage)
    return spec.experiment(spec.configure(cfg)).name


def _runner_folders(cfg, knobs: dict, monkeypatch) -> set[str]:
    """What notebooks 03-07 train: their own cells' stages and the runner's grids."""
    trained: list[str] = []
    monkeypatch.setattr(runs, "train", lambda c, s: trained.append(_folder(c, s)))
    monkeypatch.setattr(runs, "evaluate", lambda *a, **k: None)
    monkeypatch.setattr(runs, "train_then_evaluate", lambda c, stages, **k: trained.extend(
        _folder(c, s) for s in ((stages,) if isinstance(stages, str) else stages)))
    monkeypatch.setattr(runs, "sft_summary", lambda *a, **k: None)
    monkeypatch.setattr(runs, "ablation_summary", lambda *a, **k: None)
    kd = cfg.replace(epochs=knobs["kd_epochs"]) if knobs.get("kd_epochs") else cfg
    cells = [(cfg, s) for s in ("teacher", "student", "feature", "kd", "sft-teacher")]
    runs.run_sft_comparison(kd, knobs.get("feature_losses") or ["at_kdmri"])
    runs.run_ablations(kd, knobs.get("ablations") or [])
    if sr_enabled(cfg):
        from kdmri.tutorial import sr_run_config  # what notebook 06 calls

        sr = sr_run_config(cfg, knobs.get("sr_epochs"), knobs.get("sr_max_train_slices"),
                           knobs.get("sr_batch_size"))
        cells += [(sr, f"sr-{s}") for s in ("teacher", "student", "feature", "kd")]
    return {_folder(c, s) for c, s in cells} | set(trained)


@pytest.mark.parametrize("params_file", PARAMS, ids=lambda p: p.stem)
def test_plan_costs_and_runner_name_the_same_stages(params_file, tmp_path, monkeypatch):
    cfg, knobs = load_config(params_file), _knobs(params_file)
    planned = [folder for folder, _, _ in planned_stages(cfg, knobs)]
    assert len(planned) == len(set(planned))
    jobs = plan([params_file], out=tmp_path / "runs")
    estimates, _ = costs.estimate(jobs, "cpu", calibration_ms=200.0)
    costed = [sc.experiment.name for job in estimates for sc in job.stages]
    assert set(costed) == set(planned), (sorted(set(costed) ^ set(planned)))
    ran = _runner_folders(cfg, knobs, monkeypatch)
    assert ran == set(planned), sorted(ran ^ set(planned))
    if cfg.sft_protocol == "reference":  # what the plans used to leave out
        assert {"sft_student", "kdmri_student"} <= set(planned)
        assert any(f.startswith("sft-mix") or "mix" in f for f in planned), planned
