"""kdmri.reporting.statfigs: the seaborn figures on fake experiment folders (report.json +
metrics.csv written by tests/test_results.py's helper)."""

import io

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from test_results import root  # noqa: E402, F401  (the fixture: demo 4x/8x, other 5x)

from kdmri.errors import DataError  # noqa: E402
from kdmri.reporting import statfigs  # noqa: E402
from kdmri.reporting.reports import collect_reports  # noqa: E402

LAT = {"size": "96x96", "teacher_ms": 10.0, "student_ms": 5.0, "speedup": 2.0, "source": "measured in a test"}


def _renders(fig: Figure) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:4] == b"\x89PNG"


def _lines(ax) -> dict:
    """``{model: data line}`` of a seaborn line plot: its data lines carry no label, the
    legend's proxy lines (empty) do; they are matched by colour."""
    data = [ln for ln in ax.get_lines() if len(ln.get_xdata()) and ln.get_label().startswith("_child")]
    proxies = [ln for ln in ax.get_lines() if not len(ln.get_xdata()) and not ln.get_label().startswith("_")]
    return {p.get_label(): next(ln for ln in data if ln.get_color() == p.get_color()) for p in proxies}


def _points(ax) -> np.ndarray:
    """Every scatter point (strip or scatter plot) drawn on ``ax``."""
    offs = [c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)]
    return np.concatenate(offs) if offs else np.zeros((0, 2))


@pytest.mark.parametrize("kind", ["violin", "box"])
def test_slice_distributions_one_dot_per_slice(root, kind):  # noqa: F811
    exps = {"ZF": root / "demo/acc_4x/kdmri_zf", "Teacher": root / "demo/acc_4x/kdmri_teacher",
            "KD student": root / "demo/acc_4x/kdmri_kd"}
    fig = statfigs.slice_distributions(exps, kind=kind)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    psnr, ssim = fig.axes
    assert psnr.get_ylabel() == "PSNR (dB)" and ssim.get_ylabel() == "SSIM"
    assert psnr.get_xlabel() == "model"
    assert [t.get_text() for t in psnr.get_xticklabels()] == ["ZF", "Teacher", "KD student"]
    pts = _points(psnr)
    assert len(pts) == 12  # 4 slices x 3 models
    assert sorted(pts[pts[:, 0] < 0.5, 1]) == [24, 25, 25, 26]  # ZF's slices at x = 0
    assert len(_points(ssim)) == 12
    _renders(fig)


def test_slice_distributions_from_frames_and_errors(tmp_path):
    frame = pd.DataFrame({"psnr": [30.0, 31.0, 32.0]})
    fig = statfigs.slice_distributions({"a": frame, "b": frame + 1}, metrics=("psnr",))
    assert len(fig.axes) == 1 and len(_points(fig.axes[0])) == 6
    with pytest.raises(DataError, match="no column"):
        statfigs.slice_distributions({"a": frame})  # no ssim column
    with pytest.raises(DataError, match="metrics.csv: not found"):
        statfigs.slice_distributions({"a": tmp_path})
    with pytest.raises(ValueError, match="kind"):
        statfigs.slice_distributions({"a": frame}, metrics=("psnr",), kind="bar")
    with pytest.raises(ValueError, match="experiments"):
        statfigs.slice_distributions({})


def test_metric_vs_acceleration_lines_and_missing_accelerations(root):  # noqa: F811
    reports = collect_reports(root)
    fig = statfigs.metric_vs_acceleration(reports, "psnr", dataset="demo")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert ax.get_xlabel() == "acceleration" and ax.get_ylabel().startswith("PSNR (dB)")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["4x", "5x", "8x"]
    lines = _lines(ax)
    # demo: ZF, teacher, student at 4x and 8x; KD, SFT teacher, SFT-KD, std-KD at 4x only
    assert set(lines) == {"ZF", "Teacher", "Student", "KD student", "SFT teacher",
                          "KD student (05, standard teacher)", "SFT-KD student"}
    assert list(lines["Teacher"].get_xdata()) == [4.0, 8.0]
    assert list(lines["Teacher"].get_ydata()) == [34.0, 30.0]
    assert len(lines["KD student"].get_xdata()) == 1
    assert any("no reports at 5x" in t.get_text() for t in ax.texts)
    _renders(fig)


