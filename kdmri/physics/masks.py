"""Undersampling masks: a registry of generators and the per-dataset mask table.

Masks are float32 arrays of shape ``(H, W)`` with values in {0, 1}, stored in the
**unshifted** (FFT-native) layout of the reference KD-MRI code: the fully sampled
low-frequency band sits at both ends of the phase-encode axis, DC at index 0.

The **phase-encode axis** is the axis a 1-D Cartesian mask varies along; along the other
axis it is constant, so it samples whole lines. As in the reference masks, cardiac and
brain (mrbrain) sample whole **rows** (phase-encode axis 0, H) and knee whole **columns**
(axis 1, W). :data:`MASK_SPECS` holds these settings per dataset as data.

Generators are registered by name (:func:`register_mask`) and called through
:func:`make_mask`. Every mask comes from a seed; :func:`default_seed` derives a stable seed
from the dataset name and acceleration, so ``python -m kdmri masks --all`` (``make masks``)
regenerates the committed files bit for bit.
"""

from __future__ import annotations

import inspect
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np

from kdmri.errors import ConfigError, DataError
from kdmri.io import atomic_path
from kdmri.paths import acc_tag, mask_path
from kdmri.registry import Registry

ACCELERATIONS = (4, 5, 8)

# --------------------------------------------------------------------------- registry

_GENERATORS: Registry[Callable[..., np.ndarray]] = Registry("mask kind")


def register_mask(name: str) -> Callable[[Callable[..., np.ndarray]], Callable[..., np.ndarray]]:
    """Decorator: register ``fn(shape, acc, seed=..., **options) -> (H, W) mask`` as ``name``."""
    return _GENERATORS.register(name)


def mask_kinds() -> list[str]:
    """Names of the registered mask generators."""
    return sorted(_GENERATORS)


def make_mask(kind: str, shape: tuple[int, int], acc: float, seed: int = 0, **options) -> np.ndarray:
    """Generate a mask with the generator registered as ``kind`` (see :func:`mask_kinds`)."""
    fn = _GENERATORS.lookup(kind)
    accepted = [p for p in inspect.signature(fn).parameters if p not in ("shape", "acc", "seed")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"mask kind {kind!r}: unknown option(s) {unknown}; expected some of {accepted}")
    return fn(tuple(shape), acc, seed=seed, **options)


# --------------------------------------------------------------------------- generators


def _centre_fraction(acc: float) -> float:
    # default fully sampled band: 8 % of lines at 4x, scaled as 0.32 / acc (fastMRI-like)
    return 0.32 / acc


@register_mask("cartesian")
def cartesian_mask(
    shape: tuple[int, int],
    acc: float,
    seed: int = 0,
    axis: int = 1,
    centre_lines: int | None = None,
    centre_fraction: float | None = None,
    fraction: float | None = None,
    exact_centre: bool = False,
    decay: float = 2.0,
    centred: bool = False,
) -> np.ndarray:
    """1-D variable-density random Cartesian mask sampling whole phase-encode lines.

    Args:
        shape: image size ``(H, W)``.
        acc: acceleration (>= 1).
        seed: random seed; the same arguments and seed always give the same mask.
        axis: the phase-encode axis, along which the mask varies (it is constant along the
            other one). ``1`` (the default) samples whole columns, as the knee masks;
            ``0`` whole rows, as the cardiac and brain masks.
        centre_lines: exact number of fully sampled lines around DC. Default: the rule of
            ``centre_fraction``.
        centre_fraction: fraction of the lines fully sampled around DC (default
            ``0.32 / acc``), rounded to an odd number of lines. Ignored if ``centre_lines``
            is given.
        fraction: fraction of the lines sampled in all; ``round(n * fraction)`` lines,
            ``n`` the length of ``axis``. Default ``1 / acc``.
        exact_centre: never draw the two lines bordering the centre band, so the contiguous
            sampled band around DC is exactly the band (otherwise random lines next to it
            can widen it).
        decay: outer lines are drawn with probability ``~ (1 + |k| / k_max * 8) ** -decay``.
        centred: return the centred layout instead of the (default) unshifted one.

    A band of ``c`` lines occupies offsets ``-(c // 2) .. c - c // 2 - 1`` from DC.

    Returns:
        float32 array ``(H, W)`` of zeros and ones.
    """
    if acc < 1:
        raise ConfigError(f"acc={acc}: expected an acceleration >= 1")
    if axis not in (0, 1):
        raise ConfigError(f"axis={axis!r}: expected 0 (whole rows) or 1 (whole columns)")
    n = shape[axis]
    share = 1 / acc if fraction is None else fraction
    if not 0 < share <= 1:
        raise ConfigError(f"fraction={fraction!r}: expected a sampled fraction in (0, 1]")
    n_lines = max(1, int(round(n * share)))
    if centre_lines is None:
        frac = _centre_fraction(acc) if centre_fraction is None else centre_fraction
        n_centre = min(n_lines, max(1, int(round(n * frac))))
        n_centre += 1 - n_centre % 2  # odd: the band is symmetric about DC
    else:
        if not 1 <= int(centre_lines) <= n:
            raise ConfigError(f"centre_lines={centre_lines!r}: expected 1 .. {n}")
        n_centre = int(centre_lines)
    centre = n // 2
    lines = np.zeros(n, dtype=bool)
    start = centre - n_centre // 2
    n_lines = max(n_lines, n_centre)
    lines[start : start + n_centre] = True
    candidates = ~lines
    if exact_centre:
        candidates[[(start - 1) % n, (start + n_centre) % n]] = False
    outer = np.flatnonzero(candidates)
    n_outer = n_lines - n_centre
    if n_outer > outer.size:
        raise ConfigError(f"fraction={share}: {n_lines} lines do not fit around a centre band of "
                          f"{n_centre} with exact_centre={exact_centre} on an axis of {n}")
    if n_outer > 0:
        dist = np.abs(outer - centre) / (n / 2)
        weights = (1.0 + 8.0 * dist) ** (-decay)
        rng = np.random.default_rng(seed)
        chosen = rng.choice(outer, size=n_outer, replace=False, p=weights / weights.sum())
        lines[chosen] = True
    profile = lines[None, :] if axis == 1 else lines[:, None]
    mask = np.broadcast_to(profile, shape).astype(np.float32)
    return mask if centred else np.fft.ifftshift(mask)


