"""Sizes and types declared by files are checked before anything is read or built: a tiny
HDF5 / NIfTI file declaring a huge volume, complex or text image data, and checkpoints whose
architecture asks for an absurd network each end in one line naming the file and field."""

from __future__ import annotations

import h5py
import nibabel as nib
import numpy as np
import pytest
import torch

from kdmri.checkpoint import load_model
from kdmri.data import SliceDataset, write_volume
from kdmri.data.volumes import FS_KEY, img_key, kspace_key, mask_key
from kdmri.errors import DataError
from kdmri.models import arch_of, registry
from kdmri.models.dccnn import build_dccnn
from kdmri.physics.masks import cartesian_mask
from kdmri.tools.cli import main

HUGE = (1_000_000, 1_000_000, 1)  # float32: 3.6 TiB
MASKS = {4: cartesian_mask((32, 32), 4)}


@pytest.fixture
def checkpoint(tmp_path):
    """An (untrained) student checkpoint: enough for reconstruct to reach the input."""
    model = build_dccnn("student")
    path = tmp_path / "best_model.pt"
    torch.save({"model": model.state_dict(), "arch": arch_of(model), "config": {"acc": "4x"}}, path)
    return path


def _recon_fails(capsys, checkpoint, path, out_suffix=".h5") -> str:
    out = path.with_name("out" + out_suffix)
    code = main(["reconstruct", "--checkpoint", str(checkpoint), "--input", str(path), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(f"error: {path}") and err.count("\n") == 1, err
    assert not out.exists()
    return err


def _h5(path, **datasets):
    """An HDF5 file with ``key=(shape, dtype)`` datasets declared chunked, no data written."""
    with h5py.File(path, "w") as fh:
        for key, (shape, dtype) in datasets.items():
            fh.create_dataset(key, shape=shape, dtype=dtype, chunks=(64, 64, 1)[:len(shape)])
    return path


def test_huge_declared_hdf5_volume_is_refused_before_reading(tmp_path, checkpoint, capsys):
    path = _h5(tmp_path / "huge.h5", volfs=(HUGE, "float32"))
    assert path.stat().st_size < 10_000  # the file is tiny; its header declares 3.6 TiB
    err = _recon_fails(capsys, checkpoint, path)
    assert "('volfs'): declares shape (1000000, 1000000, 1) of float32 (3,725.3 GiB)" in err
    assert "over the limit of 4 GiB per array (KDMRI_MAX_VOLUME_GIB)" in err


def test_huge_declared_nifti_volume_is_refused_before_reading(tmp_path, checkpoint, capsys):
    header = nib.Nifti1Header()
    header.set_data_shape((32_000, 32_000, 1000))  # int16 dims; 3.7 TiB
    header.set_data_dtype(np.float32)
    path = tmp_path / "huge.nii"
    with open(path, "wb") as fh:
        header.write_to(fh)
        fh.write(b"\0" * 64)
    err = _recon_fails(capsys, checkpoint, path, ".nii")
    assert "declares shape (32000, 32000, 1000) of float32" in err and "KDMRI_MAX_VOLUME_GIB" in err


def test_size_limit_is_configurable(tmp_path, monkeypatch):
    root = tmp_path / "data"
    write_volume(root / "v.h5", np.random.default_rng(0).random((32, 32, 4)), MASKS)
    assert len(SliceDataset(root, 4)) == 4
    monkeypatch.setenv("KDMRI_MAX_VOLUME_GIB", "1e-5")  # 10 KiB: less than one 32 x 32 x 4 volume
    with pytest.raises(DataError, match=r"v\.h5 \('volfs'\): declares shape \(32, 32, 4\) of float32"):
        SliceDataset(root, 4)


def _complex_volume(path):
    """A KD-MRI file whose images (not only the k-space) are complex."""
    rng = np.random.default_rng(1)
    vol = (rng.random((32, 32, 3)) + 1j * rng.random((32, 32, 3))).astype(np.complex64)
    with h5py.File(path, "w") as fh:
        fh[FS_KEY] = vol
        fh[img_key(4)] = vol
        fh[kspace_key(4)] = vol
        fh[mask_key(4)] = cartesian_mask((32, 32), 4)
    return path


def test_complex_image_data_is_refused(tmp_path, checkpoint, capsys):
    path = _complex_volume(tmp_path / "complex.h5")
    err = _recon_fails(capsys, checkpoint, path)
    assert "('volfs'): complex image data (complex64); expected a real magnitude image" in err
    assert "numpy.abs" in err
    with pytest.raises(DataError, match=r"complex\.h5 \('volfs'\): complex image data"):
        SliceDataset(tmp_path, 4)
    nifti = tmp_path / "complex.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((16, 16, 2), np.complex64), np.eye(4)), str(nifti))
    assert "complex image data" in _recon_fails(capsys, checkpoint, nifti, ".nii.gz")


def test_complex_kspace_stays_allowed(tmp_path):
    root = tmp_path / "data"
    write_volume(root / "v.h5", np.random.default_rng(0).random((32, 32, 2)), MASKS)
    item = SliceDataset(root, "4x")[1]
    assert item["kspace"].dtype == torch.complex64 and item["target"].dtype == torch.float32


def test_text_data_is_refused(tmp_path, checkpoint, capsys):
    path = tmp_path / "text.h5"
    with h5py.File(path, "w") as fh:
        fh.create_dataset(FS_KEY, data=np.array([["a"] * 8] * 8, dtype=object)[..., None],
                          dtype=h5py.string_dtype())
    err = _recon_fails(capsys, checkpoint, path)
    assert "('volfs'): values of type object; expected numbers" in err


#: Checkpoints rebuilt end to end: without the bounds each fails at once on one huge allocation.
@pytest.mark.parametrize(("arch", "field"), [
    ({"kind": "dccnn", "n_cascades": 5, "n_convs": 5, "channels": 200_000}, "arch.channels=200000"),
    ({"kind": "dccnn", "channels": "32"}, "arch.channels='32'"),
    ({"kind": "sft", "teacher": {"channels": 10**7}, "student": {}}, "arch.teacher.channels=10000000"),
])
def test_absurd_checkpoint_arch_is_refused(tmp_path, arch, field):
    path = tmp_path / "big.pt"
    torch.save({"model": {}, "arch": arch}, path)
    with pytest.raises(DataError, match=r"big\.pt: checkpoint arch") as err:
        load_model(path)
    assert f"checkpoint {field}: expected an integer from" in str(err.value)


#: Depths are checked without building (a network of a million small layers would only fail
#: once memory ran out).
@pytest.mark.parametrize(("arch", "field"), [
    ({"n_layers": 10**6, "channels": 64}, "arch.n_layers=1000000"),
    ({"n_cascades": 10**5}, "arch.n_cascades=100000"),
    ({"n_convs": 0}, "arch.n_convs=0"),
])
def test_arch_depths_are_bounded(arch, field):
    with pytest.raises(DataError, match=r"^x\.pt: checkpoint arch\.") as err:
        registry.check_arch(arch, "x.pt")
    assert f"checkpoint {field}: expected an integer from" in str(err.value)


def test_checkpoint_parameter_budget(tmp_path, monkeypatch):
    path = tmp_path / "student.pt"
    model = build_dccnn("student")
    torch.save({"model": model.state_dict(), "arch": arch_of(model)}, path)
    assert isinstance(load_model(path)[0], type(model))
    monkeypatch.setattr(registry, "MAX_PARAMETERS", 10_000)
    with pytest.raises(DataError, match=r"student\.pt: checkpoint arch .* parameters; expected at most 10,0"):
        load_model(path)
