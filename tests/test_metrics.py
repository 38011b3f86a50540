"""Tests for kdmri.metrics: hand-computed values, agreement with scikit-image, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import structural_similarity

from kdmri import metrics
from kdmri.metrics import (
    METRICS,
    hfn,
    nmse,
    paired_difference,
    psnr,
    slice_metrics,
    ssim,
    summarize,
    volume_metrics,
)


@pytest.fixture
def pair() -> tuple[np.ndarray, np.ndarray]:
    """A smooth 32x32 target in [0, 1] and a noisy prediction."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    target = 0.2 + 0.6 * np.sin(np.pi * xx) * np.cos(np.pi * yy / 2) ** 2
    pred = target + 0.05 * rng.standard_normal(target.shape)
    return target, pred


def test_metric_names():
    assert METRICS == ("psnr", "ssim", "nmse", "hfn")


def test_psnr_hand_computed():
    target = np.array([[0.0, 1.0], [2.0, 4.0]])
    pred = np.array([[0.5, 1.0], [2.0, 3.0]])
    mse = (0.25 + 0 + 0 + 1.0) / 4
    expected = 10 * math.log10(4.0**2 / mse)
    assert psnr(target, pred) == pytest.approx(expected, rel=1e-12)
    # an explicit data range replaces max(target)
    assert psnr(target, pred, data_range=1.0) == pytest.approx(10 * math.log10(1 / mse))


def test_psnr_identical_is_inf(pair):
    target, _ = pair
    assert psnr(target, target.copy()) == math.inf


def test_ssim_identical_is_one(pair):
    target, _ = pair
    assert ssim(target, target.copy()) == pytest.approx(1.0)


def test_ssim_agrees_with_skimage(pair):
    target, pred = pair
    expected = structural_similarity(target, pred, data_range=target.max())
    assert ssim(target, pred) == pytest.approx(expected, rel=1e-12)
    assert 0 < ssim(target, pred) < 1


def test_nmse(pair):
    target, pred = pair
    assert nmse(target, target.copy()) == 0.0
    expected = sum((t - p) ** 2 for t, p in zip(target.flat, pred.flat, strict=True)) / sum(
        t**2 for t in target.ravel()
    )
    assert nmse(target, pred) == pytest.approx(expected, rel=1e-10)


def _laplacian_independent(img: np.ndarray) -> np.ndarray:
    kernel = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    return ndimage.convolve(img, kernel, mode="reflect")


def test_hfn_zero_for_identical(pair):
    target, _ = pair
    assert hfn(target, target.copy()) == 0.0


def test_hfn_known_value(pair):
    target, pred = pair
    pred = pred + 0.3  # push some values above 1 so that the clip matters
    assert pred.max() > 1
    lt = _laplacian_independent(target)
    lp = _laplacian_independent(np.clip(pred, 0, 1))
    expected = np.sum((lt - lp) ** 2) / np.sum(lt**2)
    assert hfn(target, pred) == pytest.approx(expected, rel=1e-10)


def test_hfn_single_impulse():
    """Target = one bright pixel, prediction = zeros: L(pred) = 0, so HFN = 1 exactly."""
    target = np.zeros((9, 9))
    target[4, 4] = 1.0
    assert hfn(target, np.zeros_like(target)) == pytest.approx(1.0)
    # an impulse of 0.5 in the prediction: HFN = (1 - 0.5)^2 = 0.25
    pred = 0.5 * target
    assert hfn(target, pred) == pytest.approx(0.25)


def test_slice_metrics_keys_and_values(pair):
    target, pred = pair
    out = slice_metrics(target, pred)
    assert tuple(out) == METRICS
    assert out["psnr"] == psnr(target, pred)
    assert out["ssim"] == ssim(target, pred)
    assert out["nmse"] == nmse(target, pred)
    assert out["hfn"] == hfn(target, pred)
    assert all(isinstance(v, float) for v in out.values())


def test_volume_single_slice_agrees_with_slice(pair):
    target, pred = pair
    vol = volume_metrics(target[..., None], pred[..., None])
    sl = slice_metrics(target, pred)
    assert tuple(vol) == METRICS
    for key in METRICS:
        assert vol[key] == pytest.approx(sl[key], rel=1e-10), key


def test_volume_metrics_multi_slice(pair):
    target, pred = pair
    t = np.stack([target, 0.5 * target, target[::-1]], axis=-1)
    p = np.stack([pred, 0.5 * pred, pred[::-1]], axis=-1)
    vol = volume_metrics(t, p)
    dr = t.max()
    # PSNR over the whole volume, with the volume maximum
    mse = np.mean((t - p) ** 2)
    assert vol["psnr"] == pytest.approx(10 * np.log10(dr**2 / mse))
    # SSIM: slices as channels = mean of per-slice SSIM with the volume data range
    per_slice = [structural_similarity(t[..., s], p[..., s], data_range=dr) for s in range(3)]
    assert vol["ssim"] == pytest.approx(np.mean(per_slice))
    assert vol["nmse"] == pytest.approx(nmse(t, p))
    assert vol["hfn"] == pytest.approx(np.mean([hfn(t[..., s], p[..., s]) for s in range(3)]))
    # the per-volume PSNR is not the mean of per-slice PSNRs
    slice_mean = np.mean([psnr(t[..., s], p[..., s]) for s in range(3)])
    assert abs(vol["psnr"] - slice_mean) > 0.1


