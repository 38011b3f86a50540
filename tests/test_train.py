import json
import shutil

import pytest
import torch

from kdmri import checkpoint
from kdmri.checkpoint import BEST, LAST, load_checkpoint, load_model
from kdmri.config import ConfigError, load_config
from kdmri.distill.losses import FEATURE_LOSSES
from kdmri.errors import DataError
from kdmri.evaluation.evaluate import evaluate
from kdmri.tools.cli import main
from kdmri.training.engine import train


def _weights(path):
    return load_checkpoint(path)["model"]


def test_resume_after_kill_equals_uninterrupted(tiny_cfg):
    cfg_a = tiny_cfg.replace(epochs=3, method="a")
    cfg_b = tiny_cfg.replace(epochs=3, method="b")
    train(cfg_a, "student")
    killed = train(cfg_b, "student", stop_after=1)
    assert load_checkpoint(killed / LAST)["epoch"] == 1
    train(cfg_b, "student")  # resumes at epoch 2
    wa, wb = _weights(cfg_a.experiment("student") / LAST), _weights(cfg_b.experiment("student") / LAST)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    ra, rb = evaluate(cfg_a, "student"), evaluate(cfg_b, "student")
    assert ra["metrics"] == rb["metrics"] and ra["train"] == rb["train"]
    log = (cfg_b.experiment("student") / "train_log.csv").read_text().splitlines()
    assert len(log) == 4 and log[0].startswith("epoch,")


def test_same_seed_same_report(tiny_cfg):
    out = train(tiny_cfg, "teacher")
    first = (out / "report.json")
    evaluate(tiny_cfg, "teacher")
    text = first.read_text()
    shutil.rmtree(out)
    train(tiny_cfg, "teacher")
    evaluate(tiny_cfg, "teacher")
    assert first.read_text() == text
    # a different seed changes the result
    other = tiny_cfg.replace(seed=7, method="seed7")
    train(other, "teacher")
    assert evaluate(other, "teacher")["metrics"] != json.loads(text)["metrics"]


def test_crash_mid_write_keeps_previous_checkpoint(tiny_cfg, monkeypatch):
    out = train(tiny_cfg.replace(epochs=1), "student")
    before = _weights(out / BEST)
    real_save = torch.save

    def broken_save(obj, fh, *a, **k):
        fh.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.atomic_save({"model": {}}, out / BEST)
    monkeypatch.setattr(checkpoint.torch, "save", real_save)
    after = _weights(out / BEST)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not list(out.glob("*.tmp"))
    model, ckpt = load_model(out / BEST)
    assert ckpt["arch"]["kind"] == "dccnn" and ckpt["arch"]["n_convs"] == 3


def test_kdmri_stages_and_teacher_cache(tiny_cfg):
    cfg = tiny_cfg.replace(epochs=1)
    for stage in ("teacher", "feature", "kd"):
        train(cfg, stage)
    kd = load_checkpoint(cfg.experiment("kd") / LAST)
    assert set(kd["history"][0]) >= {"train_l1", "train_imitation", "val_loss"}
    feat = load_checkpoint(cfg.experiment("feature") / LAST)
    assert "train_feature" in feat["history"][0]
    # the cached teacher outputs equal a fresh teacher forward pass
    from kdmri.training.engine import StageRunner
    from kdmri.training.stages import get_stage
    from kdmri.training.strategy import SingleProcess

    stage = StageRunner(get_stage("kd"), cfg, SingleProcess())
    ds = stage.task.dataset(stage.cfg, "train")
    model = stage.build_model()
    stage.setup(model, ds)
    assert stage.cache is not None and stage.cache.shape[0] == len(ds)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    with torch.no_grad():
        fresh = stage.teacher(batch["input"], batch["kspace"], batch["mask"]).image
    assert torch.allclose(stage._teacher_fn(batch)(False), fresh, atol=1e-6)
    # kd was initialised from the feature stage, not from scratch
    scratch = cfg.replace(kd_init="scratch", method="scratch")
    with pytest.raises(DataError, match="best_model.pt"):
        train(scratch, "kd")  # no teacher trained under method 'scratch'
    train(scratch.replace(teacher_method="kdmri"), "kd")


