"""Notebook 09's helpers (kdmri.own_network) and the attention maps of any network's layers
by module path (kdmri.reporting.attention)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from kdmri import own_network as own
from kdmri.checkpoint import BEST, load_checkpoint
from kdmri.distill.attention import attention_map
from kdmri.errors import ConfigError
from kdmri.models.dccnn import build_dccnn
from kdmri.models.features import FeatureRecorder
from kdmri.models.tasks import RECON
from kdmri.models.unet import UNet
from kdmri.reporting.attention import layer_attention_maps


@pytest.fixture
def batch(tiny_cfg):
    return default_collate([RECON.dataset(tiny_cfg, "validation")[0]])


def test_attention_maps_of_any_layer_by_module_path(batch):
    torch.manual_seed(0)
    net = UNet(**own.UNET_TEACHER).train()
    layers = ["down_sample_layers.0", "down_sample_layers.2", "up_conv.2.0"]
    maps = layer_attention_maps(net, batch, layers)
    assert [m.shape for m in maps] == [(32, 24)] * 3  # every map at the input's size
    assert all(np.isclose(np.linalg.norm(m), 1.0, atol=1e-5) for m in maps)
    assert net.training  # the network's mode is left as it was
    net.eval()
    with FeatureRecorder(net, layers[:1]) as rec, torch.no_grad():
        net(batch["input"], batch["kspace"], batch["mask"])
    want = attention_map(rec.features[layers[0]], "sample")[0].reshape(32, 24).numpy()
    assert np.allclose(maps[0], want, atol=1e-6)
    assert not np.allclose(maps[0], maps[1], atol=1e-3)
    small = layer_attention_maps(build_dccnn("student"), batch, ["cascade1.conv2"], size=(8, 6))
    assert small[0].shape == (8, 6)  # a feature name works too, at any size
    with pytest.raises(ConfigError, match=r"layer 'up_conv.9': not a submodule of UNet"):
        layer_attention_maps(net, batch, ["up_conv.9"])


def test_layer_table_names_paths_classes_and_shapes(batch):
    text = own.layer_table(UNet(**own.UNET_TEACHER), batch)
    lines = text.splitlines()
    assert lines[0].split() == ["down_sample_layers", "ModuleList", "-"]
    assert "down_sample_layers.1  UNetConvBlock    32x16x12" in text  # half size, twice the channels
    assert "conv                  UNetConvBlock    128x4x3" in text
    assert all(line.count(".") <= 1 for line in lines)
    one = own.layer_table(build_dccnn("student"), batch, depth=4, under="cascades.1").splitlines()
    assert [line.split()[0] for line in one][-1] == "cascades.1.acts.1" and len(one) == 8


def test_the_unet_teacher_is_trained_or_loaded(tiny_cfg):
    cfg = own.unet_config(tiny_cfg.replace(epochs=1))
    assert cfg.method == "unet" and cfg.teacher_model == "unet"
    teacher = own.unet_teacher(cfg)
    assert isinstance(teacher, UNet) and not teacher.training and teacher.config.dc
    best = cfg.experiment("teacher") / BEST
    assert best.parent.name == "unet_teacher" and load_checkpoint(best)["arch"]["kind"] == "unet"
    again = own.unet_teacher(cfg.replace(teacher_checkpoint=str(best)))
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), teacher.state_dict().values()))
    table = own.efficiency({"teacher": teacher, "student": build_dccnn("student")}, (32, 24), runs=2)
    assert list(table.columns) == ["parameters", "latency_ms", "speed-up"]
    assert table.loc["teacher", "speed-up"] == 1.0 and table.loc["student", "parameters"] == 49285
    assert (table["latency_ms"] > 0).all()


def test_notebook_09_runs_after_the_data():
    from kdmri.tools import graph

    assert graph.notebook_edges(["00_data", "03_teacher_student", "09_distil_your_network"]) == [[], [0], [0]]
