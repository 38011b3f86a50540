"""Schematics of the networks and of the distillation recipes, drawn by code from the
architecture definitions (so they cannot drift from the models).

=================================  ======================================================
function                           figure
=================================  ======================================================
:func:`dccnn_figure`               the DC-CNN: 5 cascades of CNN + data consistency (DC),
                                   one teacher and one student cascade layer by layer
:func:`kdmri_stages_figure`        KD-MRI's two distillation stages: attention transfer
                                   between the paired layers of every cascade, then KD
                                   with imitation
:func:`sft_figure`                 SFT-KD-Recon's student-friendly teacher with its hybrid
                                   student branches and its loss
=================================  ======================================================

Each returns a ``matplotlib.figure.Figure`` (built with ``Figure()``, never ``pyplot``);
every box carries its label as a text artist. :func:`write_schematics` saves them as PNG
(``python -m kdmri figures``; the README's copies live in ``docs/figures/``).
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from kdmri.models.blocks import count_parameters
from kdmri.models.dccnn import DCCNN, STUDENT, TEACHER, DCCNNConfig, build_dccnn

#: Face colours: teacher, student, data consistency, loss.
COLOURS = {"teacher": "#c6dbef", "student": "#fdd0a2", "dc": "#e5e5e5", "loss": "#c7e9c0",
           "pair": "#d62728"}

DC_FORMULA = (r"DC: $k = m \odot k_{us} + (1 - m) \odot \mathcal{F}(x_{cnn})$,"
              r"  $x = \mathcal{F}^{-1}(k)$")


def _canvas(width: float, height: float, xlim: tuple[float, float], ylim: tuple[float, float]):
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_axis_off()
    return fig, ax


def _box(ax, x: float, y: float, w: float, h: float, text: str, kind: str, fontsize: float = 8,
         **style) -> tuple[float, float, float, float]:
    """A rounded box with lower-left corner ``(x, y)`` and its centred label; returns it."""
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                facecolor=COLOURS[kind], edgecolor=style.pop("edgecolor", "0.3"),
                                linewidth=style.pop("linewidth", 0.8), **style))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize)
    return x, y, w, h


def _arrow(ax, start: tuple[float, float], end: tuple[float, float], colour: str = "0.25",
           style: str = "-|>", **kw) -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=8, color=colour,
                                 linewidth=0.9, shrinkA=0, shrinkB=0, **kw))


def conv_widths(config: DCCNNConfig) -> list[int]:
    """Channel widths through one cascade's CNN: ``in -> ch -> ... -> ch -> in``."""
    return [config.in_channels] + [config.channels] * (config.n_convs - 1) + [config.in_channels]


def _cascade_detail(ax, y: float, role: str, config: DCCNNConfig) -> None:
    """One cascade of ``role`` layer by layer: conv boxes ``convj  a->b`` then DC."""
    widths = conv_widths(config)
    params = count_parameters(build_dccnn(role))
    ax.text(0.1, y + 0.95, f"one {role} cascade: {config.n_convs} conv 3x3 "
            f"({' -> '.join(map(str, widths))}), ReLU between; {config.n_cascades} cascades, "
            f"{params:,} parameters", fontsize=8, va="bottom")
    x = 0.85
    ax.text(0.05, y + 0.35, r"$x_{i-1}$", fontsize=9, va="center")
    for j in range(config.n_convs):
        _arrow(ax, (x - 0.3, y + 0.35), (x, y + 0.35))
        _box(ax, x, y, 1.35, 0.7, f"conv{j + 1}\n{widths[j]} -> {widths[j + 1]}", role)
        x += 1.65
    _arrow(ax, (x - 0.3, y + 0.35), (x, y + 0.35))
    _box(ax, x, y, 0.8, 0.7, "DC", "dc")
    _arrow(ax, (x + 0.8, y + 0.35), (x + 1.1, y + 0.35))
    ax.text(x + 1.15, y + 0.35, r"$x_i$", fontsize=9, va="center")


