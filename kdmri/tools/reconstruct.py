"""Run a trained network on your own scan: ``python -m kdmri reconstruct``.

``python -m kdmri reconstruct --checkpoint best_model.pt --input scan.nii.gz --out recon.nii.gz``

Inputs:

* a **NIfTI** volume (``.nii`` / ``.nii.gz``): a fully sampled magnitude image, slices on
  the last axis ``(H, W, S)`` (trailing singleton axes are dropped). It is undersampled
  retrospectively, slice by slice, with ``--mask`` (an unshifted ``(H, W)`` ``.npy`` mask, as
  in ``us_masks/``) or, without it, with a 1-D variable-density Cartesian mask generated for
  its size at ``--acc`` by :func:`kdmri.physics.masks.cartesian_mask` with the deterministic seed
  :func:`kdmri.physics.masks.default_seed` ``("reconstruct", acc)``. Being fully sampled, it is also
  the reference for PSNR/SSIM.
* a **fastMRI** single-coil file, **ISMRMRD** raw data or a **DICOM** series (a ``.dcm`` file
  or a folder): read by :mod:`kdmri.data.acquisitions`, recognised by content; written as
  fastMRI's submission layout (``reconstruction`` ``(slices, h, w)`` float32, the magnitude
  centre-cropped as fastMRI's ``center_crop``). Phase handling: docs/ACQUISITIONS.md.
* a **KD-MRI HDF5** file (``.h5`` / ``.hdf5``, layout of :mod:`kdmri.data`): its zero-filled
  image ``img_volus_<acc>``, k-space ``kspace_volus_<acc>`` and mask ``mask_<acc>`` are used as
  stored; ``volfs``, when present, is the reference. With ``--mask``, ``volfs`` is
  undersampled again with that mask instead.

**Intensity scaling** (as the training data): the converters and the demo builder
(:func:`kdmri.datasets.convert.normalise_volume`) set negative values to 0 and divide each
volume by its maximum, so intensities lie in [0, 1]. A NIfTI input is scaled the same way
before undersampling, and the reconstruction is multiplied by the same divisor before it
is written, so the output has the input's units. HDF5 files are already in [0, 1] and are
used (and written) as stored.

Super-resolution checkpoints (VDSR): the network input is the low-resolution image
:func:`kdmri.data.sr.truncate_kspace` makes from the fully sampled image with the checkpoint
config's ``sr_keep``; the baseline is that low-resolution image instead of zero-filling
(``--acc`` and ``--mask`` do not apply).

Outputs, written to a temporary name and renamed (never half-written); neither may be an
input (``--input``, ``--checkpoint``, ``--mask``), and an existing one is replaced only with
``--force``:

* NIfTI input: a NIfTI with the input's affine and header (float32);
  HDF5 input: an HDF5 file with key ``reconstruction`` ``(H, W, S)`` float32;
* ``<out stem>.png`` beside it: the middle slice as zero-filled | network | reference |
  error (``|network - reference|``); without a reference, zero-filled | network.

With a reference, PSNR and SSIM of the network and of the baseline are printed
(:mod:`kdmri.metrics`, over the volume: PSNR with ``data_range`` = reference maximum,
SSIM the mean over slices with the same ``data_range``, as :func:`~kdmri.metrics.volume_metrics`).
Any in-plane size works for a DC-CNN (fully convolutional; data consistency uses the
input's own k-space).
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from kdmri.checkpoint import load_model
from kdmri.data import FS_KEY, img_key, kspace_key, mask_key, undersample_volume
from kdmri.data.acquisitions import detect_format, read_acquisition
from kdmri.data.acquisitions.inputs import acquisition_inputs
from kdmri.data.sr import truncate_kspace
from kdmri.data.volumes import check_stored, read_stored
from kdmri.errors import ConfigError, DataError
from kdmri.io import check_outputs
from kdmri.metrics import psnr, ssim
from kdmri.models.tasks import Task, task_of
from kdmri.paths import acc_tag
from kdmri.physics.masks import cartesian_mask, default_seed, load_mask

NIFTI_EXTS = (".nii", ".nii.gz")
HDF5_EXTS = (".h5", ".hdf5")
BATCH = 8  # slices per forward pass


def _kind(path: Path, param: str) -> str:
    name = path.name.lower()
    if name.endswith(NIFTI_EXTS):
        return "nifti"
    if name.endswith(HDF5_EXTS):
        return "hdf5"
    raise DataError(f"{param} {path}: unknown extension; expected .nii, .nii.gz, .h5 or .hdf5")


def _stem(path: Path) -> str:
    name = path.name
    for ext in (".nii.gz", ".nii", ".hdf5", ".h5"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return path.stem


def preview_path(out: Path | str) -> Path:
    """The PNG preview written beside ``out``: ``recon.nii.gz`` -> ``recon.png``."""
    out = Path(out)
    return out.with_name(_stem(out) + ".png")


def _tmp(path: Path) -> Path:
    """A temporary name beside ``path`` keeping its extension (nibabel picks the format by it)."""
    return path.with_name(f".tmp-{os.getpid()}-{path.name}")


def _check_volume(vol: np.ndarray, path: Path, key: str = "") -> np.ndarray:
    where = f"{path} ({key})" if key else str(path)
    while vol.ndim > 3 and vol.shape[-1] == 1:
        vol = vol[..., 0]
    if vol.ndim != 3:
        raise DataError(f"{where}: expected a 3-D volume (H, W, slices), got shape {vol.shape}")
    if min(vol.shape[:2]) < 7:
        raise DataError(f"{where}: slices of {vol.shape[:2]} are too small; expected at least 7x7")
    if not np.all(np.isfinite(vol)):
        bad = int(vol.size - np.count_nonzero(np.isfinite(vol)))
        raise DataError(f"{where}: contains {bad} NaN or infinite values; expected finite intensities")
    return vol


def read_nifti(path: Path) -> tuple[np.ndarray, nib.Nifti1Image]:
    """The volume ``(H, W, S)`` float64 and the image (for its affine and header)."""
    if not path.is_file():
        raise DataError(f"--input {path}: file not found")
    try:
        img = nib.load(str(path))
        check_stored(path, "", img.shape, img.get_data_dtype())  # before reading the data
        vol = np.asarray(img.get_fdata(dtype=np.float64))
    except DataError:
        raise
    except Exception as exc:  # corrupt, truncated, or not a NIfTI at all
        raise DataError(f"{path}: not a readable NIfTI file ({type(exc).__name__}: {exc})") from exc
    return _check_volume(vol, path), img


def normalise(vol: np.ndarray, path: Path) -> tuple[np.ndarray, float]:
    """Negative values to 0, then divide by the volume maximum (as the converters do)."""
    vol = np.maximum(vol, 0.0)
    scale = float(vol.max())
    if scale <= 0:
        raise DataError(f"{path}: the volume is zero everywhere; expected a magnitude image")
    return vol / scale, scale


class Inputs:
    """Everything the network and the report need, intensities in [0, 1]."""

    note, attrs = "", {}

    def __init__(self, zf, kspace, mask, reference, scale=1.0, mask_note=""):
        self.zf, self.kspace, self.mask = zf, kspace, mask
        self.reference, self.scale, self.mask_note = reference, scale, mask_note

    def finish(self, net, base):  # acquisitions crop and restore their units here
        return net, base, self.reference

    def for_h5(self, vol):
        return vol


def _mask_for(shape, acc: str, mask: Path | None) -> tuple[np.ndarray, str]:
    if mask is not None:
        return load_mask(mask, shape), str(mask)
    seed = default_seed("reconstruct", acc)
    return cartesian_mask(shape, int(acc[:-1]), seed=seed), f"cartesian {acc}, seed {seed}"


def nifti_inputs(path: Path, acc: str, mask: Path | None, sr: bool) -> tuple[Inputs, nib.Nifti1Image]:
    vol, img = read_nifti(path)
    volfs, scale = normalise(vol, path)
    if sr:
        return Inputs(None, None, None, volfs.astype(np.float32), scale), img
    m, note = _mask_for(volfs.shape[:2], acc, mask)
    zf, k = undersample_volume(volfs, m)
    return Inputs(zf, k, m, volfs.astype(np.float32), scale, note), img


def hdf5_inputs(path: Path, acc: str, mask: Path | None, sr: bool) -> Inputs:
    if not path.is_file():
        raise DataError(f"--input {path}: file not found")
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({exc})") from exc
    try:
        with fh:
            ref = None
            if FS_KEY in fh:
                ref = _check_volume(np.asarray(read_stored(fh, path, FS_KEY), dtype=np.float32), path, FS_KEY)
            if sr or mask is not None:
                if ref is None:
                    raise DataError(f"{path}: missing key '{FS_KEY}'; expected the fully sampled "
                                    "volume (needed for super-resolution or a new --mask)")
                if sr:
                    return Inputs(None, None, None, ref)
                m, note = _mask_for(ref.shape[:2], acc, mask)
                zf, k = undersample_volume(ref, m)
                return Inputs(zf, k, m, ref, 1.0, note)
            ikey, kkey, mkey = img_key(acc), kspace_key(acc), mask_key(acc)
            missing = [key for key in (ikey, kkey, mkey) if key not in fh]
            if missing:
                raise DataError(f"{path}: missing key(s) {missing} for --acc {acc}; keys present: "
                                f"{sorted(fh.keys())} (pass --mask if only '{FS_KEY}' is there)")
            zf = _check_volume(np.asarray(read_stored(fh, path, ikey), dtype=np.float32), path, ikey)
            k = np.asarray(read_stored(fh, path, kkey, complex_ok=True))
            if k.shape != zf.shape:
                raise DataError(f"{path}: '{kkey}' has shape {k.shape}; expected {zf.shape} like '{ikey}'")
            if not np.all(np.isfinite(k)):
                raise DataError(f"{path} ({kkey}): contains NaN or infinite values")
            m = np.asarray(read_stored(fh, path, mkey))
            if m.shape != zf.shape[:2] or not np.all((m == 0) | (m == 1)):
                raise DataError(f"{path} ({mkey}): expected a mask of zeros and ones of shape "
                                f"{zf.shape[:2]}, got shape {m.shape}")
            if ref is not None and ref.shape != zf.shape:
                raise DataError(f"{path}: '{FS_KEY}' has shape {ref.shape}; expected {zf.shape}")
            return Inputs(zf, k.astype(np.complex64), m.astype(np.float32), ref, 1.0,
                          f"'{mkey}' of {path.name}")
    except OSError as exc:  # truncated datasets fail on read, not on open
        raise DataError(f"{path}: not a readable HDF5 file ({exc})") from exc


def low_resolution(task: Task) -> bool:
    """Whether ``task``'s network input is a low-resolution image (no k-space is measured)."""
    return "kspace" not in task.inputs


