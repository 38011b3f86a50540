"""Tests for kdmri.distill.losses: reference values computed independently with numpy loops."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from kdmri.distill.losses import (
    FEATURE_LOSSES,
    AttentionKDMRILoss,
    FeatureLoss,
    FitNetLoss,
    MissingFeatureError,
    attention_map,
    build_feature_loss,
    default_fsp_pairs,
    default_pairs,
    imitation_loss,
    register_feature_loss,
)

PAIRS = [("s.a", "t.a"), ("s.b", "t.b")]
FSP_PAIRS = [(("s.a", "s.b"), ("t.a", "t.b"))]


def _feats(seed: int, b: int = 3, c: int = 4, h: int = 5, w: int = 6, positive: bool = False):
    g = torch.Generator().manual_seed(seed)

    def make():
        x = torch.randn(b, c, h, w, generator=g, dtype=torch.float64)
        return x.abs() + 0.1 if positive else x
    return make(), make()


def _dicts(seed_s: int, seed_t: int, **kw):
    sa, sb = _feats(seed_s, **kw)
    ta, tb = _feats(seed_t, **kw)
    return {"s.a": sa, "s.b": sb}, {"t.a": ta, "t.b": tb}


def _build(name: str, **options):
    return build_feature_loss(name, FSP_PAIRS if name == "fsp" else PAIRS, **options)


# --------------------------------------------------------------------------- independent refs


def _np_att_kdmri(f: np.ndarray, mode: str) -> np.ndarray:
    b, c, h, w = f.shape
    am = np.zeros((b, h * w))
    for i in range(b):
        for y in range(h):
            for x in range(w):
                am[i, y * w + x] = sum(f[i, k, y, x] ** 2 for k in range(c))
    if mode == "sample":
        return am / np.sqrt((am**2).sum(axis=1, keepdims=True))
    return am / np.sqrt((am**2).sum(axis=0, keepdims=True))


def _np_at(f: np.ndarray) -> np.ndarray:
    am = (f**2).mean(axis=1).reshape(f.shape[0], -1)
    return am / np.linalg.norm(am, axis=1, keepdims=True)


def _np_sp(f: np.ndarray) -> np.ndarray:
    b = f.shape[0]
    q = f.reshape(b, -1)
    g = np.array([[float(np.dot(q[i], q[j])) for j in range(b)] for i in range(b)])
    return g / np.linalg.norm(g, axis=1, keepdims=True)


def _np_cc(f: np.ndarray, gamma: float, order: int | None) -> np.ndarray:
    e = f.mean(axis=(2, 3))
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    b = e.shape[0]
    k = np.zeros((b, b))
    for i in range(b):
        for j in range(b):
            d = float(np.dot(e[i], e[j]))
            if order is None:  # bilinear
                k[i, j] = d
            else:
                k[i, j] = math.exp(-2 * gamma) * sum(
                    (2 * gamma) ** p / math.factorial(p) * d**p for p in range(order + 1)
                )
    return k


def _np_fsp(f1: np.ndarray, f2: np.ndarray) -> np.ndarray:
    b, c1, h, w = f1.shape
    c2 = f2.shape[1]
    g = np.zeros((b, c1, c2))
    for n in range(b):
        for i in range(c1):
            for j in range(c2):
                g[n, i, j] = np.sum(f1[n, i] * f2[n, j]) / (h * w)
    return g


def _reference(name: str, sd: dict, td: dict, **opt) -> float:
    s = {k: v.numpy() for k, v in sd.items()}
    t = {k: v.numpy() for k, v in td.items()}
    if name == "fsp":
        return float(np.mean((_np_fsp(s["s.a"], s["s.b"]) - _np_fsp(t["t.a"], t["t.b"])) ** 2))
    vals = []
    for sk, tk in PAIRS:
        fs, ft = s[sk], t[tk]
        if name == "at_kdmri":
            mode = opt.get("mode", "sample")
            vals.append(np.mean(np.abs(_np_att_kdmri(fs, mode) - _np_att_kdmri(ft, mode))))
        elif name == "at":
            vals.append(np.mean((_np_at(fs) - _np_at(ft)) ** 2))
        elif name == "sp":
            vals.append(np.sum((_np_sp(fs) - _np_sp(ft)) ** 2) / fs.shape[0] ** 2)
        elif name == "cc":
            order = None if opt.get("kernel") == "bilinear" else opt.get("order", 2)
            gamma = opt.get("gamma", 0.4)
            vals.append(np.mean((_np_cc(fs, gamma, order) - _np_cc(ft, gamma, order)) ** 2))
        elif name == "fitnet":
            vals.append(np.mean((fs - ft) ** 2))
    return float(np.mean(vals))


CASES = [
    ("at_kdmri", {}),
    ("at_kdmri", {"mode": "batch"}),
    ("at", {}),
    ("fitnet", {}),
    ("sp", {}),
    ("cc", {}),
    ("cc", {"gamma": 0.7, "order": 4}),
    ("cc", {"kernel": "bilinear"}),
    ("fsp", {}),
]


# --------------------------------------------------------------------------- generic behaviour


BUILT_IN = {"at_kdmri", "at", "fitnet", "sp", "cc", "fsp"}


def test_registry_holds_all_losses():
    assert BUILT_IN <= set(FEATURE_LOSSES)
    for name, cls in FEATURE_LOSSES.items():
        assert issubclass(cls, FeatureLoss) and cls.name == name
        assert cls.__doc__ and cls.__doc__.strip(), f"{name}: a registered loss documents what it computes"


def test_every_built_in_loss_names_its_source():
    """Each of kdmri's losses names the paper it implements (``reference``: authors, title,
    venue and year); a loss registered from outside kdmri needs only its docstring."""
    for name in BUILT_IN:
        cls = FEATURE_LOSSES[name]
        assert cls.__module__.startswith("kdmri.distill."), name
        assert re.search(r"\w.* et al\.|&", cls.reference), f"{name}: reference names no authors"
        assert re.search(r"\b(19|20)\d\d\b", cls.reference), f"{name}: reference gives no year"
    assert FeatureLoss.reference == ""  # the base states none: a subclass must say its own


@pytest.mark.parametrize("name, options", CASES)
def test_zero_for_identical_features(name, options):
    sd, _ = _dicts(0, 1)
    td = {"t.a": sd["s.a"].clone(), "t.b": sd["s.b"].clone()}
    loss = _build(name, **options)(sd, td)
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("name, options", CASES)
def test_matches_independent_reference(name, options):
    sd, td = _dicts(0, 1)
    loss = _build(name, **options)(sd, td)
    expected = _reference(name, sd, td, **options)
    assert expected > 0
    assert loss.item() == pytest.approx(expected, rel=1e-10)


def test_hand_values_tiny():
    """Two-pixel maps: values worked out by hand."""
    s = {"s.a": torch.tensor([[[[1.0, 0.0]]]]), "s.b": torch.tensor([[[[3.0, 4.0]]]])}
    t = {"t.a": torch.tensor([[[[0.0, 2.0]]]]), "t.b": torch.tensor([[[[3.0, 4.0]]]])}
    # pair a: maps [1, 0] vs [0, 1] -> L1 mean 1; pair b: identical -> 0; mean over pairs 0.5
    assert _build("at_kdmri")(s, t).item() == pytest.approx(0.5)
    # squared version: pair a mean((1, 1)) = 1 -> 0.5
    assert _build("at")(s, t).item() == pytest.approx(0.5)
    # batch mode at batch size 1: every non-zero entry is 1 -> [1, 0] vs [0, 1] still 1
    assert _build("at_kdmri", mode="batch")(s, t).item() == pytest.approx(0.5)


def test_fsp_hand_value():
    # one channel each, 1x2 maps: G = (f1 . f2) / 2
    s = {"s.a": torch.tensor([[[[1.0, 2.0]]]]), "s.b": torch.tensor([[[[3.0, 1.0]]]])}
    t = {"t.a": torch.tensor([[[[1.0, 1.0]]]]), "t.b": torch.tensor([[[[1.0, 1.0]]]])}
    # G_s = (3 + 2) / 2 = 2.5, G_t = 1 -> (1.5)^2
    assert _build("fsp")(s, t).item() == pytest.approx(2.25)


def test_cc_taylor_approaches_rbf():
    sd, _ = _dicts(3, 4)
    loss = build_feature_loss("cc", PAIRS, gamma=0.4, order=20)
    e = torch.nn.functional.normalize(sd["s.a"].mean(dim=(2, 3)), dim=1)
    exact = torch.exp(-0.4 * torch.cdist(e, e) ** 2)
    assert torch.allclose(loss.correlation(e), exact, atol=1e-12)


# --------------------------------------------------------------------------- attention modes


def test_batch_mode_vanishes_at_batch_size_one():
    sd, td = _dicts(0, 1, b=1, positive=True)
    assert _build("at_kdmri", mode="batch")(sd, td).item() == 0.0
    assert _build("at_kdmri", mode="sample")(sd, td).item() > 1e-3


def test_sample_mode_ignores_other_samples_batch_mode_does_not():
    f, _ = _feats(0, b=3)
    g = f.clone()
    g[1:] = 5 * torch.randn_like(g[1:])
    assert torch.equal(attention_map(f, "sample")[0], attention_map(g, "sample")[0])
    assert not torch.allclose(attention_map(f, "batch")[0], attention_map(g, "batch")[0])
    # and sample-mode loss over a batch is the mean of single-sample losses
    sd, td = _dicts(0, 1)
    loss = _build("at_kdmri")
    singles = [loss({k: v[i:i + 1] for k, v in sd.items()}, {k: v[i:i + 1] for k, v in td.items()})
               for i in range(3)]
    assert loss(sd, td).item() == pytest.approx(torch.stack(singles).mean().item(), rel=1e-12)


def test_attention_map_shapes_and_norms():
    f, _ = _feats(0, b=3, h=5, w=6)
    a = attention_map(f)
    assert a.shape == (3, 30)
    assert torch.allclose(a.norm(dim=1), torch.ones(3, dtype=a.dtype))
    assert torch.allclose(attention_map(f, "batch").norm(dim=0), torch.ones(30, dtype=a.dtype))
    with pytest.raises(ValueError, match="mode"):
        attention_map(f, "channel")
    with pytest.raises(ValueError, match="f: expected a \\(B, C, H, W\\)"):
        attention_map(f[0])


# --------------------------------------------------------------------------- fitnet


def test_fitnet_regressor_only_when_channels_differ():
    same = build_feature_loss("fitnet", PAIRS, student_channels=4, teacher_channels=4)
    assert sum(p.numel() for p in same.parameters()) == 0
    mixed = build_feature_loss("fitnet", PAIRS, student_channels=[4, 2], teacher_channels=[4, 6])
    assert isinstance(mixed.regressors[0], torch.nn.Identity)
    assert isinstance(mixed.regressors[1], torch.nn.Conv2d)
    assert sum(p.numel() for p in mixed.parameters()) == 2 * 6 + 6


def test_fitnet_gradients():
    loss = build_feature_loss("fitnet", [("s", "t")], student_channels=2, teacher_channels=3)
    loss = loss.double()
    s = torch.randn(2, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    t = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    value = loss({"s": s}, {"t": t})
    assert value.item() > 0
    value.backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in loss.parameters())
    assert t.grad is None
    # independent check with the regressor's own weights
    conv = loss.regressors[0]
    w = conv.weight.detach().numpy()[:, :, 0, 0]
    hint = np.einsum("oc,bchw->bohw", w, s.detach().numpy()) + conv.bias.detach().numpy()[
        None, :, None, None]
    assert value.item() == pytest.approx(float(np.mean((hint - t.detach().numpy()) ** 2)))


def test_fitnet_channel_mismatch_without_regressor():
    loss = build_feature_loss("fitnet", [("s", "t")])
    with pytest.raises(ValueError, match="student_channels"):
        loss({"s": torch.ones(1, 2, 3, 3)}, {"t": torch.ones(1, 3, 3, 3)})
    with pytest.raises(ValueError, match="student_channels, teacher_channels"):
        build_feature_loss("fitnet", PAIRS, student_channels=4)
    with pytest.raises(ValueError, match="teacher_channels: expected an int or a list of 2"):
        build_feature_loss("fitnet", PAIRS, student_channels=4, teacher_channels=[1, 2, 3])


@pytest.mark.parametrize("name, options", CASES)
def test_teacher_is_detached(name, options):
    sd, td = _dicts(0, 1)
    sd = {k: v.requires_grad_() for k, v in sd.items()}
    td = {k: v.requires_grad_() for k, v in td.items()}
    _build(name, **options)(sd, td).backward()
    assert all(v.grad is not None for v in sd.values())
    assert all(v.grad is None for v in td.values())


# --------------------------------------------------------------------------- registry, errors


def test_unknown_name_lists_known():
    with pytest.raises(ValueError, match="feature loss 'kl': expected one of .*at_kdmri"):
        build_feature_loss("kl", PAIRS)


def test_unknown_option_rejected():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['tau'\].*accepted: \['mode'\]"):
        build_feature_loss("at_kdmri", PAIRS, tau=2)
    with pytest.raises(ValueError, match="accepted: none"):
        build_feature_loss("sp", PAIRS, mode="batch")
    with pytest.raises(ValueError, match="mode: expected one of"):
        build_feature_loss("at_kdmri", PAIRS, mode="Batch")
    with pytest.raises(ValueError, match="kernel"):
        build_feature_loss("cc", PAIRS, kernel="poly")


def test_duplicate_registration_rejected():
    with pytest.raises(ValueError, match="already registered"):
        @register_feature_loss("at")
        class Other(FeatureLoss):
            pass
    assert FEATURE_LOSSES["at"].__name__ == "AttentionTransferLoss"


def test_bad_pairs_rejected():
    with pytest.raises(ValueError, match="pairs: expected a non-empty list"):
        build_feature_loss("at", [])
    with pytest.raises(ValueError, match="pairs\\[0\\]"):
        build_feature_loss("at", [("only_one",)])
    with pytest.raises(ValueError, match="pairs\\[0\\]: expected \\(\\(student_a"):
        build_feature_loss("fsp", PAIRS)
    # YAML gives lists: accepted and stored as tuples
    loss = build_feature_loss("fsp", [[["s.a", "s.b"], ["t.a", "t.b"]]])
    assert loss.pairs == FSP_PAIRS


def test_missing_feature_names_key_and_available():
    sd, td = _dicts(0, 1)
    loss = build_feature_loss("at_kdmri", [("s.a", "t.missing")])
    with pytest.raises(ValueError, match="teacher_feats: no feature named 't.missing'.*'t.a'"):
        loss(sd, td)
    with pytest.raises(KeyError):
        loss(sd, td)
    assert issubclass(MissingFeatureError, ValueError)


def test_other_resolutions_are_adapted_or_named():
    """A teacher layer of another resolution: attention maps are interpolated to the
    student's size (bilinear, before normalising); a loss that cannot compare names the pair."""
    sd, td = _dicts(0, 1)
    td["t.b"] = td["t.b"][:, :, :4]
    am = td["t.b"].pow(2).sum(1, keepdim=True)
    resized = torch.nn.functional.interpolate(am, size=(5, 6), mode="bilinear", align_corners=False)
    t_map = torch.nn.functional.normalize(resized.reshape(3, -1), dim=1)
    s_map = torch.nn.functional.normalize(sd["s.b"].pow(2).sum(1).reshape(3, -1), dim=1)
    pair0 = build_feature_loss("at_kdmri", PAIRS[:1])(sd, td)
    expected = (pair0 + (s_map - t_map).abs().mean()) / 2
    torch.testing.assert_close(_build("at_kdmri")(sd, td), expected)
    with pytest.raises(ValueError, match="cc pair 1 .*reference form needs equal shapes"):
        _build("cc", kernel="reference")(sd, td)
    sd2, td2 = _dicts(0, 1)
    td2["t.a"] = td2["t.a"][:2]
    with pytest.raises(ValueError, match="batch size"):
        _build("sp")(sd2, td2)


