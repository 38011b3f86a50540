"""Image-quality metrics for MRI reconstruction and paired statistics for result tables.

All functions take numpy arrays (or anything :func:`numpy.asarray` accepts; torch tensors
are detached and moved to the CPU) and return plain Python floats or dicts of floats.

Definitions (as in the KD-MRI and SFT-KD-Recon papers and their reference code):

* **PSNR** ``10 log10(data_range^2 / mean((t - p)^2))`` with ``data_range = max(t)`` by
  default (scikit-image ``peak_signal_noise_ratio``). Identical images give ``inf``.
* **SSIM** scikit-image ``structural_similarity`` with its defaults (7x7 uniform window)
  and ``data_range = max(t)`` by default.
* **NMSE** ``||t - p||^2 / ||t||^2``.
* **HFN** (high-frequency error norm) ``||L(t) - L(clip(p, 0, 1))||^2 / ||L(t)||^2`` per
  2-D slice, ``L`` = :func:`skimage.filters.laplace` (3x3 discrete Laplacian, reflected
  borders). The clip assumes targets scaled to ``[0, 1]``; the target is not clipped.

Two evaluation styles exist in the papers, and both are offered here:

* **per slice** (SFT-KD-Recon's evaluation script): :func:`slice_metrics` on every 2-D
  slice, then mean +/- std over slices.
* **per volume** (KD-MRI's reference evaluation): :func:`volume_metrics` on each
  ``(H, W, S)`` volume -- PSNR and NMSE over the whole volume, SSIM over the volume with
  slices as channels, HFN averaged over slices -- then mean +/- std over volumes.

The two give different numbers for the same predictions (a volume PSNR is not the mean of
slice PSNRs), so every table must say which one it uses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats
from skimage.filters import laplace
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

METRICS: tuple[str, ...] = ("psnr", "ssim", "nmse", "hfn")
"""Names (and order) of the metrics :func:`slice_metrics` and :func:`volume_metrics` return."""


# --------------------------------------------------------------------------- validation


def _as_float_array(x, name: str) -> np.ndarray:
    """``x`` as a float64 array; ValueError naming ``name`` if it holds NaN or inf."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, possibly on a GPU
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a real numeric array, got {type(x).__name__}") from exc
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name}: expected finite values, found {bad} NaN/inf entries")
    return arr


def _check_pair(target, pred, ndim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validated float64 ``(target, pred)`` of equal shape (and ``ndim`` dims if given)."""
    t = _as_float_array(target, "target")
    p = _as_float_array(pred, "pred")
    if ndim is not None:
        layout = {2: "(H, W)", 3: "(H, W, S)"}.get(ndim, f"{ndim}-D")
        if t.ndim != ndim:
            raise ValueError(f"target: expected a {layout} array, got shape {t.shape}")
        if p.ndim != ndim:
            raise ValueError(f"pred: expected a {layout} array, got shape {p.shape}")
    if t.shape != p.shape:
        raise ValueError(f"pred: shape {p.shape} does not match target shape {t.shape}")
    if t.size == 0:
        raise ValueError("target: expected a non-empty array")
    return t, p


def _data_range(t: np.ndarray, data_range: float | None) -> float:
    """``data_range`` if given, else ``max(t)``; ValueError if it is not positive."""
    if data_range is None:
        value = float(t.max())
        if value <= 0:
            raise ValueError(
                f"target: data_range defaults to max(target), which is {value}; expected a "
                "target with a positive maximum (or pass data_range explicitly)"
            )
        return value
    value = float(data_range)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"data_range: expected a positive finite number, got {data_range!r}")
    return value


# --------------------------------------------------------------------------- slice metrics


def psnr(target, pred, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB of ``pred`` against ``target`` (any equal shapes).

    ``data_range`` defaults to ``target.max()``. Returns ``inf`` when the images are equal.
    """
    t, p = _check_pair(target, pred)
    dr = _data_range(t, data_range)
    if np.array_equal(t, p):
        return math.inf
    return float(peak_signal_noise_ratio(t, p, data_range=dr))


def ssim(target, pred, data_range: float | None = None) -> float:
    """Structural similarity of one 2-D slice ``(H, W)`` (scikit-image defaults, 7x7 window).

    ``data_range`` defaults to ``target.max()``. Both sides must be at least 7x7.
    """
    t, p = _check_pair(target, pred, ndim=2)
    dr = _data_range(t, data_range)
    if min(t.shape) < 7:
        raise ValueError(f"target: SSIM needs a slice of at least 7x7 pixels, got {t.shape}")
    return float(structural_similarity(t, p, data_range=dr))


def nmse(target, pred) -> float:
    """Normalised mean squared error ``||t - p||^2 / ||t||^2`` (any equal shapes)."""
    t, p = _check_pair(target, pred)
    denom = float(np.sum(t**2))
    if denom == 0:
        raise ValueError("target: NMSE is undefined for an all-zero target (||target|| = 0)")
    return float(np.sum((t - p) ** 2) / denom)


def _hfn_checked(t: np.ndarray, p: np.ndarray) -> float:
    """HFN of validated 2-D float64 slices; NaN if ``L(t)`` is identically zero."""
    lt = laplace(t)
    lp = laplace(np.clip(p, 0.0, 1.0))
    denom = float(np.sum(lt**2))
    if denom == 0:
        return math.nan
    return float(np.sum((lt - lp) ** 2) / denom)


def hfn(target, pred) -> float:
    """High-frequency error norm of one 2-D slice ``(H, W)``.

    ``||L(t) - L(clip(p, 0, 1))||^2 / ||L(t)||^2`` with ``L`` = :func:`skimage.filters.laplace`.
    Raises ValueError for a target without high-frequency content (constant slice).
    """
    t, p = _check_pair(target, pred, ndim=2)
    value = _hfn_checked(t, p)
    if math.isnan(value):
        raise ValueError(
            "target: HFN is undefined for a slice whose Laplacian is zero everywhere "
            "(a constant slice)"
        )
    return value


def slice_metrics(target2d, pred2d) -> dict[str, float]:
    """All of :data:`METRICS` for one 2-D slice ``(H, W)`` (SFT-KD-Recon's per-slice style).

    PSNR and SSIM use ``data_range = target2d.max()``. Returns
    ``{"psnr", "ssim", "nmse", "hfn"}``.
    """
    t, p = _check_pair(target2d, pred2d, ndim=2)
    return {
        "psnr": psnr(t, p),
        "ssim": ssim(t, p),
        "nmse": nmse(t, p),
        "hfn": hfn(t, p),
    }


def volume_metrics(target, pred) -> dict[str, float]:
    """All of :data:`METRICS` for one volume ``(H, W, S)`` (slices last), KD-MRI style.

    As in the KD-MRI reference evaluation:

    * ``psnr``: over the whole volume, ``data_range = target.max()`` (volume maximum);
    * ``ssim``: over the volume with slices as channels (scikit-image ``channel_axis=-1``,
      i.e. the mean of per-slice SSIMs, all with the volume's ``data_range``);
    * ``nmse``: over the whole volume;
    * ``hfn``: mean of per-slice HFN. Slices whose target Laplacian is zero everywhere
      (e.g. empty slices) have no defined HFN and are left out of the mean; if every slice
      is like that, ValueError.

    For SFT-KD-Recon's per-slice style call :func:`slice_metrics` on each slice instead.
    """
    t, p = _check_pair(target, pred, ndim=3)
    dr = _data_range(t, None)
    if min(t.shape[:2]) < 7:
        raise ValueError(f"target: SSIM needs slices of at least 7x7 pixels, got {t.shape}")
    hfns = [_hfn_checked(t[..., s], p[..., s]) for s in range(t.shape[-1])]
    hfns = [h for h in hfns if not math.isnan(h)]
    if not hfns:
        raise ValueError("target: HFN is undefined: every slice has a zero Laplacian")
    return {
        "psnr": psnr(t, p, data_range=dr),
        "ssim": float(structural_similarity(t, p, data_range=dr, channel_axis=-1)),
        "nmse": nmse(t, p),
        "hfn": float(np.mean(hfns)),
    }


# --------------------------------------------------------------------------- statistics


def _as_values(values, name: str) -> np.ndarray:
    arr = _as_float_array(values, name).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name}: expected at least one value, got none")
    return arr


def summarize(values: Sequence[float]) -> dict[str, float]:
    """``{"mean", "std", "n"}`` of a list of metric values.

    ``std`` is the **population** standard deviation (``ddof=0``, numpy's default), the
    "mean +/- std" that the KD-MRI tables report. Non-finite values are rejected.
    """
    arr = _as_values(values, "values")
    return {"mean": float(arr.mean()), "std": float(arr.std()), "n": int(arr.size)}


def paired_difference(a: Sequence[float], b: Sequence[float],
                      confidence: float = 0.95) -> dict[str, float]:
    """Paired difference ``a - b`` (e.g. per-slice PSNR of KD student minus student).

    Returns ``{"mean", "std", "n", "ci_low", "ci_high"}``: the mean difference, its
    **sample** standard deviation (``ddof=1``, the one the interval uses), the number of
    pairs and a two-sided Student-t confidence interval for the mean difference,
    ``mean +/- t_{(1+confidence)/2, n-1} * std / sqrt(n)``.

    With a single pair the spread is unknown: ``std``, ``ci_low`` and ``ci_high`` are NaN.
    """
    x = _as_values(a, "a")
    y = _as_values(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"b: expected {x.size} values paired with a, got {y.size}")
    try:
        conf = float(confidence)
    except (TypeError, ValueError):
        conf = math.nan
    if not 0 < conf < 1:
        raise ValueError(f"confidence: expected a number in (0, 1), got {confidence!r}")
    d = x - y
    n = int(d.size)
    mean = float(d.mean())
    if n < 2:
        return {"mean": mean, "std": math.nan, "n": n, "ci_low": math.nan, "ci_high": math.nan}
    std = float(d.std(ddof=1))
    half = float(stats.t.ppf(0.5 + conf / 2, df=n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "n": n, "ci_low": mean - half, "ci_high": mean + half}
