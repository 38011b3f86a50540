"""Feature-loss errors name the pair and the offending sizes, and option checks have the
right bounds (written against the mutants mutmut found surviving; see docs/TESTING.md)."""

from __future__ import annotations

import re

import pytest
import torch

from kdmri.distill.losses import build_feature_loss

PAIR = [("s", "t")]


def _where(name: str) -> str:
    return re.escape(f"{name} pair 0 ('s', 't')")


def _x(*shape):
    return torch.ones(*shape)


@pytest.mark.parametrize("name", ["at_kdmri", "at", "sp"])
def test_map_losses_name_pair_and_sizes(name):
    loss = build_feature_loss(name, PAIR)
    with pytest.raises(ValueError, match=_where(name) + ": student batch size 2 does not match "
                       "teacher batch size 3"):
        loss({"s": _x(2, 3, 4, 4)}, {"t": _x(3, 2, 4, 4)})
    if name == "sp":  # SP compares (B, B) similarity matrices of features of any shape
        return
    with pytest.raises(TypeError, match=_where(name) + ": student: expected a torch.Tensor .*list"):
        loss({"s": [1.0]}, {"t": _x(2, 3, 4, 4)})
    with pytest.raises(ValueError, match=_where(name) + ": teacher: expected a .* shape \\(2, 3, 4\\)"):
        loss({"s": _x(2, 3, 4, 4)}, {"t": _x(2, 3, 4)})
    # another resolution: the teacher's (uniform) map is interpolated to the student's size
    assert float(loss({"s": _x(2, 3, 4, 4)}, {"t": _x(2, 3, 4, 5)})) == pytest.approx(0.0, abs=1e-7)


def test_fitnet_errors_name_pair_and_channels():
    loss = build_feature_loss("fitnet", PAIR, student_channels=2, teacher_channels=3)
    with pytest.raises(ValueError, match=_where("fitnet") + ": student has 4 channels, the "
                       "regressor expects student_channels=2"):
        loss({"s": _x(1, 4, 3, 3)}, {"t": _x(1, 3, 3, 3)})
    with pytest.raises(ValueError, match=_where("fitnet") + ": teacher: expected"):
        loss({"s": _x(1, 2, 3, 3)}, {"t": _x(1, 3, 3)})
    with pytest.raises(ValueError, match="student_channels: expected positive channel counts"):
        build_feature_loss("fitnet", PAIR, student_channels=0, teacher_channels=3)
    with pytest.raises(ValueError, match="teacher_channels"):
        build_feature_loss("fitnet", PAIR, student_channels=2, teacher_channels=True)
    one = build_feature_loss("fitnet", PAIR, student_channels=1, teacher_channels=3)
    assert one.regressors[0].in_channels == 1  # one channel is a valid count


def test_at_and_cc_option_bounds():
    with pytest.raises(ValueError, match="p: expected a positive number, got 0"):
        build_feature_loss("at", PAIR, p=0)
    with pytest.raises(ValueError, match="p: expected a positive number"):
        build_feature_loss("at", PAIR, p="2")
    assert build_feature_loss("at", PAIR, p=0.5).p == 0.5
    with pytest.raises(ValueError, match="gamma: expected a positive number, got 0"):
        build_feature_loss("cc", PAIR, gamma=0)
    with pytest.raises(ValueError, match="gamma: expected a positive number"):
        build_feature_loss("cc", PAIR, gamma=None)
    with pytest.raises(ValueError, match="order: expected a non-negative int, got True"):
        build_feature_loss("cc", PAIR, order=True)
    with pytest.raises(ValueError, match="order: expected a non-negative int, got -1"):
        build_feature_loss("cc", PAIR, order=-1)
    assert build_feature_loss("cc", PAIR, order=0).order == 0


def test_cc_embeds_vectors_and_names_bad_shapes():
    loss = build_feature_loss("cc", PAIR)
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    value = loss({"s": s}, {"t": t})  # (B, D) embeddings are accepted as they are
    assert torch.isfinite(value) and value.item() > 0
    with pytest.raises(ValueError, match=_where("cc") + re.escape(
            ": student: expected (B, C, H, W) or (B, D), got (3, 5, 2)")):
        loss({"s": torch.ones(3, 5, 2)}, {"t": t})
    with pytest.raises(ValueError, match=_where("cc") + ": student batch size 2"):
        loss({"s": torch.ones(2, 5)}, {"t": t})


def test_fsp_errors_name_pair_and_shapes():
    pairs = [(("s1", "s2"), ("t1", "t2"))]
    loss = build_feature_loss("fsp", pairs)
    where = re.escape(f"fsp pair 0 {pairs[0]}")
    feats = {"s1": _x(2, 3, 4, 4), "s2": _x(3, 3, 4, 4)}  # batch differs, spatial the same
    with pytest.raises(ValueError, match=where + re.escape(
            ": student: the two layers must share batch and spatial size, got (2, 3, 4, 4) and "
            "(3, 3, 4, 4)")):
        loss(feats, {"t1": _x(2, 3, 4, 4), "t2": _x(2, 3, 4, 4)})
    with pytest.raises(ValueError, match=where + ": teacher: second layer: expected"):
        loss({"s1": _x(2, 3, 4, 4), "s2": _x(2, 3, 4, 4)}, {"t1": _x(2, 3, 4, 4), "t2": _x(2, 3, 4)})
    with pytest.raises(ValueError, match=where + re.escape(
            ": student FSP matrix (2, 3, 3) does not match teacher (2, 3, 2)")):
        loss({"s1": _x(2, 3, 4, 4), "s2": _x(2, 3, 4, 4)}, {"t1": _x(2, 3, 4, 4), "t2": _x(2, 2, 4, 4)})
    with pytest.raises(ValueError, match=re.escape("pairs[0]: expected ((student_a, student_b)")):
        build_feature_loss("fsp", [(("s1", "s2", "s3"), ("t1", "t2"))])
    with pytest.raises(ValueError, match="fsp: first layer: expected"):
        loss.fsp_matrix(_x(2, 3, 4), _x(2, 3, 4, 4))


def test_registry_and_pair_validation():
    from kdmri.distill.losses import FEATURE_LOSSES, FeatureLoss, default_pairs, register_feature_loss

    with pytest.raises(ValueError, match="name: expected a non-empty string, got 123"):
        register_feature_loss(123)
    with pytest.raises(TypeError, match=re.escape("register_feature_loss('x'): expected a FeatureLoss")):
        register_feature_loss("x")(int)
    try:
        @register_feature_loss("test_zero")
        class Zero(FeatureLoss):
            def pair_loss(self, index, student, teacher):
                return (student - teacher).abs().sum() * 0

        assert FEATURE_LOSSES["test_zero"] is Zero and Zero.name == "test_zero"
        loss = build_feature_loss("test_zero", PAIR)
        assert loss._where(0) == "test_zero pair 0 ('s', 't')"
    finally:
        FEATURE_LOSSES.pop("test_zero", None)
    with pytest.raises(ValueError):
        build_feature_loss("at", "st")  # a string is not a list of pairs
    with pytest.raises(TypeError, match="student_feats: expected a dict of named features"):
        build_feature_loss("at", PAIR)([torch.ones(1)], {"t": _x(1, 1, 2, 2)})
    with pytest.raises(ValueError, match="n_cascades"):
        default_pairs(True)
