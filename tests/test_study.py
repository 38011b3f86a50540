"""The study (kdmri.training.study, kdmri.tools.study, kdmri.reporting.study) and the
domain-shift test set (kdmri.datasets.shift)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kdmri.data import write_volume
from kdmri.errors import ConfigError
from kdmri.physics.masks import cartesian_mask
from kdmri.training import study as protocol
from kdmri.training.study import Settings


def test_converged_epoch_fires_when_the_window_gains_less_than_delta():
    rising = [30 + 0.1 * e for e in range(30)]  # +1 dB per 10 epochs: never converged
    assert protocol.converged_epoch(rising, 10, 0.05) is None
    flat_after_12 = [30 + 0.1 * min(e, 12) for e in range(30)]
    # best at epoch e (1-based) is 30 + 0.1 * min(e - 1, 12); the gain over 10 epochs
    # drops below 0.05 dB first at e = 23 (epochs 13..23 add nothing)
    assert protocol.converged_epoch(flat_after_12, 10, 0.05) == 23
    assert protocol.converged_epoch([1.0, 0.5, 0.4], 1, 0.05) == 2  # a worse epoch counts as no gain
    assert protocol.schedule(30) == (40, 30) and protocol.scaled(40) == (40, 30)


def test_objective_score_is_the_loss_in_db():
    assert protocol.score({"val_loss": 0.01, "val_psnr": 1.0}, True) == pytest.approx(20.0)
    assert protocol.score({"val_loss": 0.01, "val_psnr": 31.5}, False) == 31.5


def test_units_cover_the_protocol_with_equal_compute_controls():
    units = {u.name: u for u in protocol.study_units(Settings(), {k: 12 for k in protocol.CAPS})}
    cores = [n for n in units if n.endswith("-core")]
    assert sorted(n for n in cores if "-4x-" in n) == [f"seed{s}-4x-core" for s in range(42, 47)]
    assert sum("-5x-" in n for n in cores) == sum("-8x-" in n for n in cores) == 3
    for family in ("ablation", "sft", "sr"):
        found = sorted(n for n in units if n.endswith(family) and n.startswith("seed"))
        assert found == [f"seed{s}-4x-{family}" for s in (42, 43, 44)]
    core = {(r.changes.get("method", "kdmri"), r.stage): r for r in units["seed42-4x-core"].runs}
    assert core[("ctl", "student")].epochs == core[("kdmri", "feature")].epochs + core[("kdmri", "kd")].epochs
    sft = {(r.changes.get("method", ""), r.stage): r for r in units["seed42-4x-sft"].runs}
    plain = [core[("kdmri", s)].epochs for s in ("student", "feature", "kd")]
    assert sft[("ctl-sft", "student")].epochs == sum(plain)
    for unit in units.values():
        assert all(n in units for n in unit.needs)


def _volume(rng, n, k, size=(24, 24)):
    yy, xx = np.meshgrid(np.linspace(-1, 1, size[0]), np.linspace(-1, 1, size[1]), indexing="ij")
    return np.stack([np.clip(np.exp(-(yy**2 + xx**2) * (2 + k + 0.3 * i)) + 0.05 * rng.random(size), 0, 1)
                     for i in range(n)], -1).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    """A tiny study (two seeds, 4x core and ablation, 24 x 24 volumes) run to the end: seed 1
    first, then a resumed run for the rest."""
    from kdmri.tools import study

    tmp_path = tmp_path_factory.mktemp("study")
    rng = np.random.default_rng(0)
    src, root = tmp_path / "src", tmp_path / "root"
    masks = {4: cartesian_mask((24, 24), 4, seed=0)}
    for i in range(3):
        write_volume(src / "train" / f"v{i}.h5", _volume(rng, 4, i), masks)
    write_volume(src / "validation" / "val.h5", _volume(rng, 3, 1.5), masks)
    write_volume(src / "shift" / "s.h5", _volume(rng, 2, 3), masks)
    settings = Settings(params="ci", source=str(src),
                        overrides={"max_train_slices": None, "max_val_slices": None},
                        caps={k: 2 for k in protocol.CAPS}, window=1, delta_db=100.0, seeds_4x=(1, 2),
                        seeds_other=(1, 2), accs=("4x",), families=("core", "ablation"))
    settings = study.load_settings(root, settings)
    first = study.run_study(root, settings, seeds=[1], in_process=True, verbose=False)
    second = study.run_study(root, settings, in_process=True, verbose=False)
    return {"tmp": tmp_path, "root": root, "settings": settings, "first": first, "second": second}


def test_tiny_study_runs_resumes_and_reports(tiny_study):
    from kdmri.reporting.study import RESULTS_MARKER, comparison_rows, write_results
    from kdmri.tools import study

    tmp_path, root, settings = tiny_study["tmp"], tiny_study["root"], tiny_study["settings"]
    with pytest.raises(ConfigError, match="other settings"):
        study.load_settings(root, Settings())
    assert [r["unit"] for r in tiny_study["first"]] == ["pilot-kdmri", "seed1-4x-core", "seed1-4x-ablation"]
    # the selection split: the held-out training volume is the engine's validation, never a test set
    assert sorted(p.name for p in (root / "data" / "validation").iterdir()) == ["v2.h5"]
    assert sorted(p.name for p in (root / "data" / "train").iterdir()) == ["v0.h5", "v1.h5"]
    epochs = json.loads((root / "epochs.json").read_text())
    assert epochs["teacher"]["chosen"] == 2 and epochs["teacher"]["fired"]
    kd = root / "seeds" / "seed1" / "demo" / "acc_4x" / "kdmri_kd"
    for test, n in (("slab", 3), ("shift", 2)):
        assert json.loads((kd / f"test_{test}" / "report.json").read_text())["n_slices"] == n
    # resuming runs only what is left: seed 2 (the pilot and seed 1 are done)
    assert [r["unit"] for r in tiny_study["second"]] == ["seed2-4x-core", "seed2-4x-ablation"]
    assert study.run_study(root, settings, in_process=True, verbose=False) == []
    text, hours = study.plan(root, settings, 0.2)
    assert hours == 0 and "seed2-4x-ablation        done" in text
    table, missing = comparison_rows(root, "shift", min_seeds=2)
    row = table.set_index("comparison").loc["KD student - equal-compute control"]
    assert row["seeds"] == 2 and set(row["per_seed"]) == {1, 2}
    assert any("SFT" in m for m in missing)  # the family that was not run is named
    out = tmp_path / "RESULTS.md"
    out.write_text(f"# protocol kept\n\n{RESULTS_MARKER}\nold results\n")
    write_results(root, out, min_seeds=2)
    text = out.read_text()
    assert text.startswith("# protocol kept") and "old results" not in text
    assert "domain-shift set" in text and "| teacher - student | 4x | 2 |" in text
    assert (tmp_path / "results_figures" / "pilot_learning_curves.png").is_file()


def test_publish_writes_verified_checkpoints_a_manifest_and_the_summary(tiny_study, tmp_path,
                                                                        own_manifests_only, monkeypatch):
    """study-publish: every evaluated role of one seed as a verified, loadable checkpoint whose
    manifest figures are what evaluating it again gives; nothing written when a seed is unfinished."""
    import kdmri.pretrained as pretrained
    from kdmri.errors import DataError
    from kdmri.reporting.published import publish, reevaluate

    root, settings = tiny_study["root"], tiny_study["settings"]
    out, manifest = tmp_path / "pkg" / "study", tmp_path / "pkg" / "manifest.yaml"
    names = publish(root, 1, out, manifest, commit="abc")
    assert sorted(names) == sorted(f"study-4x-{e}" for e in (
        "kdmri_teacher", "kdmri_student", "kdmri_kd", "ctl_student", "abl-imitation_kd", "abl-attention_kd"))
    entries = pretrained.read_manifest(manifest)
    kd = entries["study-4x-kdmri_kd"]
    assert kd.stage == "kd" and kd.seed == 1 and kd.commit == "abc" and kd.url == "study/study-4x-kdmri_kd.pt"
    assert set(kd.metrics) == {"slab", "shift"} and "PSNR" in kd.card
    model = pretrained.load("study-4x-kdmri_kd", manifests=[manifest])
    assert sum(p.numel() for p in model.parameters()) > 0
    # every manifest figure is what evaluating the published file on the test set gives
    for name, entry in entries.items():
        for test, got in reevaluate(entry, settings.source, tmp_path / name).items():
            for k in ("psnr", "ssim"):
                assert got[k] == pytest.approx(entry.metrics[test][k], abs=1e-5), (name, test, k)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["published_seed"] == 1 and "study-4x-kdmri_kd" in summary["curves"]
    assert {r["seed"] for r in summary["tests"]["slab"]["values"]} == {1, 2}
    # a second publish needs --force; a seed that is not a study seed is one clear error
    with pytest.raises(DataError, match="--force"):
        publish(root, 1, out, manifest)
    # a --force publish that fails partway leaves the published set as it was, no staging folder
    import kdmri.reporting.published as published

    before, manifest_before = {p.name: p.read_bytes() for p in out.iterdir()}, manifest.read_text()
    real, calls = published.write_checkpoint, []

    def fails_third(source, dest):
        calls.append(dest)
        if len(calls) == 3:
            raise OSError("disk full")
        real(source, dest)
    monkeypatch.setattr(published, "write_checkpoint", fails_third)
    with pytest.raises(OSError, match="disk full"):
        publish(root, 1, out, manifest, commit="abc", force=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert manifest.read_text() == manifest_before and not list(out.parent.glob(".study.publish-*"))
    monkeypatch.setattr(published, "write_checkpoint", real)
    assert publish(root, 1, out, manifest, commit="def", force=True) == names  # and --force replaces
    assert pretrained.read_manifest(manifest)["study-4x-kdmri_kd"].commit == "def"
    with pytest.raises(ConfigError, match="seed 7: not a seed"):
        publish(root, 7, tmp_path / "x", tmp_path / "x.yaml")
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.yaml").exists()


def test_shift_set_is_real_scans_in_the_demo_layout(tmp_path):
    import h5py

    from kdmri.datasets.shift import build_shift

    folder = build_shift(tmp_path, accs=(4,), verbose=False)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["slices"] == 49 and "MIT" in manifest["licence"]
    with h5py.File(folder / "shift_epi_t2star.h5") as fh:
        assert fh["volfs"].shape == (96, 96, 24) and float(fh["volfs"][()].max()) == pytest.approx(1.0)
        assert fh["mask_4x"].shape == (96, 96)


def test_a_test_split_must_be_a_folder_name(tmp_path):
    from kdmri.config import Config
    from kdmri.models.tasks import get_task

    with pytest.raises(ConfigError, match="test set folder"):
        get_task("recon").dataset(Config(data_root=str(tmp_path)), "../train")


def test_the_plan_before_the_pilot_bounds_every_choice_the_pilot_can_make():
    """A pilot whose rule never fires chooses its cap; the plan printed before the pilot must
    cost at least that much (it once used three quarters of the caps, 25 % too little)."""
    settings = Settings()
    before = protocol.study_units(settings, None)
    at_caps = protocol.study_units(settings, dict(settings.caps))

    def epochs(units):
        return [(u.name, r.stage, r.changes.get("method"), r.epochs) for u in units for r in u.runs]
    assert epochs(before) == epochs(at_caps)
    teacher = next(r for u in before if u.name == "seed42-4x-core" for r in u.runs if r.stage == "teacher")
    assert teacher.epochs == round(settings.caps["teacher"] / protocol.DECAY_AT) > settings.caps["teacher"]


def test_a_unit_starts_once_its_own_kinds_are_chosen_not_before(tmp_path):
    """With two processes the 4x core starts while the SR pilot still runs: it must train at
    the epochs its own pilot chose, and an SR unit must refuse until the SR pilot has chosen
    (a run once failed every unit because it waited for all pilots' epochs.json)."""
    from kdmri.tools import study

    settings = Settings()
    (tmp_path / "pilot").mkdir()
    for kind in ("teacher", "student", "feature", "kd"):
        (tmp_path / "pilot" / f"{kind}.json").write_text(json.dumps({"chosen": 12}))
    units = {u.name: u for u in study.units_of(tmp_path, settings)}
    teacher = next(r for r in units["seed42-4x-core"].runs if r.stage == "teacher")
    assert (teacher.epochs, teacher.lr_step) == protocol.schedule(12)
    sr_teacher = next(r for r in units["seed42-4x-sr"].runs if r.stage == "sr-teacher")
    assert sr_teacher.epochs == protocol.schedule(settings.caps["sr-teacher"])[0]  # the cap until chosen
    with pytest.raises(ConfigError, match="sr-feature, sr-kd, sr-student, sr-teacher yet"):
        study.run_unit(tmp_path, settings, "seed42-4x-sr")


# ---------------------------------------------------------------- the report's findings


def _curve(kind, model, seed, scores, selected, lr_step=float("nan"), acc="4x"):
    return [{"kind": kind, "acc": acc, "model": model, "seed": seed, "epoch": e, "score": s,
             "score_name": "val_psnr", "lr_step": lr_step, "selected": selected}
            for e, s in enumerate(scores, 1)]


def test_flatness_is_the_protocols_gain_at_the_selected_epoch():
    """By hand: the gain at epoch 25 over 10 epochs is best(1..25) - best(1..15)."""
    import pandas as pd

    from kdmri.reporting.study import flatness, flatness_markdown

    plateau = [30 + 0.1 * min(e, 12) for e in range(30)]  # flat from epoch 13 on
    rising = [30 + 0.1 * e for e in range(30)]  # +1 dB per 10 epochs
    assert protocol.window_gain(plateau, 25, 10) == pytest.approx(0.0)
    assert protocol.window_gain(rising, 25, 10) == pytest.approx((30 + 2.4) - (30 + 1.4))
    assert protocol.window_gain(rising, 14, 10) == pytest.approx(1.0)
    assert np.isnan(protocol.window_gain(rising, 10, 10))  # no window of 10 before epoch 10
    assert protocol.converged_epoch(plateau) == 23  # the rule is the same gain
    curves = pd.DataFrame(_curve("teacher", "kdmri_teacher", 1, plateau, 25, lr_step=20)
                          + _curve("teacher", "kdmri_teacher", 2, rising, 25, lr_step=20)
                          + _curve("student", "kdmri_student", 1, plateau, 25, lr_step=5)
                          + _curve("student", "kdmri_student", 2, plateau, 23, lr_step=5)
                          + _curve("kd", "kdmri_kd", 1, rising, 8))
    table = flatness(curves, 10, 0.05).set_index("model")
    teacher = table.loc["kdmri_teacher"]
    assert teacher["seeds"] == 2 and teacher["selected"] == "25"
    assert teacher["gain_mean"] == pytest.approx(0.5) and teacher["gain_max"] == pytest.approx(1.0)
    assert teacher["verdict"] == "still rising (1 of 2 seeds)" and teacher["drop_in_window"] == 2
    student = table.loc["kdmri_student"]
    assert student["verdict"] == "flat (< 0.05 dB)" and student["selected"] == "23-25"
    assert student["drop_in_window"] == 0 and student["gain_max"] == pytest.approx(0.0)
    assert table.loc["kdmri_kd", "verdict"].startswith("undetermined")
    text = "\n".join(flatness_markdown(flatness(curves, 10, 0.05), 10))
    assert ("| teacher | 4x | kdmri_teacher | 2 | 25 | 0.500 | 1.000 | 2 | still rising (1 of 2 seeds) | "
            "1.000 | still rising (1 of 2 seeds) |" in text)
    # at the run's end (30 epochs): the plateau is flat, the rising curve gained 1 dB
    assert student["end_verdict"] == "flat (< 0.05 dB)" and teacher["end_gain_max"] == pytest.approx(1.0)


def test_final_lr_gain_leaves_out_the_drops_step():
    """A curve that jumps at its learning-rate drop and is level after it is rising by the end
    rule (its last 10 epochs hold the jump) and flat at the final rate; one still climbing
    after the drop is rising by both; a long final phase gives the end rule's own window."""
    import pandas as pd

    from kdmri.reporting.study import flatness, flatness_markdown

    jump = [30 + 0.01 * e for e in range(30)] + [31.0] * 10  # drop after epoch 30, level after
    climb = [30 + 0.01 * e for e in range(30)] + [31 + 0.02 * e for e in range(10)]
    assert protocol.window_gain(jump, 40, 10) == pytest.approx(31.0 - 30.29)
    assert protocol.final_lr_gain(jump, 30, 10) == (pytest.approx(0.0), 9)  # epochs 32-40 vs 1-31
    assert protocol.final_lr_gain(climb, 30, 10) == (pytest.approx(0.18), 9)
    long = jump + [31.0] * 20  # 30 epochs after the drop: the last 10, as the end rule
    assert protocol.final_lr_gain(long, 30, 10) == (pytest.approx(protocol.window_gain(long, 60, 10)), 10)
    assert protocol.final_lr_gain(jump, float("nan"), 10) == (pytest.approx(0.71), 10)  # no drop: end rule
    assert np.isnan(protocol.final_lr_gain(jump, 39, 10)[0])  # nothing after the drop's first epoch
    curves = pd.DataFrame(_curve("kd", "kdmri_kd", 1, jump, 35, lr_step=30)
                          + _curve("kd", "kdmri_kd", 2, jump, 33, lr_step=30)
                          + _curve("feature", "kdmri_feature", 1, climb, 40, lr_step=30))
    table = flatness(curves, 10, 0.05).set_index("model")
    kd, feature = table.loc["kdmri_kd"], table.loc["kdmri_feature"]
    assert kd["end_verdict"] == "still rising (2 of 2 seeds)" and kd["final_verdict"] == "flat (< 0.05 dB)"
    assert kd["final_epochs"] == 9 and feature["final_verdict"] == "still rising (1 of 1 seeds)"
    text = "\n".join(flatness_markdown(flatness(curves, 10, 0.05), 10))
    assert "| 0.710 | still rising (2 of 2 seeds) | 0.000 | 9 | flat (< 0.05 dB) |" in text
    # a table published before the final-rate columns existed still renders (without them)
    old = flatness(curves, 10, 0.05).drop(columns=["final_gain_max", "final_epochs", "final_verdict"])
    assert "final lr" not in "\n".join(flatness_markdown(old, 10))


def test_study_report_draws_the_findings_checks_flatness_and_states_the_cost(tiny_study):
    import pandas as pd

    from kdmri.reporting.study import (
        RESULTS_MARKER,
        flatness,
        pilot_curves,
        run_curves,
        run_records,
        write_results,
    )
    from kdmri.tools import study
    from kdmri.training.calibration import Calibration

    tmp_path, root, settings = tiny_study["tmp"], tiny_study["root"], tiny_study["settings"]
    # a start records its calibration (appended), measured or given
    assert study.run_study(root, settings, in_process=True, verbose=False, calibration=0.25) == []
    cal = Calibration(ms=312.5, cpu="test CPU", threads=1, steps=20, torch="x")
    records = study.record_calibration(root, cal)
    assert [r["ms"] for r in records[-2:]] == [250.0, 312.5] and records[-1]["source"] == "measured"
    # the curves: every finished run, the protocol's score (the objective in dB for the feature stage)
    curves, unfinished = run_curves(run_records(root, settings))
    assert unfinished == [] and set(curves["seed"]) == {1, 2}
    exp = root / "seeds" / "seed1" / "demo" / "acc_4x"
    feature = pd.read_csv(exp / "kdmri_feature" / "train_log.csv")
    mine = curves[(curves["model"] == "kdmri_feature") & (curves["seed"] == 1)]
    assert list(mine["score"]) == pytest.approx([-10 * np.log10(v) for v in feature["val_loss"]])
    # flatness by hand on the teacher's logs (the tiny study's window is 1 epoch)
    gains = []
    for seed in (1, 2):
        log = pd.read_csv(root / "seeds" / f"seed{seed}" / "demo" / "acc_4x" / "kdmri_teacher"
                          / "train_log.csv")
        sel = int(log["epoch"][log["val_loss"].idxmin()])
        gains.append(log["val_psnr"][:sel].max() - log["val_psnr"][:sel - 1].max())
    row = flatness(curves, settings.window, settings.delta_db).set_index("model").loc["kdmri_teacher"]
    assert row["gain_mean"] == pytest.approx(np.mean(gains)) and row["gain_max"] == pytest.approx(max(gains))
    assert row["verdict"] == "flat (< 100 dB)"  # the tiny study's threshold
    still = flatness(curves, settings.window, 1e-6).set_index("model").loc["kdmri_teacher", "verdict"]
    assert still.startswith("still rising")  # every gain above a tiny threshold
    pilot = pilot_curves(root)
    assert list(pilot["kind"].unique()) == ["teacher", "student", "feature", "kd"]  # the pilot's order
    out = tmp_path / "RESULTS_findings.md"
    out.write_text(f"# protocol\n\n{RESULTS_MARKER}\n")
    write_results(root, out, min_seeds=2)
    text = out.read_text()
    for name in ("psnr_vs_acc.png", "psnr_per_model_4x.png", "learning_curves.png",
                 "pilot_learning_curves.png"):
        # RESULTS_findings.md keeps its figures apart from RESULTS.md's results_figures/
        assert (tmp_path / "results_findings_figures" / name).stat().st_size > 1000
        assert f"(results_findings_figures/{name})" in text
    assert "### Convergence" in text and "| teacher | 4x | kdmri_teacher | 2 |" in text
    assert "| teacher | 4x | pilot | 1 | 2 |" in text
    assert "| 4x core | 2 |" in text and "| 312 | test CPU | 1 | measured |" in text
    assert "Measured training time: **" in text


def test_notebook_08_draws_the_published_findings(tiny_study, tmp_path, capsys):
    """Notebook 08's section, from a summary.json that study-publish wrote from the tiny study;
    without one, one line saying how to publish."""
    from matplotlib.figure import Figure

    from kdmri.reporting.published import publish, published_findings, show_published_findings

    assert show_published_findings(tmp_path / "none.json") is None
    said = capsys.readouterr().out.strip().splitlines()
    assert len(said) == 1 and "study-publish" in said[0]
    out = tmp_path / "pkg" / "study"
    publish(tiny_study["root"], 1, out, tmp_path / "pkg" / "manifest.yaml", commit="abc", min_seeds=2)
    found = published_findings(out / "summary.json")
    assert set(found["values"]["test"]) == {"slab", "shift"} and set(found["values"]["seed"]) == {1, 2}
    assert len(found["figures"]) == 3 and all(isinstance(f, Figure) for f in found["figures"])
    assert [len(f.axes) for f in found["figures"][:2]] == [2, 2]  # one panel per test set
    text = found["markdown"]
    for label in ("demo validation slab", "domain-shift set"):
        section = text.split(label)[1]
        assert "| teacher - student | 4x | 2 |" in section and "seed spread |" in section
    assert "| kd | 4x | kdmri_kd | 2 |" in text and "The pilot's flatness" in text
    assert set(found["curves"]["seed"]) == {1}  # the published seed's curves
    # ... and their flatness at the final learning rate, computed from those curves
    assert "The published seed's runs (seed 1)" in text and "verdict at the final lr |" in text
    assert show_published_findings(out / "summary.json")["markdown"] == text
