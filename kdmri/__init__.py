"""kdmri: knowledge distillation for MRI reconstruction (KD-MRI, SFT-KD-Recon), reproducible.

The package holds every piece of logic; the numbered notebooks in ``notebooks/`` tell the
story and call it. Main modules:

* :mod:`kdmri.physics.fft`      orthonormal 2-D FFTs (unshifted and centred), complex helpers
* :mod:`kdmri.physics.masks`    Cartesian and 2-D variable-density undersampling masks
* :mod:`kdmri.models`   data-consistency layer, DC-CNN teacher/student
* :mod:`kdmri.data`     the KD-MRI HDF5 layout: one writer, one slice dataset
* :mod:`kdmri.data.demo`     the embedded demo dataset (MNI152 template shipped with nilearn)
* :func:`kdmri.distil`  distil any network into any student (:mod:`kdmri.api`)
"""

import importlib

__version__ = "0.1.0"


def __getattr__(name: str):
    """``kdmri.distil``: loaded on first use (PEP 562), so ``import kdmri`` stays light and the
    base layer never imports the training code at import time."""
    if name == "distil":
        return importlib.import_module("kdmri.api").distil
    raise AttributeError(f"module 'kdmri' has no attribute {name!r}")
