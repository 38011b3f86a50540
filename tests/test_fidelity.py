"""The reference implementations' forms (docs/FIDELITY.md): residual-free cascades, the
SFT-KD-Recon feature-KD formulas on the cascade outputs (expected values computed here in
numpy, independently of kdmri), the SFT teacher loss's reduction, the legacy settings."""

import numpy as np
import pytest
import torch

from kdmri.config import Config, check_resumable
from kdmri.distill.losses import feature_loss_from_config, feature_probe
from kdmri.distill.objective import TermContext, sft_term
from kdmri.distill.sft import sft_loss
from kdmri.errors import ConfigError
from kdmri.models.dccnn import DCCNN
from kdmri.models.registry import build_from_arch
from kdmri.models.tasks import RECON

B, H, W = 4, 6, 5


def _outputs(seed):
    rng = np.random.default_rng(seed)
    return {f"cascade{i}.out": rng.normal(size=(B, 1, H, W)).astype(np.float64) for i in range(1, 6)}


S, T = _outputs(0), _outputs(1)


def _loss(name, **changes):
    cfg = Config(feature_loss=name, **changes)
    s = {k: torch.from_numpy(v) for k, v in S.items()}
    t = {k: torch.from_numpy(v) for k, v in T.items()}
    loss = feature_loss_from_config(cfg, DCCNN.default_feature_pairs(), feature_probe(s, t))
    return loss, float(loss(s, t))


def _rows(g):
    return g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)


def test_sp_reference_cascades_1_to_4():
    loss, value = _loss("sp")
    want = []
    for i in range(1, 5):
        qs, qt = S[f"cascade{i}.out"].reshape(B, -1), T[f"cascade{i}.out"].reshape(B, -1)
        diff = _rows(qt @ qt.T) - _rows(qs @ qs.T)
        want.append((diff ** 2).sum() / B ** 2)
    assert loss.pairs == [(f"cascade{i}.out",) * 2 for i in range(1, 5)]
    assert value == pytest.approx(np.mean(want), rel=1e-10)


def test_cc_reference_form_on_all_five_outputs():
    loss, value = _loss("cc")
    want = []
    for i in range(1, 6):
        d = np.abs(S[f"cascade{i}.out"] - T[f"cascade{i}.out"])
        want.append((d[:-1] * d[1:]).sum(axis=1).mean())
    assert loss.kernel == "reference" and len(loss.pairs) == 5
    assert value == pytest.approx(np.mean(want), rel=1e-10)


def test_fsp_reference_consecutive_squared_outputs():
    loss, value = _loss("fsp")
    sq_s = [S[f"cascade{i}.out"][:, 0] ** 2 for i in range(1, 5)]
    sq_t = [T[f"cascade{i}.out"][:, 0] ** 2 for i in range(1, 5)]
    want = []
    for j in range(3):
        gs = (sq_s[j] * sq_s[j + 1]).reshape(B, -1).mean(1)
        gt = (sq_t[j] * sq_t[j + 1]).reshape(B, -1).mean(1)
        want.append(((gs - gt) ** 2).mean())
    assert value == pytest.approx(np.mean(want), rel=1e-10)


def test_fitnet_reference_is_batch_normalised_attention_on_cascade_3():
    loss, value = _loss("fitnet")
    a_s, a_t = S["cascade3.out"][:, 0] ** 2, T["cascade3.out"][:, 0] ** 2
    a_s = a_s / np.maximum(np.sqrt((a_s ** 2).sum(0, keepdims=True)), 1e-12)
    a_t = a_t / np.maximum(np.sqrt((a_t ** 2).sum(0, keepdims=True)), 1e-12)
    assert loss.pairs == [("cascade3.out", "cascade3.out")] and not list(loss.parameters())
    assert value == pytest.approx(np.abs(a_s - a_t).mean(), rel=1e-10)


