"""Writers of small files in real acquisition formats, for tests (no download).

* :func:`write_fastmri`: fastMRI single-coil HDF5 as downloaded (keys, dtypes, attributes,
  ``ismrmrd_header`` XML, centred k-space), fully sampled or undersampled (test layout);
* :func:`write_ismrmrd`: ISMRMRD raw data written with the ``ismrmrd`` package;
* :func:`write_dicom`: a DICOM series written with ``pydicom`` (one file per slice).

Every transform here is numpy's own, written out (not kdmri's), so a test compares kdmri
with an independent statement of fastMRI's conventions.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

NS = "http://www.ismrm.org/ISMRMRD"


def fft2c(x: np.ndarray) -> np.ndarray:
    """fastMRI's ``fft2c``: centred orthonormal 2-D DFT over the last two axes."""
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=axes), norm="ortho"), axes=axes)


def ifft2c(k: np.ndarray) -> np.ndarray:
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=axes), norm="ortho"), axes=axes)


def center_crop(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """fastMRI's ``transforms.center_crop`` on the last two axes."""
    r0, c0 = (x.shape[-2] - shape[0]) // 2, (x.shape[-1] - shape[1]) // 2
    return x[..., r0:r0 + shape[0], c0:c0 + shape[1]]


def smooth_phase(shape: tuple[int, int, int]) -> np.ndarray:
    """A smooth phase map (S, H, W), as a real scan has (radians)."""
    s, h, w = shape
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    return np.stack([0.8 * yy + 0.5 * xx ** 2 + 0.3 * i for i in range(s)])


def header_xml(enc: tuple[int, int], recon: tuple[int, int], fov=(280.0, 140.0)) -> str:
    """An ISMRMRD header: encodedSpace / reconSpace matrices, symmetric encoding limits."""
    ex, ey = enc
    rx, ry = recon
    return (f'<?xml version="1.0"?><ismrmrdHeader xmlns="{NS}">'
            "<experimentalConditions><H1resonanceFrequency_Hz>63500000</H1resonanceFrequency_Hz>"
            "</experimentalConditions><encoding>"
            f"<encodedSpace><matrixSize><x>{ex}</x><y>{ey}</y><z>1</z></matrixSize>"
            f"<fieldOfView_mm><x>{fov[0]}</x><y>{fov[1]}</y><z>3</z></fieldOfView_mm></encodedSpace>"
            f"<reconSpace><matrixSize><x>{rx}</x><y>{ry}</y><z>1</z></matrixSize>"
            f"<fieldOfView_mm><x>{fov[0] / 2}</x><y>{fov[1]}</y><z>3</z></fieldOfView_mm></reconSpace>"
            "<encodingLimits><kspace_encoding_step_1><minimum>0</minimum>"
            f"<maximum>{ey - 1}</maximum><center>{ey // 2}</center></kspace_encoding_step_1>"
            "</encodingLimits><trajectory>cartesian</trajectory></encoding></ismrmrdHeader>")


def write_fastmri(path: Path, magnitude: np.ndarray, columns: np.ndarray | None = None,
                  recon: tuple[int, int] = (320, 320)) -> Path:
    """A fastMRI single-coil file of ``magnitude`` (S, H, W) times :func:`smooth_phase`.

    Fully sampled (train/val layout: ``reconstruction_esc``, ``max``, ``norm``) when
    ``columns`` is None; else the test layout: ``kspace`` masked by the centred 1-D
    ``columns`` (W,), ``mask`` (W,) bool, ``acceleration`` and ``num_low_frequency``.
    """
    image = magnitude * np.exp(1j * smooth_phase(magnitude.shape))
    kspace = fft2c(image).astype(np.complex64)
    _, h, w = kspace.shape
    with h5py.File(path, "w") as fh:
        fh.create_dataset("ismrmrd_header", data=header_xml((h, w), recon).encode())
        fh.attrs["acquisition"] = "CORPD_FBK"
        fh.attrs["patient_id"] = "0123abcd"
        if columns is None:
            fh.create_dataset("kspace", data=kspace)
            esc = center_crop(np.abs(ifft2c(kspace)), recon).astype(np.float32)
            fh.create_dataset("reconstruction_esc", data=esc)
            fh.attrs["max"] = float(esc.max())
            fh.attrs["norm"] = float(np.linalg.norm(esc))
        else:
            fh.create_dataset("kspace", data=(kspace * columns[None, None, :]).astype(np.complex64))
            fh.create_dataset("mask", data=columns.astype(bool))
            fh.attrs["acceleration"] = int(round(w / columns.sum()))
            fh.attrs["num_low_frequency"] = int(round(0.08 * w))
    return path


def fastmri_columns(width: int, acc: int, seed: int = 0) -> np.ndarray:
    """A fastMRI-style centred column mask: 8 % / (acc / 4) low frequencies around
    ``width // 2`` plus random columns (as fastMRI's RandomMaskFunc)."""
    rng = np.random.default_rng(seed)
    n_low = int(round(width * 0.32 / acc))
    mask = rng.random(width) < (width / acc - n_low) / (width - n_low)
    pad = (width - n_low + 1) // 2
    mask[pad:pad + n_low] = True
    return mask


def write_ismrmrd(path: Path, image: np.ndarray, recon: tuple[int, int], lines=None,
                  channels: int = 1, oversampling: int = 2) -> Path:
    """ISMRMRD raw data of the complex ``image`` (S, rx, ey) with readout oversampling:
    the image is zero-padded along the readout to ``oversampling * rx`` and each
    phase-encode line (all, or ``lines``) written as one acquisition (``channels`` copies)."""
    import ismrmrd

    s, rx, ey = image.shape
    ex = oversampling * rx
    big = np.zeros((s, ex, ey), complex)
    big[:, (ex - rx) // 2:(ex - rx) // 2 + rx] = image
    kspace = fft2c(big).astype(np.complex64)
    dset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
    dset.write_xml_header(header_xml((ex, ey), recon))
    noise = ismrmrd.Acquisition.from_array(np.ones((channels, ex), np.complex64))
    noise.set_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
    dset.append_acquisition(noise)  # skipped by the reader
    for sl in range(s):
        for y in (range(ey) if lines is None else np.flatnonzero(lines)):
            data = np.repeat(kspace[sl, :, y][None], channels, axis=0)
            acq = ismrmrd.Acquisition.from_array(data)
            acq.idx.kspace_encode_step_1 = int(y)
            acq.idx.slice = sl
            acq.center_sample = ex // 2
            dset.append_acquisition(acq)
    dset.close()
    return path


def write_dicom(folder: Path, volume: np.ndarray, image_type=("ORIGINAL", "PRIMARY", "M")) -> Path:
    """One uncompressed 16-bit DICOM file per slice of ``volume`` (S, H, W) in [0, 1]; the
    file names and InstanceNumbers run opposite to the slice positions (z = 3 mm * index)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    series = generate_uid()
    n = volume.shape[0]
    for i, sl in enumerate(volume):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID, ds.ImageType = "MR", series, list(image_type)
        ds.InstanceNumber = n - i
        ds.ImagePositionPatient = [0.0, 0.0, 3.0 * i]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.Rows, ds.Columns = sl.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = 0.5, 0.0
        ds.PixelData = np.round(sl * 4000).astype(np.uint16).tobytes()
        ds.save_as(folder / f"IM{n - i:04d}.dcm", enforce_file_format=True)
    return folder