@register_mask("gaussian2d")
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


# --------------------------------------------------------------------------- per-dataset table


@dataclass(frozen=True)
class MaskSpec:
    """How the committed masks of one dataset are made.

    Attributes:
        shape: image size ``(H, W)``.
        axis: phase-encode axis (0: whole rows sampled, 1: whole columns).
        kind: registered generator name.
        centre_lines: fully sampled lines around DC per acceleration (missing: the
            generator's default rule).
        fractions: sampled fraction per acceleration (missing: ``1 / acc``).
        options: further generator options, the same at every acceleration.
        source: where the settings come from (documentation).
    """

    shape: tuple[int, int]
    axis: int = 1
    kind: str = "cartesian"
    centre_lines: Mapping[int, int] = field(default_factory=dict)
    fractions: Mapping[int, float] = field(default_factory=dict)
    options: Mapping[str, object] = field(default_factory=dict)
    source: str = ""

    def generator_options(self, acc: int | str) -> dict:
        """Options for :func:`make_mask` at ``acc``."""
        a = int(acc_tag(acc)[:-1])
        opts = {"axis": self.axis, **self.options}
        if a in self.centre_lines:
            opts["centre_lines"] = self.centre_lines[a]
        if a in self.fractions:
            opts["fraction"] = self.fractions[a]
        return opts

    def make(self, acc: int | str, seed: int) -> np.ndarray:
        """The mask at ``acc`` with ``seed``."""
        return make_mask(self.kind, self.shape, int(acc_tag(acc)[:-1]), seed=seed,
                         **self.generator_options(acc))


#: Per-dataset mask settings. cardiac / mrbrain / knee follow the reference KD-MRI masks
#: (orientation, centre band, sampled fractions 0.247/0.200/0.120, 0.250/0.200/0.125 and
#: 0.255/0.201/0.136 at 4x/5x/8x); see docs/FIDELITY.md. calgary has no reference mask and
#: keeps kdmri's own columns; demo is kdmri's small synthetic set (its data is built with
#: these masks, so they must not change).
_EXACT = MappingProxyType({"exact_centre": True})
_SPECS: dict[str, MaskSpec] = {
    "cardiac": MaskSpec((150, 150), axis=0, centre_lines={4: 12, 5: 11, 8: 10},
                        fractions={4: 0.247, 5: 0.200, 8: 0.120}, options=_EXACT,
                        source="reference KD-MRI us_masks/cardiac (rows, 10-12 centre lines)"),
    "mrbrain": MaskSpec((240, 240), axis=0, centre_lines={4: 12, 5: 11, 8: 10},
                        fractions={4: 0.250, 5: 0.200, 8: 0.125}, options=_EXACT,
                        source="reference KD-MRI us_masks/mrbrain (rows, 10-12 centre lines)"),
    "knee": MaskSpec((640, 368), axis=1, centre_lines={4: 29, 5: 29, 8: 29},
                     fractions={4: 0.255, 5: 0.201, 8: 0.136}, options=_EXACT,
                     source="reference KD-MRI us_masks/knee (columns, 29 centre lines)"),
    "calgary": MaskSpec((256, 256), axis=1, source="no reference mask; kdmri default (columns)"),
    "demo": MaskSpec((96, 96), axis=1, source="kdmri synthetic demo; not a reference dataset"),
}
MASK_SPECS: Mapping[str, MaskSpec] = MappingProxyType(_SPECS)  # read-only view of the table

#: Reference image sizes (H, W) per dataset (from :data:`MASK_SPECS`).
DATASET_SHAPES: dict[str, tuple[int, int]] = {name: spec.shape for name, spec in MASK_SPECS.items()}


