"""``python -m kdmri study-publish``: the command line of :mod:`kdmri.reporting.published`."""

from __future__ import annotations

from pathlib import Path

from kdmri.pretrained import MANIFEST
from kdmri.reporting.published import PUBLISHED, publish


def register_cli(sub) -> None:
    p = sub.add_parser("study-publish", help="publish one seed of the study: its checkpoints into "
                       "kdmri/pretrained/study/ and the package manifest, with the study's summary")
    p.add_argument("--root", default=None,
                   help="study folder (default $KDMRI_STUDY_ROOT, else experiments/study)")
    p.add_argument("--seed", type=int, default=42,
                   help="the seed whose checkpoints are published (default 42)")
    p.add_argument("--out", type=Path, default=PUBLISHED,
                   help="checkpoint folder (default kdmri/pretrained/study)")
    p.add_argument("--manifest", type=Path, default=MANIFEST,
                   help="manifest to write (default the package's)")
    p.add_argument("--commit", default=None, help="the commit the study's code was at (default: git HEAD)")
    p.add_argument("--force", action="store_true", help="replace checkpoints published before")
    p.add_argument("--min-seeds", type=int, default=3, help="seeds a comparison of the summary needs")

    def run(args) -> int:
        from kdmri.training.study import study_root

        names = publish(study_root(args.root), args.seed, args.out, args.manifest, args.commit, args.force,
                        args.min_seeds)
        print(f"published {len(names)} checkpoints into {args.out} and {args.manifest}")
        return 0

    p.set_defaults(func=run)
