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
    assert list(table.index) == ["at_kdmri"]
    assert (cfg.experiment("kd", "sft-at_kdmri") / "report.json").is_file()
    assert (cfg.experiment("kd", "std-at_kdmri") / "report.json").is_file()
    assert table.loc["at_kdmri", "SFT - standard PSNR"] == pytest.approx(
        table.loc["at_kdmri", "SFT PSNR"] - table.loc["at_kdmri", "standard PSNR"])
