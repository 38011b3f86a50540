"""Choose the super-resolution training recipe from the training data alone:
``python -m kdmri sr-select --params demo_4x``.

The validation slices decide nothing here. The training volumes are split by volume
(:func:`split_training`: every third volume is held out), each candidate recipe trains the
VDSR teacher and student on the rest, and the held-out training volumes score them. The
recipe whose teacher scores best is the one to use (a recipe is chosen for training the
teacher well, not for the ordering it produces); the table also gives each candidate's
final training loss, the teacher - student margin and the minutes it took, and says which
one the rule picks.

With ``--kd`` the chosen recipe then trains the distillation stages (``sr-feature``,
``sr-kd``) twice on the same split: with the reference's attention-only feature stage
(``sr_feature_target_weight: 0``), whose student layers after the attention pair are still
untrained when the KD stage starts, and with an L1-to-target term in the feature stage
(``sr_feature_target_weight: 1``), which trains them. The variant whose KD student scores
best on the held-out volumes is the one to use.

A candidate is ``patch=32,epochs=40,batch=16`` (``patch=none``: whole slices, as the
KD-MRI reference trains). Each runs as notebook 06 would (:func:`kdmri.data.sr_settings.sr_run_config`:
same seed, the step schedule scaled to its epochs) in ``experiments/sr-select/`` (a folder
per candidate and stage; a finished candidate is not trained again).
"""

from __future__ import annotations

import argparse
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from kdmri.config import Config, load_config
from kdmri.data import list_volumes
from kdmri.data.sr_settings import sr_run_config
from kdmri.errors import ConfigError, DataError
from kdmri.evaluation.evaluate import train_then_evaluate
from kdmri.io import atomic_text
from kdmri.paths import experiments_dir, project_relative
from kdmri.training.calibration import RunTiming, timed

#: The demo's candidates, at about the same compute per stage (slices x epochs x patch
#: area, about 1300 whole-slice passes on the held-in volumes): whole slices as the KD-MRI
#: reference trains, and random patches of 48 and 32 pixels (4x and 9x the steps).
DEMO_CANDIDATES = ("patch=none,epochs=6,batch=4", "patch=48,epochs=24,batch=8",
                   "patch=32,epochs=54,batch=16")
HOLDOUT_EVERY = 3


@dataclass(frozen=True)
class Candidate:
    patch: int | None
    epochs: int
    batch: int

    @property
    def label(self) -> str:
        return f"{'whole' if self.patch is None else f'p{self.patch}'}-e{self.epochs}-b{self.batch}"

    @classmethod
    def parse(cls, text: str) -> Candidate:
        fields = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            if not sep or key.strip() not in ("patch", "epochs", "batch"):
                raise ConfigError(f"candidate {text!r}: expected patch=<N|none>,epochs=<N>,batch=<N>")
            fields[key.strip()] = value.strip()
        try:
            patch = None if fields.get("patch", "none").lower() in ("none", "null") else int(fields["patch"])
            return cls(patch, int(fields["epochs"]), int(fields.get("batch", 4)))
        except (KeyError, ValueError):
            raise ConfigError(f"candidate {text!r}: expected patch=<N|none>,epochs=<N>,batch=<N>") from None


def split_training(cfg: Config, root: Path, every: int = HOLDOUT_EVERY) -> Path:
    """``root/train`` and ``root/validation`` from ``cfg``'s training volumes alone: every
    ``every``-th volume (sorted by name, starting with the third) is held out. Files are
    linked, or copied where links are not possible. The split is rebuilt at every call: a
    link that is not of the split now (the training set changed, the data moved) is
    removed; a real volume file that is not is never deleted but refused (DataError).
    Returns ``root`` (a ``data_root``)."""
    files = list_volumes(cfg.train_dir)
    held = files[every - 1::every]
    if len(files) < 2 or not held:
        raise DataError(f"{cfg.train_dir}: {len(files)} training volume(s); holding some out for the "
                        f"choice needs at least {every}")
    for split, chosen in (("train", [f for f in files if f not in held]), ("validation", held)):
        link_volumes(chosen, root / split)
    return root


