"""MODEL_CARD.md: written by evaluate() beside report.json, from the report alone."""

from __future__ import annotations

import json

import torch

from kdmri.evaluation.evaluate import evaluate
from kdmri.evaluation.model_card import model_card
from kdmri.training import train


def test_evaluate_writes_model_card(tiny_cfg):
    torch.set_num_threads(1)
    cfg = tiny_cfg.replace(epochs=1)
    out = train(cfg, "student")
    evaluate(cfg, "student", save_reconstructions=False)
    report = json.loads((out / "report.json").read_text())
    card = (out / "MODEL_CARD.md").read_text()
    m = report["metrics"]
    assert f"{m['psnr']['mean']:.2f} ± {m['psnr']['std']:.2f}" in card
    assert f"{m['ssim']['mean']:.4f} ± {m['ssim']['std']:.4f}" in card
    assert "49,285" in card and report["git_commit"] in card
    assert "Not for clinical use" in card and "4x" in card and "mask_4x" in card
    assert "## Latency" not in card  # not measured by evaluate
    assert card == model_card(report)
    assert not list(out.glob("*.tmp"))
    # baselines have no checkpoint and get no card
    evaluate(cfg, "zf", save_reconstructions=False)
    assert not (cfg.experiment("zf") / "MODEL_CARD.md").exists()


def test_model_card_demo_limits_and_latency():
    report = {"dataset": "demo", "acc": "8x", "role": "kd", "stage": "kd", "method": "kdmri",
              "parameters": 49285, "metrics": {"psnr": {"mean": 30.0, "std": 1.0}},
              "config": {"dataset": "demo", "acc": "8x", "epochs": 20}, "latency_ms": 38.4}
    card = model_card(report)
    assert "averaged template brain" in card and "Trained on demo at 8x" in card
    assert "38.4 ms" in card and "30.00 ± 1.00" in card
