"""Every figure of the notebooks, as functions returning a :class:`matplotlib.figure.Figure`.

Figures are built with the object-oriented API (``Figure()``, never ``pyplot``; the panel
helpers are :mod:`kdmri.reporting.figures`), so they
hold no global state: a batch run does not accumulate open figures, and a notebook shows
a figure by leaving it as the cell's last expression (after ``%matplotlib inline``).
Save one with ``fig.savefig("name.png")``.

Images are 2-D arrays ``(H, W)`` shown with their first axis vertical; k-space and masks
are given in the unshifted (FFT-native) layout of :mod:`kdmri.physics.fft` and shown centred.

==============================  =====================================================
function                        figure
==============================  =====================================================
:func:`mask_gallery`            masks per dataset (rows) and acceleration (columns)
:func:`kspace_figure`           image, centred k-space, mask, undersampled k-space,
                                zero-filled image and its aliasing
:func:`image_grid`              a row (or grid) of labelled images
:func:`training_curves`         training and validation loss per epoch
:func:`attention_figure`        attention maps: one row per network, one column per layer
:func:`reconstruction_figure`   reconstructions with zoomed insets, residue maps below
:func:`paired_difference_plot`  per-slice paired differences with mean and CI
:func:`comparison_figure`       both sides' mean ± std and the paired difference with its
                                CI, one line per comparison (SFT-KD, ablations, results)
==============================  =====================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from kdmri.physics.fft import fft2, fftshift, zero_filled
from kdmri.physics.masks import sampled_fraction
from kdmri.reporting.figures import Box, as_image, grid, log_magnitude, show

# --------------------------------------------------------------------------- masks, k-space


def mask_gallery(masks: Mapping[tuple[str, str], np.ndarray]) -> Figure:
    """Masks ``{(dataset, acc): mask (H, W)}`` in a grid: datasets as rows (in the order
    given), accelerations as columns (sorted), each shown centred with its sampled
    fraction. A missing (dataset, acc) combination leaves an empty panel.

    Axes: ``n_datasets * n_accs``.
    """
    if not masks:
        raise ValueError("masks: expected at least one (dataset, acc) -> mask entry")
    datasets = list(dict.fromkeys(d for d, _ in masks))
    accs = sorted(dict.fromkeys(a for _, a in masks), key=lambda a: float(str(a).rstrip("x")))
    fig, axes = grid(len(datasets), len(accs))
    for i, ds in enumerate(datasets):
        for j, acc in enumerate(accs):
            ax = axes[i, j]
            mask = masks.get((ds, acc))
            if mask is None:
                ax.set_axis_off()
                continue
            mask = as_image(mask, f"masks[{ds!r}, {acc!r}]")
            frac = sampled_fraction(mask)
            show(ax, fftshift(mask), f"{ds} {acc}: {100 * frac:.1f} %", vmin=0, vmax=1)
            if j == 0:
                ax.set_ylabel(f"{ds}\n{mask.shape[0]}x{mask.shape[1]}", fontsize=9)
    fig.suptitle("Cartesian undersampling masks (centred; white = sampled phase-encode line)",
                 fontsize=10)
    return fig


def kspace_figure(image, mask) -> Figure:
    """Undersampling of one image ``(H, W)`` with a mask ``(H, W)`` (unshifted layout).

    Top row: the fully sampled image, its centred k-space ``log |F x|``, the centred mask.
    Bottom row: the measured k-space ``m * F x``, the zero-filled image
    ``Re F^-1(m * F x)`` and the aliasing ``|zero-filled - image|``. Axes: 6.
    """
    img = as_image(image, "image")
    m = as_image(mask, "mask")
    if m.shape != img.shape:
        raise ValueError(f"mask: shape {m.shape} does not match image shape {img.shape}")
    k = fft2(img.astype(np.float64))
    k_us = k * m
    zf = zero_filled(k_us)
    fig, axes = grid(2, 3)
    show(axes[0, 0], img, "fully sampled image x", vmin=0)
    show(axes[0, 1], fftshift(log_magnitude(k)), "k-space log|F x| (centred)", cmap="magma")
    show(axes[0, 2], fftshift(m), f"mask m: {100 * sampled_fraction(m):.1f} % sampled", vmin=0, vmax=1)
    show(axes[1, 0], fftshift(log_magnitude(k) * m), "measured k-space m * F x", cmap="magma")
    show(axes[1, 1], zf, "zero-filled Re F^-1(m * F x)", vmin=0, vmax=img.max())
    err = np.abs(zf - img)
    show(axes[1, 2], err, f"aliasing |zero-filled - x| (max {err.max():.2f})", cmap="inferno", vmin=0)
    return fig


# --------------------------------------------------------------------------- images, curves


def image_grid(images: Mapping[str, object], ncols: int | None = None, cmap: str = "gray",
               vmin: float | None = 0.0, vmax: float | None = None, title: str | None = None) -> Figure:
    """Labelled images ``{label: (H, W)}`` in a grid of ``ncols`` columns (default: one row)
    with a shared grey scale (``vmax`` defaults to the largest value of all images).

    Axes: ``rows * ncols`` (unused panels are blank).
    """
    if not images:
        raise ValueError("images: expected at least one image")
    arrays = {k: as_image(v, f"images[{k!r}]") for k, v in images.items()}
    n = len(arrays)
    ncols = ncols or n
    nrows = -(-n // ncols)
    top = vmax if vmax is not None else max(float(a.max()) for a in arrays.values())
    fig, axes = grid(nrows, ncols)
    flat = axes.ravel()
    for ax, (label, arr) in zip(flat, arrays.items()):
        show(ax, arr, label, cmap=cmap, vmin=vmin, vmax=top)
    for ax in flat[n:]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _read_log(log) -> pd.DataFrame:
    if isinstance(log, pd.DataFrame):
        return log
    path = Path(log)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: training log not found (train the stage first)")
    return pd.read_csv(path)


def training_curves(logs: Mapping[str, object]) -> Figure:
    """Loss per epoch from ``train_log.csv`` files: ``{label: DataFrame or path}``.

    Left: ``train_loss``; right: ``val_loss`` (the model-selection criterion), with the
    best epoch marked. Log-scaled y axes. Axes: 2.
    """
    if not logs:
        raise ValueError("logs: expected at least one training log")
    fig, axes = grid(1, 2, panel=4.2, height=3.0)
    for label, log in logs.items():
        df = _read_log(log)
        for col in ("epoch", "train_loss", "val_loss"):
            if col not in df.columns:
                raise ValueError(f"logs[{label!r}]: column {col!r} missing (columns: {list(df.columns)})")
        line, = axes[0, 0].plot(df["epoch"], df["train_loss"], marker=".", label=label)
        axes[0, 1].plot(df["epoch"], df["val_loss"], marker=".", color=line.get_color(), label=label)
        best = df["val_loss"].idxmin()
        axes[0, 1].plot(df.loc[best, "epoch"], df.loc[best, "val_loss"], "o", mfc="none", ms=10,
                        color=line.get_color())
    for ax, name in zip(axes[0], ("training loss", "validation loss (o = best epoch)")):
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


# --------------------------------------------------------------------------- attention


def attention_figure(maps: Mapping[str, Sequence[object]], column_labels: Sequence[str] | None = None,
                     cmap: str = "inferno") -> Figure:
    """Attention maps ``{row label: [map (H, W) per layer]}``: one row per network (e.g.
    teacher, student before / after the feature stage), one column per layer pair.

    Every map is shown on its own scale from 0 to its maximum (the maps are normalised, so
    only their shapes compare). Axes: ``rows * columns``.
    """
    if not maps:
        raise ValueError("maps: expected at least one row of attention maps")
    ncols = max(len(v) for v in maps.values())
    if column_labels is not None and len(column_labels) != ncols:
        raise ValueError(f"column_labels: expected {ncols} labels, got {len(column_labels)}")
    fig, axes = grid(len(maps), ncols, panel=1.9)
    for i, (label, row) in enumerate(maps.items()):
        for j in range(ncols):
            ax = axes[i, j]
            if j >= len(row):
                ax.set_axis_off()
                continue
            arr = as_image(row[j], f"maps[{label!r}][{j}]")
            show(ax, arr, column_labels[j] if (column_labels is not None and i == 0) else None,
                  cmap=cmap, vmin=0, vmax=float(arr.max()) or None)
            if j == 0:
                ax.set_ylabel(label, fontsize=9)
    return fig


# --------------------------------------------------------------------------- reconstructions


def default_zoom(shape: tuple[int, int]) -> Box:
    """A central box a quarter of the image high and wide: ``(row0, row1, col0, col1)``."""
    h, w = shape
    return (h // 2 - h // 8, h // 2 + h // 8, w // 2 - w // 8, w // 2 + w // 8)


def _inset(ax, img: np.ndarray, box: Box, vmin: float, vmax: float, color: str = "yellow") -> None:
    r0, r1, c0, c1 = box
    ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0, r1 - r0, fill=False, ec=color, lw=1))
    axin = ax.inset_axes([0.58, 0.0, 0.42, 0.42])
    axin.imshow(img[r0:r1, c0:c1], cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
    axin.set_xticks([])
    axin.set_yticks([])
    for spine in axin.spines.values():
        spine.set_edgecolor(color)


def reconstruction_figure(images: Mapping[str, object], target_key: str = "target",
                          zoom: Box | None = None, residue_max: float | None = None) -> Figure:
    """Reconstructions in the papers' style: ``{label: (H, W)}`` including the target
    under ``target_key`` (e.g. ZF, target, teacher, student, KD).

    Top row: every image on the target's grey scale with a zoomed inset of ``zoom``
    (``(row0, row1, col0, col1)``, default :func:`default_zoom`) and its PSNR / SSIM
    against the target in the title. Bottom row: the residue ``|image - target|`` of each
    image on one shared colour scale (``residue_max``, default the largest 99.5th
    percentile), with a colour bar; the target's panel there is blank.

    Axes: ``2 * len(images) + 1`` (the colour bar; insets are children of their panel).
    """
    from kdmri.metrics import psnr, ssim

    if target_key not in images:
        raise KeyError(f"images: the target {target_key!r} is missing (keys: {list(images)})")
    arrays = {k: as_image(v, f"images[{k!r}]") for k, v in images.items()}
    target = arrays[target_key]
    for k, a in arrays.items():
        if a.shape != target.shape:
            raise ValueError(f"images[{k!r}]: shape {a.shape} does not match the target's {target.shape}")
    box = zoom or default_zoom(target.shape)
    residues = {k: np.abs(a - target) for k, a in arrays.items() if k != target_key}
    rmax = residue_max or max((float(np.percentile(r, 99.5)) for r in residues.values()), default=1.0)
    vmax = float(target.max())
    n = len(arrays)
    fig, axes = grid(2, n)
    im = None
    for j, (label, arr) in enumerate(arrays.items()):
        if label == target_key:
            title = label
        else:
            title = f"{label}\n{psnr(target, arr):.2f} dB / {ssim(target, arr):.4f}"
        show(axes[0, j], arr, title, vmin=0, vmax=vmax)
        _inset(axes[0, j], arr, box, 0, vmax)
        if label == target_key:
            axes[1, j].set_axis_off()
            continue
        im = show(axes[1, j], residues[label], None, cmap="inferno", vmin=0, vmax=rmax)
        if j == 0 or (j == 1 and list(arrays)[0] == target_key):
            axes[1, j].set_ylabel("residue |x - target|", fontsize=9)
    if im is not None:
        fig.colorbar(im, ax=axes[1, :].tolist(), shrink=0.8, label="residue")
    return fig


def paired_difference_plot(differences, summary: Mapping[str, float] | None = None,
                           label: str = "KD - student", unit: str = "dB") -> Figure:
    """Per-slice paired differences (e.g. PSNR of the KD student minus the student) as a
    strip of points by slice, with the mean and its confidence interval from
    ``summary`` (:func:`kdmri.reporting.statistics.paired_comparison`). Axes: 1.
    """
    d = np.asarray(differences, dtype=float).ravel()
    if d.size == 0:
        raise ValueError("differences: expected at least one value")
    fig, axes = grid(1, 1, panel=5.0, height=2.8)
    ax = axes[0, 0]
    ax.axhline(0, color="black", lw=0.8)
    ax.plot(np.arange(d.size), d, "o", ms=4, label="per slice")
    mean = float(summary["mean"]) if summary else float(d.mean())
    ax.axhline(mean, color="C3", label=f"mean {mean:+.3f} {unit}")
    if summary and np.isfinite(summary.get("ci_low", np.nan)):
        ax.axhspan(summary["ci_low"], summary["ci_high"], color="C3", alpha=0.2, label="95 % CI")
    ax.set_xlabel("validation slice")
    ax.set_ylabel(f"{label} ({unit})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


# --------------------------------------------------------------------------- comparisons


def comparison_figure(table: pd.DataFrame, metric: str = "psnr", a_label: str | None = "a",
                      b_label: str | None = "b", unit: str | None = None, show_values: bool = True,
                      title: str | None = None) -> Figure:
    """Paired comparisons from :func:`kdmri.reporting.statistics.comparison_table` (also
    :func:`kdmri.runs.ablation_summary`, :func:`kdmri.runs.sft_summary`), one
    row of the table per line of the figure.

    Left (``show_values``): both sides' ``metric`` as mean ± std over slices (``a_label``,
    e.g. SFT teacher, and ``b_label``, e.g. standard teacher). Right: the paired difference
    a - b with its confidence interval; the vertical line marks no difference. Without
    labels (``None``) the rows' names say what is compared (e.g. ``KD - student``).
    Axes: 2, or 1 without ``show_values``.
    """
    if table is None or len(table) == 0:
        raise ValueError("table: expected at least one comparison row")
    key = metric.lower()
    needed = [f"d_{key}_mean", f"d_{key}_ci_low", f"d_{key}_ci_high"]
    if show_values:
        needed += [f"{s}_{key}_{x}" for s in ("a", "b") for x in ("mean", "std")]
    lacking = [c for c in needed if c not in table.columns]
    if lacking:
        raise ValueError(f"table: columns {lacking} missing (columns: {list(table.columns)})")
    unit = unit if unit is not None else ("dB" if key == "psnr" else "")
    suffix = f" ({unit})" if unit else ""
    labels = [str(i) for i in table.index]
    y = np.arange(len(labels))[::-1].astype(float)
    ncols = 2 if show_values else 1
    fig, axes = grid(1, ncols, panel=4.2 if show_values else 6.0, height=0.9 + 0.45 * len(labels))
    if show_values:
        ax = axes[0, 0]
        for side, label, dy, colour in (("a", a_label, 0.12, "C1"), ("b", b_label, -0.12, "C0")):
            ax.errorbar(table[f"{side}_{key}_mean"], y + dy, xerr=table[f"{side}_{key}_std"], fmt="o",
                        ms=5, capsize=3, color=colour, label=label)
        ax.set_yticks(y, labels)
        ax.set_xlabel(f"{metric.upper()}{suffix}, mean ± std over slices")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[0, ncols - 1]
    mean = table[f"d_{key}_mean"].to_numpy(dtype=float)
    low = np.nan_to_num(mean - table[f"d_{key}_ci_low"].to_numpy(dtype=float))
    high = np.nan_to_num(table[f"d_{key}_ci_high"].to_numpy(dtype=float) - mean)
    ax.axvline(0, color="black", lw=0.8)
    ax.errorbar(mean, y, xerr=np.vstack([low, high]), fmt="s", ms=5, capsize=3, color="C3",
                label="mean, 95 % CI")
    ax.set_yticks(y, labels if not show_values else [""] * len(labels))
    what = f": {a_label} − {b_label}" if a_label and b_label else ""
    ax.set_xlabel(f"{metric.upper()} difference{suffix}{what} (paired)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# --------------------------------------------------------------------------- super-resolution, demo data


def sr_kspace_figure(image, keep) -> Figure:
    """The low-resolution input of the super-resolution experiment for one image ``(H, W)``:
    keep the central ``keep`` block (int or ``(kh, kw)``) of the centred k-space
    (:func:`kdmri.data.sr.truncate_kspace`).

    Top row: the image, its centred k-space ``log |F x|`` with the kept block outlined, the
    kept k-space. Bottom row: the low-resolution image ``|F^-1(block)|`` at full size, the
    error ``|LR - x|``, and the intensities of both along the middle row (blur and Gibbs
    ringing). Axes: 6.
    """
    from kdmri.data.sr import central_block_mask, truncate_kspace
    from kdmri.physics.fft import fft2c

    img = as_image(image, "image").astype(np.float64)
    block = central_block_mask(img.shape, keep)
    low = truncate_kspace(img, keep)
    k = fft2c(img)
    logk = log_magnitude(k)
    rows, cols = np.flatnonzero(block.any(axis=1)), np.flatnonzero(block.any(axis=0))
    fig, axes = grid(2, 3)
    show(axes[0, 0], img, f"target x ({img.shape[0]}x{img.shape[1]})", vmin=0)
    show(axes[0, 1], logk, "k-space log|F x| (centred)", cmap="magma")
    axes[0, 1].add_patch(Rectangle((cols[0] - 0.5, rows[0] - 0.5), len(cols), len(rows), fill=False,
                                   ec="cyan", lw=1.2))
    show(axes[0, 2], logk * block, f"kept: central {len(rows)}x{len(cols)} "
          f"({100 * block.mean():.2f} %)", cmap="magma", vmin=0, vmax=float(logk.max()))
    show(axes[1, 0], low, "low resolution |F^-1(block)|", vmin=0, vmax=float(img.max()))
    err = np.abs(low - img)
    show(axes[1, 1], err, f"|LR - x| (max {err.max():.2f})", cmap="inferno", vmin=0)
    mid = img.shape[0] // 2
    ax = axes[1, 2]
    ax.plot(img[mid], lw=1, label="target")
    ax.plot(low[mid], lw=1, label="LR")
    ax.set_title(f"row {mid}", fontsize=9)
    ax.set_xlabel("column", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    return fig


def demo_layout_figure(volume, val_slab: tuple[int, int], margin: int) -> Figure:
    """Where the demo dataset's splits lie in the template ``volume`` ``(X, Y, Z)`` (axial
    slices on Z): mid-sagittal and mid-coronal sections with the validation slab
    ``z in [val_slab[0], val_slab[1])`` in red and the ``margin`` slices on each side that no
    training image touches in grey; everything else gives training slices. The third panel
    is the middle axial slice of the slab. Sections are rotated as :mod:`kdmri.data.demo` rotates
    its slices (superior at the top). Axes: 3.
    """
    vol = np.asarray(volume)
    if vol.ndim != 3:
        raise ValueError(f"volume: expected (X, Y, Z), got shape {vol.shape}")
    z0, z1 = (int(v) for v in val_slab)
    nz = vol.shape[2]
    if not 0 <= z0 < z1 <= nz or margin < 0:
        raise ValueError(f"val_slab={val_slab}, margin={margin}: expected 0 <= z0 < z1 <= {nz} "
                         "and a non-negative margin")
    sections = {"sagittal (x = middle)": np.rot90(vol[vol.shape[0] // 2]),
                "coronal (y = middle)": np.rot90(vol[:, vol.shape[1] // 2, :])}
    fig, axes = grid(1, 3, panel=2.8)
    for ax, (title, sec) in zip(axes[0], sections.items()):
        show(ax, sec, title, vmin=0)
        width = sec.shape[1]
        # after rot90 row r shows z = nz - 1 - r
        ax.add_patch(Rectangle((-0.5, nz - z1 - 0.5), width, z1 - z0, color="red", alpha=0.35,
                               label=f"validation slab z {z0}..{z1 - 1}"))
        for lo, hi in ((z1, z1 + margin), (z0 - margin, z0)):
            lo, hi = max(lo, 0), min(hi, nz)
            if hi > lo:
                ax.add_patch(Rectangle((-0.5, nz - hi - 0.5), width, hi - lo, color="0.6",
                                       alpha=0.6, label="margin (unused)" if lo >= z1 else None))
    axes[0, 0].legend(fontsize=7, loc="lower left")
    zm = (z0 + z1) // 2
    show(axes[0, 2], np.rot90(vol[:, :, zm]), f"validation: axial z = {zm}", vmin=0)
    return fig