def dccnn_figure(n_cascades: int = TEACHER.n_cascades) -> Figure:
    """The DC-CNN: ``n_cascades`` x (CNN, DC) from the zero-filled image to the
    reconstruction, with the DC rule; below, one teacher cascade and one student cascade
    layer by layer (widths from :data:`kdmri.models.dccnn.TEACHER` / ``STUDENT``).

    Boxes: ``CNN i`` and ``DC`` per cascade; ``conv1..conv5`` (teacher), ``conv1..conv3``
    (student) and their ``DC``.
    """
    fig, ax = _canvas(10.5, 4.6, (0, 12.2), (0, 6.3))
    ax.text(0.1, 5.85, f"DC-CNN: {n_cascades} cascades, each a CNN followed by data "
            "consistency (DC) with the measured k-space", fontsize=9, weight="bold")
    y, x = 4.75, 0.75
    ax.text(0.1, y + 0.3, r"$x_{zf}$", fontsize=10, va="center")
    for i in range(1, n_cascades + 1):
        _arrow(ax, (x - 0.25, y + 0.3), (x, y + 0.3))
        _box(ax, x, y, 1.0, 0.6, f"CNN {i}", "teacher")
        _arrow(ax, (x + 1.0, y + 0.3), (x + 1.15, y + 0.3))
        _box(ax, x + 1.15, y, 0.6, 0.6, "DC", "dc")
        x += 2.1
    _arrow(ax, (x - 0.35, y + 0.3), (x - 0.1, y + 0.3))
    ax.text(x - 0.05, y + 0.3, r"$\hat{x}$", fontsize=10, va="center")
    ax.text(0.1, 4.2, DC_FORMULA + r"   ($m$: mask, $k_{us}$: measured k-space)", fontsize=8.5)
    _cascade_detail(ax, 2.45, "teacher", TEACHER)
    _cascade_detail(ax, 0.45, "student", STUDENT)
    return fig


def kdmri_stages_figure(n_cascades: int = TEACHER.n_cascades) -> Figure:
    """KD-MRI's two distillation stages. First attention transfer (stage ``feature``): in
    every cascade the teacher's and the student's paired layers
    (:meth:`kdmri.models.dccnn.DCCNN.default_feature_pairs`: teacher ``conv3`` <-> student
    ``conv2``) joined by an ``AT`` link. Then KD (stage ``kd``): the student (initialised by
    the feature stage) trained on ``L1(student, target)`` plus the imitation
    ``L1(student, teacher output)`` of the frozen teacher.

    Boxes: ``T1..T5`` and ``S1..S5`` with their paired layer, one ``AT`` label per pair; the KD
    stage's student, frozen teacher and the two loss terms.
    """
    pairs = DCCNN.default_feature_pairs(n_cascades)
    fig, ax = _canvas(10.5, 5.4, (0, 12.2), (0, 7.4))
    ax.text(0.1, 6.95, "First, attention transfer (stage 'feature'): the student's attention maps "
            "learn the teacher's, layer pair by layer pair", fontsize=9, weight="bold")
    ty, sy, x0, step = 5.55, 3.85, 1.3, 2.1
    ax.text(0.1, ty + 0.4, "teacher\n(frozen)", fontsize=8, va="center")
    ax.text(0.1, sy + 0.4, "student", fontsize=8, va="center")
    for i, (student_layer, teacher_layer) in enumerate(pairs):
        x = x0 + i * step
        _box(ax, x, ty, 1.5, 0.8, f"T{i + 1}\n{teacher_layer.split('.')[-1]}", "teacher")
        _box(ax, x, sy, 1.5, 0.8, f"S{i + 1}\n{student_layer.split('.')[-1]}", "student")
        _arrow(ax, (x + 0.75, ty), (x + 0.75, sy + 0.8), COLOURS["pair"], style="<|-|>",
               linestyle="--")
        ax.text(x + 0.82, (ty + sy + 0.8) / 2, "AT", fontsize=8, color=COLOURS["pair"], va="center")
        if i:
            _arrow(ax, (x - step + 1.5, ty + 0.4), (x, ty + 0.4))
            _arrow(ax, (x - step + 1.5, sy + 0.4), (x, sy + 0.4))
    ax.text(x0, 6.55, "each box a cascade (CNN + DC), named with its paired layer", fontsize=7.5,
            color="0.3")
    ax.text(x0, 3.25, r"$\mathcal{L}_{AT}$ = mean over the " f"{len(pairs)} pairs of the distance "
            r"between the L2-normalised attention maps $Q(F) = \mathrm{vec}(\sum_c F_c^2)\,/\,"
            r"\|\mathrm{vec}(\sum_c F_c^2)\|_2$", fontsize=8)
    ax.text(0.1, 2.55, "Then KD (stage 'kd'): the student, initialised by the feature stage, learns "
            "the target and imitates the frozen teacher's output", fontsize=9, weight="bold")
    _box(ax, 0.3, 1.45, 1.4, 0.6, r"$x_{zf}$", "dc")
    _box(ax, 2.5, 1.75, 2.2, 0.6, "student S", "student")
    _box(ax, 2.5, 0.55, 2.2, 0.6, "teacher T (frozen)", "teacher")
    _arrow(ax, (1.7, 1.75), (2.5, 2.05))
    _arrow(ax, (1.7, 1.75), (2.5, 0.85))
    _box(ax, 5.9, 1.75, 2.3, 0.6, r"L1$(S(x), y)$", "loss")
    _box(ax, 5.9, 0.55, 2.3, 0.6, r"imitation L1$(S(x), T(x))$", "loss")
    _arrow(ax, (4.7, 2.05), (5.9, 2.05))
    _arrow(ax, (4.7, 2.05), (5.9, 0.95))
    _arrow(ax, (4.7, 0.85), (5.9, 0.75))
    ax.text(8.5, 1.3, r"$\mathcal{L} = $L1$(S, y) + \lambda_{imit}\,$L1$(S, T)$" "\n"
            r"($\lambda_{imit}$: imitation_weight; $y$: target)", fontsize=8.5, va="center")
    return fig