def register_mask_spec(name: str, spec: MaskSpec) -> MaskSpec:
    """Add dataset ``name`` to :data:`MASK_SPECS` (and :data:`DATASET_SHAPES`), so that
    ``python -m kdmri masks --dataset <name>`` writes its masks."""
    if not isinstance(spec, MaskSpec):
        raise ConfigError(f"register_mask_spec({name!r}): expected a MaskSpec, got {type(spec).__name__}")
    if name in _SPECS and _SPECS[name] != spec:
        raise ConfigError(f"dataset {name!r} already has a mask spec ({_SPECS[name]})")
    if spec.kind not in _GENERATORS:
        raise ConfigError(f"register_mask_spec({name!r}): {_GENERATORS.unknown(spec.kind)}")
    _SPECS[name] = spec
    DATASET_SHAPES[name] = spec.shape
    return spec




def unregister_mask_spec(name: str) -> None:
    """Remove dataset ``name`` from :data:`MASK_SPECS` and :data:`DATASET_SHAPES` (tests and
    the dataset registry's ``unregister_dataset`` use it to clean up)."""
    _SPECS.pop(name, None)
    DATASET_SHAPES.pop(name, None)


def register_mask_shape(dataset: str, shape: tuple[int, int]) -> None:
    """Record the mask size of a new dataset (the dataset registry calls this): a dataset not in
    :data:`MASK_SPECS` gets kdmri's default row (whole columns, centre band 0.32 / acc, 1 / acc
    of the lines); a name already known must keep its size (:class:`ConfigError`, a
    ``ValueError``, otherwise), so the masks and the dataset registry never disagree."""
    shape = (int(shape[0]), int(shape[1]))
    known = _SPECS.get(dataset)
    if known is None:
        register_mask_spec(dataset, MaskSpec(shape, source="registered dataset; kdmri default"))
    elif known.shape != shape:
        raise ConfigError(f"dataset {dataset!r}: shape {shape} differs from its mask shape "
                          f"{known.shape} (kdmri.physics.masks.MASK_SPECS)")


def default_seed(dataset: str, acc: int | str) -> int:
    """Stable seed for ``dataset`` at ``acc`` (CRC32 of ``'<dataset>-<acc>'``)."""
    return zlib.crc32(f"{dataset}-{acc_tag(acc)}".encode())


def dataset_mask(dataset: str, acc: int | str) -> np.ndarray:
    """Generate (not load) the mask of ``dataset`` at ``acc`` from :data:`MASK_SPECS`."""
    if dataset not in MASK_SPECS:
        raise ConfigError(f"dataset {dataset!r}: expected one of {sorted(MASK_SPECS)}")
    return MASK_SPECS[dataset].make(acc, default_seed(dataset, acc))


# --------------------------------------------------------------------------- inspection


def sampled_fraction(mask: np.ndarray) -> float:
    """Fraction of k-space samples kept by ``mask``."""
    return float(np.asarray(mask, dtype=np.float64).mean())


def phase_encode_axis(mask: np.ndarray) -> int:
    """The axis a line mask varies along: 1 if every row is the same (whole columns sampled),
    0 if every column is the same (whole rows). A 2-D (e.g. Gaussian) mask is a DataError."""
    m = np.asarray(mask)
    if np.all(m == m[:1]):
        return 1
    if np.all(m == m[:, :1]):
        return 0
    raise DataError(f"mask of shape {m.shape}: not a line mask (neither its rows nor its columns "
                    "are all equal)")


def line_profile(mask: np.ndarray) -> np.ndarray:
    """The 1-D sampling pattern of a line mask along its phase-encode axis (bool)."""
    m = np.asarray(mask)
    return (m[0, :] if phase_encode_axis(m) == 1 else m[:, 0]).astype(bool)


def centre_band(mask: np.ndarray) -> int:
    """Contiguous sampled lines around DC of an **unshifted** line mask (the band at both ends
    of the phase-encode axis); 0 if DC is not sampled."""
    lines = line_profile(mask)
    if lines.all():
        return lines.size
    if not lines[0]:
        return 0
    forward = int(np.argmin(lines))  # first unsampled line after DC
    backward = int(np.argmin(lines[::-1]))  # first unsampled line before DC (wrapping)
    return forward + backward


# --------------------------------------------------------------------------- files


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
    accs: tuple[int | str, ...] = ACCELERATIONS,
    root: Path | None = None,
) -> list[Path]:
    """(Re)generate the committed masks of ``datasets`` (default: all in :data:`MASK_SPECS`)."""
    names = list(datasets or MASK_SPECS)
    unknown = [n for n in names if n not in MASK_SPECS]
    if unknown:
        raise ConfigError(f"dataset(s) {unknown}: expected some of {sorted(MASK_SPECS)}")
    return [save_mask(dataset_mask(name, acc), mask_path(name, acc, root))
            for name in names for acc in accs]
