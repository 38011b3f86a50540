"""Learning curves: validation PSNR per epoch from the ``val_psnr`` column every training
log has (:mod:`kdmri.training.engine`; mean over validation slices, data range = each
target slice's maximum). Used by notebooks 03, 05 and 06 to show whether a model had
finished learning at the demo budget -- and so whether a comparison is between converged
models."""

from __future__ import annotations

from collections.abc import Mapping

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from kdmri.reporting.figures import grid
from kdmri.reporting.plots import _read_log


def psnr_curves(logs: Mapping[str, object], title: str = "validation PSNR per epoch") -> Figure:
    """Validation PSNR [dB] per epoch for ``{label: train_log.csv path or DataFrame}``; the
    epoch each run selected (lowest ``val_loss``) is circled. Logs written before the
    column existed raise a ValueError naming the label (retrain or delete them)."""
    if not logs:
        raise ValueError("logs: expected at least one training log")
    fig, axes = grid(1, 1, panel=5.0, height=3.2)
    ax = axes[0, 0]
    for label, log in logs.items():
        df = _read_log(log)
        if "val_psnr" not in df.columns:
            raise ValueError(f"logs[{label!r}]: no 'val_psnr' column (columns: {list(df.columns)}); "
                             "the log predates per-epoch PSNR: retrain to get a learning curve")
        line, = ax.plot(df["epoch"], df["val_psnr"], marker=".", label=label)
        best = df["val_loss"].idxmin()
        ax.plot(df.loc[best, "epoch"], df.loc[best, "val_psnr"], "o", mfc="none", ms=10,
                color=line.get_color())
    ax.set_xlabel("epoch")
    ax.set_ylabel("PSNR [dB]")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"{title} (o = selected epoch)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig
