"""The tutorial helpers on the super-resolution extension (VDSR), one implementation shared
with the DC-CNN, and the paper's numbers."""

import math

import numpy as np
import pytest
import torch

from kdmri import tutorial as nb
from kdmri.config import ConfigError
from kdmri.data import sr
from kdmri.distill.losses import attention_map
from kdmri.models.vdsr import VDSR_DEFAULT_PAIRS, build_vdsr
from kdmri.reporting import paper
from kdmri.reporting.reports import results_table


def test_validation_item_is_a_batch_of_one_low_resolution_slice(tiny_cfg):
    cfg = tiny_cfg.replace(sr_keep=8)
    item = nb.validation_slice(cfg, task="sr")
    assert item["input"].shape == (1, 1, 32, 24) and item["target"].shape == (1, 1, 32, 24)
    assert item["volume"] == ["v1"] and item["slice"].tolist() == [1]  # the middle of 2 slices
    expected = sr.truncate_kspace(item["target"][0, 0].numpy(), 8)
    np.testing.assert_allclose(item["input"][0, 0].numpy(), expected, atol=1e-6)
    assert nb.validation_slice(cfg, 0, task="sr")["slice"].tolist() == [0]
    with pytest.raises(IndexError, match="2 slices"):
        nb.validation_slice(cfg, 5, task="sr")
    with pytest.raises(ConfigError, match="task='vdsr'"):
        nb.validation_slice(cfg, task="vdsr")
    recon = nb.validation_slice(cfg)  # the same slice, as a reconstruction item
    assert recon["slice"].tolist() == [1] and "kspace" in recon and "kspace" not in item
    torch.testing.assert_close(recon["target"], item["target"])


def test_attention_maps_of_the_default_pair(tiny_cfg):
    batch = nb.validation_slice(tiny_cfg.replace(sr_keep=8), task="sr")
    (student_layer, teacher_layer), = VDSR_DEFAULT_PAIRS
    torch.manual_seed(0)
    teacher, student = build_vdsr("teacher"), build_vdsr("student")
    t_map, = nb.attention_maps(teacher, batch, [teacher_layer])
    s_maps = nb.attention_maps(student, batch, [student_layer, "conv1"])
    assert t_map.shape == (32, 24) and len(s_maps) == 2
    assert math.isclose(float(np.linalg.norm(t_map)), 1.0, rel_tol=1e-5)
    # the map is the L2-normalised channel sum of squared activations
    with torch.no_grad():
        f = teacher(batch["input"]).features[teacher_layer][0]
    am = (f ** 2).sum(0).numpy()
    np.testing.assert_allclose(t_map, am / np.linalg.norm(am), rtol=1e-4, atol=1e-7)
    with pytest.raises(KeyError, match="conv12"):
        nb.attention_maps(teacher, batch, ["conv12"])


def test_one_attention_maps_for_dccnn_and_vdsr(tiny_cfg):
    """The same function serves both networks: the forward call follows the batch (DC-CNN
    with k-space and mask, VDSR with the image alone), the map is the same formula."""
    from kdmri.models.dccnn import build_dccnn

    torch.manual_seed(0)
    dccnn, vdsr = build_dccnn("student"), build_vdsr("student")
    cases = ((dccnn, "recon", "cascade2.conv2", lambda b: dccnn(b["input"], b["kspace"], b["mask"],
                                                                 return_features=True)),
             (vdsr, "sr", "conv3", lambda b: vdsr(b["input"], return_features=True)))
    for model, task, layer, direct in cases:
        batch = nb.validation_slice(tiny_cfg.replace(sr_keep=8), task=task)
        got, = nb.attention_maps(model, batch, [layer], mode="sample")
        with torch.no_grad():
            features = direct(batch).features
        want = attention_map(features[layer], "sample")[0].reshape(32, 24).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
        assert math.isclose(float(np.linalg.norm(got)), 1.0, rel_tol=1e-5)


def test_paper_sr_numbers_and_side_by_side_table():
    rows = paper.KDMRI_SR_CALGARY.rows
    assert rows["LR"] == (27.90, 0.8117) and rows["teacher"] == (30.14, 0.8659)
    assert rows["student"] == (29.87, 0.8596) and rows["kd"] == (30.08, 0.8639)
    assert paper.KDMRI_RECON[("cardiac", "4x")].rows["kd"] == (32.07, 0.9084)
    assert paper.KDMRI_RECON[("knee", "8x")].rows["ZF"] == (28.71, 0.7985)
    assert len(paper.KDMRI_RECON) == 9
    assert "Calgary-Campinas" in paper.KDMRI_SR_CALGARY.title
    alone = paper.published_rows(paper.KDMRI_SR_CALGARY)
    assert list(alone.index) == ["LR", "teacher", "student", "kd"]
    assert alone.loc["kd", "PSNR (paper)"] == "30.08" and alone.loc["LR", "SSIM (paper)"] == "0.8117"

    import pandas as pd

    reports = pd.DataFrame([
        {"method": "sr", "role": r, "label": lab, "parameters": p, "n_slices": 8,
         "psnr_mean": 30.0, "psnr_std": 1.0, "ssim_mean": 0.9, "ssim_std": 0.01}
        for r, lab, p in (("lr", "LR", 0), ("teacher", "teacher", 333_569), ("feature", "feature", 1))])
    measured = results_table(reports, [("sr", "lr"), ("sr", "teacher"), ("sr", "feature")])
    both = paper.with_paper(measured, paper.KDMRI_SR_CALGARY)
    assert list(both.columns) == ["PSNR", "SSIM", "parameters", "slices", "PSNR (paper)", "SSIM (paper)"]
    assert both.loc["LR", "PSNR (paper)"] == "27.90" and both.loc["teacher", "SSIM (paper)"] == "0.8659"
    assert both.loc["feature", "PSNR (paper)"] == "—"
    assert both.loc["teacher", "PSNR"] == "30.00 ± 1.00"  # measured columns untouched