def test_metric_vs_acceleration_volume_level_and_empty_reports(root):  # noqa: F811
    reports = collect_reports(root)
    fig = statfigs.metric_vs_acceleration(reports, "ssim", dataset="other", level="volume")
    lines = _lines(fig.axes[0])
    assert list(lines) == ["ZF"] and list(lines["ZF"].get_xdata()) == [5.0]
    assert any("no reports at 4x, 8x" in t.get_text() for t in fig.axes[0].texts)
    empty = statfigs.metric_vs_acceleration(collect_reports(root / "none"))
    assert not empty.axes[0].get_lines() and "4x, 5x, 8x" in empty.axes[0].texts[0].get_text()
    with pytest.raises(ValueError, match="several datasets"):
        statfigs.metric_vs_acceleration(reports)
    with pytest.raises(ValueError, match="level"):
        statfigs.metric_vs_acceleration(reports, dataset="demo", level="patient")
    with pytest.raises(DataError, match="no volume_lpips_mean"):
        statfigs.metric_vs_acceleration(reports, "lpips", dataset="demo", level="volume")


def test_metric_vs_cost_parameters_and_latency(root):  # noqa: F811
    reports = collect_reports(root)
    fig = statfigs.metric_vs_cost(reports, [LAT], dataset="demo", acc="4x")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    params, lat = fig.axes
    assert params.get_xlabel() == "parameters" and lat.get_xlabel() == "latency (ms, batch 1, 96x96)"
    assert params.get_ylabel().startswith("PSNR (dB)")
    # six networks at 4x (teacher, student, KD, SFT teacher, std-KD, SFT-KD); ZF is a line
    p = _points(params)
    assert len(p) == 6 and set(p[:, 0]) == {141_765, 49_285}
    q = _points(lat)
    assert len(q) == 6 and set(q[:, 0]) == {10.0, 5.0}
    assert sorted(q[q[:, 0] == 10.0, 1]) == [34.0, pytest.approx(34.15)]  # teacher, SFT teacher
    # ZF (25 dB, no network) is a note, not a point or line: the axis spans the networks only
    assert not [ln for ln in params.get_lines() if "ZF" in ln.get_label()]
    for ax, pts in ((params, p), (lat, q)):
        low, high = ax.get_ylim()
        assert 25.0 < low <= pts[:, 1].min() and pts[:, 1].max() <= high
        assert high - low < 3 * (pts[:, 1].max() - pts[:, 1].min()) + 0.2
        assert "ZF (no network): 25.00, below the axis" in ax.texts[0].get_text()
    assert "latency measured in a test" in lat.texts[0].get_text()  # the latency's source named
    trend = _lines(statfigs.metric_vs_acceleration(reports, dataset="demo").axes[0])
    teacher = [c for c in params.collections if isinstance(c, PathCollection)][0]  # point 0: Teacher
    assert tuple(teacher.get_facecolor()[0][:3]) == pytest.approx(matplotlib.colors.to_rgb(
        trend["Teacher"].get_color()))  # one colour per model across figures
    _renders(fig)


def test_metric_vs_cost_without_latency_and_errors(root):  # noqa: F811
    reports = collect_reports(root)
    fig = statfigs.metric_vs_cost(reports, (), dataset="demo", acc="8x")
    assert len(_points(fig.axes[0])) == 2 and len(_points(fig.axes[1])) == 0
    assert "no latency given" in fig.axes[1].texts[0].get_text()
    with pytest.raises(ValueError, match="several accelerations"):
        statfigs.metric_vs_cost(reports, [LAT], dataset="demo")
    with pytest.raises(ValueError, match="size='1x1'"):
        statfigs.metric_vs_cost(reports, [LAT], dataset="demo", acc="4x", size="1x1")


def test_metric_vs_cost_matches_latency_by_network_name(root):  # noqa: F811
    """Latency goes to a model by the network it runs (Row.network), not by its parameter
    count: a student-sized model whose report counts other parameters still gets the student's
    latency, and a latency dict without a source says so."""
    reports = collect_reports(root)
    reports.loc[reports["role"] == "kd", "parameters"] = 50_000  # e.g. counted with extra buffers
    fig = statfigs.metric_vs_cost(reports, [{k: v for k, v in LAT.items() if k != "source"}],
                                  dataset="demo", acc="4x")
    q = _points(fig.axes[1])
    assert len(q) == 6 and sorted(q[:, 0]) == [5.0, 5.0, 5.0, 5.0, 10.0, 10.0]
    assert "latency: source not given" in fig.axes[1].texts[0].get_text()
    assert sorted(_points(fig.axes[0])[:, 0]) == [49_285, 50_000, 50_000, 50_000, 141_765, 141_765]
