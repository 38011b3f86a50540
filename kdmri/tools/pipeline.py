"""The KD-MRI recipe end to end: teacher, student, feature stage, KD stage, evaluation.

``python -m kdmri pipeline --params params/demo_4x.yaml`` trains what is missing (each
stage resumes or skips when already complete), evaluates the zero-filled baseline and
the four networks, and prints the table with the paired KD - student difference.
"""

from __future__ import annotations

import os
import time

from kdmri.config import Config
from kdmri.evaluation.evaluate import evaluate
from kdmri.reporting.reports import collect_reports, results_table, to_markdown
from kdmri.reporting.statistics import paired_comparison
from kdmri.training.engine import train

KDMRI_STAGES = ("teacher", "student", "feature", "kd")


def run_kdmri(cfg: Config, stages=KDMRI_STAGES, verbose: bool = True) -> dict:
    """Train and evaluate the KD-MRI stages; returns ``{"table", "kd_minus_student", "seconds"}``.
    Under ``torchrun`` every process trains and evaluates (rank 0 writes), rank 0 prints."""
    verbose = verbose and int(os.environ.get("RANK", "0")) == 0
    seconds = {}
    for stage in stages:
        t0 = time.perf_counter()
        train(cfg, stage)
        seconds[stage] = round(time.perf_counter() - t0, 1)
    for stage in ("zf", *stages):
        evaluate(cfg, stage)
    reports = collect_reports(cfg.experiments_path / cfg.dataset / f"acc_{cfg.acc}")
    rows = [(cfg.method, r) for r in ("zf", *stages)]
    table = results_table(reports, rows)
    diff = None
    if "kd" in stages and "student" in stages:
        diff = paired_comparison(cfg.experiment("kd"), cfg.experiment("student"))
    if verbose:
        print(f"\nKD-MRI on {cfg.dataset} {cfg.acc} ({cfg.epochs} epochs, seed {cfg.seed}); "
              "PSNR/SSIM per slice, mean ± std over validation slices")
        print(to_markdown(table))
        if diff is not None:
            print(f"\nKD - student PSNR: {diff['mean']:+.3f} dB, 95 % CI "
                  f"[{diff['ci_low']:+.3f}, {diff['ci_high']:+.3f}] over {diff['n']} slices")
        print(f"training seconds per stage: {seconds}")
    return {"table": table, "kd_minus_student": diff, "seconds": seconds}


def register_cli(sub) -> None:
    from kdmri.tools.args import add_config_arguments, config_from_args

    p = sub.add_parser("pipeline", help="train + evaluate teacher, student, feature and KD stages")
    add_config_arguments(p)
    p.set_defaults(func=lambda a: run_kdmri(config_from_args(a)) and 0)

