"""The calibration step (kdmri.training.calibration): what every wall-time claim states
beside it. No timed assertions: only that it measures something sensible and says so."""

import math

import pytest
import torch

from kdmri.training.calibration import (
    REFERENCE_MS,
    Calibration,
    RunTiming,
    calibrate,
    calibration_batch,
    scaled_minutes,
    timed,
)


def test_calibrate_returns_a_positive_finite_time_and_the_machine():
    before = torch.get_num_threads()
    state = torch.get_rng_state()
    cal = calibrate(steps=2, warmup=1, threads=1)
    assert cal.ms > 0 and math.isfinite(cal.ms)
    assert cal.threads == 1 and cal.steps == 2 and cal.cpu and cal.torch == torch.__version__
    assert torch.get_num_threads() == before  # the thread count is restored
    assert torch.equal(torch.get_rng_state(), state)  # and so is torch's generator
    line = cal.line()
    assert line.startswith("calibration: ") and "ms/step" in line and "96x96, batch 4" in line
    assert "1 torch threads" in line


def test_calibration_batch_is_the_demo_size_undersampled():
    b = calibration_batch()
    assert b["input"].shape == b["target"].shape == (4, 1, 96, 96)
    assert b["kspace"].is_complex() and b["mask"].shape == (4, 1, 96, 96)
    assert not torch.allclose(b["input"], b["target"])  # zero-filled, not the target


def test_run_timing_scales_to_the_reference_and_records_both_calibrations():
    start = Calibration(180.0, "cpu", 2, 20, "t")
    end = Calibration(200.0, "cpu", 2, 20, "t")
    t = RunTiming(1140.0, start, end)
    assert t.calibration_ms == 190.0
    assert t.reference_minutes == pytest.approx(19.0 * REFERENCE_MS / 190.0, abs=0.01)
    text = "\n".join(t.lines())
    assert "wall time: 19.0 min" in text and "calibration: 180.0 ms/step" in text
    assert "200.0 ms at the end" in text and f"= {t.reference_minutes:.1f} min on a 270 ms machine" in text
    d = t.to_dict()
    assert d["calibration_start_ms"] == 180.0 and d["calibration_end_ms"] == 200.0
    assert d["wall_seconds"] == 1140.0 and d["reference_minutes"] == t.reference_minutes


def test_timed_runs_the_function_between_two_calibrations():
    calls = []
    result, timing = timed(lambda: calls.append(1) or "done", threads=1, steps=1)
    assert result == "done" and calls == [1]
    assert timing.seconds > 0 and timing.start.ms > 0 and timing.end.ms > 0


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_scaled_minutes_rejects_a_meaningless_calibration(bad):
    with pytest.raises(ValueError, match="measured_ms"):
        scaled_minutes(60.0, bad)
    with pytest.raises(ValueError, match="steps=0"):
        calibrate(steps=0)


BENCH = """# kdmri benchmarks (cpu)

Machine: x86_64, 2 torch threads
Calibration: 100.0 ms/step (kdmri.training.calibration)

## Training (batch 4)

| size | teacher slices/s | student slices/s | KD slices/s | a | b | c |
|---|---|---|---|---|---|---|
| 96x96 | 20.0 | 40.0 | 32.0 | 1x | 1x | 1x |
"""

FASTPATH = """| variant | teacher | student | KD |
|---|---|---|---|
| fp32 | 200.0 (1.00x) | 100.0 (1.00x) | 125.0 (1.00x) |
| bf16 + channels_last | 50.0 (4.00x) | 50.0 (2.00x) | 50.0 (2.50x) |
"""


def test_the_cost_plan_scales_by_the_calibration_and_the_fast_path(tmp_path):
    from kdmri.config import Config
    from kdmri.tools import costs

    (tmp_path / "b.md").write_text(BENCH)
    (tmp_path / "f.md").write_text(FASTPATH)
    rows = costs.read_throughput([tmp_path / "b.md"])
    assert rows[0].calibration_ms == 100.0
    fast = costs.read_fastpath(tmp_path / "f.md")
    assert fast["bf16 + channels_last"] == {"teacher": 4.0, "student": 2.0, "kd": 2.5}
    here = costs.Estimator(rows, "cpu", calibration_ms=250.0, fastpath=fast)
    there = costs.Estimator(rows, "cpu")
    # a machine of calibration 250 ms takes 2.5x as long as the measuring one (100 ms)
    assert here.step_seconds("recon", "teacher", (96, 96)) == pytest.approx(2.5 / 20.0)
    assert there.step_seconds("recon", "teacher", (96, 96)) == pytest.approx(1 / 20.0)
    assert any("calibration 250.0 ms here, 100.0 ms" in n for n in here.notes)
    cfg = Config(dataset="demo", precision="bf16", channels_last=True)
    assert costs.fastpath_variant(cfg) == "bf16 + channels_last"
    assert here.speedup(cfg, "student") == 2.0 and here.speedup(Config(dataset="demo"), "student") == 1.0
