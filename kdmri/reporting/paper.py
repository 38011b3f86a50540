"""The published numbers the notebooks compare against (docs/REFERENCE.md lists them).

KD-MRI's tables are :class:`PaperTable` objects: rows keyed by the labels of
:func:`kdmri.reporting.reports.results_table` (``"ZF"`` / ``"LR"`` for the network-free
baseline, then ``"teacher"``, ``"student"``, ``"kd"``), values ``(PSNR dB, SSIM)`` as the
paper reports them (means). :func:`with_paper` puts them next to a measured table, in
columns labelled as the paper's, so a reader never mistakes one for the other.
:func:`kdmri_paper_table` and :func:`sft_paper_table` show KD-MRI's and SFT-KD-Recon's
published results on their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from kdmri.datasets import paper_label

KDMRI = "KD-MRI (Murugesan et al., MIDL 2020)"


@dataclass(frozen=True)
class PaperTable:
    """Published ``{label: (psnr, ssim)}`` of one dataset and setting, with its source."""

    source: str
    setting: str
    rows: Mapping[str, tuple[float, float]]

    @property
    def title(self) -> str:
        return f"{self.source}: {self.setting}"


#: KD-MRI super-resolution extension, Calgary-Campinas (central 64 x 64 of 256 x 256 k-space).
#: The paper's baseline row ("ZF") is the low-resolution input, labelled "LR" here.
KDMRI_SR_CALGARY = PaperTable(
    KDMRI, "super-resolution, Calgary-Campinas, VDSR teacher / student",
    {"LR": (27.90, 0.8117), "teacher": (30.14, 0.8659), "student": (29.87, 0.8596),
     "kd": (30.08, 0.8639)},
)

_RECON = {  # (dataset, acc): ZF, teacher, student, KD student
    ("cardiac", "4x"): ((24.27, 0.6996), (32.51, 0.9157), (31.92, 0.9053), (32.07, 0.9084)),
    ("cardiac", "5x"): ((23.82, 0.6742), (31.49, 0.9002), (30.79, 0.8863), (31.01, 0.8913)),
    ("cardiac", "8x"): ((22.83, 0.6344), (28.43, 0.8335), (27.87, 0.8156), (28.11, 0.8236)),
    ("mrbrain", "4x"): ((31.38, 0.6651), (40.03, 0.9781), (39.36, 0.9753), (39.80, 0.9770)),
    ("mrbrain", "5x"): ((29.93, 0.6304), (39.03, 0.9710), (38.58, 0.9674), (38.78, 0.9688)),
    ("mrbrain", "8x"): ((29.37, 0.6065), (35.04, 0.9374), (34.39, 0.9281), (34.83, 0.9337)),
    ("knee", "4x"): ((29.66, 0.8066), (37.15, 0.9436), (36.37, 0.9367), (36.70, 0.9392)),
    ("knee", "5x"): ((29.20, 0.8007), (35.16, 0.9231), (34.37, 0.9144), (34.71, 0.9181)),
    ("knee", "8x"): ((28.71, 0.7985), (32.53, 0.8887), (31.92, 0.8804), (32.32, 0.8867)),
}

#: KD-MRI reconstruction results (DC-CNN teacher / student), keyed by (dataset, acc).
KDMRI_RECON: dict[tuple[str, str], PaperTable] = {
    key: PaperTable(KDMRI, f"reconstruction, {key[0]} {key[1]}, DC-CNN teacher / student",
                    dict(zip(("ZF", "teacher", "student", "kd"), values)))
    for key, values in _RECON.items()
}


def published_rows(paper: PaperTable) -> pd.DataFrame:
    """The published rows as a table: index ``model``, columns ``PSNR (paper)``,
    ``SSIM (paper)``."""
    rows = [{"model": label, "PSNR (paper)": f"{p:.2f}", "SSIM (paper)": f"{s:.4f}"}
            for label, (p, s) in paper.rows.items()]
    return pd.DataFrame(rows).set_index("model")


def with_paper(measured: pd.DataFrame, paper: PaperTable) -> pd.DataFrame:
    """``measured`` (a :func:`kdmri.reporting.reports.results_table`, index = labels) with the paper's
    PSNR and SSIM appended as ``PSNR (paper)`` / ``SSIM (paper)``; rows the paper does not
    report get ``"—"``. The measured columns keep their names (``PSNR``, ``SSIM``...)."""
    out = measured.copy()
    for j, column in enumerate(("PSNR (paper)", "SSIM (paper)")):
        digits = 2 if j == 0 else 4
        out[column] = [f"{paper.rows[label][j]:.{digits}f}" if label in paper.rows else "—"
                       for label in measured.index]
    return out


#: SFT-KD-Recon (Matcha et al., arXiv:2304.05057), PSNR dB: (data, model, standard teacher, SFT teacher).
SFT_PAPER: tuple[tuple[str, str, float, float], ...] = (
    ("MRBrainS 4x", "teacher", 40.05, 40.23),
    ("MRBrainS 4x", "AT-distilled student", 39.76, 40.07),
    ("Cardiac 4x", "AT-distilled student", 31.95, 32.03),
)



def kdmri_paper_table() -> pd.DataFrame:
    """KD-MRI's published table (PSNR dB / SSIM; the last row is its super-resolution
    experiment, LR input in the ZF column): the paper's numbers, not this repository's."""
    names = {"ZF": "ZF (SR: LR)", "LR": "ZF (SR: LR)", "teacher": "Teacher", "student": "Student",
             "kd": "KD student"}

    def cells(rows: Mapping[str, tuple[float, float]]) -> dict[str, str]:
        return {names[k]: f"{p:.2f} / {s:.4f}" for k, (p, s) in rows.items()}

    table = {f"{paper_label(d)} {acc}": cells(t.rows)
             for (d, acc), t in KDMRI_RECON.items()}
    table["Calgary-Campinas SR"] = cells(KDMRI_SR_CALGARY.rows)
    out = pd.DataFrame.from_dict(table, orient="index")
    out.index.name = "data, acc (paper)"
    return out


def sft_paper_table() -> pd.DataFrame:
    """SFT-KD-Recon's published PSNR (dB) with the standard and the SFT teacher: the paper's
    numbers, not this repository's."""
    table = pd.DataFrame(
        [{"data": d, "model": m, "standard teacher PSNR": f"{a:.2f}", "SFT teacher PSNR": f"{b:.2f}",
          "Δ PSNR": f"{b - a:+.2f}"} for d, m, a, b in SFT_PAPER]).set_index("data")
    table.index.name = "data (paper)"
    return table