# --------------------------------------------------------------------------- pairs, imitation


def test_default_pairs():
    assert default_pairs() == [(f"cascade{i}.conv2", f"cascade{i}.conv3") for i in range(1, 6)]
    assert default_pairs(2, "conv4", "conv6") == [("cascade1.conv4", "cascade1.conv6"),
                                                  ("cascade2.conv4", "cascade2.conv6")]
    assert default_fsp_pairs(1) == [(("cascade1.conv1", "cascade1.conv2"),
                                     ("cascade1.conv1", "cascade1.conv3"))]
    with pytest.raises(ValueError, match="n_cascades"):
        default_pairs(0)


def test_imitation_loss():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(2, 1, 6, 5, generator=g, requires_grad=True)
    t = torch.randn(2, 1, 6, 5, generator=g, requires_grad=True)
    mean = imitation_loss(s, t)
    assert mean.item() == pytest.approx((s - t).abs().mean().item())
    ref = imitation_loss(s, t, reduction="reference")
    assert ref.item() == pytest.approx(mean.item() / 60)
    ref.backward()
    assert s.grad is not None and t.grad is None
    with pytest.raises(ValueError, match="reduction"):
        imitation_loss(s, t, reduction="sum")
    with pytest.raises(ValueError, match="teacher_out: shape"):
        imitation_loss(s, t[:1])