def test_kdmri_forms_stay_available():
    cfg = Config(feature_loss="cc", feature_forms="kdmri")
    loss = feature_loss_from_config(cfg, DCCNN.default_feature_pairs())
    assert loss.kernel == "gaussian" and loss.pairs[0] == ("cascade1.conv2", "cascade1.conv3")
    fsp = feature_loss_from_config(cfg.replace(feature_loss="fsp"), DCCNN.default_feature_pairs())
    assert not fsp.square and fsp.pairs[0] == (("cascade1.conv1", "cascade1.conv2"),
                                               ("cascade1.conv1", "cascade1.conv3"))
    explicit = Config(feature_loss="sp", feature_pairs=[["cascade2.conv1", "cascade2.conv1"]])
    assert feature_loss_from_config(explicit, []).pairs == [("cascade2.conv1", "cascade2.conv1")]


def test_residual_is_off_by_default_and_selectable():
    torch.manual_seed(0)
    plain = RECON.build("student", Config())
    assert plain.config.residual is False and Config().residual is False
    res = RECON.build("student", Config(residual=True))
    assert res.config.residual is True
    sft = RECON.build("sft", Config(residual=True))
    assert sft.teacher_config.residual and sft.student_config.residual
    # a checkpoint's arch keeps the form it was trained with
    assert build_from_arch(res.arch()).config.residual is True
    x = torch.rand(2, 1, 8, 8)
    k = torch.fft.fft2(x, norm="ortho")
    mask = torch.zeros(8, 8)
    mask[:, :2] = 1
    res.load_state_dict(plain.state_dict())
    with torch.no_grad():
        assert not torch.allclose(plain(x, k * mask, mask).image, res(x, k * mask, mask).image)


def test_old_runs_do_not_resume_under_new_defaults(tmp_path):
    stored = Config().to_dict()
    for key in ("residual", "feature_forms", "sft_protocol", "sft_imitation_reduction"):
        stored.pop(key)
    with pytest.raises(ConfigError, match="residual"):
        check_resumable(stored, Config(), tmp_path / "model.pt")
    old = Config(residual=True, feature_forms="kdmri", sft_protocol="kdmri",
                 sft_imitation_reduction="mean")
    check_resumable(stored, old, tmp_path / "model.pt")  # the same settings: resumes


def test_sft_term_uses_its_own_reduction():
    torch.manual_seed(0)
    t, y = torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4)
    branches = [torch.rand(2, 1, 4, 4) for _ in range(4)]

    class Out:
        image = t

    for reduction in ("reference", "mean"):
        cfg = Config(sft_imitation_reduction=reduction)
        ctx = TermContext(cfg, {"target": y}, (Out, branches))
        want = sft_loss(t, branches, y, reduction=reduction)[0]
        assert float(sft_term(ctx)[0]) == pytest.approx(float(want))
    assert Config().sft_imitation_reduction == "reference"
    ref = sft_loss(t, branches, y, reduction="reference")[1]["imitation"]
    assert ref == pytest.approx(sft_loss(t, branches, y, reduction="mean")[1]["imitation"] / t.numel())


def _metrics(folder, psnrs):
    import pandas as pd

    folder.mkdir(parents=True)
    pd.DataFrame({"volume": ["v1"] * len(psnrs), "slice": range(len(psnrs)), "psnr": psnrs,
                  "ssim": 0.9, "nmse": 0.01, "hfn": 0.1}).to_csv(folder / "metrics.csv", index=False)


