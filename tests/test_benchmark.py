"""The benchmark script runs and reports every figure (speed itself is not asserted here:
the committed benchmarks/results.md is the record)."""

from kdmri.tools.benchmark import run_benchmarks, to_markdown


def test_benchmark_smoke():
    res = run_benchmarks(sizes=((32, 32),), batch=2, steps=1, latency_sizes=((32, 24),),
                         read_size=(32, 24))
    row = res["training"][0]
    assert set(row["slices_per_s"]) == {"teacher", "student", "kd"}
    assert all(v > 0 for v in row["slices_per_s"].values())
    assert row["kd_over_student"] > 0 and res["latency"][0]["speedup"] > 0
    assert res["parameters"] == {"teacher": 141_765, "student": 49_285,
                                 "reduction": 1 - 49_285 / 141_765}
    text = to_markdown(res, "python -m kdmri benchmark")
    assert "| 32x32 |" in text and "65.2 % fewer" in text
    assert "Data loading (32x24 volume" in text and res["slice_reads"]["chunked_ms"] > 0