@torch.no_grad()
def run_network(model: torch.nn.Module, inp: Inputs, sr_keep=None,
                task: Task | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(network (H, W, S), baseline (H, W, S))`` float32, in [0, 1] units; the network is
    called through its task (default: :func:`~kdmri.models.tasks.task_of` the model)."""
    task = task or task_of(model)
    device = next(model.parameters()).device
    sr = low_resolution(task)
    if sr:
        slices = np.moveaxis(inp.reference, -1, 0)
        try:
            low = truncate_kspace(slices, sr_keep)
        except ValueError as exc:
            raise ConfigError(f"sr_keep={sr_keep!r} of the checkpoint: {exc}") from exc
        base = np.moveaxis(low, 0, -1)
    else:
        base = inp.zf
        mask = torch.from_numpy(inp.mask).to(device)
    out = np.empty(base.shape, dtype=np.float32)
    n = base.shape[-1]
    for s0 in range(0, n, BATCH):
        sl = slice(s0, min(n, s0 + BATCH))
        x = torch.from_numpy(np.ascontiguousarray(np.moveaxis(base[..., sl], -1, 0), np.float32))
        batch = {"input": x[:, None].to(device)}
        if not sr:
            k = torch.from_numpy(np.ascontiguousarray(np.moveaxis(inp.kspace[..., sl], -1, 0)))
            batch.update(kspace=k[:, None].to(device), mask=mask)
        y = task.forward(model, batch, features=False).image
        out[..., sl] = np.moveaxis(y[:, 0].float().cpu().numpy(), 0, -1)
    return out, base.astype(np.float32)


def quality(reference: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """PSNR over the volume and mean per-slice SSIM, both with ``data_range = max(reference)``."""
    dr = float(reference.max())
    return {"psnr": psnr(reference, pred, data_range=dr),
            "ssim": float(np.mean([ssim(reference[..., s], pred[..., s], data_range=dr)
                                   for s in range(reference.shape[-1])]))}


def write_preview(path: Path, baseline, network, reference, baseline_label: str) -> None:
    """Middle slice: baseline | network | reference | error (atomically)."""
    s = network.shape[-1] // 2
    panels = [(baseline[..., s], baseline_label), (network[..., s], "network")]
    if reference is not None:
        panels += [(reference[..., s], "reference"),
                   (np.abs(network[..., s] - reference[..., s]), "|network - reference|")]
        panels[-1] = (panels[-1][0], f"{panels[-1][1]} (max {panels[-1][0].max():.3g})")
    vmax = max(float(img.max()) for img, _ in panels[:3]) or 1.0
    fig = Figure(figsize=(3 * len(panels), 3.3), dpi=100)
    FigureCanvasAgg(fig)
    for i, (img, title) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        last = title.startswith("|")
        ax.imshow(img, cmap="magma" if last else "gray", vmin=0,
                  vmax=(float(img.max()) or 1.0) if last else vmax)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"slice {s}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png")


def _write_nifti(path: Path, data: np.ndarray, like: nib.Nifti1Image) -> None:
    header = like.header.copy()
    header.set_data_dtype(np.float32)
    out = type(like)(data.astype(np.float32), like.affine, header)
    out.header.set_slope_inter(1.0, 0.0)
    nib.save(out, str(path))


def _write_h5(path: Path, data: np.ndarray, attrs: dict) -> None:
    with h5py.File(path, "w") as fh:
        fh.create_dataset("reconstruction", data=data.astype(np.float32))
        for key, value in attrs.items():
            fh.attrs[key] = value


def reconstruct(checkpoint: Path | str, input: Path | str, out: Path | str,
                acc: int | str | None = None, mask: Path | str | None = None,
                device: str = "cpu", force: bool = False) -> dict:
    """Reconstruct ``input`` with the network of ``checkpoint``; write ``out`` and its preview.

    Args:
        checkpoint: a kdmri checkpoint of any network; its task (the checkpoint's, else the
            network's) says how it is called.
        input: NIfTI (fully sampled, ``(H, W, S)``) or KD-MRI HDF5 file.
        out: output path, NIfTI for NIfTI input, ``.h5`` for HDF5 input.
        acc: acceleration (default: the checkpoint config's ``acc``, else 4x).
        mask: optional ``.npy`` mask ``(H, W)``, unshifted.
        force: replace an existing ``out`` and preview (an input is never replaced).

    Returns:
        ``{"out", "preview", "acc", "mask", "shape", "scale", "baseline", "metrics"}`` where
        ``metrics`` is ``{"network": {"psnr", "ssim"}, "<baseline>": {...}}`` (empty without a
        reference) and ``baseline`` is ``"zero-filled"`` or ``"low-resolution"``.
    """
    checkpoint, input, out = Path(checkpoint), Path(input), Path(out)
    fmt = detect_format(input, "--input")  # by content: nifti, kdmri, fastmri, ismrmrd, dicom
    in_kind = "nifti" if fmt == "nifti" else "hdf5"
    out_kind = _kind(out, "--out")
    if out_kind != in_kind:
        want = ".nii / .nii.gz" if in_kind == "nifti" else ".h5 / .hdf5"
        raise DataError(f"--out {out}: expected a {want} file for a {fmt} input")
    mask = Path(mask) if mask is not None else None
    check_outputs({"--out": out, "the preview of --out": preview_path(out)},
                  {"--input": input, "--checkpoint": checkpoint, "--mask": mask}, force)
    model, ckpt = load_model(checkpoint, device)
    model.eval()
    cfg = ckpt.get("config") or {}
    task = task_of(model, ckpt)
    sr = low_resolution(task)
    if sr and mask is not None:
        raise ConfigError(f"--mask {mask}: a super-resolution checkpoint takes no mask")
    acc = acc_tag(acc if acc is not None else cfg.get("acc", "4x"))
    if fmt == "nifti":
        inp, like = nifti_inputs(input, acc, mask, sr)
    elif fmt == "kdmri":
        inp, like = hdf5_inputs(input, acc, mask, sr), None
    else:  # a real acquisition: fastMRI, ISMRMRD, DICOM
        inp, like = acquisition_inputs(read_acquisition(input, fmt), lambda shape: _mask_for(
            shape, acc, mask), sr, mask is not None), None
    net, base = run_network(model, inp, cfg.get("sr_keep", 24), task)
    if not np.all(np.isfinite(net)):
        raise DataError(f"--checkpoint {checkpoint}: the network produced NaN or infinite values")
    net, base, reference = inp.finish(net, base)
    baseline = "low-resolution" if sr else "zero-filled"
    metrics = {}
    if reference is not None:
        metrics = {"network": quality(reference, net), baseline: quality(reference, base)}
    png = preview_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out, tmp_png = _tmp(out), _tmp(png)
    try:
        write_preview(tmp_png, base, net, reference, baseline)
        if in_kind == "nifti":
            _write_nifti(tmp_out, net * inp.scale, like)
        else:
            _write_h5(tmp_out, inp.for_h5(net), {"checkpoint": str(checkpoint), "input": str(input),
                                                 "acc": acc, "mask": inp.mask_note, **inp.attrs})
        os.replace(tmp_png, png)
        os.replace(tmp_out, out)
    except BaseException:
        tmp_out.unlink(missing_ok=True)
        tmp_png.unlink(missing_ok=True)
        raise
    return {"out": str(out), "preview": str(png), "acc": None if sr else acc,
            "mask": inp.mask_note, "shape": list(inp.for_h5(net).shape), "scale": inp.scale,
            "baseline": baseline, "metrics": metrics, "format": fmt, "note": inp.note}


def register_cli(sub) -> None:
    p = sub.add_parser("reconstruct", help="reconstruct a NIfTI or KD-MRI HDF5 volume with a trained "
                       "network (writes the volume and a PNG preview)")
    p.add_argument("--checkpoint", required=True, help="a kdmri checkpoint (best_model.pt)")
    p.add_argument("--input", required=True, help="fully sampled NIfTI (.nii/.nii.gz, slices last), "
                   "KD-MRI HDF5 (.h5), fastMRI single-coil .h5, ISMRMRD .h5, or DICOM (.dcm file "
                   "or folder); recognised by content")
    p.add_argument("--out", required=True, help="output .nii/.nii.gz (NIfTI input) or .h5 (any other)")
    p.add_argument("--acc", default=None, help="acceleration, e.g. 4x (default: the checkpoint's)")
    p.add_argument("--mask", default=None, help="undersampling mask .npy (H, W), unshifted "
                   "(default: a Cartesian mask generated for the input size)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--force", action="store_true", help="replace an existing --out and its preview "
                   "(an input is never replaced)")

    def run(args):
        res = reconstruct(args.checkpoint, args.input, args.out, args.acc, args.mask, args.device,
                          args.force)
        print(f"wrote {res['out']} and {res['preview']} (shape {tuple(res['shape'])}"
              + (f", acc {res['acc']}, mask: {res['mask']})" if res["acc"] else ")"))
        for name, m in res["metrics"].items():
            print(f"{name:>14}: PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}")
        if res["note"]:
            print(f"input: {res['note']}")
        if not res["metrics"]:
            print("no reference in the input: PSNR/SSIM not computed")
        return 0

    p.set_defaults(func=run)
