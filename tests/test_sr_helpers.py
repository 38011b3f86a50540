"""Notebook helpers of the super-resolution extension (kdmri.data.sr) and the paper's numbers."""

import math

import numpy as np
import pytest
import torch

from kdmri.data import sr
from kdmri.models.vdsr import VDSR_DEFAULT_PAIRS, build_vdsr
from kdmri.reporting import paper
from kdmri.reporting.results import results_table


def test_validation_item_is_a_batch_of_one_low_resolution_slice(tiny_cfg):
    cfg = tiny_cfg.replace(sr_keep=8)
    item = sr.validation_item(cfg)
    assert item["input"].shape == (1, 1, 32, 24) and item["target"].shape == (1, 1, 32, 24)
    assert item["volume"] == ["v1"] and item["slice"].tolist() == [1]  # the middle of 2 slices
    expected = sr.truncate_kspace(item["target"][0, 0].numpy(), 8)
    np.testing.assert_allclose(item["input"][0, 0].numpy(), expected, atol=1e-6)
    assert sr.validation_item(cfg, 0)["slice"].tolist() == [0]
    with pytest.raises(IndexError, match="2 slices"):
        sr.validation_item(cfg, 5)


def test_attention_maps_of_the_default_pair(tiny_cfg):
    batch = sr.validation_item(tiny_cfg.replace(sr_keep=8))
    (student_layer, teacher_layer), = VDSR_DEFAULT_PAIRS
    torch.manual_seed(0)
    teacher, student = build_vdsr("teacher"), build_vdsr("student")
    t_map, = sr.attention_maps(teacher, batch, [teacher_layer])
    s_maps = sr.attention_maps(student, batch, [student_layer, "conv1"])
    assert t_map.shape == (32, 24) and len(s_maps) == 2
    assert math.isclose(float(np.linalg.norm(t_map)), 1.0, rel_tol=1e-5)
    # the map is the L2-normalised channel sum of squared activations
    with torch.no_grad():
        f = teacher(batch["input"]).features[teacher_layer][0]
    am = (f ** 2).sum(0).numpy()
    np.testing.assert_allclose(t_map, am / np.linalg.norm(am), rtol=1e-4, atol=1e-7)
    with pytest.raises(KeyError, match="conv12"):
        sr.attention_maps(teacher, batch, ["conv12"])


def test_paper_sr_numbers_and_side_by_side_table():
    rows = paper.KDMRI_SR_CALGARY.rows
    assert rows["LR"] == (27.90, 0.8117) and rows["teacher"] == (30.14, 0.8659)
    assert rows["student"] == (29.87, 0.8596) and rows["kd"] == (30.08, 0.8639)
    assert paper.KDMRI_RECON[("cardiac", "4x")].rows["kd"] == (32.07, 0.9084)
    assert paper.KDMRI_RECON[("knee", "8x")].rows["ZF"] == (28.71, 0.7985)
    assert len(paper.KDMRI_RECON) == 9
    assert "Calgary-Campinas" in paper.KDMRI_SR_CALGARY.title
    alone = paper.paper_table(paper.KDMRI_SR_CALGARY)
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
