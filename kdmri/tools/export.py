"""Export a trained network for deployment: ONNX or TorchScript.

``python -m kdmri export --checkpoint best_model.pt --format onnx --out student.onnx``

**How the FFT is exported.** With torch 2.13 neither ONNX exporter takes the DC-CNN as it
is: the TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``) has no ONNX
symbolic for complex tensors (``aten::complex``, ``aten::fft_fft2`` are unsupported), and
the dynamo exporter (``dynamo=True``) needs the extra ``onnxscript`` package and would
still have to map complex FFTs onto ONNX's real-valued ``DFT`` operator. kdmri therefore
exports through :class:`ExportDCCNN`, an export-only wrapper that runs the same cascades
but computes the orthonormal unshifted 2-D DFT of the data-consistency layers as matrix
products with precomputed real and imaginary DFT matrices for a fixed ``(H, W)``::

    F_N[j, k] = exp(-2 pi i j k / N) / sqrt(N),   F(x) = F_H x F_W,   F^-1(k) = conj(F_H) k conj(F_W)

This is exact up to float32 round-off (the matrices are computed in float64 with ``j k mod
N`` and rounded once), uses only ``MatMul``/``Mul``/``Add``/``Sub`` and ``Conv`` in ONNX, and
is exported with the TorchScript-based exporter (``dynamo=False``, opset 17). It costs
``O(H W (H + W))`` per transform instead of ``O(H W log(H W))``, which is small at MRI
sizes next to the convolutions.

Inputs and outputs of an exported DC-CNN (ONNX and TorchScript alike; batch ``B`` is
dynamic, ``H`` and ``W`` are fixed in ONNX):

==========  ===================  =====================================================
name        shape                meaning
==========  ===================  =====================================================
``image``   float32 (B, 1, H, W)  zero-filled image (real part), scaled like the training
                                  data (volume maximum = 1, see :mod:`kdmri.tools.reconstruct`)
``kspace``  float32 (B, 2, H, W)  undersampled k-space, unshifted, orthonormal; channel 0
                                  real, channel 1 imaginary (:func:`kdmri.physics.fft.complex_to_channels`)
``mask``    float32 (H, W)        sampling mask, unshifted, zeros and ones
``recon``   float32 (B, 1, H, W)  the network's reconstruction (output)
==========  ===================  =====================================================

A network that takes the image alone (VDSR, a U-Net without data consistency) exports with
the single input ``image`` and output ``recon``; it has no FFT. A network with data
consistency exports to ONNX when it provides ``real_dc_forward`` (the DC-CNN, a U-Net with
``dc``), which :class:`ExportDCCNN` runs with the matrix DFT. The network is called through
its task (:func:`kdmri.models.tasks.task_of`), never chosen by class. An SFT teacher exports
its inference network (the teacher DC-CNN). The TorchScript file is a ``torch.jit.trace`` of
the PyTorch model itself (``torch.fft`` included, so any ``H, W`` works there), with the
same inputs; load it with ``torch.jit.load``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kdmri.checkpoint import load_model
from kdmri.errors import ConfigError, DataError
from kdmri.io import check_outputs
from kdmri.models.features import network_inputs
from kdmri.models.tasks import Task, task_of
from kdmri.physics.fft import channels_to_complex, complex_to_channels, fft2, zero_filled
from kdmri.physics.masks import DATASET_SHAPES, cartesian_mask

FORMATS = ("onnx", "torchscript")
OPSET = 17
DCCNN_INPUTS = ("image", "kspace", "mask")
TRACE_SHAPE = (64, 64)  # example size for TorchScript tracing when none is known


def dft_matrices(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and imaginary parts ``(n, n)`` float32 of the orthonormal DFT matrix
    ``exp(-2 pi i j k / n) / sqrt(n)`` (symmetric; its inverse is its conjugate)."""
    jk = np.outer(np.arange(n), np.arange(n)) % n  # exact integer phase index
    angle = -2.0 * np.pi * jk / n
    scale = 1.0 / np.sqrt(n)
    return (torch.from_numpy((np.cos(angle) * scale).astype(np.float32)),
            torch.from_numpy((np.sin(angle) * scale).astype(np.float32)))


