"""One tiny end-to-end super-resolution run through the shared training loop."""

import json

from kdmri.checkpoint import BEST, load_model
from kdmri.evaluation.evaluate import evaluate
from kdmri.training.engine import train


def test_sr_pipeline_end_to_end(tiny_cfg):
    cfg = tiny_cfg.replace(epochs=1, sr_keep=8, max_train_slices=4)
    for stage in ("sr-teacher", "sr-student", "sr-feature", "sr-kd"):
        out = train(cfg, stage)
        assert out.parent.name == "acc_4x" and out.name == f"sr-keep8_{stage[3:]}"
    model, ckpt = load_model(cfg.replace(method="sr-keep8").experiment("teacher") / BEST)
    assert ckpt["arch"]["kind"] == "vdsr" and ckpt["arch"]["n_layers"] == 11
    lr = evaluate(cfg, "sr-lr")
    kd = evaluate(cfg, "sr-kd")
    assert lr["label"] == "LR" and lr["parameters"] == 0
    assert kd["parameters"] == 185_857 and kd["n_slices"] == 2
    saved = json.loads((cfg.replace(method="sr-keep8").experiment("kd") / "report.json").read_text())
    assert saved["task"] == "sr" and saved["config"]["sr_keep"] == 8


def test_sr_runs_only_where_the_papers_ran_it(tmp_path):
    import pytest

    from kdmri.config import ConfigError, load_config
    from kdmri.data.sr_settings import sr_enabled, sr_status

    assert sr_enabled(load_config("calgary_4x")) and sr_enabled(load_config("demo_4x"))
    for name in ("knee_4x", "calgary_5x", "cardiac_8x", "mrbrain_5x", "demo_8x"):
        cfg = load_config(name)
        assert not sr_enabled(cfg) and "not run" in sr_status(cfg)
    # the SR folders encode the setting: calgary and the demo never share one
    from kdmri.models.tasks import SR
    from kdmri.training.stages import get_stage

    sr_cfg = get_stage("sr-kd").configure(load_config("calgary_4x"))
    assert sr_cfg.experiment("kd").name == "sr-keep64_kd"
    assert SR.method_for(load_config("demo_4x")) == "sr-keep24"
    bad = tmp_path / "knee_sr.yaml"
    bad.write_text("dataset: knee\nsr_keep: 64\n")
    with pytest.raises(ConfigError, match=r"knee_sr.yaml: sr_keep=64 for dataset 'knee'"):
        load_config(bad)


def test_the_plan_of_every_params_file(tmp_path):
    """`batch --plan --params params/*.yaml`: it plans (no colliding run or experiment folder),
    super-resolution only for calgary and the demo at 4x, and the grids reuse identical stages."""
    from kdmri.paths import params_dir
    from kdmri.tools.batch import plan
    from kdmri.training.plan import reused_stages

    files = sorted(params_dir().glob("*.yaml"))
    jobs = plan(files, out=tmp_path / "runs")
    sr = sorted({(j.cfg.dataset, j.cfg.acc) for j in jobs if j.notebook.name.startswith("06_")})
    assert sr == [("calgary", "4x"), ("demo", "4x")]
    assert len({j.output for j in jobs}) == len(jobs)
    reused = reused_stages(params_dir() / "cardiac_4x.yaml")
    assert "abl-neither_student = kdmri_student (student)" in reused
    assert "abl-both_kd = kdmri_kd (kd)" in reused  # the ablation "both" is KD-MRI itself
