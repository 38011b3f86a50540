"""kdmri.reporting: reports, paper-style tables, paired comparisons, latency and the
efficiency table, on fake experiment folders (report.json + metrics.csv as
kdmri.evaluation.evaluate writes them)."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from kdmri import tutorial as nb
from kdmri.config import Config
from kdmri.errors import DataError
from kdmri.reporting import latency, paper, statistics, tables
from kdmri.reporting import reports as rp
from kdmri.runs import ablation_summary, sft_summary
from kdmri.training.recipes import variant_experiment

SLICES = [("vol1", 0), ("vol1", 1), ("vol2", 0), ("vol2", 1)]


def _experiment(root, dataset, acc, method, role, psnr, ssim=None, parameters=0, task="recon",
                label=None, slices=SLICES):
    """A folder ``root/<dataset>/acc_<acc>/<method>_<role>`` with metrics.csv and report.json."""
    psnr = np.asarray(psnr, dtype=float)
    ssim = np.asarray(ssim if ssim is not None else 0.9 + psnr / 1000, dtype=float)
    folder = root / dataset / f"acc_{acc}" / f"{method}_{role}"
    folder.mkdir(parents=True)
    df = pd.DataFrame({"volume": [v for v, _ in slices], "slice": [s for _, s in slices], "psnr": psnr,
                       "ssim": ssim, "nmse": 0.01, "hfn": 0.1})
    df.to_csv(folder / "metrics.csv", index=False)
    summ = {m: {"mean": float(df[m].mean()), "std": float(df[m].std(ddof=0)), "n": len(df)}
            for m in ("psnr", "ssim", "nmse", "hfn")}
    vol = df.groupby("volume")[["psnr", "ssim", "nmse", "hfn"]].mean()
    vsumm = {m: {"mean": float(vol[m].mean()), "std": float(vol[m].std(ddof=0)), "n": len(vol)}
             for m in vol}
    (folder / "report.json").write_text(json.dumps({
        "dataset": dataset, "acc": acc, "task": task, "method": method, "role": role,
        "label": label or ("ZF" if role == "zf" else "LR" if role == "lr" else role),
        "n_slices": len(df), "parameters": parameters, "metrics": summ, "volume_metrics": vsumm}))
    return folder


@pytest.fixture
def root(tmp_path):
    """demo at 4x (ZF, teacher, student, KD, SFT teacher, the 05 grid's standard-teacher and
    SFT-KD students) and 8x (ZF, teacher, student only); a second dataset at 5x; an SR
    experiment."""
    r = tmp_path / "experiments"
    _experiment(r, "demo", "4x", "kdmri", "zf", [24, 25, 26, 25])
    _experiment(r, "demo", "4x", "kdmri", "teacher", [33, 34, 35, 34], parameters=141_765)
    _experiment(r, "demo", "4x", "kdmri", "student", [32, 33, 34, 33], parameters=49_285)
    _experiment(r, "demo", "4x", "kdmri", "kd", [32.5, 33.2, 34.6, 33.3], parameters=49_285)
    _experiment(r, "demo", "4x", "sft", "teacher", [33.5, 34, 35, 34.1], parameters=141_765)
    _experiment(r, "demo", "4x", "sft", "kd", [30, 30, 30, 30], parameters=49_285)
    _experiment(r, "demo", "4x", "sft-at_kdmri", "kd", [33, 33.4, 34.5, 33.5], parameters=49_285)
    _experiment(r, "demo", "4x", "std-at_kdmri", "kd", [32.2, 33, 34.6, 33.2], parameters=49_285)
    _experiment(r, "demo", "8x", "kdmri", "zf", [22, 23, 24, 23])
    _experiment(r, "demo", "8x", "kdmri", "teacher", [29, 30, 31, 30], parameters=141_765)
    _experiment(r, "demo", "8x", "kdmri", "student", [28, 29, 30, 29], parameters=49_285)
    _experiment(r, "other", "5x", "kdmri", "zf", [20, 21, 22, 21])
    _experiment(r, "demo", "4x", "sr", "lr", [27, 28, 29, 28], task="sr")
    return r


def test_collect_reports_has_slice_and_volume_metrics(root):
    # an evaluation on another test set (test_<set>/, other slices) is not a validation result
    # (notebook 08 once paired a shift-set evaluation with a validation one and failed)
    teacher = root / "demo" / "acc_4x" / "kdmri_teacher"
    (teacher / "test_shift").mkdir()
    (teacher / "test_shift" / "report.json").write_text((teacher / "report.json").read_text())
    reports = rp.collect_reports(root)
    assert len(reports) == 13
    row = reports[(reports["method"] == "kdmri") & (reports["role"] == "zf")
                  & (reports["acc"] == "4x")].iloc[0]
    assert row["psnr_mean"] == pytest.approx(25.0)
    assert row["psnr_std"] == pytest.approx(np.std([24, 25, 26, 25]))
    assert row["volume_psnr_mean"] == pytest.approx(25.0)  # volumes 24.5 and 25.5
    assert row["volume_psnr_std"] == pytest.approx(0.5)


def test_paper_table_columns_per_acceleration_and_missing_entries(root):
    reports = rp.collect_reports(root)
    table = tables.paper_table(reports, "demo")
    assert list(table.columns) == ["4x PSNR", "4x SSIM", "8x PSNR", "8x SSIM"]
    assert list(table.index) == ["ZF", "Teacher", "Student", "KD student", "SFT teacher",
                                 "KD student (05, standard teacher)", "SFT-KD student"]
    assert table.index.name == "model"
    assert table.loc["ZF", "4x PSNR"] == f"25.00 ± {np.std([24, 25, 26, 25]):.2f}"
    assert table.loc["Teacher", "8x PSNR"] == "30.00 ± 0.71"
    assert table.loc["ZF", "4x SSIM"].startswith("0.9250 ± ")  # 4 decimals for SSIM
    assert table.loc["KD student", "8x PSNR"] == rp.MISSING
    # SFT-KD: the at_kdmri student of notebook 05 is preferred over a plain "sft" one
    assert table.loc["SFT-KD student", "4x PSNR"].startswith("33.60 ± ")
    # a row without any report is left out, unless asked for
    only_8x = tables.paper_table(reports[reports["acc"] == "8x"], "demo")
    assert list(only_8x.index) == ["ZF", "Teacher", "Student"]
    assert len(tables.paper_table(reports[reports["acc"] == "8x"], "demo", drop_empty=False)) == 7
    # volume-level statistics
    vol = tables.paper_table(reports, "demo", level="volume")
    assert vol.loc["ZF", "4x PSNR"] == "25.00 ± 0.50"
    with pytest.raises(ValueError, match="level"):
        tables.paper_table(reports, "demo", level="subject")


def test_paper_table_dataset_selection_and_tasks(root):
    reports = rp.collect_reports(root)
    with pytest.raises(ValueError, match="several datasets"):
        tables.paper_table(reports)
    assert list(tables.paper_table(reports[reports["dataset"] == "other"]).columns) == ["5x PSNR", "5x SSIM"]
    per_dataset = tables.paper_tables(reports)
    assert sorted(per_dataset) == ["demo", "other"]
    assert list(per_dataset["other"].index) == ["ZF"]
    sr = tables.paper_tables(reports, tables.SR_ROWS, task="sr")
    assert list(sr) == ["demo"] and list(sr["demo"].index) == ["LR"]
    assert "LR" not in per_dataset["demo"].index
    empty = tables.paper_table(rp.collect_reports(root / "nothing"), "demo")
    assert empty.empty and list(empty.columns) == []


def test_acceleration_sort_is_numeric():
    assert sorted(["8x", "10x", "4x", "5x"], key=tables.acc_key) == ["4x", "5x", "8x", "10x"]


def test_missing_entries_and_markdown(root):
    reports = rp.collect_reports(root)
    missing = tables.missing_entries(reports, "demo")
    assert "demo 8x: KD student missing (kdmri_kd; notebook 04 (stages feature, kd))" in missing
    assert any(m.startswith("demo 8x: SFT-KD student missing (sft-at_kdmri_kd or sft_kd;") for m in missing)
    assert not any(m.startswith("demo 4x") for m in missing)
    text = tables.paper_tables_markdown(reports)
    assert "### demo" in text and "### other" in text and "| 4x PSNR | 4x SSIM | 8x PSNR | 8x SSIM |" in text
    assert "* demo 8x: KD student missing" in text
    none = tables.paper_tables_markdown(rp.collect_reports(root / "nothing"), where="experiments/x")
    assert none.startswith("No recon evaluation reports under experiments/x yet: run notebook 03, ")


def test_describe_reports(root):
    text = rp.describe_reports(rp.collect_reports(root))
    assert text.splitlines()[0] == "13 evaluation reports under the experiments folder:"
    assert "  demo 8x: kdmri_student, kdmri_teacher, kdmri_zf" in text
    assert rp.describe_reports(pd.DataFrame(), "x") == "no report.json under x"


def test_compare_experiments_values(root):
    a, b = [32.5, 33.2, 34.6, 33.3], [32, 33, 34, 33]
    exp = root / "demo" / "acc_4x"
    out = statistics.compare_experiments(exp / "kdmri_kd", exp / "kdmri_student")
    d = np.subtract(a, b)
    half = stats.t.ppf(0.975, 3) * d.std(ddof=1) / 2
    assert out["n"] == 4
    assert out["a_psnr_mean"] == pytest.approx(np.mean(a)) and out["a_psnr_std"] == pytest.approx(np.std(a))
    assert out["b_psnr_mean"] == pytest.approx(33.0)
    assert out["d_psnr_mean"] == pytest.approx(d.mean())
    assert out["d_psnr_ci_low"] == pytest.approx(d.mean() - half)
    assert out["d_psnr_ci_high"] == pytest.approx(d.mean() + half)
    assert out["d_ssim_mean"] == pytest.approx(d.mean() / 1000)
    # the same numbers as paired_comparison
    pc = statistics.paired_comparison(exp / "kdmri_kd", exp / "kdmri_student")
    assert (pc["mean"], pc["ci_low"]) == pytest.approx((out["d_psnr_mean"], out["d_psnr_ci_low"]))


def test_compare_experiments_refuses_different_slices(tmp_path):
    a = _experiment(tmp_path, "d", "4x", "m", "kd", [1, 2, 3, 4])
    b = _experiment(tmp_path, "d", "4x", "m", "student", [1, 2, 3], slices=SLICES[:3])
    with pytest.raises(DataError, match="different slices"):
        statistics.compare_experiments(a, b)
    with pytest.raises(DataError, match="metrics.csv: not found"):
        statistics.compare_experiments(a, tmp_path / "nowhere")


def test_report_comparisons_and_formatting(root):
    reports = rp.collect_reports(root)
    table, missing = statistics.report_comparisons(reports)
    assert list(table.index) == ["demo 4x: KD - student", "demo 4x: SFT teacher - teacher",
                                 "demo 4x: SFT-KD - KD"]
    assert table.loc["demo 4x: KD - student", "d_psnr_mean"] == pytest.approx(0.4)
    # SFT-KD - KD pairs the SFT student with the same recipe's standard-teacher student
    assert table.loc["demo 4x: SFT-KD - KD", "d_psnr_mean"] == pytest.approx(33.6 - 33.25)
    assert "demo 8x: KD - student needs KD student" in missing
    assert "demo 8x: SFT-KD - KD needs SFT-KD student and standard-teacher KD student" in missing
    assert "other 5x: KD - student needs KD student and Student" in missing
    shown = statistics.format_comparison(table, a_label=None, b_label=None)
    assert list(shown.columns) == ["Δ PSNR [95 % CI]", "Δ PSNR per volume [95 % CI]", "Δ SSIM [95 % CI]",
                                   "Δ SSIM per volume [95 % CI]", "slices", "volumes"]
    lo, hi = table.loc["demo 4x: KD - student", ["d_psnr_ci_low", "d_psnr_ci_high"]]
    assert shown.loc["demo 4x: KD - student", "Δ PSNR [95 % CI]"] == f"+0.40 [{lo:+.2f}, {hi:+.2f}]"
    both = statistics.format_comparison(table, ("psnr",), "KD", "student")
    assert list(both.columns) == ["KD PSNR", "student PSNR", "Δ PSNR [95 % CI]",
                                  "Δ PSNR per volume [95 % CI]", "slices", "volumes"]
    assert both.iloc[0]["student PSNR"] == f"33.00 ± {np.std([32, 33, 34, 33]):.2f}"
    assert rp.to_markdown(both).startswith("| comparison | KD PSNR | student PSNR |")
    # ... and with KD-MRI's student where notebook 05 has not run
    no_grid = reports[reports["method"] != "std-at_kdmri"]
    table, _ = statistics.report_comparisons(no_grid)
    assert table.loc["demo 4x: SFT-KD - KD", "d_psnr_mean"] == pytest.approx(33.6 - 33.4)
    empty, everything = statistics.report_comparisons(rp.collect_reports(root / "nothing"))
    assert empty.empty and everything == ["no recon evaluation reports yet"]
    with pytest.raises(ValueError, match="'Tutor'"):
        statistics.report_comparisons(reports, (("x", "Tutor", "Student"),))


def test_format_comparison_handles_a_single_slice(tmp_path):
    a = _experiment(tmp_path, "d", "4x", "m", "kd", [31.0], slices=SLICES[:1])
    b = _experiment(tmp_path, "d", "4x", "m", "student", [30.0], slices=SLICES[:1])
    shown = statistics.format_comparison(statistics.comparison_table({"one": (a, b)}))
    assert shown.loc["one", "Δ PSNR [95 % CI]"] == f"+1.00 [{rp.MISSING}, {rp.MISSING}]"


def test_results_table_labels(root):
    reports = rp.collect_reports(root)
    table = rp.results_table(reports, [("kdmri", "teacher"), ("sft", "teacher")], dataset="demo",
                                  acc="4x", labels=["teacher", "SFT teacher"])
    assert list(table.index) == ["teacher", "SFT teacher"]
    assert list(rp.results_table(reports, [("kdmri", "zf")], dataset="demo", acc="4x").index) == ["ZF"]
    with pytest.raises(ValueError, match="labels"):
        rp.results_table(reports, [("kdmri", "zf")], dataset="demo", acc="4x", labels=["a", "b"])


def test_efficiency_table(root):
    reports = rp.collect_reports(root)
    lat = {"size": "96x96", "teacher_ms": 10.0, "student_ms": 5.0, "speedup": 2.0}
    table = tables.efficiency_table(reports, [lat])
    assert table.loc["Teacher", "parameters"] == 141_765 and table.loc["Student", "parameters"] == 49_285
    assert table.loc["Student", "vs teacher"] == "65.2 % fewer"
    assert table.loc["Student", "source"] == "kdmri_student/report.json"
    students = reports[(reports["role"] != "student") & (reports["method"] != "kdmri")]
    assert tables.efficiency_table(students).loc["Student", "source"] == "sft_kd/report.json"
    assert table.loc["Teacher", "latency 96x96 (ms)"] == "10.0"
    assert table.loc["Student", "speed-up 96x96"] == "2.00x"
    bare = tables.efficiency_table(rp.collect_reports(root / "nothing"))
    assert bare.loc["Student", "source"] == "architecture" and bare.loc["Teacher", "parameters"] == 141_765
    assert list(bare.columns) == ["parameters", "source", "vs teacher"]


def test_latency_measured_and_read_back(tmp_path):
    from kdmri.tools.benchmark import to_markdown

    lat = latency.measure_latency((16, 12))
    assert lat["size"] == "16x12" and lat["teacher_ms"] > 0 and lat["student_ms"] > 0
    res = {"training": [], "latency": [lat, {"size": "640x368", "teacher_ms": 120.0, "student_ms": 60.0,
                                             "speedup": 2.0}],
           "parameters": {"teacher": 141_765, "student": 49_285, "reduction": 0.652},
           "machine": {"device": "cpu", "cpu": "x86", "threads": 2, "torch": "2", "python": "3.11"}}
    path = tmp_path / "results.md"
    path.write_text(to_markdown(res, "python -m kdmri benchmark"))
    rows = latency.read_benchmark_latency(path)
    assert [r["size"] for r in rows] == ["16x12", "640x368"]
    assert rows[1] == {"size": "640x368", "teacher_ms": 120.0, "student_ms": 60.0, "speedup": 2.0,
                       "source": "recorded in results.md (python -m kdmri benchmark)"}
    assert lat["source"].startswith("measured in this run (cpu, ")  # where each figure comes from
    assert rows[0]["teacher_ms"] == pytest.approx(lat["teacher_ms"], abs=0.05)
    assert latency.read_benchmark_latency(tmp_path / "none.md") == []
    cuda = tmp_path / "cuda.md"
    cuda.write_text(to_markdown({**res, "machine": {**res["machine"], "device": "cuda", "gpu": "G"}}, "x"))
    assert latency.read_benchmark_latency(cuda) == []  # measured on another device
    assert len(latency.read_benchmark_latency(cuda, device="cuda")) == 2


def test_paper_reference_tables():
    kd = paper.kdmri_paper_table()
    assert kd.loc["Cardiac 4x", "KD student"] == "32.07 / 0.9084"
    assert kd.loc["Knee 8x", "Teacher"] == "32.53 / 0.8887"
    assert kd.loc["Calgary-Campinas SR", "Student"] == "29.87 / 0.8596"
    assert len(kd) == 10 and "paper" in kd.index.name
    sft = paper.sft_paper_table()
    assert list(sft["Δ PSNR"]) == ["+0.18", "+0.31", "+0.08"]
    assert list(sft["SFT teacher PSNR"]) == ["40.23", "40.07", "32.03"]
    assert "paper" in sft.index.name


# --------------------------------------------------------------------------- experiment recipes


def test_ablation_and_sft_summaries_from_folders(tmp_path):
    cfg = Config(dataset="demo", acc="4x", experiments_root=str(tmp_path / "exp"))
    assert variant_experiment(cfg, "neither").name == "abl-neither_student"
    assert variant_experiment(cfg, "both").name == "abl-both_kd"
    exp = tmp_path / "exp"
    _experiment(exp, "demo", "4x", "abl-neither", "student", [30, 31, 32, 31])
    _experiment(exp, "demo", "4x", "abl-both", "kd", [30.5, 31.4, 32.6, 31.5])
    _experiment(exp, "demo", "4x", "abl-imitation", "kd", [30, 31, 32, 31.2])
    summary = ablation_summary(cfg, ["neither", "both", "imitation", "both"])
    assert list(summary.index) == ["neither", "both", "imitation"] and summary.index.name == "variant"
    assert summary.loc["neither", "d_psnr_mean"] == 0
    assert summary.loc["both", "d_psnr_mean"] == pytest.approx(0.5)
    assert summary.loc["imitation", "d_psnr_mean"] == pytest.approx(0.05)
    assert summary.loc["both", "description"].startswith("KD-MRI")
    assert list(statistics.format_comparison(summary, ("psnr",), "variant", None).columns) == [
        "description", "variant PSNR", "Δ PSNR [95 % CI]", "Δ PSNR per volume [95 % CI]", "slices", "volumes"]
    with pytest.raises(DataError, match="abl-attention_kd"):
        ablation_summary(cfg, ["attention"])
    assert list(ablation_summary(cfg, ["imitation"]).index) == ["neither", "imitation"]  # baseline first

    _experiment(exp, "demo", "4x", "kdmri", "teacher", [33, 34, 35, 34])
    _experiment(exp, "demo", "4x", "sft", "teacher", [33.2, 34.2, 35.2, 34.2])
    _experiment(exp, "demo", "4x", "std-at_kdmri", "kd", [32, 33, 34, 33])
    _experiment(exp, "demo", "4x", "sft-at_kdmri", "kd", [32.3, 33.3, 34.3, 33.3])
    sft = sft_summary(cfg.replace(sft_protocol="kdmri"), ["at_kdmri"])
    assert list(sft.index) == ["teacher", "at_kdmri: SFT-KD vs standard"]
    assert sft.loc["teacher", "d_psnr_mean"] == pytest.approx(0.2)
    assert sft.loc["at_kdmri: SFT-KD vs standard", "d_psnr_mean"] == pytest.approx(0.3)
    assert sft.loc["at_kdmri: SFT-KD vs standard", "b_psnr_mean"] == pytest.approx(33.0)
    _experiment(exp, "demo", "4x", "kdmri", "student", [31, 32, 33, 32])
    _experiment(exp, "demo", "4x", "sft", "student", [31.1, 32.1, 33.1, 32.1])
    _experiment(exp, "demo", "4x", "mix-at_kdmri", "kd", [32.1, 33.1, 34.1, 33.1])
    ref = sft_summary(cfg, ["at_kdmri"])  # sft_protocol: reference separates the two effects
    assert ref.loc["student init", "d_psnr_mean"] == pytest.approx(0.1)
    assert ref.loc["at_kdmri: head start", "d_psnr_mean"] == pytest.approx(0.1)
    assert ref.loc["at_kdmri: friendlier teacher", "d_psnr_mean"] == pytest.approx(0.2)


def test_role_order_names_the_roles_stages_write():
    from kdmri.models.tasks import TASKS
    from kdmri.training.stages import STAGES

    written = {spec.role for spec in STAGES.values()} | {task.baseline_role for task in TASKS.values()}
    assert set(rp.ROLE_ORDER) == written  # the SFT teacher is method "sft", role "teacher"


def test_slice_differences_pair_the_same_slices(tmp_path):
    cfg = Config(dataset="demo", acc="4x", experiments_root=str(tmp_path))
    _experiment(tmp_path, "demo", "4x", "kdmri", "kd", [31, 32, 33, 34])
    _experiment(tmp_path, "demo", "4x", "kdmri", "student", [30, 30, 30, 30])
    assert nb.slice_differences(cfg, "kd", "student").tolist() == [1, 2, 3, 4]
    _experiment(tmp_path, "demo", "4x", "kdmri", "teacher", [30, 30, 30], slices=SLICES[:3])
    with pytest.raises(DataError, match="different slices"):
        nb.slice_differences(cfg, "kd", "teacher")


def test_models_markdown(root):
    reports = rp.collect_reports(root)
    text = rp.models_markdown(reports, "demo", "8x")
    assert text.startswith("| model | PSNR | SSIM | parameters | slices |")
    assert "| teacher | 30.00 ± 0.71 |" in text
    assert rp.models_markdown(reports, "demo", "5x", "x") == (
        "No evaluation reports for demo 5x under x yet.")
    assert rp.models_markdown(pd.DataFrame(), "demo", "4x").startswith("No evaluation reports")


def test_available_experiments_and_reconstructions(root):
    import h5py
    import torch

    cfg = Config(dataset="demo", acc="4x", experiments_root=str(root))
    found, missing = tables.available_experiments(cfg)
    assert list(found) == ["ZF", "Teacher", "Student", "KD student", "SFT teacher",
                           "KD student (05, standard teacher)", "SFT-KD student"]
    assert found["SFT-KD student"].name == "sft-at_kdmri_kd" and missing == []
    found, missing = tables.available_experiments(cfg.replace(acc="8x"), needs="metrics.csv")
    assert list(found) == ["ZF", "Teacher", "Student"]
    assert missing[0] == "KD student: no metrics.csv in kdmri_kd (notebook 04 (stages feature, kd))"

    for i, (method, role) in enumerate([("kdmri", "zf"), ("kdmri", "kd"), ("sft-at_kdmri", "kd")]):
        out = cfg.experiment(role, method) / "results"
        out.mkdir()
        with h5py.File(out / "vol1.h5", "w") as fh:
            fh["reconstruction"] = np.full((6, 5, 2), float(i), dtype=np.float32)
            fh["slices"] = np.array([3, 4])
    batch = {"volume": ["vol1"], "slice": torch.tensor([4]), "target": torch.ones(1, 1, 6, 5)}
    images, missing = nb.available_reconstructions(cfg, batch)
    assert list(images) == ["ZF", "target", "KD student", "SFT-KD student"]
    assert images["SFT-KD student"].shape == (6, 5) and images["SFT-KD student"][0, 0] == 2
    assert images["target"][0, 0] == 1
    assert [m.split(":")[0] for m in missing] == ["Teacher", "Student", "SFT teacher",
                                                  "KD student (05, standard teacher)"]
    batch["slice"] = torch.tensor([7])  # a slice that was not evaluated: named, not fatal
    images, missing = nb.available_reconstructions(cfg, batch)
    assert list(images) == ["target"] and any("slice 7 was not evaluated" in m for m in missing)


def test_reference_page_lists_the_published_numbers():
    """docs/REFERENCE.md (the facts the code relies on) shows the numbers paper.py holds."""
    from kdmri.paths import project_root

    text = (project_root() / "docs" / "REFERENCE.md").read_text()
    for table in paper.KDMRI_RECON.values():
        row = " | ".join(f"{p:.2f} / {s:.4f}" for p, s in table.rows.values())
        assert row in text, table.title
    sr = ", ".join(f"{p:.2f} / {s:.4f}" for p, s in paper.KDMRI_SR_CALGARY.rows.values())
    assert all(cell in text for cell in sr.split(", "))
    for data, model, a, b in paper.SFT_PAPER:
        assert f"| {data} | {model} | {a:.2f} | {b:.2f} |" in text
    for count in ("141,765", "49,285", "333,569", "185,857"):
        assert count in text


def test_paired_comparisons_report_per_volume_differences(tmp_path):
    import math

    import pandas as pd

    from kdmri.metrics import paired_difference
    from kdmri.reporting import statistics

    a, b = tmp_path / "a", tmp_path / "b"
    rows = [("v1", 0, 30.0, 29.0), ("v1", 1, 31.0, 30.0), ("v2", 0, 28.0, 27.5), ("v2", 1, 29.0, 28.5),
            ("v3", 0, 27.0, 27.2), ("v3", 1, 27.4, 27.2)]
    for folder, col in ((a, 2), (b, 3)):
        folder.mkdir()
        pd.DataFrame({"volume": [r[0] for r in rows], "slice": [r[1] for r in rows],
                      "psnr": [r[col] for r in rows], "ssim": [0.9] * 6}).to_csv(folder / "metrics.csv")
    diff = statistics.paired_comparison(a, b)
    per_volume = paired_difference([30.5, 28.5, 27.2], [29.5, 28.0, 27.2])  # volume means
    assert diff["volumes"] == 3 and diff["n"] == 6
    assert math.isclose(diff["volume_mean"], per_volume["mean"])
    assert math.isclose(diff["volume_ci_low"], per_volume["ci_low"])
    assert diff["volume_ci_high"] - diff["volume_ci_low"] > diff["ci_high"] - diff["ci_low"]  # wider
    assert "independent" in diff["assumes"]
    table = statistics.comparison_table({"A - B": (a, b)})
    shown = statistics.format_comparison(table)
    assert shown.loc["A - B", "volumes"] == 3
    assert shown.loc["A - B", "Δ PSNR per volume [95 % CI]"].startswith("+0.50")
    assert "overstates confidence" in shown.attrs["note"]
    # one volume: no per-volume interval column
    one = tmp_path / "one_a", tmp_path / "one_b"
    for folder, col in zip(one, (2, 3)):
        folder.mkdir()
        pd.DataFrame({"volume": ["v1", "v1"], "slice": [0, 1], "psnr": [rows[0][col], rows[1][col]],
                      "ssim": [0.9, 0.9]}).to_csv(folder / "metrics.csv")
    shown = statistics.format_comparison(statistics.comparison_table({"x": one}))
    assert "Δ PSNR per volume [95 % CI]" not in shown and shown.loc["x", "volumes"] == 1
