"""The commands of the lower layers (train, evaluate, masks, check-env): their parsers live
here so that no module below the tools imports the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from kdmri.evaluation import evaluate
from kdmri.paths import acc_tag
from kdmri.tools.args import add_config_arguments, config_from_args
from kdmri.training import train
from kdmri.training.stages import STAGES


def _cmd_check_env(args) -> int:
    import numpy
    import torch

    import kdmri

    print(f"kdmri {kdmri.__version__} | torch {torch.__version__} | numpy {numpy.__version__} "
          f"| cuda available: {torch.cuda.is_available()}")
    return 0


def register_check_env(sub) -> None:
    p = sub.add_parser("check-env", help="print versions of kdmri, torch, numpy")
    p.set_defaults(func=_cmd_check_env)


def _cmd_masks(args) -> int:
    import numpy as np

    from kdmri.physics.masks import DATASET_SHAPES, make_dataset_masks, sampled_fraction

    names = list(DATASET_SHAPES) if args.all or not args.dataset else args.dataset
    for path in make_dataset_masks(names, tuple(int(acc_tag(a)[:-1]) for a in args.acc)):
        print(f"{path}  sampled fraction {sampled_fraction(np.load(path)):.4f}")
    return 0


def register_masks(sub) -> None:
    p = sub.add_parser("masks", help="(re)generate the committed masks in us_masks/")
    p.add_argument("--dataset", nargs="*", help="datasets (default: all known)")
    p.add_argument("--acc", nargs="*", default=["4x", "5x", "8x"],
                   help="accelerations: 4, 4x, ... (default: 4x 5x 8x)")
    p.add_argument("--all", action="store_true", help="every known dataset")
    p.set_defaults(func=_cmd_masks)


def register_seed_study(sub) -> None:
    p = sub.add_parser("seed-study", help="the findings of a seed study (batch --seeds) over seeds")
    p.add_argument("--out", default=None, help="markdown file to write (e.g. benchmarks/seed_study.md)")
    add_config_arguments(p)

    def run(args: argparse.Namespace) -> int:
        import sys

        from kdmri.io import atomic_text
        from kdmri.reporting.seeds import seed_study_report

        text = seed_study_report(config_from_args(args), "python -m kdmri " + " ".join(sys.argv[1:]))
        if args.out:
            atomic_text(args.out, text)
        print(text)
        return 0

    p.set_defaults(func=run)


def register_train(sub) -> None:
    p = sub.add_parser("train", help="train one stage (" + ", ".join(STAGES) + ")")
    p.add_argument("--stage", required=True, help=" | ".join(STAGES))
    add_config_arguments(p)

    def run(args: argparse.Namespace) -> int:
        out = train(config_from_args(args), args.stage)
        print(f"trained {args.stage}: {out}")
        return 0

    p.set_defaults(func=run)


def register_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate a trained stage (or the zf / sr-lr baseline) "
                       "on the validation set")
    p.add_argument("--stage", required=True, help="teacher | student | feature | kd | zf | "
                   "sr-teacher | ... | sr-lr | sft-teacher | sft-feature | sft-kd")
    p.add_argument("--checkpoint", help="a checkpoint to evaluate instead of the stage's best "
                   "(written beside it, or into --out; never into a trained stage's folder)")
    p.add_argument("--split", default="validation",
                   help="validation (default) or a named test set, the folder <data>/<split> (e.g. "
                        "shift: the demo's domain-shift set); written to <experiment>/test_<split>/")
    p.add_argument("--out", default=None, help="folder for the report, metrics and reconstructions "
                   "(default: the stage's folder; with --checkpoint, the checkpoint's folder)")
    add_config_arguments(p)

    def run(args):
        rep = evaluate(config_from_args(args), args.stage, args.checkpoint, split=args.split,
                       out=args.out)
        m = rep["metrics"]
        print(f"{args.stage}: PSNR {m['psnr']['mean']:.2f} +/- {m['psnr']['std']:.2f} dB, "
              f"SSIM {m['ssim']['mean']:.4f} +/- {m['ssim']['std']:.4f} "
              f"({rep['n_slices']} slices)")
        return 0

    p.set_defaults(func=run)


def register_figures(sub) -> None:
    p = sub.add_parser("figures", help="draw the schematics (DC-CNN, KD-MRI stages, SFT teacher) as PNG")
    p.add_argument("--out", type=Path, default=None, help="folder for dccnn.png, kdmri_stages.png "
                   "and sft_teacher.png (default: the project's docs/figures)")

    def run(args: argparse.Namespace) -> int:
        from kdmri.paths import project_root
        from kdmri.reporting.schematics import write_schematics

        for path in write_schematics(args.out or project_root() / "docs" / "figures"):
            print(path)
        return 0

    p.set_defaults(func=run)
