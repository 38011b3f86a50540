"""Super-resolution on random patches (``sr_patch``): the patches, their epochs, resume and
the cached teacher outputs."""

from __future__ import annotations

import pytest
import torch

from kdmri.checkpoint import LAST, load_checkpoint
from kdmri.config import ConfigError
from kdmri.data.views import RandomPatches, crop_like
from kdmri.models.tasks import SR
from kdmri.training.engine import StageRunner, train
from kdmri.training.stages import get_stage
from kdmri.training.strategy import default_strategy


def _sr_cfg(tiny_cfg, **kw):
    return tiny_cfg.replace(sr_keep=8, sr_patch=16, **kw)


def test_patches_are_windows_of_the_slices_and_change_with_the_epoch(tiny_cfg):
    cfg = _sr_cfg(tiny_cfg)
    full = SR.dataset(cfg.replace(sr_patch=None), "train")
    ds = SR.dataset(cfg, "train")
    assert isinstance(ds, RandomPatches) and len(ds) == len(full) == 6
    corners = {}
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item, whole = ds[i], full[i]
            top, left = (int(v) for v in item["crop"])
            assert item["input"].shape == item["target"].shape == (1, 16, 16)
            assert 0 <= top <= 32 - 16 and 0 <= left <= 24 - 16
            for key in ("input", "target"):
                assert torch.equal(item[key], whole[key][:, top:top + 16, left:left + 16])
            assert item["index"] == i
            corners[epoch, i] = (top, left)
    assert [corners[0, i] for i in range(6)] != [corners[1, i] for i in range(6)]
    # the patch depends on (seed, epoch, item) alone: a fresh view draws the same ones
    again = SR.dataset(cfg, "train")
    again.set_epoch(1)
    assert all(tuple(int(v) for v in again[i]["crop"]) == corners[1, i] for i in range(6))
    assert SR.dataset(cfg, "validation")[0]["target"].shape == (1, 32, 24)  # whole slices


def test_patch_size_is_checked(tiny_cfg):
    with pytest.raises(ConfigError, match=r"train: sr_patch=40: larger than the 32 x 24 slices"):
        SR.dataset(_sr_cfg(tiny_cfg).replace(sr_patch=40), "train")
    with pytest.raises(ConfigError, match="sr_patch=0"):
        tiny_cfg.replace(sr_patch=0)


def test_cached_teacher_outputs_are_cropped_like_the_patches(tiny_cfg):
    cfg = _sr_cfg(tiny_cfg, epochs=1)
    train(cfg, "sr-teacher")
    spec = get_stage("sr-kd")
    runner = StageRunner(spec, spec.configure(cfg.replace(kd_init="scratch")), default_strategy(cfg))
    ds = SR.dataset(cfg, "train")
    ds.set_epoch(3)
    model = runner.build_model()
    runner.setup(model, ds)
    assert runner.cache is not None and runner.cache.shape[-2:] == (32, 24)  # whole slices
    batch = torch.utils.data.default_collate([ds[i] for i in (4, 1)])
    got = runner._teacher_fn(batch)()
    with torch.no_grad():
        whole = torch.stack([runner.teacher(SR.dataset(cfg.replace(sr_patch=None), "train")[i]["input"][None],
                                            return_features=False).image[0] for i in (4, 1)])
    want = crop_like(whole, batch["crop"], 16)
    assert got.shape == (2, 1, 16, 16)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_a_killed_patch_run_resumes_exactly(tiny_cfg, monkeypatch):
    epochs_seen = []
    original = RandomPatches.set_epoch
    monkeypatch.setattr(RandomPatches, "set_epoch",
                        lambda self, e: (epochs_seen.append(e), original(self, e))[1])
    cfg = _sr_cfg(tiny_cfg, epochs=3)
    whole = train(cfg.replace(experiments_root=str(tiny_cfg.experiments_path / "a")), "sr-student")
    assert epochs_seen == [0, 1, 2]  # the loop asks for each epoch's patches
    killed = cfg.replace(experiments_root=str(tiny_cfg.experiments_path / "b"))
    train(killed, "sr-student", stop_after=1)
    assert load_checkpoint(killed.replace(method="sr-keep8").experiment("student") / LAST)["epoch"] == 1
    epochs_seen.clear()
    resumed = train(killed, "sr-student")
    assert epochs_seen == [1, 2]
    a, b = load_checkpoint(whole / LAST), load_checkpoint(resumed / LAST)
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]
    # and the patches did change the run: whole slices give another first epoch
    other = train(cfg.replace(sr_patch=None, experiments_root=str(tiny_cfg.experiments_path / "c")),
                  "sr-student")
    assert load_checkpoint(other / LAST)["history"][0]["train_loss"] != a["history"][0]["train_loss"]


