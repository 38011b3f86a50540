"""kdmri.reporting.schematics: each schematic draws, names the boxes the architecture and the
recipes have (counted from the text artists), and is saved as PNG."""

import io
import re
from collections import Counter

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

from kdmri.reporting import schematics  # noqa: E402


def _texts(fig: Figure) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def _count(fig: Figure, pattern: str) -> int:
    return sum(bool(re.fullmatch(pattern, t, re.S)) for t in _texts(fig))


def _draws(fig: Figure) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:4] == b"\x89PNG"


def _boxes(fig: Figure) -> int:
    return sum(isinstance(p, FancyBboxPatch) for ax in fig.axes for p in ax.patches)


def test_dccnn_figure_has_the_cascades_and_both_cascade_layouts():
    fig = schematics.dccnn_figure()
    assert isinstance(fig, Figure)
    assert sorted(t for t in _texts(fig) if t.startswith("CNN ")) == [f"CNN {i}" for i in range(1, 6)]
    assert _count(fig, "DC") == 5 + 2  # one per cascade, one per detailed cascade
    convs = [t for t in _texts(fig) if t.startswith("conv")]
    assert convs == ["conv1\n1 -> 32", "conv2\n32 -> 32", "conv3\n32 -> 32", "conv4\n32 -> 32",
                     "conv5\n32 -> 1", "conv1\n1 -> 32", "conv2\n32 -> 32", "conv3\n32 -> 1"]
    text = "\n".join(_texts(fig))
    assert "141,765 parameters" in text and "49,285 parameters" in text
    assert r"m \odot k_{us} + (1 - m) \odot \mathcal{F}(x_{cnn})" in text  # the DC rule
    assert _boxes(fig) == 10 + 5 + 1 + 3 + 1
    _draws(fig)


def test_kdmri_stages_figure_pairs_teacher_conv3_with_student_conv2():
    fig = schematics.kdmri_stages_figure()
    assert [t for t in _texts(fig) if re.fullmatch(r"T\d\n.*", t)] == [f"T{i}\nconv3" for i in range(1, 6)]
    assert [t for t in _texts(fig) if re.fullmatch(r"S\d\n.*", t)] == [f"S{i}\nconv2" for i in range(1, 6)]
    assert _count(fig, "AT") == 5  # one attention-transfer link per cascade
    labels = _texts(fig)
    assert "student S" in labels and "teacher T (frozen)" in labels
    assert r"L1$(S(x), y)$" in labels and r"imitation L1$(S(x), T(x))$" in labels
    assert _boxes(fig) == 10 + 1 + 2 + 2
    _draws(fig)


def test_sft_figure_has_a_branch_after_each_teacher_cascade_but_the_last():
    fig = schematics.sft_figure()
    counts = Counter(t for t in _texts(fig) if re.fullmatch(r"[TS]\d", t))
    assert counts == {"T1": 1, "T2": 1, "T3": 1, "T4": 1, "T5": 1,
                      "S2": 1, "S3": 2, "S4": 3, "S5": 4}  # branch i runs S(i+1)..S5
    branches = [t for t in _texts(fig) if t.startswith("B")]
    assert [b.split()[0] for b in branches] == ["B1", "B2", "B3", "B4"]
    loss = next(t for t in _texts(fig) if t.startswith(r"$\mathcal{L}_{SFT}$"))
    assert "L1$(T, y)$" in loss and "L1$(B_i, y)$" in loss and "imitation$(B_i, T)$" in loss
    assert _boxes(fig) == 5 + 10 + 1
    _draws(fig)


def test_schematics_follow_the_cascade_count():
    fig = schematics.sft_figure(n_cascades=3)
    assert Counter(t for t in _texts(fig) if re.fullmatch(r"S\d", t)) == {"S2": 1, "S3": 2}
    assert _count(schematics.kdmri_stages_figure(n_cascades=3), "AT") == 3


def test_write_schematics_writes_every_png(tmp_path):
    written = schematics.write_schematics(tmp_path / "figures", dpi=40)
    assert [p.name for p in written] == ["dccnn.png", "kdmri_stages.png", "sft_teacher.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)
    assert not list((tmp_path / "figures").glob("*.tmp"))


def test_committed_readme_figures_are_the_schematics():
    """docs/figures/ holds one PNG per schematic (``python -m kdmri figures`` writes them)."""
    from kdmri.paths import project_root

    folder = project_root() / "docs" / "figures"
    assert sorted(p.stem for p in folder.glob("*.png")) == sorted(schematics.SCHEMATICS)
