"""`python -m kdmri export`: ONNX (checked with onnxruntime) and TorchScript reproduce PyTorch."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from kdmri.checkpoint import BEST, arch_of, atomic_save, load_model
from kdmri.config import Config
from kdmri.data import SliceDataset, write_volume
from kdmri.inference.export import ExportDCCNN, MatrixDFT2, TorchDCCNN
from kdmri.models.vdsr import build_vdsr
from kdmri.physics.fft import complex_to_channels, fft2, ifft2
from kdmri.physics.masks import cartesian_mask
from kdmri.tools.benchmark import onnx_latency, to_markdown
from kdmri.tools.cli import main
from kdmri.training import train


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """A student checkpoint (2 epochs on tiny 32x24 data) and one validation slice."""
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("export")
    rng = np.random.default_rng(0)
    yy, xx = np.meshgrid(np.linspace(-1, 1, 32), np.linspace(-1, 1, 24), indexing="ij")
    vol = np.stack([np.exp(-((yy - 0.2 * rng.standard_normal()) ** 2 + xx**2) * (2 + i))
                    + 0.05 * rng.random((32, 24)) for i in range(4)], axis=-1)
    masks = {4: cartesian_mask((32, 24), 4, seed=4)}
    for split in ("train", "validation"):
        write_volume(tmp / "data" / split / "v.h5", (vol / vol.max()).astype(np.float32), masks)
    cfg = Config(dataset="tiny", acc="4x", data_root=str(tmp / "data"), epochs=2, batch_size=2,
                 experiments_root=str(tmp / "exp"), progress=False)
    ckpt = train(cfg, "student") / BEST
    item = SliceDataset(tmp / "data" / "validation", "4x")[1]
    return ckpt, item


def _reference(ckpt, item) -> np.ndarray:
    model, _ = load_model(ckpt)
    with torch.no_grad():
        return model.eval()(item["input"][None], item["kspace"][None], item["mask"][0],
                            return_features=False).image.numpy()


def _feed(item) -> dict[str, np.ndarray]:
    return {"image": item["input"][None].numpy(),
            "kspace": complex_to_channels(item["kspace"][None]).numpy(),
            "mask": item["mask"][0].numpy()}


def test_matrix_dft_is_the_fft():
    torch.manual_seed(0)
    dft = MatrixDFT2(12, 10)
    x = torch.randn(2, 1, 12, 10, dtype=torch.float64)
    re, im = dft.double().forward_real(x)
    k = fft2(x.to(torch.complex128))
    assert torch.allclose(re, k.real, atol=1e-6) and torch.allclose(im, k.imag, atol=1e-6)
    assert torch.allclose(dft.inverse_real_part(k.real, k.imag), ifft2(k).real, atol=1e-6)


def test_export_wrapper_matches_model(student):
    ckpt, item = student
    model, _ = load_model(ckpt)
    feed = [torch.from_numpy(v) for v in _feed(item).values()]
    with torch.no_grad():
        a = TorchDCCNN(model.eval())(*feed)
        b = ExportDCCNN(model, (32, 24))(*feed)
    assert (a - b).abs().max() < 1e-5


def test_onnx_matches_pytorch(student, tmp_path, capsys):
    ckpt, item = student
    out = tmp_path / "student.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--format", "onnx", "--out", str(out),
                 "--shape", "32", "24"]) == 0
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(out), opts, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image", "kspace", "mask"]
    got = session.run(None, _feed(item))[0]
    ref = _reference(ckpt, item)
    assert got.shape == ref.shape == (1, 1, 32, 24)
    assert np.abs(got - ref).max() < 1e-4
    # the batch axis is dynamic
    feed = _feed(item)
    feed2 = {k: (np.concatenate([v, v]) if k != "mask" else v) for k, v in feed.items()}
    assert np.abs(session.run(None, feed2)[0] - np.concatenate([ref, ref])).max() < 1e-4


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_matches_pytorch(student, tmp_path):
    ckpt, item = student
    out = tmp_path / "student.pt"
    assert main(["export", "--checkpoint", str(ckpt), "--format", "torchscript", "--out", str(out)]) == 0
    scripted = torch.jit.load(str(out))
    with torch.no_grad():
        got = scripted(*[torch.from_numpy(v) for v in _feed(item).values()]).numpy()
    assert np.abs(got - _reference(ckpt, item)).max() < 1e-4
    # traced with torch.fft: another size works too
    model, _ = load_model(ckpt)
    x = torch.rand(2, 1, 20, 28)
    k = complex_to_channels(fft2(x.to(torch.complex64)))
    m = torch.ones(20, 28)
    with torch.no_grad():
        assert torch.allclose(scripted(x, k, m), TorchDCCNN(model.eval())(x, k, m), atol=1e-5)


def test_vdsr_onnx(tmp_path):
    torch.manual_seed(0)
    net = build_vdsr("student").eval()
    ckpt = atomic_save({"model": net.state_dict(), "arch": arch_of(net)}, tmp_path / "sr.pt")
    out = tmp_path / "sr.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out), "--shape", "20", "16"]) == 0
    x = torch.rand(1, 1, 20, 16)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": x.numpy()})[0]
    with torch.no_grad():
        assert np.abs(got - net(x).image.numpy()).max() < 1e-4


def test_export_errors(student, tmp_path, capsys):
    ckpt, _ = student
    out = tmp_path / "m.onnx"
    # dataset "tiny" has no known size: --shape is required
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out)]) == 2
    assert "--shape" in capsys.readouterr().err
    missing = tmp_path / "none.pt"
    assert main(["export", "--checkpoint", str(missing), "--out", str(out)]) == 2
    assert str(missing) in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".m.onnx*"))


def test_benchmark_onnx_latency():
    torch.set_num_threads(1)
    r = onnx_latency("student", (32, 24), runs=2, warmup=1)
    assert r["eager_ms"] > 0 and r["onnxruntime_ms"] > 0 and r["size"] == "32x24"
    res = {"machine": {"device": "cpu", "cpu": "x", "threads": 1, "torch": "t", "python": "p"},
           "training": [], "latency": [], "onnx": [r],
           "parameters": {"teacher": 2, "student": 1, "reduction": 0.5}}
    assert "| student | 32x24 |" in to_markdown(res, "cmd")
