"""The fastMRI-form U-Net: fastMRI's state-dict key names and parameter count, as teacher
and student (into a DC-CNN and into a narrower U-Net), with and without data consistency,
and through ``reconstruct`` and ``export``."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import smooth_volume

import kdmri
from kdmri.checkpoint import BEST, load_model, load_weights
from kdmri.config import Config
from kdmri.data import SliceDataset, write_volume
from kdmri.errors import DataError
from kdmri.models import UNet
from kdmri.physics.fft import complex_to_channels
from kdmri.physics.masks import cartesian_mask
from kdmri.tools.export import export_model
from kdmri.tools.reconstruct import reconstruct
from kdmri.training import train


def fastmri_keys_and_shapes(chans=32, num_pool_layers=4, in_chans=1, out_chans=1) -> dict:
    """State-dict keys and shapes of fastMRI's ``Unet`` (fastmri/models/unet.py): a ConvBlock's
    ``layers`` hold conv (0), InstanceNorm, LeakyReLU, Dropout, conv (4), ...; convs have no
    bias; InstanceNorm keeps no parameters; the last up_conv is Sequential(ConvBlock, 1x1 conv)."""
    keys, c_in, c = {}, in_chans, chans
    for i in range(num_pool_layers):
        keys[f"down_sample_layers.{i}.layers.0.weight"] = (c, c_in, 3, 3)
        keys[f"down_sample_layers.{i}.layers.4.weight"] = (c, c, 3, 3)
        c_in, c = c, 2 * c
    keys["conv.layers.0.weight"], keys["conv.layers.4.weight"] = (c, c_in, 3, 3), (c, c, 3, 3)
    for i in range(num_pool_layers):
        c_in, c = c, c // 2
        keys[f"up_transpose_conv.{i}.layers.0.weight"] = (c_in, c, 2, 2)
        block = f"up_conv.{i}.0." if i == num_pool_layers - 1 else f"up_conv.{i}."
        keys[block + "layers.0.weight"], keys[block + "layers.4.weight"] = (c, c_in, 3, 3), (c, c, 3, 3)
    keys[f"up_conv.{num_pool_layers - 1}.1.weight"] = (out_chans, c, 1, 1)
    keys[f"up_conv.{num_pool_layers - 1}.1.bias"] = (out_chans,)
    return keys


def fastmri_parameters(chans=32, num_pool_layers=4) -> int:
    """fastMRI's parameter count in closed form (1 input and output channel)."""
    c = [chans * 2**i for i in range(num_pool_layers + 1)]  # widths by level
    down = 9 * (1 * c[0] + c[0] ** 2)
    down += sum(9 * (c[i - 1] * c[i] + c[i] ** 2) for i in range(1, num_pool_layers))
    bottleneck = 9 * (c[-2] * c[-1] + c[-1] ** 2)
    up = sum(4 * c[i + 1] * c[i] + 9 * (2 * c[i] * c[i] + c[i] ** 2) for i in range(num_pool_layers))
    return down + bottleneck + up + c[0] + 1


def test_fastmri_key_names_and_parameter_count():
    net = UNet(chans=32, num_pool_layers=4)
    expected = fastmri_keys_and_shapes()
    assert "down_sample_layers.0.layers.0.weight" in expected
    assert "up_transpose_conv.0.layers.0.weight" in expected and "up_conv.3.1.bias" in expected
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == expected
    n = sum(p.numel() for p in net.parameters())
    assert n == fastmri_parameters() == sum(int(np.prod(s)) for s in expected.values())
    assert n == 7_756_097  # 7.76 M: the single-coil baseline's size (chans 32, 4 pools)


