"""The fast-path benchmark: every variant trains through the engine, and the accuracy cost
is a paired per-slice comparison against fp32 from the same seed."""

import math

import yaml

from kdmri.tools import fastpath


def test_variants_time_and_table():
    variants = {k: fastpath.VARIANTS[k] for k in ("fp32", "bf16", "bf16 + channels_last")}
    rows = fastpath.time_variants((24, 24), steps=1, variants=variants)
    assert [r["variant"] for r in rows] == list(variants)
    assert all(r[s] > 0 for r in rows for s in fastpath.STAGES)
    assert all(math.isclose(rows[0]["speedup"][s], 1.0) for s in fastpath.STAGES)
    text = fastpath.to_markdown(rows, (24, 24), command="python -m kdmri fastpath")
    assert "| bf16 + channels_last |" in text and "(1.00x)" in text


def test_accuracy_cost_is_paired_against_fp32(tiny_cfg, tmp_path):
    params = tmp_path / "tiny.yaml"
    params.write_text(yaml.safe_dump({"dataset": "tiny", "data_root": tiny_cfg.data_root, "epochs": 1,
                                      "batch_size": 2, "progress": False}))
    cost = fastpath.accuracy_cost(str(params), "bf16", tmp_path / "fp", stages=("teacher", "student"))
    assert set(cost) == {"teacher", "student"}
    for d in cost.values():
        assert d["n"] == 2 and d["ci_low"] <= d["mean"] <= d["ci_high"]
    assert (tmp_path / "fp" / "bf16" / "tiny" / "acc_4x" / "kdmri_teacher" / "report.json").is_file()
    assert (tmp_path / "fp" / "fp32" / "tiny" / "acc_4x" / "kdmri_teacher" / "config.yaml").read_text() \
        .count("precision: fp32") == 1