def test_sr_run_config_scales_the_step_schedule(tiny_cfg):
    from kdmri.data.sr_settings import sr_run_config

    cfg = tiny_cfg.replace(epochs=20, lr_step=15, batch_size=4, sr_keep=8)
    run = sr_run_config(cfg, 40, None, 16)
    assert (run.method, run.epochs, run.lr_step, run.batch_size) == ("sr-keep8", 40, 30, 16)
    same = sr_run_config(cfg)
    assert (same.epochs, same.lr_step, same.batch_size) == (20, 15, 4)


def test_candidates_parse_and_clear_errors():
    from kdmri.tools.srselect import Candidate

    assert Candidate.parse("patch=32,epochs=54,batch=16") == Candidate(32, 54, 16)
    assert Candidate.parse("patch=none,epochs=6") == Candidate(None, 6, 4)
    assert Candidate(None, 6, 4).label == "whole-e6-b4" and Candidate(48, 24, 8).label == "p48-e24-b8"
    for bad in ("patch=32", "patch=x,epochs=3", "size=3,epochs=2"):
        with pytest.raises(ConfigError, match="expected patch=<N|none>"):
            Candidate.parse(bad)


def test_the_choice_holds_out_training_volumes_and_never_reads_validation(tiny_cfg, tmp_path):
    from kdmri.data import list_volumes, write_volume
    from kdmri.errors import DataError
    from kdmri.tools.srselect import Candidate, choose, run_candidate, split_training

    with pytest.raises(DataError, match="2 training volume"):  # the fixture has two
        split_training(tiny_cfg, tmp_path / "split0")
    from conftest import smooth_volume

    from kdmri.physics.masks import cartesian_mask

    for i in (3, 4):
        write_volume(tiny_cfg.train_dir / f"t{i}.h5", smooth_volume((32, 24, 3), i),
                     {4: cartesian_mask((32, 24), 4, seed=4)})
    root = split_training(tiny_cfg, tmp_path / "split")
    fit, held = (sorted(p.name for p in list_volumes(root / s)) for s in ("train", "validation"))
    assert held == ["t3.h5"] and fit == ["t1.h5", "t2.h5", "t4.h5"]  # every third, by name
    validation = {p.name for p in list_volumes(tiny_cfg.val_dir)}
    assert not validation & set(fit + held)
    row = run_candidate(tiny_cfg.replace(sr_keep=8), Candidate(16, 1, 2), root, tmp_path / "exp")
    assert row["candidate"] == "p16-e1-b2" and row["teacher_holdout_psnr"] > 0
    assert row["margin"] == pytest.approx(row["teacher_holdout_psnr"] - row["student_holdout_psnr"])
    report = tmp_path / "exp" / "tiny" / "acc_4x" / "sr-select-p16-e1-b2_teacher" / "report.json"
    import json

    saved = json.loads(report.read_text())
    assert saved["n_slices"] == 3 and saved["config"]["data_root"] == str(root)  # t3's slices
    assert choose([{"teacher_holdout_psnr": 20.0, "c": 1}, {"teacher_holdout_psnr": 21.0, "c": 2}])["c"] == 2


def test_kd_variants_and_their_control_on_the_split(tiny_cfg, tmp_path):
    from conftest import smooth_volume

    from kdmri.data import write_volume
    from kdmri.physics.masks import cartesian_mask
    from kdmri.tools.srselect import (
        KD_VARIANTS,
        Candidate,
        kd_markdown,
        run_candidate,
        run_kd_variants,
        split_training,
    )

    write_volume(tiny_cfg.train_dir / "t3.h5", smooth_volume((32, 24, 3), 3),
                 {4: cartesian_mask((32, 24), 4, seed=4)})
    root = split_training(tiny_cfg, tmp_path / "split")
    cfg, cand = tiny_cfg.replace(sr_keep=8), Candidate(16, 1, 2)
    run_candidate(cfg, cand, root, tmp_path / "exp")
    rows = run_kd_variants(cfg, cand, root, tmp_path / "exp")
    variants, control = rows[:-1], rows[-1]
    assert [r["weight"] for r in variants] == list(KD_VARIANTS.values()) == [0.0, 1.0]
    assert control["control"] and control["epochs"] == 2  # the feature + KD stages' target epochs
    acc = tmp_path / "exp" / "tiny" / "acc_4x"
    assert (acc / "sr-select-p16-e1-b2-x2_student" / "report.json").is_file()
    # each variant's feature stage trained with its own weight, from the candidate's teacher
    import yaml

    for w in ("0", "1"):
        saved = yaml.safe_load((acc / f"sr-select-p16-e1-b2-ftw{w}_feature" / "config.yaml").read_text())
        assert saved["sr_feature_target_weight"] == float(w)
        assert saved["teacher_method"] == "sr-select-p16-e1-b2"
    text = kd_markdown(rows, cand.label)
    assert "| KD - student (2 epochs) |" in text and text.count("**(chosen)**") == 1


