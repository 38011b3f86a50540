"""`python -m kdmri reconstruct` on real acquisition formats written by the tests in their real
layout: fastMRI single-coil (fully sampled and undersampled), ISMRMRD raw data, DICOM."""

from __future__ import annotations

import re

import h5py
import numpy as np
import pytest
from acquisition_files import (
    center_crop,
    fastmri_columns,
    fft2c,
    header_xml,
    ifft2c,
    smooth_phase,
    write_dicom,
    write_fastmri,
    write_ismrmrd,
)
from skimage.metrics import peak_signal_noise_ratio
from test_reconstruct import _nifti, phantom
from test_reconstruct import trained as recon_trained

from kdmri.data import write_volume
from kdmri.data.acquisitions import detect_format, read_acquisition
from kdmri.data.acquisitions.inputs import acquisition_inputs, complex_dc, to_centred, to_unshifted
from kdmri.datasets.fastmri_knee import _file_volume
from kdmri.errors import ConfigError, DataError
from kdmri.physics.fft import fft2
from kdmri.physics.masks import cartesian_mask
from kdmri.tools.cli import main

pytestmark = pytest.mark.numerics  # network-vs-zero-filled margins of a trained student


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """test_reconstruct's student (a few seconds on 32x32 phantoms at 4x), trained once here."""
    return recon_trained.__wrapped__(tmp_path_factory)


def _slices(shape, n, seed):
    return np.moveaxis(phantom(shape, n, seed), -1, 0)  # (S, H, W)


def _psnrs(text: str) -> dict[str, float]:
    return {name: float(v) for name, v in re.findall(r"([\w-]+): PSNR ([\d.]+) dB", text)}


def _run(ckpt, src, out, *extra) -> int:
    return main(["reconstruct", "--checkpoint", str(ckpt), "--input", str(src), "--out", str(out),
                 *extra])


def _retro(shape):
    return cartesian_mask(shape, 4, seed=5), "cartesian 4x"


def test_formats_are_recognised_by_content(tmp_path):
    mag = _slices((24, 20), 1, 0)
    files = {
        "fastmri": write_fastmri(tmp_path / "a.bin", mag, recon=(16, 16)),
        "ismrmrd": write_ismrmrd(tmp_path / "raw.dat", mag.astype(complex), (24, 20)),
        "dicom": write_dicom(tmp_path / "series", mag) / "IM0001.dcm",
        "kdmri": write_volume(tmp_path / "v.hdf", phantom((16, 16), 2, 0),
                              {4: cartesian_mask((16, 16), 4)}),
    }
    nii = _nifti(tmp_path / "x.nii", phantom((16, 16), 2, 0))
    files["nifti"] = nii.rename(tmp_path / "volume.data")  # no telling extension
    for fmt, path in files.items():
        assert detect_format(path) == fmt, path
    assert detect_format(tmp_path / "series") == "dicom"  # a folder
    (tmp_path / "notes.h5").write_text("plain text")
    with pytest.raises(DataError, match=r"notes\.h5: not a recognised input.*\.nii"):
        detect_format(tmp_path / "notes.h5")


