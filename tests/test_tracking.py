"""Experiment tracking: ``tensorboard: true`` writes scalars and a validation image per epoch
(read back with tensorboard's EventAccumulator); callbacks from import paths (config) and
objects (kdmri.distil) are called every epoch; bad entries and a missing package are one
clear error."""

from __future__ import annotations

import csv
import sys

import pytest

from kdmri.errors import ConfigError
from kdmri.training.callbacks import TENSORBOARD_DIR, Callback, Run, config_callbacks, summary_writer

#: (callback id, epoch) of every call of :class:`EpochRecorder`.
CALLS: list[tuple[int, int]] = []


class EpochRecorder(Callback):
    """A user's callback, named in a config as ``test_tracking:EpochRecorder``."""

    def __init__(self, run: Run | None = None):
        self.run = run
        self.ended = False

    def on_epoch_end(self, state):
        CALLS.append((id(self), state["epoch"]))

    def on_end(self, state):
        self.ended = True


def _events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_tensorboard_and_a_configured_callback(tiny_cfg):
    from kdmri.training.engine import train

    CALLS.clear()
    cfg = tiny_cfg.replace(tensorboard=True, callbacks=["test_tracking:EpochRecorder"])
    out = train(cfg, "student")
    assert [epoch for _, epoch in CALLS] == [1, 2] and len({i for i, _ in CALLS}) == 1
    events = _events(out / TENSORBOARD_DIR)
    tags = events.Tags()
    assert {"train/loss", "val/loss", "val/psnr", "learning_rate"} <= set(tags["scalars"])
    log = list(csv.DictReader(open(out / "train_log.csv")))
    lr = events.Scalars("learning_rate")
    assert [e.step for e in lr] == [1, 2]
    assert [e.value for e in lr] == pytest.approx([float(r["lr"]) for r in log])
    assert [e.value for e in events.Scalars("val/loss")] == pytest.approx([float(r["val_loss"]) for r in log])
    (image_tag,) = tags["images"]
    images = events.Images(image_tag)
    assert [e.step for e in images] == [1, 2]
    assert (images[0].height, images[0].width) == (32, 3 * 24)  # input | reconstruction | target
    assert images[0].encoded_image_string[:4] == b"\x89PNG"


def test_distil_calls_callback_objects_and_paths(tiny_data, tmp_path):
    import kdmri

    CALLS.clear()
    mine = EpochRecorder()
    kwargs = dict(epochs=2, batch_size=2, teacher_options={"chans": 2, "num_pool_layers": 1, "dc": True},
                  student_options={"n_cascades": 1, "n_convs": 2, "channels": 4},
                  pairs=[("cascades.0.acts.0", "down_sample_layers.0")])
    kdmri.distil("unet", "dccnn", tiny_data / "train", tiny_data / "validation",
                 callbacks=[mine, "test_tracking:EpochRecorder"], out_dir=tmp_path / "d",
                 tensorboard=True, **kwargs)
    assert [e for i, e in CALLS if i == id(mine)] == [1, 2] and mine.ended
    assert len({i for i, _ in CALLS}) == 2  # the one built from its import path too
    assert "train/loss" in _events(tmp_path / "d" / TENSORBOARD_DIR).Tags()["scalars"]
    with pytest.raises(ConfigError, match="needs a folder to write into"):
        kdmri.distil("unet", "dccnn", tiny_data / "train", tensorboard=True, **kwargs)


@pytest.mark.parametrize("entry, message", [
    ("nocolon", r"callbacks entry 'nocolon': expected an import path 'package.module:Class'"),
    ("json:dumps", r"callbacks entry 'json:dumps': function lacks \['on_epoch_end', 'on_end'\]"),
    ("no_such_module_x:Thing", r"callbacks entry 'no_such_module_x:Thing': cannot import it"),
])
def test_bad_callback_entries(tiny_cfg, entry, message):
    with pytest.raises(ConfigError, match=message):
        config_callbacks(tiny_cfg.replace(callbacks=[entry]), Run(None, None, None))


def test_without_the_package_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"tensorboard: true needs the tensorboard package .*\[tracking\]"):
        summary_writer(tmp_path)
    assert not (tmp_path / "events").exists() and list(tmp_path.iterdir()) == []
