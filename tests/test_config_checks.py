"""Config values are converted to and checked by their declared types when they are loaded
(params file and ``--set`` alike), so a bad value ends in one line naming the key, the value
and what was expected -- before anything trains."""

from __future__ import annotations

import pytest
import yaml

from kdmri.config import Config, load_config
from kdmri.errors import ConfigError
from kdmri.tools.cli import main


def _cli_error(capsys, *argv: str) -> str:
    """Run ``kdmri train`` on a data folder that does not exist: a config error must come first."""
    code = main(["train", "--stage", "student", "--data-root", "/nonexistent/kdmri-data",
                 "--no-progress", *argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err  # one line
    return err


@pytest.mark.parametrize(("argv", "expected"), [
    (["--set", "lr_step=0"], "lr_step=0: expected a positive integer"),
    (["--set", "acc=4.7"], "acc='4.7': expected an integer acceleration"),
    (["--acc", "inf"], "acc='inf': expected an integer acceleration"),
    (["--set", "epochs=abc"], "epochs='abc': expected an integer"),
    (["--set", "device=tpu"], "device='tpu': expected one of 'cpu', 'cuda', 'cuda:<n>', 'mps'"),
    (["--set", "epochs=null"], "epochs=null: expected an integer (null is not allowed"),
    (["--set", "lr=fast"], "lr='fast': expected a finite number"),
    (["--set", "lr=.inf"], "lr=inf: expected a finite number"),
    (["--set", "residual=maybe"], "residual='maybe': expected true or false"),
    (["--set", "acc=7"], "acc='7x': dataset 'demo' has no mask at this acceleration"),
])
def test_bad_cli_values_fail_with_one_line(capsys, argv, expected):
    assert expected in _cli_error(capsys, *argv)


def test_bad_world_size_fails_with_one_line(capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "abc")
    assert "WORLD_SIZE='abc': expected an integer" in _cli_error(capsys)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "x")
    assert "RANK='x': expected an integer" in _cli_error(capsys)


def _args(*argv: str):
    import argparse

    from kdmri.tools.args import add_config_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    return config_from_args(parser.parse_args(list(argv)))


def test_cli_values_take_the_declared_types():
    cfg = _args("--params", "ci", "--set", "lr=1e-3", "--set", "notes=no", "--set", "max_train_slices=null",
                "--set", "method=2024", "--set", "device=cuda:1", "--set", "acc=8")
    assert cfg.lr == 1e-3 and isinstance(cfg.lr, float)  # YAML 1.1 reads 1e-3 as a string
    assert cfg.notes == "no"  # not False
    assert cfg.max_train_slices is None  # the ci profile sets 32: null overrides it
    assert cfg.method == "2024" and cfg.device == "cuda:1" and cfg.acc == "8x"
    assert _args("--set", "dataset=tiny", "--set", "acc=7").acc == "7x"  # no committed masks: from the files
    assert _args("--set", "mask=m.npy", "--set", "acc=7").acc == "7x"


def test_params_file_values_take_the_declared_types(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("lr: 1e-3\nepochs: 3.0\nnotes: note\nmax_val_slices: null\nin_memory: 'yes'\n")
    cfg = load_config(path)
    assert (cfg.lr, cfg.epochs, cfg.max_val_slices, cfg.in_memory) == (1e-3, 3, None, True)
    assert isinstance(cfg.epochs, int)
    for text, message in [("lr_step: 0", "lr_step=0: expected a positive integer"),
                          ("notes: no", "notes=False: expected a string (quote it"),
                          ("acc: 4.7", "acc=4.7: expected an integer acceleration"),
                          ("feature_pairs: 3", "feature_pairs=3: expected a list or null"),
                          ("batch_size: true", "batch_size=True: expected an integer")]:
        path.write_text(text + "\n")
        with pytest.raises(ConfigError, match=str(path)) as err:
            load_config(path)
        assert message in str(err.value)


def test_direct_construction_is_checked_too():
    assert Config(acc=8, lr="0.01", epochs="3").epochs == 3
    with pytest.raises(ConfigError, match=r"acc=4\.7"):
        Config(acc=4.7)
    with pytest.raises(ConfigError, match="device='gpu'"):
        Config().replace(device="gpu")
    assert yaml.safe_load(yaml.safe_dump(Config().to_dict()))["lr"] == 1e-3  # saved configs reload