class MatrixDFT2(nn.Module):
    """Orthonormal unshifted 2-D DFT of a fixed size ``(H, W)`` as real matrix products.

    Real/imaginary pairs stand for complex tensors; every method works on ``(..., H, W)``.
    """

    def __init__(self, h: int, w: int):
        super().__init__()
        ch, sh = dft_matrices(h)
        cw, sw = dft_matrices(w)
        self.register_buffer("ch", ch)
        self.register_buffer("sh", sh)
        self.register_buffer("cw", cw)
        self.register_buffer("sw", sw)

    def forward_real(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``F_H x F_W`` of a real ``x``: returns ``(real, imag)``."""
        p_re, p_im = self.ch @ x, self.sh @ x
        return p_re @ self.cw - p_im @ self.sw, p_re @ self.sw + p_im @ self.cw

    def inverse_real_part(self, k_re: torch.Tensor, k_im: torch.Tensor) -> torch.Tensor:
        """``Re(conj(F_H) k conj(F_W))``: the real part of the inverse transform."""
        p_re = self.ch @ k_re + self.sh @ k_im
        p_im = self.ch @ k_im - self.sh @ k_re
        return p_re @ self.cw + p_im @ self.sw


class ExportDCCNN(nn.Module):
    """Export-only network with matrix-DFT data consistency, for any network that provides
    ``real_dc_forward(image, k_re, k_im, mask, dft)`` (the DC-CNN, a U-Net with ``dc``).

    ``forward(image (B,1,H,W), kspace (B,2,H,W) [real, imag], mask (H,W)) -> (B,1,H,W)``;
    the same computation as the network's own forward (see the module docstring).
    """

    def __init__(self, model: nn.Module, shape: tuple[int, int]):
        super().__init__()
        self.net = model
        self.dft = MatrixDFT2(*shape)
        self.shape = tuple(shape)

    def forward(self, image: torch.Tensor, kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.net.real_dc_forward(image, kspace[:, 0:1], kspace[:, 1:2], mask, self.dft)


class TorchDCCNN(nn.Module):
    """Any network behind the exported interface, called through its task: with k-space
    (2-channel, turned complex) and mask when the network takes them, else the image alone.
    For TorchScript, and the reference the exported models are compared with."""

    def __init__(self, model: nn.Module, task: Task | None = None):
        super().__init__()
        self.model = model
        self.task = task or task_of(model)

    def forward(self, image: torch.Tensor, *kspace_mask: torch.Tensor) -> torch.Tensor:
        batch = {"input": image}
        if kspace_mask:
            batch.update(kspace=channels_to_complex(kspace_mask[0]), mask=kspace_mask[1])
        return self.task.forward(self.model, batch, features=False).image


TorchVDSR = TorchDCCNN  # the image-only case (``image -> recon``), kept for older imports


def inference_network(model: nn.Module, where: str = "checkpoint") -> nn.Module:
    """The network that runs at inference: its ``inference_network()`` (an SFT teacher's
    DC-CNN) when it has one, else the network itself."""
    inner = getattr(model, "inference_network", None)
    return inner() if callable(inner) else model


def default_shape(ckpt: dict, where: str = "checkpoint") -> tuple[int, int]:
    """``(H, W)`` of the checkpoint's training data, from its config's ``dataset`` name."""
    dataset = (ckpt.get("config") or {}).get("dataset")
    if dataset in DATASET_SHAPES:
        return DATASET_SHAPES[dataset]
    raise ConfigError(f"--shape: the image size is not known for dataset {dataset!r} of {where}; "
                      f"pass --shape H W (known datasets: {sorted(DATASET_SHAPES)})")


def example_inputs(net: nn.Module, shape: tuple[int, int], batch: int = 1,
                   acc: float = 4.0, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Plausible example inputs (smooth image, its undersampled k-space, a Cartesian mask)."""
    h, w = shape
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    img = torch.exp(-(yy**2 + xx**2) * 3)[None, None].repeat(batch, 1, 1, 1)
    img = img + 0.05 * torch.rand(img.shape, generator=gen)
    if "kspace" not in network_inputs(net):
        return (img,)
    mask = torch.from_numpy(cartesian_mask((h, w), acc, seed=seed))
    k = fft2(img.to(torch.complex64)) * mask
    return zero_filled(k).float(), complex_to_channels(k), mask


def export_wrapper(net: nn.Module, fmt: str, shape: tuple[int, int], task: Task | None = None) -> nn.Module:
    """The module that is exported for ``fmt``: for ONNX, a network taking k-space runs its
    ``real_dc_forward`` with the matrix DFT (:class:`ExportDCCNN`); otherwise the network
    is called through its task (:class:`TorchDCCNN`)."""
    if fmt == "onnx" and "kspace" in network_inputs(net) and hasattr(net, "real_dc_forward"):
        return ExportDCCNN(net, shape).eval()
    return TorchDCCNN(net, task).eval()


def save_onnx(net: nn.Module, shape: tuple[int, int], path: Path | str, task: Task | None = None) -> None:
    """Export ``net`` for images of ``shape`` to the ONNX file ``path`` (batch axis dynamic)."""
    names = [n for n in DCCNN_INPUTS if n in network_inputs(net)]
    if "kspace" in names and not hasattr(net, "real_dc_forward"):
        raise DataError(f"{type(net).__name__}: cannot export to ONNX (its data consistency uses complex "
                        "FFTs, which ONNX lacks); give it real_dc_forward(image, k_re, k_im, mask, dft) "
                        "or use --format torchscript")
    dynamic = {n: {0: "batch"} for n in names + ["recon"] if n != "mask"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter is deprecated
        torch.onnx.export(export_wrapper(net, "onnx", shape, task), example_inputs(net, shape), str(path),
                          input_names=names, output_names=["recon"], dynamic_axes=dynamic,
                          opset_version=OPSET, dynamo=False)


def save_torchscript(net: nn.Module, shape: tuple[int, int], path: Path | str,
                     task: Task | None = None) -> None:
    """``torch.jit.trace`` of ``net`` (any image size) saved to ``path``."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export
        traced = torch.jit.trace(export_wrapper(net, "torchscript", shape, task), example_inputs(net, shape),
                                 check_trace=False)
        torch.jit.save(traced, str(path))


def _check_shape(shape) -> tuple[int, int]:
    if len(shape) != 2 or not all(int(s) >= 1 for s in shape):
        raise ConfigError(f"--shape {shape!r}: expected two positive integers H W")
    return int(shape[0]), int(shape[1])


def export_model(checkpoint: Path | str, out: Path | str, fmt: str = "onnx",
                 shape: tuple[int, int] | None = None, force: bool = False) -> Path:
    """Export the network of ``checkpoint`` to ``out`` (``fmt``: ``onnx`` or ``torchscript``).

    ``shape`` is the fixed image size ``(H, W)`` of the ONNX graph (default: the size of the
    checkpoint's dataset; required when that is unknown). TorchScript takes any size; there
    ``shape`` only sizes the example input of the trace. Written to a temporary name and renamed;
    ``out`` is never the checkpoint, and replaces an existing file only with ``force``.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    out = Path(out)
    check_outputs({"--out": out}, {"--checkpoint": checkpoint}, force)
    model, ckpt = load_model(checkpoint)
    task = task_of(model, ckpt)
    net = inference_network(model, str(checkpoint)).eval()
    if shape is not None:
        shape = _check_shape(shape)
    elif fmt == "onnx":
        shape = default_shape(ckpt, str(checkpoint))
    else:  # the traced model takes any size; the shape only sizes the example input
        dataset = (ckpt.get("config") or {}).get("dataset")
        shape = DATASET_SHAPES.get(dataset, TRACE_SHAPE)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        if fmt == "onnx":
            save_onnx(net, shape, tmp, task)
        else:
            save_torchscript(net, shape, tmp, task)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def register_cli(sub) -> None:
    p = sub.add_parser("export", help="export a trained network to ONNX or TorchScript")
    p.add_argument("--checkpoint", required=True, help="a kdmri checkpoint (best_model.pt)")
    p.add_argument("--format", dest="fmt", default="onnx", choices=FORMATS, help="default onnx")
    p.add_argument("--out", required=True, help="output file (.onnx or .pt)")
    p.add_argument("--shape", nargs=2, type=int, metavar=("H", "W"),
                   help="fixed image size of the ONNX graph (default: the checkpoint's dataset size; "
                   "TorchScript accepts any size)")
    p.add_argument("--force", action="store_true", help="replace an existing --out (never the checkpoint)")

    def run(args):
        out = export_model(args.checkpoint, args.out, args.fmt, args.shape, args.force)
        print(f"exported {args.checkpoint} -> {out} ({args.fmt})")
        return 0

    p.set_defaults(func=run)