@pytest.mark.parametrize("name", sorted(FEATURE_LOSSES))
def test_every_feature_loss_trains(tiny_cfg, name):
    cfg = tiny_cfg.replace(epochs=1, max_train_slices=2, feature_loss=name)
    train(cfg, "teacher")
    out = train(cfg, "feature")
    ckpt = load_checkpoint(out / LAST)
    hist = ckpt["history"]
    assert hist[0]["train_feature"] >= 0 and torch.isfinite(torch.tensor(hist[0]["val_loss"]))
    # the feature loss trained the student: its weights moved away from their (seeded) start
    from kdmri.config import seed_everything
    from kdmri.models.dccnn import build_dccnn

    seed_everything(cfg.seed)
    start = build_dccnn("student").state_dict()
    moved = [k for k in start if not torch.equal(start[k], ckpt["model"][k])]
    assert len(moved) >= len(start) // 2, f"{name}: only {moved} changed"


def test_evaluate_outputs_and_baseline(tiny_cfg):
    import h5py
    import numpy as np

    from kdmri.metrics import psnr

    rep = evaluate(tiny_cfg, "zf")
    out = tiny_cfg.experiment("zf")
    assert rep["n_slices"] == 2 and rep["parameters"] == 0 and rep["label"] == "ZF"
    with h5py.File(out / "results" / "v1.h5") as fh, \
            h5py.File(tiny_cfg.val_dir / "v1.h5") as src:
        assert fh["reconstruction"].shape == (32, 24, 2)
        np.testing.assert_allclose(fh["reconstruction"][()], src["img_volus_4x"][()], atol=1e-6)
        expected = np.mean([psnr(src["volfs"][:, :, s], src["img_volus_4x"][:, :, s])
                            for s in range(2)])
    assert rep["metrics"]["psnr"]["mean"] == pytest.approx(expected)
    lines = (out / "metrics.csv").read_text().splitlines()
    assert lines[0] == "volume,slice,psnr,ssim,nmse,hfn" and len(lines) == 3
    assert rep["versions"]["torch"] == torch.__version__ and "git_commit" in rep


def test_cli_train_evaluate_and_errors(tiny_cfg, tmp_path, capsys):
    common = ["--data-root", tiny_cfg.data_root, "--experiments-root", str(tmp_path / "cli"),
              "--dataset", "tiny", "--epochs", "1", "--no-progress", "--set", "batch_size=3"]
    assert main(["train", "--stage", "student", *common]) == 0
    assert main(["evaluate", "--stage", "student", *common]) == 0
    assert "PSNR" in capsys.readouterr().out
    assert (tmp_path / "cli" / "tiny" / "acc_4x" / "kdmri_student" / "report.json").is_file()
    assert main(["train", "--stage", "professor", *common]) == 2
    assert "stage 'professor'" in capsys.readouterr().err
    assert main(["train", "--stage", "student", *common, "--set", "epochz=3"]) == 2
    assert "unknown parameter(s) ['epochz']" in capsys.readouterr().err
    assert main(["evaluate", "--stage", "kd", *common]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_params_files_load():
    cfg = load_config("demo_4x")
    assert cfg.dataset == "demo" and cfg.acc == "4x"
    with pytest.raises(ConfigError, match="not found"):
        load_config("no_such_params")
    with pytest.raises(ConfigError, match="at_mode"):
        load_config(None, {"at_mode": "channel"})


def test_resume_refuses_changed_settings(tiny_cfg):
    train(tiny_cfg.replace(epochs=1), "student")
    with pytest.raises(ConfigError, match=r"lr: 0.001 -> 0.01"):
        train(tiny_cfg.replace(lr=0.01), "student")
    train(tiny_cfg.replace(lr=0.01, resume=False), "student")  # restart is allowed
    train(tiny_cfg.replace(lr=0.01, epochs=3), "student")  # more epochs: resumes
    assert load_checkpoint(tiny_cfg.experiment("student") / LAST)["epoch"] == 3
