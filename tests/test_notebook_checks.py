"""The property checks the notebooks print (kdmri.tutorial, section "notebook checks")."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import default_collate

from kdmri import tutorial as nb
from kdmri.data.sr import SRSliceDataset
from kdmri.errors import DataError
from kdmri.io import write_csv


def test_first_epoch_below(tiny_cfg):
    write_csv(tiny_cfg.experiment("kd") / "train_log.csv",
              [{"epoch": 1, "train_l1": 0.05}, {"epoch": 2, "train_l1": 0.01}])
    write_csv(tiny_cfg.experiment("student") / "train_log.csv",
              [{"epoch": 1, "train_l1": 0.20}, {"epoch": 2, "train_l1": 0.001}])
    assert nb.first_epoch_below(tiny_cfg, "kd", "student") is True
    assert nb.first_epoch_below(tiny_cfg, "student", "kd") is False  # first epoch, not last
    with pytest.raises(DataError, match="train_imitation"):
        nb.first_epoch_below(tiny_cfg, "kd", "student", column="train_imitation")
    with pytest.raises(DataError, match="teacher"):
        nb.first_epoch_below(tiny_cfg, "kd", "teacher")


def test_sr_input_is_truncation(tiny_folder):
    ds = SRSliceDataset(tiny_folder, keep=8)
    batch = default_collate([ds[1]])
    assert nb.sr_input_is_truncation(batch, 8) is True
    assert nb.sr_input_is_truncation(batch, 12) is False  # another kept block
    shifted = dict(batch, input=torch.roll(batch["input"], 1, dims=-1))
    assert nb.sr_input_is_truncation(shifted, 8) is False
