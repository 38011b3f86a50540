"""The domain-shift test set: real brain scans of other subjects, contrasts and scanners than
the demo's template, converted to the demo's layout (``datasets/demo/shift/``).

The demo trains and validates on one template (MNI152, an average of 152 T1 scans). This
set asks whether a finding survives a change of anatomy, contrast and acquisition. It is
**only ever a test set**: never trained on, never used to select a model, an epoch or a
setting (``python -m kdmri evaluate --split shift``; the study reports every comparison on
it, :mod:`kdmri.reporting.study`).

Source: the example images that ship inside nibabel's wheel (``nibabel/tests/data``;
nibabel is MIT-licensed, and so are its test files), read with nibabel, no download:

* ``example4d.nii.gz``: a gradient-echo EPI (T2*-weighted) brain volume of a real subject,
  128 x 96 x 24 axial slices at 2 x 2 x 2.2 mm, two time points (the first is used);
* ``anatomical.nii``: a T1-weighted brain volume of another real subject, 33 x 41 x 25
  axial slices at 2 mm (a crop around the centre of the brain).

Both are at the demo's 2 mm in-plane spacing, so no resampling: each axial slice is turned
as the demo's slices are (``rot90``), fitted to 96 x 96 by the converters' rule
(:func:`kdmri.data.fit_size.fit_to_size`: centred crop or zero padding), each volume is
normalised by the converters' rule (:func:`kdmri.datasets.rules.normalise_volume`:
negatives to 0, divided by the maximum), near-empty slices are dropped by the demo's rule
(:func:`kdmri.data.demo.has_content`), and the volume is written with the demo masks
(:func:`kdmri.data.write_volume`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from kdmri.data import write_volume
from kdmri.data.demo import SIZE, has_content
from kdmri.data.fit_size import fit_to_size
from kdmri.datasets.rules import normalise_volume
from kdmri.errors import DataError
from kdmri.io import atomic_text
from kdmri.paths import datasets_dir
from kdmri.physics.masks import ACCELERATIONS, load_dataset_mask

#: The split folder of the demo dataset that holds this set.
SPLIT = "shift"
SHIFT_VERSION = 1
#: ``{volume name: (file in nibabel/tests/data, what it is)}``.
SOURCES: dict[str, tuple[str, str]] = {
    "epi_t2star": ("example4d.nii.gz", "gradient-echo EPI (T2*), 2 x 2 x 2.2 mm, first time point"),
    "t1_crop": ("anatomical.nii", "T1-weighted, 2 mm, cropped around the brain's centre"),
}
LICENCE = "MIT (nibabel, https://github.com/nipy/nibabel/blob/master/COPYING)"


def source_path(name: str) -> Path:
    """Path of the source file of volume ``name`` inside the installed nibabel."""
    import nibabel

    path = Path(nibabel.__file__).parent / "tests" / "data" / SOURCES[name][0]
    if not path.is_file():
        raise DataError(f"{path}: nibabel's example image not found (expected in the installed "
                        "nibabel wheel: pip install nibabel)")
    return path


def shift_volume(name: str) -> np.ndarray:
    """Volume ``name`` of :data:`SOURCES` in the demo layout: float32 ``(96, 96, S)`` in [0, 1]."""
    import nibabel as nib

    path = source_path(name)
    data = np.asarray(nib.load(str(path)).dataobj, dtype=np.float64)
    if data.ndim == 4:
        data = data[..., 0]
    if data.ndim != 3:
        raise DataError(f"{path}: expected a 3-D (or 4-D) volume, got shape {data.shape}")
    slices = np.stack([np.rot90(data[:, :, z]) for z in range(data.shape[2])], axis=-1)
    vol, _ = normalise_volume(fit_to_size(slices, SIZE), source=path)
    kept = [s for s in range(vol.shape[2]) if has_content(vol[:, :, s])]
    if not kept:
        raise DataError(f"{path}: no slice with signal after fitting to {SIZE}")
    return np.ascontiguousarray(vol[:, :, kept])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_shift(out: Path | str | None = None, accs=ACCELERATIONS, overwrite: bool = False,
                verbose: bool = True) -> Path:
    """Write the shift set into ``<out>/demo/shift`` (default ``datasets/``) with its
    ``manifest.json`` (sources, sha256, licence, slices); skips a complete build of the same
    version unless ``overwrite``. Returns the folder."""
    folder = (Path(out) if out is not None else datasets_dir()) / "demo" / SPLIT
    manifest_path = folder / "manifest.json"
    tags = [f"{a}x" for a in accs]
    if manifest_path.is_file() and not overwrite:
        old = json.loads(manifest_path.read_text())
        if old.get("version") == SHIFT_VERSION and set(tags) <= set(old.get("accs", [])):
            if verbose:
                print(f"shift test set up to date in {folder}")
            return folder
    masks = {a: load_dataset_mask("demo", a, SIZE) for a in accs}
    volumes = {}
    for name, (file, what) in SOURCES.items():
        vol = shift_volume(name)
        write_volume(folder / f"shift_{name}.h5", vol, masks,
                     attrs={"source": f"nibabel/tests/data/{file}", "split": SPLIT,
                            "kdmri_shift_version": SHIFT_VERSION})
        volumes[f"shift_{name}"] = {"source": f"nibabel/tests/data/{file}", "what": what,
                                    "sha256": _sha256(source_path(name)), "slices": int(vol.shape[2])}
    manifest = {"version": SHIFT_VERSION, "licence": LICENCE, "accs": tags, "volumes": volumes,
                "slices": sum(v["slices"] for v in volumes.values()),
                "use": "test only: never trained on, never used to select anything"}
    atomic_text(manifest_path, json.dumps(manifest, indent=2))
    if verbose:
        print(f"shift test set: {manifest['slices']} slices of {len(volumes)} real scans in {folder}")
    return folder
