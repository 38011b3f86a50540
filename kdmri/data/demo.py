"""The embedded demo dataset: real anatomy that needs no download.

Source: the **MNI152 ICBM 2009a symmetric T1 template** (Fonov et al. 2009/2011), an
average of 152 real T1 scans, shipped inside nilearn's wheel as
``nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz``.

Build (``python -m kdmri demo-data`` or ``make demo-data``):

1. average-pool the 1 mm template to 2 mm and crop the head to 96 x 96 in-plane;
2. **validation**: one axial slab, 16 slices at 2 mm through the ventricles
   (``VAL_SLAB``);
3. **training**: everything at least ``MARGIN`` slices away from that slab — the axial
   slices below and above it, and the coronal and sagittal slices of the two sub-volumes
   below and above it (zero-padded to 96 x 96). No training image contains a voxel of the
   validation slab or its margin, so validation numbers are honest in the spatial sense
   (:func:`slice_plan` records the template voxels of every slice; the build cuts those);
4. intensities divided by the template maximum (so in [0, 1]); near-empty slices dropped;
5. written through :func:`kdmri.data.write_volume` with the demo masks in ``us_masks/demo``.

What it cannot show: the template is one smooth average brain without noise, coil
sensitivities or pathology, and its two hemispheres are mirror images; absolute PSNR/SSIM
are far higher than on real scans and only the *ordering* of methods carries over.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from kdmri.data import write_volume
from kdmri.data.fit_size import fit_to_size
from kdmri.errors import DataError
from kdmri.io import atomic_text
from kdmri.paths import datasets_dir
from kdmri.physics.masks import ACCELERATIONS, DATASET_SHAPES, load_dataset_mask

TEMPLATE = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
SIZE = DATASET_SHAPES["demo"]  # (96, 96)
VAL_SLAB = (38, 54)  # axial slices (2 mm grid) held out for validation
MARGIN = 2  # slices between the validation slab and any training voxel
MIN_CONTENT = 0.05  # drop slices with less than 5 % of pixels above 0.1
DEMO_VERSION = 1


def template_path() -> Path:
    """Path of the MNI152 2009a T1 template inside the installed nilearn package."""
    try:
        import nilearn
    except ImportError as exc:  # pragma: no cover - nilearn is a dependency
        raise DataError("the demo dataset needs nilearn (pip install nilearn): it ships the "
                        "MNI152 template") from exc
    path = Path(nilearn.__file__).parent / "datasets" / "data" / TEMPLATE
    if not path.is_file():
        raise DataError(f"{path}: MNI152 template not found in the installed nilearn")
    return path


def load_template_2mm() -> np.ndarray:
    """The template at 2 mm, cropped to 96 x 96 in-plane: float32 (x=96, y=96, z=94) in [0, 1]."""
    import nibabel as nib

    vol = np.asarray(nib.load(str(template_path())).dataobj, dtype=np.float32)
    if vol.shape != (197, 233, 189):
        raise DataError(f"{template_path()}: expected the 197x233x189 template, got {vol.shape}")
    vol = vol[:196, :232, :188].reshape(98, 2, 116, 2, 94, 2).mean(axis=(1, 3, 5))
    vol = vol[1:97, 10:106, :]  # head bounding box at 2 mm: x 13..85, y 13..103
    return (vol / vol.max()).astype(np.float32)


class SliceCut(NamedTuple):
    """Where one demo slice comes from: the box of template voxels (2 mm grid, half-open
    ranges along x, y, z) and the ``axis`` (0 sagittal, 1 coronal, 2 axial) along which the
    box is one voxel thick. The image is ``rot90`` of the box squeezed along ``axis``."""

    axis: int
    box: tuple[slice, slice, slice]

    def cut(self, vol: np.ndarray) -> np.ndarray:
        return np.rot90(np.take(vol[self.box], 0, axis=self.axis))


def slice_plan(shape: tuple[int, int, int]) -> dict[str, dict[str, list[SliceCut]]]:
    """Every candidate slice of the build, in order: ``{split: {volume name: [SliceCut]}}``.

    The builder cuts exactly these boxes (:func:`demo_slices`), so a check of this
    bookkeeping checks the voxels the data were made of. Training boxes stay ``MARGIN``
    slices away from ``VAL_SLAB`` along z; validation boxes are the slab's axial slices."""
    nx, ny, nz = shape
    z0, z1 = VAL_SLAB
    every_x, every_y = slice(0, nx), slice(0, ny)
    train: dict[str, list[SliceCut]] = {}
    for part, (lo, hi) in {"inferior": (0, z0 - MARGIN), "superior": (z1 + MARGIN, nz)}.items():
        zs = slice(lo, hi)
        train[f"axial_{part}"] = [SliceCut(2, (every_x, every_y, slice(z, z + 1)))
                                  for z in range(lo, hi)]
        train[f"coronal_{part}"] = [SliceCut(1, (every_x, slice(y, y + 1), zs)) for y in range(ny)]
        train[f"sagittal_{part}"] = [SliceCut(0, (slice(x, x + 1), every_y, zs)) for x in range(nx)]
    val = {"axial_val": [SliceCut(2, (every_x, every_y, slice(z, z + 1))) for z in range(z0, z1)]}
    return {"train": train, "validation": val}


