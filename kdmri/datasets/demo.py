"""The embedded demo dataset (MNI152 template), built by :mod:`kdmri.data.demo`.

Nothing to download or convert: ``python -m kdmri demo-data`` (``make demo-data``) builds
``datasets/demo/`` with :func:`kdmri.data.demo.build_demo`. Registered so that its size,
label and builder are looked up like any other dataset's.
"""

from __future__ import annotations

from pathlib import Path

from kdmri.data import demo
from kdmri.datasets.registry import DatasetSpec, register_dataset
from kdmri.datasets.shift import build_shift

SPEC = register_dataset(DatasetSpec(
    name="demo", shape=demo.SIZE, label="Demo", title="MNI152 T1 template (embedded demo)",
    build=demo.build_demo,
    module=__name__,
    notes="built, not converted: python -m kdmri demo-data (kdmri.data.demo.build_demo); its "
          "split is fixed by the builder (one held-out axial slab for validation).",
    description="the kdmri demo dataset: slices of the MNI152 ICBM 2009a T1 template (one smooth, "
                "noise-free averaged template brain, no coil sensitivities, no pathology), 96 x 96",
    limits="The demo data is one averaged template brain (smooth, noise-free, mirror-symmetric "
           "hemispheres): the figures show that the pipeline works and how methods order, not "
           "performance on real scans.",
    approx_slices=(331, 16, "the demo dataset kdmri builds (MNI152 template)"),
    sr_keep=24,  # the same fraction of k-space as KD-MRI's 64 of 256
))


def build_demo_data(out: Path | str | None = None, overwrite: bool = False) -> Path:
    """``python -m kdmri demo-data``: the demo dataset (:func:`kdmri.data.demo.build_demo`)
    and its domain-shift test set ``demo/shift`` (:func:`kdmri.datasets.shift.build_shift`)."""
    folder = demo.build_demo(out, overwrite=overwrite)
    build_shift(out, overwrite=overwrite)
    return folder


def register_cli(sub) -> None:
    p = sub.add_parser("demo-data", help="build the embedded demo dataset (MNI152 template) and "
                       "its domain-shift test set (real scans shipped with nibabel)")
    p.add_argument("--out", type=Path, default=None, help="datasets folder (default: datasets/)")
    p.add_argument("--overwrite", action="store_true", help="rebuild even if up to date")
    p.set_defaults(func=lambda a: build_demo_data(a.out, a.overwrite) and 0)
