import pytest

from kdmri.config import ConfigError
from kdmri.runs import run_ablation, run_sft_comparison
from kdmri.training.engine import train
from kdmri.training.recipes import ABLATIONS, variant_config


def test_variant_configs():
    from kdmri.config import Config

    cfg = Config()
    assert variant_config(cfg, "imitation").kd_init == "scratch"
    assert variant_config(cfg, "attention").imitation_weight == 0.0
    assert variant_config(cfg, "method-fitnet").feature_loss == "fitnet"
    late = variant_config(cfg, "pairs-late")
    assert late.feature_pairs[0] == ["cascade1.conv2", "cascade1.conv4"]
    assert late.method == "abl-pairs-late" and late.teacher_method == "kdmri"
    assert {"neither", "imitation", "attention", "both"} <= set(ABLATIONS)
    with pytest.raises(ConfigError, match="ablation 'bogus'"):
        variant_config(cfg, "bogus")


def test_ablation_and_sft_grid_run(tiny_cfg):
    cfg = tiny_cfg.replace(epochs=1, max_train_slices=4)
    train(cfg, "teacher")
    rep = run_ablation(cfg, "imitation")
    assert rep["method"] == "abl-imitation" and rep["role"] == "kd"
    assert (cfg.experiment("kd", "abl-imitation") / "report.json").is_file()
    assert not cfg.experiment("feature", "abl-imitation").exists()
    train(cfg, "sft-teacher")
    table = run_sft_comparison(cfg, ("at_kdmri",))
    assert list(table.index) == ["teacher", "student init", "at_kdmri: SFT-KD vs standard",
                                 "at_kdmri: head start", "at_kdmri: friendlier teacher"]
    for method in ("sft-at_kdmri", "std-at_kdmri", "mix-at_kdmri"):
        assert (cfg.experiment("kd", method) / "report.json").is_file()
    # both arms' feature stages start from trained students of the same kind
    assert (cfg.experiment("student", "kdmri") / "best_model.pt").is_file()
    assert (cfg.experiment("student", "sft") / "best_model.pt").is_file()
    row = table.loc["at_kdmri: SFT-KD vs standard"]
    assert row["d_psnr_mean"] == pytest.approx(row["a_psnr_mean"] - row["b_psnr_mean"], abs=1e-9)
    parts = table.loc[["at_kdmri: head start", "at_kdmri: friendlier teacher"], "d_psnr_mean"]
    assert parts.sum() == pytest.approx(row["d_psnr_mean"], abs=1e-6)  # the two effects add up