def link_volumes(files, folder: Path) -> Path:
    """Make ``folder`` hold exactly ``files``: ``folder/<name>`` is a link to each (a copy where
    links are not possible); a stale or dangling link (the set or the data changed since) is
    removed or made again, never the data it points to; a real volume file that is not in
    ``files`` any more is an error (it is never deleted). Returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {Path(f).name: Path(f).resolve() for f in files}
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink() and entry.resolve() != wanted.get(entry.name):
            entry.unlink()  # a stale link: only the link goes, never the data
        elif entry.name not in wanted and entry.is_file() and entry.suffix in (".h5", ".hdf5"):
            raise DataError(f"{entry}: a volume that is not in this set any more (the training "
                            f"set changed) and not a link; remove it, or choose another folder "
                            f"than {folder.parent}")
    for f in files:
        link = folder / Path(f).name
        if not link.exists():
            try:
                link.symlink_to(Path(f).resolve())
            except OSError:
                shutil.copy2(f, link)
    return folder


#: The KD-stage variants of ``--kd``: label -> ``sr_feature_target_weight``.
KD_VARIANTS = {"attention only (reference)": 0.0, "attention + L1 to target": 1.0}


def candidate_config(cfg: Config, cand: Candidate, data_root: Path, exp_root: Path) -> Config:
    """``cfg`` as notebook 06 would run ``cand``, on the split, under its own method name."""
    return sr_run_config(cfg.replace(data_root=project_relative(data_root),
                                     experiments_root=project_relative(exp_root),
                                     sr_patch=cand.patch, max_train_slices=None, max_val_slices=None),
                         cand.epochs, None, cand.batch).replace(method=f"sr-select-{cand.label}")


def run_candidate(cfg: Config, cand: Candidate, data_root: Path, exp_root: Path) -> dict:
    """Train and score one candidate's teacher and student on the split; a result row."""
    run = candidate_config(cfg, cand, data_root, exp_root)
    row = {"candidate": cand.label, "patch": cand.patch or "whole", "epochs": cand.epochs,
           "batch": cand.batch}
    t0 = time.perf_counter()
    for role in ("teacher", "student"):
        report = train_then_evaluate(run, f"sr-{role}", save_reconstructions=False)
        log = pd.read_csv(run.experiment(role) / "train_log.csv")
        row[f"{role}_train_l1"] = float(log["train_loss"].iloc[-1])
        row[f"{role}_holdout_psnr"] = float(report["metrics"]["psnr"]["mean"])
        row[f"{role}_train_minutes"] = float(log["seconds"].sum()) / 60
    row["margin"] = row["teacher_holdout_psnr"] - row["student_holdout_psnr"]
    row["wall_minutes"] = (time.perf_counter() - t0) / 60
    return row


def run_kd_variants(cfg: Config, cand: Candidate, data_root: Path, exp_root: Path) -> list[dict]:
    """Feature + KD stages of ``cand`` for each :data:`KD_VARIANTS` entry, scored on the split
    against the candidate's own teacher and student (paired per held-out slice)."""
    from kdmri.reporting.statistics import paired_comparison

    base = candidate_config(cfg, cand, data_root, exp_root)
    rows = []
    for label, weight in KD_VARIANTS.items():
        run = base.replace(method=f"{base.method}-ftw{weight:g}", teacher_method=base.method,
                           sr_feature_target_weight=weight)
        report = train_then_evaluate(run, ("sr-feature", "sr-kd"), save_reconstructions=False)
        vs_student = paired_comparison(run.experiment("kd"), base.experiment("student"))
        vs_teacher = paired_comparison(run.experiment("kd"), base.experiment("teacher"))
        rows.append({"variant": label, "weight": weight,
                     "kd_holdout_psnr": float(report["metrics"]["psnr"]["mean"]),
                     "kd_minus_student": vs_student, "kd_minus_teacher": vs_teacher})
    # the control: a feature stage with an L1 term trains on the target too, so its KD student
    # has seen the target for twice the student's epochs; a student trained that long
    long = candidate_config(cfg, Candidate(cand.patch, 2 * cand.epochs, cand.batch), data_root, exp_root)
    long = long.replace(method=f"{base.method}-x2")
    report = train_then_evaluate(long, "sr-student", save_reconstructions=False)
    for r in rows:
        kd = base.replace(method=f"{base.method}-ftw{r['weight']:g}").experiment("kd")
        r["kd_minus_long_student"] = paired_comparison(kd, long.experiment("student"))
    rows.append({"control": True, "epochs": long.epochs,
                 "psnr": float(report["metrics"]["psnr"]["mean"])})
    return rows


def choose(rows: list[dict]) -> dict:
    """The rule: the candidate whose teacher scores best on the held-out training volumes."""
    return max(rows, key=lambda r: r["teacher_holdout_psnr"])