def has_content(img: np.ndarray) -> bool:
    """Whether a [0, 1] slice has enough signal to keep (``MIN_CONTENT`` of its pixels above 0.1)."""
    return (img > 0.1).mean() >= MIN_CONTENT


def demo_slices(vol: np.ndarray | None = None) -> dict[str, dict[str, tuple[np.ndarray, list[SliceCut]]]]:
    """``{split: {name: (images (96, 96, S), the S SliceCuts they were cut from)}}``: the
    :func:`slice_plan` cut from the 2 mm template (default :func:`load_template_2mm`), near-empty
    slices dropped, the rest zero-padded to 96 x 96."""
    vol = load_template_2mm() if vol is None else vol
    out: dict[str, dict[str, tuple[np.ndarray, list[SliceCut]]]] = {}
    for split, volumes in slice_plan(vol.shape).items():
        out[split] = {}
        for name, cuts in volumes.items():
            kept = [(c, img) for c in cuts if has_content(img := c.cut(vol))]
            out[split][name] = (np.stack([fit_to_size(img, SIZE) for _, img in kept], axis=-1),
                                [c for c, _ in kept])
    return out


def demo_volumes() -> dict[str, dict[str, np.ndarray]]:
    """``{"train": {name: (96, 96, S)}, "validation": {...}}`` as described in the module doc."""
    return {split: {name: images for name, (images, _) in volumes.items()}
            for split, volumes in demo_slices().items()}


def build_demo(out: Path | str | None = None, accs=ACCELERATIONS, overwrite: bool = False,
               verbose: bool = True) -> Path:
    """Build the demo dataset into ``<out>/demo/{train,validation}`` (default ``datasets/``).

    Skips the work when a complete build of the same version exists, unless ``overwrite``.
    Returns the dataset folder.
    """
    root = Path(out) if out is not None else datasets_dir()
    folder = root / "demo"
    manifest_path = folder / "manifest.json"
    if manifest_path.is_file() and not overwrite:
        manifest = json.loads(manifest_path.read_text())
        tags = [f"{a}x" for a in accs]
        if manifest.get("version") == DEMO_VERSION and set(tags) <= set(manifest.get("accs", [])):
            if verbose:
                print(f"demo dataset up to date in {folder} (use --overwrite to rebuild)")
            return folder
    masks = {a: load_dataset_mask("demo", a, SIZE) for a in accs}
    counts = {}
    for split, volumes in demo_volumes().items():
        for name, volfs in volumes.items():
            write_volume(folder / split / f"demo_{name}.h5", volfs, masks,
                         attrs={"source": TEMPLATE, "split": split, "kdmri_demo_version": DEMO_VERSION})
            counts[f"{split}/demo_{name}"] = int(volfs.shape[-1])
    manifest = {
        "version": DEMO_VERSION,
        "source": f"nilearn/datasets/data/{TEMPLATE}",
        "accs": [f"{a}x" for a in accs],
        "validation_axial_slab_2mm": list(VAL_SLAB),
        "margin_slices": MARGIN,
        "slices": counts,
        "train_slices": sum(v for k, v in counts.items() if k.startswith("train/")),
        "validation_slices": sum(v for k, v in counts.items() if k.startswith("validation/")),
    }
    atomic_text(manifest_path, json.dumps(manifest, indent=2))
    if verbose:
        print(f"demo dataset: {manifest['train_slices']} training and "
              f"{manifest['validation_slices']} validation slices in {folder}")
    return folder


def preview_slices(folder: Path | str | None = None, per_volume: int = 2) -> dict[str, np.ndarray]:
    """A few slices of every volume of the built demo dataset, ``{label: (96, 96)}``, for
    a figure: (at most) ``per_volume`` evenly spaced inner slices of each training volume (axial,
    coronal and sagittal views below and above the validation slab) and of the validation
    slab, labelled ``"train coronal_inferior [40]"``."""
    import h5py

    from kdmri.data import FS_KEY, list_volumes

    root = Path(folder) if folder is not None else datasets_dir() / "demo"
    if per_volume < 1:
        raise ValueError(f"per_volume={per_volume}: expected at least 1")
    images: dict[str, np.ndarray] = {}
    for split in ("train", "validation"):
        for path in list_volumes(root / split):
            with h5py.File(path, "r") as fh:
                vol = fh[FS_KEY]
                n = vol.shape[2]
                for s in np.linspace(0, n - 1, per_volume + 2).round().astype(int)[1:-1]:
                    name = path.stem.removeprefix("demo_")
                    images[f"{split} {name} [{s}]"] = vol[:, :, int(s)]
    return images
