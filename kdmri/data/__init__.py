"""Data: the KD-MRI HDF5 layout (:mod:`kdmri.data.volumes`), the super-resolution view
(:mod:`kdmri.data.sr`) and the embedded demo dataset (:mod:`kdmri.data.demo`)."""

from kdmri.data.volumes import (
    FS_KEY,
    H5Volumes,
    SliceDataset,
    img_key,
    kspace_key,
    list_volumes,
    mask_key,
    undersample_volume,
    write_volume,
)

__all__ = ["FS_KEY", "H5Volumes", "SliceDataset", "img_key", "kspace_key", "list_volumes", "mask_key",
           "undersample_volume", "write_volume"]
