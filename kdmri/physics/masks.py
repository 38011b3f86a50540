"""Undersampling masks: 1-D variable-density Cartesian and 2-D variable-density Gaussian.

Masks are float32 arrays of shape ``(H, W)`` with values in {0, 1}, stored in the
**unshifted** (FFT-native) layout of the reference KD-MRI code: the fully sampled
low-frequency band sits at both ends of the phase-encode axis. The phase-encode axis is
the last one (W): a Cartesian mask samples whole columns, as fastMRI does for knee k-space
of 640 x 368.

Every mask is generated from a seed; :func:`default_seed` derives a stable seed from the
dataset name and acceleration so ``python -m kdmri masks --all`` regenerates the committed
files bit for bit.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from kdmri.errors import DataError
from kdmri.io import atomic_path
from kdmri.paths import acc_tag, mask_path

#: Reference image sizes (H, W) per dataset, as in the KD-MRI masks.
DATASET_SHAPES: dict[str, tuple[int, int]] = {
    "cardiac": (150, 150),
    "mrbrain": (240, 240),
    "knee": (640, 368),
    "calgary": (256, 256),
    "demo": (96, 96),
}
ACCELERATIONS = (4, 5, 8)


def register_mask_shape(dataset: str, shape: tuple[int, int]) -> None:
    """Record the mask size of a new dataset (the dataset registry calls this).

    A name already known must keep its size: :class:`ValueError` otherwise, so the masks and
    the dataset registry never disagree.
    """
    shape = (int(shape[0]), int(shape[1]))
    known = DATASET_SHAPES.setdefault(dataset, shape)
    if known != shape:
        raise ValueError(f"dataset {dataset!r}: shape {shape} differs from its mask shape {known} "
                         "(kdmri.physics.masks.DATASET_SHAPES)")


def default_seed(dataset: str, acc: int | str) -> int:
    """Stable seed for ``dataset`` at ``acc`` (CRC32 of ``'<dataset>-<acc>'``)."""
    return zlib.crc32(f"{dataset}-{acc_tag(acc)}".encode())


def _centre_fraction(acc: float) -> float:
    # fully sampled band: 8 % of lines at 4x, scaled as 0.32 / acc (fastMRI-like)
    return 0.32 / acc


def cartesian_mask(
    shape: tuple[int, int],
    acc: float,
    seed: int = 0,
    centre_fraction: float | None = None,
    decay: float = 2.0,
    centred: bool = False,
) -> np.ndarray:
    """1-D variable-density random Cartesian mask sampling whole phase-encode lines (columns).

    Args:
        shape: image size ``(H, W)``; W is the phase-encode axis.
        acc: acceleration; exactly ``round(W / acc)`` lines are sampled.
        seed: random seed; the same seed always gives the same mask.
        centre_fraction: fraction of W fully sampled around DC (default ``0.32 / acc``),
            rounded to an odd number of lines centred on DC.
        decay: outer lines are drawn with probability ~ (1 + |k| / k_max * 8) ** -decay.
        centred: return the centred layout instead of the (default) unshifted one.

    Returns:
        float32 array ``(H, W)`` of zeros and ones.
    """
    h, w = shape
    if acc < 1:
        raise ValueError(f"acc={acc}: expected an acceleration >= 1")
    n_lines = max(1, int(round(w / acc)))
    frac = _centre_fraction(acc) if centre_fraction is None else centre_fraction
    n_centre = min(n_lines, max(1, int(round(w * frac))))
    n_centre += 1 - n_centre % 2  # odd: the band is symmetric about DC
    centre = w // 2
    lines = np.zeros(w, dtype=bool)
    start = centre - n_centre // 2
    n_lines = max(n_lines, n_centre)
    lines[start : start + n_centre] = True
    outer = np.flatnonzero(~lines)
    n_outer = n_lines - n_centre
    if n_outer > 0:
        dist = np.abs(outer - centre) / (w / 2)
        weights = (1.0 + 8.0 * dist) ** (-decay)
        rng = np.random.default_rng(seed)
        chosen = rng.choice(outer, size=n_outer, replace=False, p=weights / weights.sum())
        lines[chosen] = True
    mask = np.broadcast_to(lines[None, :], (h, w)).astype(np.float32)
    return mask if centred else np.fft.ifftshift(mask)


def gaussian_mask(
    shape: tuple[int, int],
    acc: float,
    seed: int = 0,
    centre_radius: float | None = None,
    sigma: float = 0.3,
    centred: bool = False,
) -> np.ndarray:
    """2-D variable-density (Gaussian) random mask with a fully sampled central disc.

    Exactly ``round(H * W / acc)`` k-space points are sampled; outside the disc of radius
    ``centre_radius`` (default such that the disc holds ~1/4 of the samples) points are
    drawn without replacement with probability ~ exp(-r^2 / (2 sigma^2)), r normalised
    to 1 at the edge of the shorter axis.
    """
    h, w = shape
    n_total = int(round(h * w / acc))
    yy, xx = np.meshgrid(np.arange(h) - h // 2, np.arange(w) - w // 2, indexing="ij")
    r = np.sqrt((yy / (h / 2)) ** 2 + (xx / (w / 2)) ** 2)
    if centre_radius is None:
        centre_radius = float(np.sqrt(n_total / 4 / (np.pi * h * w / 4)))
    flat = np.zeros(h * w, dtype=bool)
    inner = (r <= centre_radius).ravel()
    if inner.sum() > n_total:
        order = np.argsort(r.ravel(), kind="stable")[:n_total]
        flat[order] = True
    else:
        flat[inner] = True
        outer = np.flatnonzero(~inner)
        weights = np.exp(-(r.ravel()[outer] ** 2) / (2 * sigma**2))
        rng = np.random.default_rng(seed)
        chosen = rng.choice(outer, size=n_total - int(inner.sum()), replace=False,
                            p=weights / weights.sum())
        flat[chosen] = True
    mask = flat.reshape(h, w).astype(np.float32)
    return mask if centred else np.fft.ifftshift(mask)


def sampled_fraction(mask: np.ndarray) -> float:
    """Fraction of k-space samples kept by ``mask``."""
    return float(np.asarray(mask, dtype=np.float64).mean())


def save_mask(mask: np.ndarray, path: Path | str) -> Path:
    """Write ``mask`` (unshifted layout) to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.asarray(mask, dtype=np.float32))
    return path


