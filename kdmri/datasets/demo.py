"""The embedded demo dataset (MNI152 template), built by :mod:`kdmri.data.demo`.

Nothing to download or convert: ``python -m kdmri demo-data`` (``make demo-data``) builds
``datasets/demo/`` with :func:`kdmri.data.demo.build_demo`. Registered so that its size,
label and builder are looked up like any other dataset's.
"""

from __future__ import annotations

from kdmri.data import demo
from kdmri.datasets.registry import DatasetSpec, register_dataset

SPEC = register_dataset(DatasetSpec(
    name="demo", shape=demo.SIZE, label="Demo", title="MNI152 T1 template (embedded demo)",
    build=demo.build_demo,
    module=__name__,
    notes="built, not converted: python -m kdmri demo-data (kdmri.data.demo.build_demo); its "
          "split is fixed by the builder (one held-out axial slab for validation).",
))
