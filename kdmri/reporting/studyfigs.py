"""The study's figures (:mod:`kdmri.reporting.study`): PSNR vs acceleration, PSNR per model
with one point per seed, and the learning curves of the pilot with each kind's chosen epoch."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from kdmri.io import atomic_path

MAIN = ("kdmri_teacher", "kdmri_student", "kdmri_kd", "ctl_student")


def _save(fig, path: Path) -> str:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path.name


def save_study_figures(values: pd.DataFrame, table: pd.DataFrame, root: Path, folder: Path,
                       test: str) -> list[str]:
    """Write the figures of test set ``test``; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for model in MAIN:
        rows = values[values["model"] == model]
        if len(rows):
            m = rows.groupby("acc")["psnr"].agg(["mean", "std"])
            m = m.sort_index(key=lambda a: a.str[:-1].astype(int))
            ax.errorbar(m.index, m["mean"], yerr=m["std"].fillna(0), marker="o", capsize=3, label=model)
    ax.set(xlabel="acceleration", ylabel="PSNR (dB), mean ± std over seeds", title=f"test set: {test}")
    ax.legend(fontsize=7)
    names.append(_save(fig, folder / f"psnr_vs_acc_{test}.png"))
    for acc, rows in values.groupby("acc"):
        fig, ax = plt.subplots(figsize=(7, 3.5))
        order = sorted(rows["model"].unique())
        for i, model in enumerate(order):
            pts = rows[rows["model"] == model]["psnr"]
            ax.scatter([i] * len(pts), pts, s=14)
            ax.hlines(pts.mean(), i - 0.3, i + 0.3, color="k")
        ax.set_xticks(range(len(order)), order, rotation=60, ha="right", fontsize=7)
        ax.set(ylabel="PSNR (dB), one point per seed", title=f"{acc}, test set: {test}")
        names.append(_save(fig, folder / f"psnr_per_model_{acc}_{test}.png"))
    if test == "slab":
        curves = learning_curves(root, folder)
        names += [curves] if curves else []
    return names


def learning_curves(root: Path, folder: Path) -> str | None:
    """The pilot's held-out score per epoch of each stage kind, the chosen epoch marked."""
    import matplotlib.pyplot as plt

    records = sorted(Path(root, "pilot").glob("*.json"))
    if not records:
        return None
    fig, axes = plt.subplots(1, len(records), figsize=(3 * len(records), 2.6), squeeze=False)
    for ax, path in zip(axes[0], records):
        r = json.loads(path.read_text())
        ax.plot(range(1, len(r["scores"]) + 1), r["scores"], marker=".")
        ax.axvline(r["chosen"], color="r", ls="--")
        ax.set(title=path.stem, xlabel="epoch", ylabel=r["score"])
    return _save(fig, folder / "pilot_learning_curves.png")