def load_mask(path: Path | str, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a mask ``.npy`` file; check it is 2-D, binary, finite and (optionally) ``shape``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: mask file not found (make one with `python -m kdmri masks`)")
    try:
        mask = np.load(path, allow_pickle=False)
    except Exception as exc:  # corrupt or not an .npy file
        raise DataError(f"{path}: not a readable .npy mask ({exc})") from exc
    if mask.ndim != 2:
        raise DataError(f"{path}: expected a 2-D mask (H, W), got shape {mask.shape}")
    if not np.all(np.isfinite(mask)) or not np.all((mask == 0) | (mask == 1)):
        raise DataError(f"{path}: expected a mask of zeros and ones")
    if shape is not None and tuple(mask.shape) != tuple(shape):
        raise DataError(f"{path}: mask shape {mask.shape} does not match image shape {tuple(shape)}")
    return mask.astype(np.float32)


def load_dataset_mask(dataset: str, acc: int | str, shape: tuple[int, int] | None = None,
                      root: Path | None = None) -> np.ndarray:
    """Load the committed mask ``us_masks/<dataset>/mask_<acc>.npy``."""
    return load_mask(mask_path(dataset, acc, root), shape)


def make_dataset_masks(
    datasets: list[str] | None = None,
    accs: tuple[int, ...] = ACCELERATIONS,
    root: Path | None = None,
) -> list[Path]:
    """(Re)generate the committed Cartesian masks for ``datasets`` (default: all known)."""
    written = []
    for name in datasets or list(DATASET_SHAPES):
        if name not in DATASET_SHAPES:
            raise ValueError(f"dataset {name!r}: expected one of {sorted(DATASET_SHAPES)}")
        for acc in accs:
            mask = cartesian_mask(DATASET_SHAPES[name], acc, seed=default_seed(name, acc))
            written.append(save_mask(mask, mask_path(name, acc, root)))
    return written