def test_with_dccnn_features():
    """End to end on the real models: default pairs exist and the loss trains the student."""
    from kdmri.models.dccnn import build_dccnn

    torch.manual_seed(0)
    teacher, student = build_dccnn("teacher"), build_dccnn("student")
    x = torch.rand(2, 1, 12, 12)
    mask = torch.zeros(12, 12)
    mask[:, ::3] = 1
    kspace = torch.fft.fft2(x.to(torch.complex64), norm="ortho") * mask
    t_out = teacher(x, kspace, mask)  # with autograd on: the losses must detach it
    assert all(f.requires_grad for f in t_out.features.values())
    s_out = student(x, kspace, mask)
    for name in ("at_kdmri", "at", "sp", "cc"):
        value = build_feature_loss(name, default_pairs())(s_out.features, t_out.features)
        assert torch.isfinite(value) and value.item() > 0
    fsp = build_feature_loss("fsp", default_fsp_pairs())(s_out.features, t_out.features)
    total = fsp + build_feature_loss("at_kdmri", default_pairs())(s_out.features, t_out.features)
    total.backward()
    # every conv feeding a paired feature gets a gradient (the last conv of the last
    # cascade feeds none of them)
    last = student.cascades[-1].convs[-1]
    skip = {id(p) for p in last.parameters()}
    assert all(p.grad is not None for p in student.parameters() if id(p) not in skip)
    assert all(p.grad is None for p in teacher.parameters())  # no gradient into the teacher