def test_resume_checks_only_the_settings_a_stage_uses(tiny_cfg):
    cfg = tiny_cfg.replace(epochs=2, sr_keep=8)
    train(cfg, "teacher", stop_after=1)
    # an SR setting changed in the params file: the reconstruction teacher resumes
    assert load_checkpoint(train(cfg.replace(sr_patch=16, sr_feature_target_weight=1.0), "teacher")
                           / LAST)["epoch"] == 2
    train(cfg, "sr-student", stop_after=1)
    with pytest.raises(ConfigError, match=r"sr_patch: None -> 16"):  # the SR student does not
        train(cfg.replace(sr_patch=16), "sr-student")
    with pytest.raises(ConfigError, match="lr"):  # nor does anything with another learning rate
        train(cfg.replace(lr=0.5, sr_patch=None), "sr-student")


def test_the_split_uses_project_relative_paths_and_relinks_moved_data(tiny_cfg, monkeypatch, tmp_path):
    """A checkout moved or cloned elsewhere resumes the same sr-select runs: their configs
    hold paths relative to the project root, and links into a moved dataset are renewed."""
    from conftest import smooth_volume

    from kdmri.data import write_volume
    from kdmri.physics.masks import cartesian_mask
    from kdmri.tools.srselect import Candidate, candidate_config, split_training

    monkeypatch.setenv("KDMRI_HOME", str(tmp_path))
    write_volume(tiny_cfg.train_dir / "t3.h5", smooth_volume((32, 24, 3), 3),
                 {4: cartesian_mask((32, 24), 4, seed=4)})
    root = split_training(tiny_cfg, tmp_path / "split")
    run = candidate_config(tiny_cfg, Candidate(16, 1, 2), root, tmp_path / "exp")
    assert (run.data_root, run.experiments_root) == ("split", "exp")
    assert run.train_dir == root / "train"
    # the training data move: the now dangling links are renewed, not left or copied over
    (tmp_path / "data2").mkdir()
    tiny_cfg.train_dir.rename(tmp_path / "data2" / "train")
    assert not (root / "train" / "t1.h5").exists()
    split_training(tiny_cfg.replace(data_root=str(tmp_path / "data2")), root)
    link = root / "train" / "t1.h5"
    assert link.is_symlink() and link.resolve() == (tmp_path / "data2" / "train" / "t1.h5").resolve()


def test_the_split_is_rebuilt_when_the_training_set_changes(tiny_cfg, tmp_path):
    """5 training volumes, then a 6th that sorts first: the held-out volumes change, and no
    volume is left in both splits; stale links go, the data they pointed to stays, and a
    real file that no longer belongs is refused, not deleted."""
    from conftest import smooth_volume

    from kdmri.data import list_volumes, write_volume
    from kdmri.errors import DataError
    from kdmri.physics.masks import cartesian_mask
    from kdmri.tools.srselect import split_training

    def add(name, seed):
        write_volume(tiny_cfg.train_dir / name, smooth_volume((32, 24, 3), seed),
                     {4: cartesian_mask((32, 24), 4, seed=4)})

    def split(root):
        return [sorted(p.name for p in list_volumes(root / s)) for s in ("train", "validation")]

    for i in (3, 4, 5):
        add(f"t{i}.h5", i)
    root = split_training(tiny_cfg, tmp_path / "split")
    assert split(root) == [["t1.h5", "t2.h5", "t4.h5", "t5.h5"], ["t3.h5"]]
    add("t0.h5", 0)
    split_training(tiny_cfg, root)
    fit, held = split(root)
    assert fit == ["t0.h5", "t1.h5", "t3.h5", "t4.h5"] and held == ["t2.h5", "t5.h5"]
    assert sorted(p.name for p in (root / "train").iterdir()) == fit  # no stale entry left
    assert [p.name for p in list_volumes(tiny_cfg.train_dir)] == [f"t{i}.h5" for i in range(6)]
    stray = root / "validation" / "t9.h5"
    stray.write_bytes(b"not ours")
    with pytest.raises(DataError, match="t9.h5"):
        split_training(tiny_cfg, root)
    assert stray.read_bytes() == b"not ours"
