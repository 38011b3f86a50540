"""Behaviour preserved: the quick profile (params/ci.yaml on the demo data) gives the per-slice
PSNRs recorded in tests/golden/quick_profile.json for the teacher, student, feature and KD
stages (recorded from the code before the layered redesign; regenerate only for a change
meant to alter numbers: `python tests/golden/make_golden.py`)."""

import json
import sys
from pathlib import Path

GOLDEN_DIR = Path(__file__).with_name("golden")
sys.path.insert(0, str(GOLDEN_DIR))

from make_golden import GOLDEN, quick_profile_psnrs  # noqa: E402


def test_quick_profile_matches_the_golden_psnrs(tmp_path):
    want = json.loads(GOLDEN.read_text())
    got = quick_profile_psnrs(tmp_path)
    for stage in want:
        assert got[stage] == want[stage], f"{stage}: {got[stage]} != golden {want[stage]}"