def sft_figure(n_cascades: int = TEACHER.n_cascades) -> Figure:
    """SFT-KD-Recon's student-friendly teacher: teacher cascades ``T1..T5``; after teacher
    cascade ``i`` (``i = 1..n-1``) a hybrid branch continues through the student cascades
    ``S(i+1)..S(n)`` to its output ``B_i``. Loss: ``L1(T, y) + mean_i L1(B_i, y) + mean_i
    imitation(B_i, T)`` (:func:`kdmri.distill.sft.sft_loss`, with its weights).

    Boxes: ``T1..Tn``; per branch ``i`` the student cascades ``S(i+1)..Sn`` (``n(n-1)/2``
    boxes) and its output ``B_i``; the loss.
    """
    n = n_cascades
    fig, ax = _canvas(10.5, 5.6, (0, 12.6), (0, 7.7))
    ax.text(0.1, 7.3, "SFT-KD-Recon · the student-friendly teacher, trained with its hybrid "
            "student branches", fontsize=9, weight="bold")
    top, x0, step, rowgap = 6.15, 1.0, 1.75, 1.05
    ax.text(0.1, top + 0.3, r"$x_{zf}$", fontsize=10, va="center")
    col = [x0 + i * step for i in range(n)]
    for i in range(n):
        _box(ax, col[i], top, 1.25, 0.6, f"T{i + 1}", "teacher")
        _arrow(ax, ((col[i - 1] + 1.25) if i else 0.55, top + 0.3), (col[i], top + 0.3))
    _arrow(ax, (col[-1] + 1.25, top + 0.3), (col[-1] + 1.7, top + 0.3))
    ax.text(col[-1] + 1.75, top + 0.3, r"$T$ (teacher output)", fontsize=8.5, va="center")
    for b in range(1, n):
        y = top - b * rowgap
        start = (col[b - 1] + 1.25 + col[b]) / 2  # down the gap after T<b>, clear of every box
        _arrow(ax, (start, top + 0.3), (start, y + 0.3), style="-")
        _arrow(ax, (start, y + 0.3), (col[b], y + 0.3))
        for k in range(b, n):
            _box(ax, col[k], y, 1.25, 0.6, f"S{k + 1}", "student")
            if k > b:
                _arrow(ax, (col[k - 1] + 1.25, y + 0.3), (col[k], y + 0.3))
        _arrow(ax, (col[-1] + 1.25, y + 0.3), (col[-1] + 1.7, y + 0.3))
        ax.text(col[-1] + 1.75, y + 0.3, f"B{b}  (branch {b}: after T{b})", fontsize=8.5, va="center")
    _box(ax, 0.4, 0.15, 11.6, 0.75, r"$\mathcal{L}_{SFT}$ = L1$(T, y)$ + $w_b\,$mean$_i\,$L1$(B_i, y)$"
         r" + $w_{im}\,$mean$_i\,$imitation$(B_i, T)$     ($w_b$: sft_branch_weight, $w_{im}$: "
         "sft_imitation_weight)", "loss", fontsize=8.5)
    ax.text(0.4, 0.98, "each cascade ends in DC; at inference only T1..T" f"{n} run (the teacher's "
            f"{count_parameters(build_dccnn('teacher')):,} parameters); the trained S2..S{n} start "
            "the SFT student", fontsize=7.5, color="0.3")
    return fig


#: The schematics :func:`write_schematics` saves: file stem -> function.
SCHEMATICS = {"dccnn": dccnn_figure, "kdmri_stages": kdmri_stages_figure, "sft_teacher": sft_figure}


def write_schematics(folder: Path | str, dpi: int = 150) -> list[Path]:
    """Save every schematic of :data:`SCHEMATICS` as ``<folder>/<name>.png``; returns the paths."""
    from kdmri.io import atomic_path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in SCHEMATICS.items():
        with atomic_path(folder / f"{name}.png") as tmp:
            draw().savefig(tmp, format="png", dpi=dpi)
        written.append(folder / f"{name}.png")
    return written
