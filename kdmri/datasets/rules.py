"""The preprocessing rules shared by every converter: fit to size, normalise, split.

Fitting to size (centre crop / zero pad) is :func:`kdmri.data.fit_size.fit_to_size`, shared
with the demo and the example writers. See docs/DATASETS.md ("Rules shared by every
dataset") for the same rules in prose.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from kdmri.errors import ConfigError, DataError


def normalise_volume(volume: np.ndarray, percentile: float = 100.0,
                     source: Path | str = "volume") -> tuple[np.ndarray, float]:
    """Scale a volume to [0, 1]; returns ``(normalised float32, divisor)``.

    Negative values are set to 0 (a magnitude image has none; they come from interpolation
    or bias correction), then the volume is divided by its maximum (``percentile=100``) or
    by its ``percentile``-th percentile over all voxels, and clipped at 1.
    """
    vol = np.maximum(np.asarray(volume, dtype=np.float64), 0.0)
    scale = float(vol.max()) if percentile >= 100 else float(np.percentile(vol, percentile))
    if not scale > 0:
        raise DataError(f"{source}: the image is all zero after fitting to the target size; "
                        "expected a volume with signal")
    return np.clip(vol / scale, 0.0, 1.0).astype(np.float32), scale


def split_subjects(subjects: Iterable[str], val_fraction: float, seed: int) -> dict[str, str]:
    """Deterministic subject-level split: ``{subject: 'train' | 'validation'}``.

    The unique subject ids are sorted, shuffled by ``numpy.random.default_rng(seed)``, and the
    first ``round(val_fraction * n)`` go to validation (at least 1 and at most ``n - 1`` when
    ``0 < val_fraction < 1``). The same ids, fraction and seed always give the same split.
    """
    ids = sorted(set(subjects))
    n = len(ids)
    if not 0.0 <= val_fraction <= 1.0:
        raise ConfigError(f"val_fraction={val_fraction}: expected a fraction in [0, 1]")
    n_val = int(round(val_fraction * n))
    if 0.0 < val_fraction < 1.0:
        if n < 2:
            raise DataError(f"only {n} subject(s) found: a train/validation split needs at least "
                            "2 (use --val-fraction 0 to put everything in train)")
        n_val = min(max(n_val, 1), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    val = {ids[i] for i in order[:n_val]}
    return {s: ("validation" if s in val else "train") for s in ids}


def off_size(shape: Sequence[int], size: Sequence[int], tolerance: float = 0.125) -> bool:
    """True when an in-plane axis of ``shape`` differs from ``size`` by more than
    ``tolerance`` (a fraction): too far off to be a crop / pad of the same layout."""
    return any(abs(n - t) > tolerance * t for n, t in zip(shape[:2], size[:2]))