def test_loads_a_fastmri_state_dict_with_a_mismatch_report(tmp_path):
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(s, generator=gen) for k, s in fastmri_keys_and_shapes(8, 2).items()}
    path = tmp_path / "unet.ckpt"  # as a Lightning checkpoint of fastMRI's UnetModule stores it
    torch.save({"state_dict": {f"unet.{k}": v for k, v in state.items()}, "epoch": 3}, path)
    net = UNet(chans=8, num_pool_layers=2)
    assert load_weights(net, path)["loaded"] == len(state)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())
    bad = dict(state, extra=torch.ones(1))
    bad["conv.layers.0.weight"] = torch.ones(3, 3, 3, 3)
    del bad["up_conv.1.1.bias"]
    with pytest.raises(DataError, match=r"missing 1 \['up_conv.1.1.bias'\], unexpected 1 \['extra'\], "
                       r"shape mismatches .*conv.layers.0.weight: \(3, 3, 3, 3\) vs \(32, 16, 3, 3\)"):
        load_weights(net, bad)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("unet") / "data"
    masks = {4: cartesian_mask((32, 24), 4, seed=4)}
    write_volume(root / "train" / "t.h5", smooth_volume((32, 24, 4), 0), masks)
    write_volume(root / "validation" / "v.h5", smooth_volume((32, 24, 2), 1), masks)
    return root


@pytest.mark.parametrize("dc", [True, False])
def test_unet_teacher_distils_into_dccnn_and_narrower_unet(data, dc):
    teacher = UNet(chans=8, num_pool_layers=2, dc=dc)
    args = (data / "train", data / "validation")
    # into a DC-CNN: attention maps of different resolutions (teacher's second level is 16x12)
    _, rep = kdmri.distil(teacher, "dccnn", *args, method="at", epochs=1, batch_size=2,
                          pairs=[("cascades.0.acts.1", "down_sample_layers.1")],
                          student_options={"n_cascades": 2, "n_convs": 3, "channels": 8})
    assert np.isfinite(rep["history"][0]["train_feature"]) and rep["history"][0]["train_feature"] > 0
    # into a narrower U-Net: FitNets regressors from 4 (8) to 8 (16) channels
    student, rep = kdmri.distil(teacher, "unet", *args, method="fitnet", epochs=1, batch_size=2,
                                pairs=[("down_sample_layers.0", "down_sample_layers.0"), ("conv", "conv")],
                                student_options={"chans": 4, "num_pool_layers": 2, "dc": dc})
    assert isinstance(student, UNet) and student.config.chans == 4
    assert rep["student_parameters"] < rep["teacher_parameters"]
    assert np.isfinite(rep["history"][0]["val_loss"])


@pytest.fixture(scope="module")
def unet_checkpoint(data, tmp_path_factory):
    """A U-Net with data consistency trained as the teacher stage, named in the config."""
    cfg = Config(dataset="tiny", acc="4x", data_root=str(data), epochs=1, batch_size=2,
                 experiments_root=str(tmp_path_factory.mktemp("exp")), progress=False,
                 teacher_model="unet", teacher_model_options={"chans": 4, "num_pool_layers": 2, "dc": True})
    ckpt = train(cfg, "teacher") / BEST
    model, stored = load_model(ckpt)
    assert isinstance(model, UNet) and model.config.dc and stored["task"] == "recon"
    return ckpt


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_reconstruct_and_export_a_unet(unet_checkpoint, data, tmp_path):
    res = reconstruct(unet_checkpoint, data / "validation" / "v.h5", tmp_path / "r.h5")
    assert res["shape"] == [32, 24, 2] and res["baseline"] == "zero-filled"
    assert np.isfinite(res["metrics"]["network"]["psnr"])
    item = SliceDataset(data / "validation", "4x")[0]
    model, _ = load_model(unet_checkpoint)
    with torch.no_grad():
        ref = model.eval()(item["input"][None], item["kspace"][None], item["mask"][0]).image.numpy()
    onnx = export_model(unet_checkpoint, tmp_path / "u.onnx", "onnx", (32, 24))
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image", "kspace", "mask"]
    got = session.run(None, {"image": item["input"][None].numpy(),
                             "kspace": complex_to_channels(item["kspace"][None]).numpy(),
                             "mask": item["mask"][0].numpy()})[0]
    assert np.abs(got - ref).max() < 1e-4
    # without data consistency: the image alone, TorchScript
    plain = UNet(chans=4, num_pool_layers=2).eval()
    path = tmp_path / "plain.pt"
    torch.save({"model": plain.state_dict(), "arch": plain.arch(), "task": "recon"}, path)
    ts = export_model(path, tmp_path / "plain.ts", "torchscript", (32, 24))
    x = torch.rand(2, 1, 32, 24)
    with torch.no_grad():
        assert torch.allclose(torch.jit.load(str(ts))(x), plain(x).image, atol=1e-5)
