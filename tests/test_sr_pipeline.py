"""One tiny end-to-end super-resolution run through the shared training loop."""

import json

from kdmri.checkpoint import BEST, load_model
from kdmri.evaluation.evaluate import evaluate
from kdmri.training.engine import train


def test_sr_pipeline_end_to_end(tiny_cfg):
    cfg = tiny_cfg.replace(epochs=1, sr_keep=8, max_train_slices=4)
    for stage in ("sr-teacher", "sr-student", "sr-feature", "sr-kd"):
        out = train(cfg, stage)
        assert out.parent.name == "acc_4x" and out.name == f"sr_{stage[3:]}"
    model, ckpt = load_model(cfg.replace(method="sr").experiment("teacher") / BEST)
    assert ckpt["arch"]["kind"] == "vdsr" and ckpt["arch"]["n_layers"] == 11
    lr = evaluate(cfg, "sr-lr")
    kd = evaluate(cfg, "sr-kd")
    assert lr["label"] == "LR" and lr["parameters"] == 0
    assert kd["parameters"] == 185_857 and kd["n_slices"] == 2
    saved = json.loads((cfg.replace(method="sr").experiment("kd") / "report.json").read_text())
    assert saved["task"] == "sr" and saved["config"]["sr_keep"] == 8
