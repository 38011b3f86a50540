"""The KD-MRI repository's own masks: fetched, verified by sha256, checked, never committed.

``python -m kdmri masks --reference`` downloads ``us_masks/<dataset>/mask_<acc>.npy`` of
`Bala93/KD-MRI <https://github.com/Bala93/KD-MRI>`_ at the pinned commit
:data:`REFERENCE_COMMIT` (cardiac, mrbrain, knee at 4x, 5x, 8x) into
``us_masks/reference/<dataset>/mask_<acc>.npy`` (git-ignored: that repository carries no
licence to redistribute them). Each file goes through :func:`kdmri.fetch.fetch` (temporary
file, sha256 of :data:`REFERENCE_MASKS`, then renamed) and, before the rename,
:func:`check_reference_mask`: shape, dtype, phase-encode axis, number of sampled lines and
centre band as measured on the reference files (docs/FIDELITY.md). A run uses them with
``mask_source: reference`` (:func:`run_mask`); the default ``kdmri`` keeps kdmri's own masks.

A mirror or a test serves the files elsewhere: ``base_url`` (``--base-url``, or
``$KDMRI_REFERENCE_MASKS_URL``: an http(s):// or file:// URL or a folder holding
``<dataset>/mask_<acc>.npy``), with its own hashes from ``manifest`` (``--manifest``: a YAML
mapping ``<dataset>/mask_<acc>.npy: <sha256>``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import yaml

from kdmri.errors import ConfigError, DataError
from kdmri.fetch import check_sha256, fetch, is_url
from kdmri.paths import acc_tag, mask_path, masks_dir
from kdmri.physics.masks import centre_band, line_profile, phase_encode_axis

REFERENCE_REPOSITORY = "Bala93/KD-MRI"
REFERENCE_COMMIT = "918c3de44e46e9a8f3aeca522b415fd7993ac1c5"
DEFAULT_BASE_URL = (f"https://raw.githubusercontent.com/{REFERENCE_REPOSITORY}/{REFERENCE_COMMIT}"
                    "/us_masks")
#: Environment variable overriding the base URL (mirrors, tests).
BASE_URL_ENV = "KDMRI_REFERENCE_MASKS_URL"
#: The values of ``mask_source``.
MASK_SOURCES = ("kdmri", "reference")


@dataclass(frozen=True)
class ReferenceMask:
    """What one reference mask file is: its hash and what it must satisfy once loaded."""

    shape: tuple[int, int]
    dtype: str
    axis: int  # phase-encode axis: 0 = whole rows (varies along H), 1 = whole columns
    lines: int  # sampled lines
    centre: int | None  # contiguous sampled lines around DC (unshifted), None: not recorded
    sha256: str


def _table(shape, dtype, axis, rows) -> dict[int, ReferenceMask]:
    return {acc: ReferenceMask(shape, dtype, axis, lines, centre, sha)
            for acc, (lines, centre, sha) in rows.items()}


#: Measured on the files at :data:`REFERENCE_COMMIT` (docs/FIDELITY.md, "reference masks").
REFERENCE_MASKS: dict[str, dict[int, ReferenceMask]] = {
    "cardiac": _table((150, 150), "float64", 0, {
        4: (37, 10, "9a420a62e19afb88d8b94d1177ec44fead4199d5d56993b043837c10de0865f2"),
        5: (30, 11, "c9b326a2cfb2e2432a02691e7161e5b1b390134cce908729125365ac9f5b098b"),
        8: (18, 10, "52fa8b85d462d927e8111944f45305c0634d0bd41b54149dac11370229993907")}),
    "mrbrain": _table((240, 240), "float64", 0, {
        4: (60, 12, "d0e77346c4f74d7ba79cdbad861e07b97e59f95f23157523badf1d437d447fed"),
        5: (48, 9, "bda42e3032667158ae89cfac6f41c3ec8b7ccef6eb36a5f1aaa368f482fa11bb"),
        8: (30, 11, "67cdf1e2f8289821bdb98d267ed51a0d791e7e5609581e5ed3fc72eb30964cb3")}),
    "knee": _table((640, 368), "float32", 1, {
        4: (94, 29, "64ec90bfab0c31417cf7d729f49024a233f2d08d6110b7a904fa6d761ef10928"),
        5: (74, None, "786001995bc76e1756478304c8b18d14b78cb36d2f5bab079af831f2c5c827d8"),
        8: (50, None, "bd143bc6395fd557e588ec8b76e85340d23044fb8699cd48086e8c2ad386b570")}),
}


def reference_root() -> Path:
    """``us_masks/reference``: where the fetched reference masks are stored."""
    return masks_dir() / "reference"


def relative_name(dataset: str, acc: int | str) -> str:
    """``<dataset>/mask_<acc>.npy``: the file's path under the reference's ``us_masks/``."""
    return f"{dataset}/mask_{acc_tag(acc)}.npy"


def reference_spec(dataset: str, acc: int | str) -> ReferenceMask:
    a = int(acc_tag(acc)[:-1])
    if dataset not in REFERENCE_MASKS or a not in REFERENCE_MASKS[dataset]:
        raise ConfigError(f"reference mask {dataset} {acc_tag(acc)}: the KD-MRI repository has masks for "
                          f"{sorted(REFERENCE_MASKS)} at {sorted(REFERENCE_MASKS['cardiac'])}x only")
    return REFERENCE_MASKS[dataset][a]


def check_reference_mask(mask: np.ndarray, dataset: str, acc: int | str, where: str) -> None:
    """A :class:`DataError` naming ``where`` unless ``mask`` is what the reference mask of
    ``dataset`` at ``acc`` is (shape, dtype, zeros and ones, axis, lines, centre band)."""
    spec = reference_spec(dataset, acc)
    m = np.asarray(mask)
    want = (f"a {spec.shape[0]}x{spec.shape[1]} {spec.dtype} line mask varying along "
            f"{'H' if spec.axis == 0 else 'W'} with {spec.lines} sampled lines"
            + (f" and a centre band of {spec.centre}" if spec.centre is not None else ""))
    if m.shape != spec.shape or str(m.dtype) != spec.dtype:
        raise DataError(f"{where}: expected {want}; got shape {m.shape}, dtype {m.dtype}")
    if not np.all((m == 0) | (m == 1)):
        raise DataError(f"{where}: expected {want}; got values other than 0 and 1")
    try:
        axis = phase_encode_axis(m)
    except DataError:
        axis = None
    if axis != spec.axis:
        raise DataError(f"{where}: expected {want}; its lines vary along "
                        f"{'neither axis' if axis is None else ('H' if axis == 0 else 'W')}")
    lines, band = int(line_profile(m).sum()), centre_band(m)
    if lines != spec.lines or (spec.centre is not None and band != spec.centre):
        raise DataError(f"{where}: expected {want}; got {lines} lines, centre band {band}")


def load_reference_mask(path: Path | str, dataset: str, acc: int | str) -> np.ndarray:
    """A reference mask file, read without pickle and checked (:func:`check_reference_mask`)."""
    try:
        with open(path, "rb") as fh:
            mask = np.load(fh, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: reference mask not found; fetch it with "
                        "`python -m kdmri masks --reference`") from None
    except Exception as exc:
        raise DataError(f"{path}: not a readable .npy mask ({exc})") from None
    check_reference_mask(mask, dataset, acc, str(path))
    return mask


def reference_mask_path(dataset: str, acc: int | str, root: Path | None = None) -> Path:
    return mask_path(dataset, acc, root or reference_root())


def read_hashes(manifest: Path | str) -> dict[str, str]:
    """A hash manifest: YAML ``{<dataset>/mask_<acc>.npy: sha256}``."""
    path = Path(manifest)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"--manifest {path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--manifest {path}: not valid YAML ({exc})") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"--manifest {path}: expected a mapping '<dataset>/mask_<acc>.npy: sha256'")
    return {str(k): check_sha256(v, f"--manifest {path}: entry {k!r}") for k, v in data.items()}


def fetch_reference_masks(datasets: Iterable[str] | None = None, accs: Iterable[int | str] | None = None,
                          base_url: str | Path | None = None, root: Path | None = None,
                          manifest: Path | str | None = None, progress: bool = False) -> list[Path]:
    """Fetch, verify and store the reference masks (default: every dataset and acceleration);
    returns the stored paths. Each file is stored only once its sha256 and
    :func:`check_reference_mask` pass; a file already there with the right hash is kept."""
    base = str(base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL)
    hashes = read_hashes(manifest) if manifest is not None else None
    names = list(datasets or REFERENCE_MASKS)
    tags = [acc_tag(a) for a in (accs or (4, 5, 8))]
    stored = []
    for dataset in names:
        for tag in tags:
            spec, rel = reference_spec(dataset, tag), relative_name(dataset, tag)
            if hashes is not None and rel not in hashes:
                raise ConfigError(f"--manifest {manifest}: no sha256 for {rel}; it lists {sorted(hashes)}")
            sha = hashes[rel] if hashes is not None else spec.sha256
            source = f"{base.rstrip('/')}/{rel}" if is_url(base) else Path(base) / rel

            check = partial(load_reference_mask, dataset=dataset, acc=tag)  # after the hash
            stored.append(fetch(source, reference_mask_path(dataset, tag, root), sha,
                                f"reference mask {rel}", validate=check, progress=progress))
    return stored


def run_mask(cfg) -> Path | str | None:
    """The mask file a run uses: ``cfg.mask`` (``None``: each HDF5 file's own), or with
    ``mask_source: reference`` the fetched reference mask of ``cfg.dataset`` at ``cfg.acc``,
    checked (:func:`load_reference_mask`)."""
    if cfg.mask_source == "kdmri":
        return cfg.mask
    if cfg.mask is not None:
        raise ConfigError(f"mask={cfg.mask!r} and mask_source='reference': set one of the two")
    reference_spec(cfg.dataset, cfg.acc)
    path = reference_mask_path(cfg.dataset, cfg.acc)
    load_reference_mask(path, cfg.dataset, cfg.acc)
    return path