def test_seed_comparison_mean_and_interval_over_seeds(tmp_path):
    from scipy import stats

    from kdmri.reporting.seeds import seed_comparison, seed_experiments
    from kdmri.tools.batch import seed_overrides

    shifts = {42: 0.3, 43: -0.1, 44: 0.4}  # per-seed mean difference a - b
    for seed, shift in shifts.items():
        root = tmp_path / f"seed{seed}" / "demo" / "acc_4x"
        _metrics(root / "kdmri_kd", [30 + shift, 31 + shift, 32 + shift])
        _metrics(root / "kdmri_student", [30, 31, 32])
    pairs = seed_experiments(tmp_path, shifts, "demo", "4x", ("kdmri", "kd"), ("kdmri", "student"))
    r = seed_comparison(pairs)
    d = np.array(list(shifts.values()))
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
    assert r["per_seed"] == pytest.approx(shifts)
    assert r["mean"] == pytest.approx(d.mean())
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert r["within_seed_spread"] and "within seed-to-seed spread" in r["verdict"]
    with pytest.raises(Exception, match="at least 3"):
        seed_comparison({42: pairs[42], 43: pairs[43]})
    over = seed_overrides({"epochs": 3}, 43)
    assert over == {"epochs": 3, "seed": 43, "experiments_root": "experiments/seeds/seed43"}


def test_seed_study_table_rows_missing_and_model_means(tmp_path):
    from kdmri.reporting.seeds import seed_model_means, seed_study, seed_study_markdown

    shifts = {42: 0.5, 43: 0.6, 44: 0.4}  # teacher - student per seed, consistent
    for seed, shift in shifts.items():
        root = tmp_path / f"seed{seed}" / "demo" / "acc_4x"
        _metrics(root / "kdmri_teacher", [30 + shift, 31 + shift])
        _metrics(root / "kdmri_student", [30, 31])
    # a KD student only for two seeds: named as missing, not a row
    for seed in (42, 43):
        _metrics(tmp_path / f"seed{seed}" / "demo" / "acc_4x" / "kdmri_kd", [30.1, 31.1])
    (tmp_path / "seedling").mkdir()  # not a seed folder
    table, missing = seed_study(tmp_path, "demo", "4x")
    assert list(table.index) == ["teacher - student"]
    row = table.loc["teacher - student"]
    assert row["seeds"] == 3 and row["difference"] == pytest.approx(0.5)
    assert row["ci_low"] > 0 and not row["within_seed_spread"]
    assert row["per_seed"] == "+0.50, +0.60, +0.40"
    assert any(m.startswith("KD student - student: evaluated for 2 seed(s) [42, 43]") for m in missing)
    assert "beyond seed spread" in seed_study_markdown(table)
    means = seed_model_means(tmp_path, "demo", "4x")
    assert means.loc["kdmri/teacher", "mean"] == pytest.approx(31.0)
    assert means.loc["kdmri/kd", "seeds"] == 2
    from kdmri.reporting.seeds import seed_study_report

    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "seeds").symlink_to(tmp_path)  # <experiments>/seeds: the study
    cfg = Config(dataset="demo", acc="4x", experiments_root=str(tmp_path / "experiments"))
    text = seed_study_report(cfg, command="cmd")
    assert text.startswith("# Seed study: demo 4x, seeds 42, 43, 44") and "Command: `cmd`" in text
    assert "| teacher - student | 3 |" in text and "* KD student - student: evaluated for 2" in text
    from kdmri.reporting.seeds import study_status

    status, table, missing = study_status(cfg, select=("KD student",))
    assert status.startswith(f"seed study under {tmp_path / 'experiments' / 'seeds'}: seeds 42, 43, 44")
    # the two KD-MRI rows and, the demo at 4x being an SR setting, the SR one
    assert table.empty and "not enough seeds yet:" in status and len(missing) == 3
    from kdmri.reporting.seeds import show_model_means, show_study

    assert "| teacher - student | 3 |" in show_study(cfg).data  # what notebook 08 shows
    assert "| kdmri/kd | 2 |" in show_model_means(cfg).data


def test_study_base_from_an_experiments_root(tmp_path):
    from kdmri.reporting.seeds import study_base

    assert study_base(tmp_path / "experiments") == tmp_path / "experiments" / "seeds"
    # notebook 08 run inside one seed of a study finds the whole study
    assert study_base(tmp_path / "experiments" / "seeds" / "seed43") == tmp_path / "experiments" / "seeds"
    assert study_base(tmp_path / "seed43") == tmp_path / "seed43" / "seeds"