def test_subclass_is_a_module_with_repr():
    loss = build_feature_loss("at_kdmri", default_pairs(1), mode="batch")
    assert isinstance(loss, AttentionKDMRILoss) and isinstance(loss, torch.nn.Module)
    assert "mode='batch'" in repr(loss)
    assert isinstance(build_feature_loss("fitnet", PAIRS), FitNetLoss)


def test_at_mode_is_the_one_source_of_the_attention_mode():
    """``at_mode`` sets the at_kdmri loss's mode; ``feature_options.mode`` may repeat it but a
    different value is one ConfigError naming both keys (it used to win silently)."""
    from kdmri.config import Config
    from kdmri.distill.registry import feature_loss_from_config
    from kdmri.errors import ConfigError

    assert feature_loss_from_config(Config(at_mode="batch"), PAIRS).mode == "batch"
    same = Config(at_mode="batch", feature_options={"mode": "batch"})
    assert feature_loss_from_config(same, PAIRS).mode == "batch"
    with pytest.raises(ConfigError, match=r"feature_options.mode='batch' contradicts at_mode='sample'"):
        feature_loss_from_config(Config(feature_options={"mode": "batch"}), PAIRS)
    # other losses read their own options; at_mode is not passed to them
    assert feature_loss_from_config(Config(feature_loss="at", feature_options={"p": 4.0}), PAIRS).p == 4.0