def table_markdown(rows: list[dict], cfg: Config, data_root: Path, command: str,
                   timing: RunTiming | None = None) -> str:
    best = choose(rows)
    held = ", ".join(p.stem for p in list_volumes(data_root / "validation"))
    machine = [f"Machine: {timing.start.line()} at the start, {timing.end.ms:.1f} ms at the end "
               "(the minutes below scale with it)", ""] if timing is not None else []
    lines = [f"# Super-resolution recipe for {cfg.dataset} (sr_keep {cfg.sr_keep}), chosen on training data",
             "", f"Command: `{command}`", "", *machine,
             f"Training volumes held out for the choice: {held} (every {HOLDOUT_EVERY}rd volume; the "
             "validation slices were not used). Teacher and student trained on the remaining training "
             f"volumes with seed {cfg.seed}, {cfg.precision}"
             + (" + channels-last" if cfg.channels_last else "") + "; PSNR in dB on the held-out volumes.",
             "Training L1 is the last epoch's mean (patches and whole slices differ in background, so "
             "compare it within a patch size). Minutes: wall time of the epochs, validation on the "
             "held-out volumes included (only comparable between candidates trained on an otherwise "
             "idle machine).", "",
             "| candidate | patch | epochs | batch | teacher train L1 | student train L1 | teacher PSNR "
             "| student PSNR | teacher - student | training min (T + S) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mark = " **(chosen)**" if r is best else ""
        lines.append(f"| {r['candidate']}{mark} | {r['patch']} | {r['epochs']} | {r['batch']} "
                     f"| {r['teacher_train_l1']:.5f} | {r['student_train_l1']:.5f} "
                     f"| {r['teacher_holdout_psnr']:.2f} | {r['student_holdout_psnr']:.2f} "
                     f"| {r['margin']:+.2f} "
                     f"| {r['teacher_train_minutes'] + r['student_train_minutes']:.1f} |")
    lines += ["", "Rule: the highest teacher PSNR on the held-out training volumes -> "
              f"**{best['candidate']}** "
              f"(patch {best['patch']}, {best['epochs']} epochs, batch {best['batch']})."]
    return "\n".join(lines) + "\n"


def _ci(d: dict) -> str:
    return f"{d['mean']:+.2f} [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]"


def kd_markdown(rows: list[dict], cand_label: str) -> str:
    control = next(r for r in rows if r.get("control"))
    rows = [r for r in rows if not r.get("control")]
    best = max(rows, key=lambda r: r["kd_holdout_psnr"])
    lines = ["", f"## Distillation stages of {cand_label}, on the same split", "",
             "KD student minus the candidate's student and teacher, and minus a control student "
             f"trained for {control['epochs']} epochs (as many target epochs as the feature and KD "
             f"stages together; {control['psnr']:.2f} dB), paired per held-out slice "
             "(mean [95 % CI], slices as independent).", "",
             "| feature stage | sr_feature_target_weight | KD PSNR | KD - student | KD - teacher "
             f"| KD - student ({control['epochs']} epochs) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        mark = " **(chosen)**" if r is best else ""
        lines.append(f"| {r['variant']}{mark} | {r['weight']:g} | {r['kd_holdout_psnr']:.2f} "
                     f"| {_ci(r['kd_minus_student'])} | {_ci(r['kd_minus_teacher'])} "
                     f"| {_ci(r['kd_minus_long_student'])} |")
    lines += ["", f"Rule: the highest KD PSNR on the held-out training volumes -> **{best['variant']}**."]
    return "\n".join(lines) + "\n"


def sr_select(params: str, candidates: list[str] | None = None, out: str | None = None,
              command: str = "", kd: bool = False) -> tuple[list[dict], str]:
    cfg = load_config(params)
    cands = [Candidate.parse(c) for c in (candidates or DEMO_CANDIDATES)]
    root = experiments_dir() / "sr-select" / cfg.dataset
    data_root = split_training(cfg, root / "data")
    rows, timing = timed(lambda: [run_candidate(cfg, c, data_root, root / "experiments") for c in cands])
    text = table_markdown(rows, cfg, data_root, command, timing)
    if kd:
        best = choose(rows)
        cand = cands[[r["candidate"] for r in rows].index(best["candidate"])]
        text += kd_markdown(run_kd_variants(cfg, cand, data_root, root / "experiments"), best["candidate"])
    if out:
        atomic_text(Path(out), text)
    return rows, text


def register_cli(sub) -> None:
    p = sub.add_parser("sr-select", help="choose the SR training recipe on held-out training volumes",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", default="demo_4x", help="params file (name in params/ or path)")
    p.add_argument("--candidate", action="append", default=None,
                   help="patch=<N|none>,epochs=<N>,batch=<N> (repeat); default: DEMO_CANDIDATES")
    p.add_argument("--kd", action="store_true",
                   help="then train the distillation stages of the chosen recipe in both KD_VARIANTS")
    p.add_argument("--out", default=None, help="markdown table to write (e.g. benchmarks/sr_setting.md)")

    def run(args) -> int:
        import sys

        command = "python -m kdmri " + " ".join(sys.argv[1:])
        _, text = sr_select(args.params, args.candidate, args.out, command, kd=args.kd)
        print(text)
        return 0

    p.set_defaults(func=run)


__all__ = ["Candidate", "DEMO_CANDIDATES", "choose", "register_cli", "split_training", "sr_select"]