def test_fastmri_layout_centring_and_shift(tmp_path):
    """The reader follows fastMRI's conventions, written out independently with numpy."""
    mag = _slices((640, 368), 2, 3)
    full = write_fastmri(tmp_path / "file1.h5", mag)
    inp = acquisition_inputs(read_acquisition(full), _retro)
    _, _, ref = inp.finish(inp.zf, inp.zf)
    with h5py.File(full, "r") as fh:  # the reference is reconstruction_esc
        np.testing.assert_allclose(np.moveaxis(ref, -1, 0), fh["reconstruction_esc"][()], atol=1e-5)
    phase, measured, m_c, zf_mag = inp.complex_data
    m_u = cartesian_mask((640, 368), 4, seed=5)
    np.testing.assert_array_equal(m_c, np.fft.fftshift(m_u))  # kdmri unshifted -> centred
    assert m_c[:, 368 // 2].all() and m_u[:, 0].all()  # the DC column, in both layouts
    # the network's unshifted mask is the support of fft2 of the displayed zero-filled image
    zf_c = ifft2c(measured)
    assert np.abs(fft2(zf_c) * (1 - inp.mask)).max() < 1e-6 * np.abs(fft2(zf_c)).max()
    np.testing.assert_array_equal(inp.kspace[..., 0] != 0, inp.mask.astype(bool) & (inp.kspace[..., 0] != 0))
    # undersampled (test) layout: baseline = fastMRI's zero-filled |ifft2c(kspace)|, cropped
    cols = fastmri_columns(368, 4, seed=1)
    test = write_fastmri(tmp_path / "file2.h5", mag, cols)
    inp = acquisition_inputs(read_acquisition(test), _retro)
    _, base, ref = inp.finish(inp.zf, inp.zf)
    with h5py.File(test, "r") as fh:
        zf = center_crop(np.abs(ifft2c(fh["kspace"][()])), (320, 320))
    np.testing.assert_allclose(np.moveaxis(base, -1, 0), zf, rtol=1e-4, atol=1e-6 * zf.max())
    assert ref is None and np.array_equal(inp.complex_data[2][0], cols)
    for n in (7, 8):  # odd and even sizes: the shifts are inverse, DC at n // 2 <-> 0
        m = np.zeros((3, n))
        m[:, 0] = 1
        assert to_centred(m)[:, n // 2].all() and np.array_equal(to_unshifted(to_centred(m)), m)


def test_complex_dc_keeps_measured_samples():
    rng = np.random.default_rng(0)
    k = rng.standard_normal((2, 12, 10)) + 1j * rng.standard_normal((2, 12, 10))
    mask = np.broadcast_to(rng.random(10) < 0.4, (12, 10)).astype(float)
    mag, phase = rng.random((2, 12, 10)), np.exp(1j * rng.random((2, 12, 10)))
    out = fft2c(complex_dc(mag, phase, k * mask, mask))
    np.testing.assert_allclose(out * mask, k * mask, atol=1e-12)
    np.testing.assert_allclose(out * (1 - mask), fft2c(mag * phase) * (1 - mask), atol=1e-12)


def test_fastmri_undersampled_file_submission_layout(trained, tmp_path, capsys):
    _, ckpt = trained
    src = write_fastmri(tmp_path / "file1000002.h5", _slices((640, 368), 2, 4),
                        fastmri_columns(368, 4, seed=2))
    out = tmp_path / "recon" / "file1000002.h5"
    assert _run(ckpt, src, out) == 0
    text = capsys.readouterr().out
    assert "undersampled fastMRI file" in text and "no reference" in text and not _psnrs(text)
    with h5py.File(out, "r") as fh:
        rec = fh["reconstruction"]
        assert rec.shape == (2, 320, 320) and rec.dtype == np.float32
        assert np.isfinite(rec[()]).all() and rec[()].max() > 0
        assert fh.attrs["format"] == "fastmri" and fh.attrs["acquisition"] == "CORPD_FBK"


def test_fastmri_fully_sampled_beats_zero_filling(trained, tmp_path, capsys):
    _, ckpt = trained
    src = write_fastmri(tmp_path / "file1000001.h5", _slices((640, 368), 2, 11))
    out = tmp_path / "file1000001_recon.h5"
    assert _run(ckpt, src, out) == 0
    psnrs = _psnrs(capsys.readouterr().out)
    assert psnrs["network"] > psnrs["zero-filled"] + 1.5  # measured: 31.1 vs 28.6 dB
    with h5py.File(src, "r") as gt, h5py.File(out, "r") as rec:
        target, pred = gt["reconstruction_esc"][()], rec["reconstruction"][()]
    assert pred.shape == target.shape == (2, 320, 320)
    # fastMRI's own evaluation (evaluate.psnr) scores the file as reconstruct reported
    assert peak_signal_noise_ratio(target, pred, data_range=target.max()) == pytest.approx(
        psnrs["network"], abs=0.01)


def test_phase_is_taken_out_and_restored(trained, tmp_path):
    """The same magnitude with and without a smooth phase reconstructs equally well, and a
    super-resolution checkpoint refuses complex k-space instead of dropping the phase."""
    from kdmri.tools.reconstruct import reconstruct

    _, ckpt = trained
    mag = _slices((96, 80), 2, 6)
    phased = write_fastmri(tmp_path / "p.h5", mag, recon=(64, 64))
    res = reconstruct(ckpt, phased, tmp_path / "p_out.h5")["metrics"]
    flat = tmp_path / "f.h5"
    with h5py.File(flat, "w") as fh:
        fh.create_dataset("kspace", data=fft2c(mag).astype(np.complex64))
        fh.create_dataset("ismrmrd_header", data=header_xml((96, 80), (64, 64)).encode())
    flat_res = reconstruct(ckpt, flat, tmp_path / "f_out.h5")["metrics"]
    assert res["network"]["psnr"] > res["zero-filled"]["psnr"] + 1
    # measured: 24.83 dB with the phase, 24.79 dB without it
    assert abs(res["network"]["psnr"] - flat_res["network"]["psnr"]) < 0.5
    with pytest.raises(ConfigError, match=r"p\.h5: complex k-space \(fastmri\); a super-resolution"):
        acquisition_inputs(read_acquisition(phased), _retro, sr=True)


def test_ismrmrd_raw_data(trained, tmp_path, capsys):
    _, ckpt = trained
    image = _slices((64, 72), 2, 7) * np.exp(1j * smooth_phase((2, 64, 72)))
    src = write_ismrmrd(tmp_path / "meas.h5", image, recon=(64, 64))
    acq = read_acquisition(src)  # oversampling removed: back to the 64 readout samples
    assert acq.kspace.shape == (2, 64, 72) and acq.mask is None and acq.crop == (64, 64)
    np.testing.assert_allclose(np.abs(ifft2c(acq.kspace)), np.abs(image), atol=1e-4)
    out = tmp_path / "meas_recon.h5"
    assert _run(ckpt, src, out) == 0
    psnrs = _psnrs(capsys.readouterr().out)
    assert psnrs["network"] > psnrs["zero-filled"] + 1
    with h5py.File(out, "r") as fh:
        assert fh["reconstruction"].shape == (2, 64, 64)
    cols = fastmri_columns(72, 4, seed=3)
    under = write_ismrmrd(tmp_path / "under.h5", image, recon=(64, 64), lines=cols)
    assert _run(ckpt, under, tmp_path / "under_recon.h5") == 0
    text = capsys.readouterr().out
    assert f"{int(cols.sum())} of 72 lines" in text and "no reference" in text and not _psnrs(text)
    with h5py.File(tmp_path / "under_recon.h5", "r") as fh:
        assert fh["reconstruction"].shape == (2, 64, 64)


def test_dicom_series(trained, tmp_path, capsys):
    _, ckpt = trained
    vol = _slices((40, 36), 4, 8)
    folder = write_dicom(tmp_path / "series", vol)  # names / InstanceNumbers run backwards
    acq = read_acquisition(folder)
    np.testing.assert_allclose(acq.image, np.round(vol * 4000) * 0.5)  # position order, rescaled
    out = tmp_path / "dicom_recon.h5"
    assert _run(ckpt, folder, out, "--acc", "4x") == 0
    text = capsys.readouterr().out
    assert "undersampled retrospectively" in text
    psnrs = _psnrs(text)
    assert psnrs["network"] > psnrs["zero-filled"] + 2
    with h5py.File(out, "r") as fh:
        assert fh["reconstruction"].shape == (4, 40, 36)
        assert 0.8 * acq.image.max() < fh["reconstruction"][()].max() < 1.2 * acq.image.max()
    assert _run(ckpt, folder / "IM0002.dcm", tmp_path / "one.h5") == 0  # a single file


def _fails(capsys, ckpt, src, out, *needles):
    assert _run(ckpt, src, out) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    assert not out.exists() and not out.with_suffix(".png").exists()


def test_bad_files_give_one_line(trained, tmp_path, capsys):
    _, ckpt = trained
    out = tmp_path / "out.h5"
    mag = _slices((24, 20), 1, 0)
    no_k = tmp_path / "nok.h5"
    with h5py.File(no_k, "w") as fh:
        fh.create_dataset("ismrmrd_header", data=b"<ismrmrdHeader/>")
    _fails(capsys, ckpt, no_k, out, str(no_k), "missing key 'kspace'")
    real = tmp_path / "real.h5"
    with h5py.File(real, "w") as fh:
        fh.create_dataset("kspace", data=np.ones((1, 24, 20), np.float32))
    _fails(capsys, ckpt, real, out, str(real), "float32", "expected complex64")
    multi = tmp_path / "multi.h5"
    with h5py.File(multi, "w") as fh:
        fh.create_dataset("kspace", data=np.ones((1, 4, 24, 20), np.complex64))
    _fails(capsys, ckpt, multi, out, str(multi), "multi-coil", "single-coil")
    bad_mask = write_fastmri(tmp_path / "badmask.h5", mag, fastmri_columns(20, 4), recon=(16, 16))
    with h5py.File(bad_mask, "a") as fh:
        del fh["mask"]
        fh["mask"] = np.ones(19, bool)
    _fails(capsys, ckpt, bad_mask, out, str(bad_mask), "'mask'", "expected (20,)")
    cut = write_fastmri(tmp_path / "cut.h5", _slices((64, 48), 2, 0))
    cut.write_bytes(cut.read_bytes()[:4000])  # truncated download
    _fails(capsys, ckpt, cut, out, str(cut), "not a readable HDF5 file")
    coils = write_ismrmrd(tmp_path / "coils.h5", mag.astype(complex), (24, 20), channels=2)
    _fails(capsys, ckpt, coils, out, str(coils), "2 receive channels", "single-coil")
    xml_only = tmp_path / "xml_only.h5"
    with h5py.File(xml_only, "w") as fh:
        fh.create_dataset("dataset/xml", data=[b"<ismrmrdHeader/>"])
    _fails(capsys, ckpt, xml_only, out, str(xml_only), "missing ['dataset/data']")
    phase = write_dicom(tmp_path / "phase", mag, image_type=("ORIGINAL", "PRIMARY", "P"))
    _fails(capsys, ckpt, phase, out, "IM0001.dcm", "not a magnitude image")
    mixed = write_dicom(tmp_path / "mixed", mag)
    (mixed / "README.txt").write_text("notes")
    _fails(capsys, ckpt, mixed, out, "README.txt", "not a DICOM file")
    trunc = write_dicom(tmp_path / "trunc", mag)
    dcm = trunc / "IM0001.dcm"
    dcm.write_bytes(dcm.read_bytes()[:600])
    _fails(capsys, ckpt, trunc, out, str(dcm))
    test_file = write_fastmri(tmp_path / "t.h5", mag, fastmri_columns(20, 4), recon=(16, 16))
    mask = tmp_path / "m.npy"
    np.save(mask, cartesian_mask((24, 20), 4))
    assert main(["reconstruct", "--checkpoint", str(ckpt), "--input", str(test_file), "--out",
                 str(out), "--mask", str(mask)]) == 2
    assert "already undersampled" in capsys.readouterr().err and not out.exists()


def test_prepare_refuses_test_files_and_points_to_reconstruct(tmp_path):
    src = write_fastmri(tmp_path / "file1000003.h5", _slices((24, 20), 1, 0), fastmri_columns(20, 4))
    with pytest.raises(DataError, match=r"file1000003\.h5: undersampled .*python -m kdmri reconstruct"):
        _file_volume(src)