def test_volume_hfn_skips_empty_slices(pair):
    target, pred = pair
    t = np.stack([target, np.zeros_like(target)], axis=-1)
    p = np.stack([pred, np.zeros_like(pred)], axis=-1)
    assert volume_metrics(t, p)["hfn"] == pytest.approx(hfn(target, pred))


def test_summarize_population_std():
    out = summarize([1.0, 2.0, 3.0, 4.0])
    assert out == {"mean": 2.5, "std": pytest.approx(np.std([1, 2, 3, 4])), "n": 4}
    assert out["std"] == pytest.approx(math.sqrt(1.25))


def test_paired_difference_ci():
    rng = np.random.default_rng(1)
    base = rng.normal(30, 2, size=200)
    a = base + 0.5 + rng.normal(0, 0.2, size=200)
    small = paired_difference(a[:10], base[:10])
    large = paired_difference(a, base)
    for out in (small, large):
        assert out["ci_low"] < out["mean"] < out["ci_high"]
        assert set(out) == {"mean", "std", "n", "ci_low", "ci_high"}
    assert small["n"] == 10 and large["n"] == 200
    assert (large["ci_high"] - large["ci_low"]) < (small["ci_high"] - small["ci_low"])
    assert large["ci_low"] < 0.5 < large["ci_high"]


def test_paired_difference_hand_computed():
    a = [3.0, 5.0, 4.0]
    b = [1.0, 2.0, 2.0]
    d = np.array([2.0, 3.0, 2.0])
    out = paired_difference(a, b, confidence=0.9)
    sd = math.sqrt(np.sum((d - d.mean()) ** 2) / 2)
    t_crit = 2.919985580355516  # Student t, 2 d.o.f., 95th percentile (tables)
    assert out["mean"] == pytest.approx(d.mean())
    assert out["std"] == pytest.approx(sd)
    assert out["ci_low"] == pytest.approx(d.mean() - t_crit * sd / math.sqrt(3), rel=1e-9)
    assert out["ci_high"] == pytest.approx(d.mean() + t_crit * sd / math.sqrt(3), rel=1e-9)


def test_paired_difference_single_pair_has_nan_spread():
    out = paired_difference([1.0], [0.5])
    assert out["mean"] == 0.5 and out["n"] == 1
    assert math.isnan(out["std"]) and math.isnan(out["ci_low"]) and math.isnan(out["ci_high"])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda t, p: psnr(t, p[:-1]), "pred: shape"),
        (lambda t, p: ssim(t[..., None], p[..., None]), "target: expected a \\(H, W\\)"),
        (lambda t, p: slice_metrics(t, np.where(p > 0.5, np.nan, p)), "pred: expected finite"),
        (lambda t, p: nmse(np.full_like(t, np.inf), p), "target: expected finite"),
        (lambda t, p: psnr(np.zeros_like(t), p), "target: data_range defaults"),
        (lambda t, p: ssim(-t, p), "target: data_range defaults"),
        (lambda t, p: volume_metrics(np.zeros(t.shape + (2,)), p), "pred: expected a"),
        (lambda t, p: volume_metrics(t, p), "target: expected a \\(H, W, S\\)"),
        (lambda t, p: psnr(t, p, data_range=0), "data_range: expected a positive"),
        (lambda t, p: nmse(np.zeros_like(t), p), "target: NMSE is undefined"),
        (lambda t, p: hfn(np.ones_like(t), p), "target: HFN is undefined"),
        (lambda t, p: ssim(t[:5, :5], p[:5, :5]), "at least 7x7"),
    ],
)
def test_errors_name_the_argument(pair, call, match):
    target, pred = pair
    with pytest.raises(ValueError, match=match):
        call(target, pred)


def test_statistics_errors():
    with pytest.raises(ValueError, match="values: expected at least one"):
        summarize([])
    with pytest.raises(ValueError, match="values: expected finite"):
        summarize([1.0, float("nan")])
    with pytest.raises(ValueError, match="b: expected 3 values"):
        paired_difference([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="confidence"):
        paired_difference([1, 2, 3], [1, 2, 2], confidence=1.5)


def test_module_exports():
    for name in ("psnr", "ssim", "nmse", "hfn", "slice_metrics", "volume_metrics",
                 "summarize", "paired_difference"):
        assert callable(getattr(metrics, name))


def test_accepts_torch_tensors(pair):
    import torch

    target, pred = pair
    t = torch.tensor(target, requires_grad=True)
    assert psnr(t, torch.tensor(pred)) == pytest.approx(psnr(target, pred))
