"""Experiment identity from content: an identical stage is reused, a different one trains."""

import torch

from kdmri.checkpoint import BEST, LAST, load_checkpoint
from kdmri.training import identity
from kdmri.training.engine import train
from kdmri.training.recipes import variant_config


def _weights(folder):
    return load_checkpoint(folder / BEST, "cpu")["model"]


def test_identical_stages_are_reused_and_different_ones_train(tiny_cfg):
    cfg = tiny_cfg.replace(epochs=1, max_train_slices=4)
    student = train(cfg, "student")
    assert identity.stored_key(student) == identity.content_key(cfg, "student")
    neither = variant_config(cfg, "neither")  # abl-neither = the plain student
    assert identity.content_key(neither, "student") == identity.content_key(cfg, "student")
    out = train(neither, "student")
    assert out.name == "abl-neither_student"
    src, new = load_checkpoint(student / LAST, "cpu"), load_checkpoint(out / LAST, "cpu")
    assert new["reused_from"] == str(student) and new["history"] == src["history"]  # nothing trained
    assert new["config"]["method"] == "abl-neither"
    assert all(torch.equal(a, b) for a, b in zip(_weights(student).values(), _weights(out).values()))
    assert train(neither, "student") == out  # resumable: the copy is a finished stage
    # a setting the stage uses trains anew; one it does not use (imitation weight) does not matter
    other = cfg.replace(method="lr2", lr=2e-3)
    assert identity.content_key(other, "student") != identity.content_key(cfg, "student")
    assert identity.content_key(cfg.replace(imitation_weight=0.0, sr_keep=8), "student") == \
        identity.content_key(cfg, "student")
    trained = train(other, "student")
    assert "reused_from" not in load_checkpoint(trained / LAST, "cpu")
    assert not torch.equal(_weights(trained)["cascades.0.convs.0.weight"],
                           _weights(student)["cascades.0.convs.0.weight"])


def test_keys_follow_dependencies(tiny_cfg):
    cfg = tiny_cfg.replace(epochs=1, max_train_slices=4)
    assert identity.content_key(cfg, "kd") is None  # no teacher trained yet: nothing to match
    train(cfg, "teacher")
    train(cfg, "feature")
    both = variant_config(cfg, "both")  # abl-both = kdmri's feature + kd
    attention = variant_config(cfg, "attention")  # imitation weight 0: the same feature stage
    assert identity.content_key(both, "feature") == identity.content_key(cfg, "feature")
    assert identity.content_key(attention, "feature") == identity.content_key(cfg, "feature")
    batch = variant_config(cfg, "attention-batch")
    assert identity.content_key(batch, "feature") != identity.content_key(cfg, "feature")
    assert identity.find_identical(attention, "feature") == cfg.experiment("feature")
