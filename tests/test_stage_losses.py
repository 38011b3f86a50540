"""The stages' training losses are the documented sums of their logged terms, and the
configuration reaches the loss (written against mutants mutmut found surviving)."""

from __future__ import annotations

import pytest

from kdmri.checkpoint import LAST, load_checkpoint
from kdmri.training import train


def _history(out):
    return load_checkpoint(out / LAST)["history"]


def test_kd_loss_is_l1_plus_weighted_imitation_and_feature_terms(tiny_cfg):
    cfg = tiny_cfg.replace(epochs=1, max_train_slices=4)
    train(cfg, "teacher")
    train(cfg, "feature")
    plain = _history(train(cfg.replace(imitation_weight=2.0, method="plain",
                                       teacher_method="kdmri",
                                       kd_init=str(cfg.experiment("feature") / "best_model.pt")),
                           "kd"))[0]
    assert plain["train_imitation"] > 0
    assert plain["train_loss"] == pytest.approx(plain["train_l1"] + 2.0 * plain["train_imitation"],
                                                rel=1e-6)
    both = _history(train(cfg.replace(imitation_weight=2.0, kd_feature_weight=0.5), "kd"))[0]
    assert both["train_feature"] > 0
    assert both["train_loss"] == pytest.approx(
        both["train_l1"] + 2.0 * both["train_imitation"] + 0.5 * both["train_feature"], rel=1e-6)


def test_feature_loss_is_weighted_feature_plus_target_terms(tiny_cfg):
    cfg = tiny_cfg.replace(epochs=1, max_train_slices=4)
    train(cfg, "teacher")
    row = _history(train(cfg.replace(feature_weight=3.0, feature_target_weight=0.5), "feature"))[0]
    assert row["train_feature"] > 0 and row["train_l1"] > 0
    assert row["train_loss"] == pytest.approx(3.0 * row["train_feature"] + 0.5 * row["train_l1"],
                                              rel=1e-6)


def test_at_mode_reaches_the_attention_loss(tiny_cfg):
    cfg = tiny_cfg.replace(epochs=1, max_train_slices=2)
    train(cfg, "teacher")
    sample = _history(train(cfg.replace(method="sample", teacher_method="kdmri"), "feature"))[0]
    batch = _history(train(cfg.replace(method="batch", teacher_method="kdmri", at_mode="batch"),
                           "feature"))[0]
    assert sample["train_feature"] != pytest.approx(batch["train_feature"], rel=1e-3)
