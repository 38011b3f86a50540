"""Behaviour preserved: the four stages of the KD-MRI pipeline trained on the demo data give the
per-slice PSNRs recorded in tests/golden/ (quick_profile.json: the quick profile that nbval
runs; first_steps.json: its first two optimisation steps per stage). Regenerate only for a
change meant to alter numbers: `python tests/golden/make_golden.py`.

Trained numbers differ between CPUs (other kernels, other rounding), so each slice is compared
within its profile's tolerance; docs/TESTING.md gives the measured spread each rests on.
`make test` runs the tests marked ``numerics`` (this file among them) a second time under
another kernel path (ONEDNN_MAX_CPU_ISA=SSE41, ATEN_CPU_CAPABILITY=default) so that a
CPU-dependent assertion fails there, not on a newcomer's machine."""

import json
import sys
from pathlib import Path

import pytest

GOLDEN_DIR = Path(__file__).with_name("golden")
sys.path.insert(0, str(GOLDEN_DIR))

from make_golden import PROFILES, deviations, golden_file, profile_psnrs  # noqa: E402


@pytest.mark.numerics
@pytest.mark.parametrize("profile", list(PROFILES))
def test_profile_matches_the_golden_psnrs(tmp_path, profile):
    want = json.loads(golden_file(profile).read_text())
    got = profile_psnrs(tmp_path, profile)
    tolerance = PROFILES[profile][1]
    dev = deviations(want, got)
    for stage in want:
        assert dev[stage] <= tolerance, (
            f"{profile} {stage}: per-slice PSNRs {got[stage]} differ from golden {want[stage]} "
            f"by up to {dev[stage]:.4f} dB (tolerance {tolerance} dB, docs/TESTING.md)")


def test_deviations_name_what_differs():
    want = {"teacher": [20.0, 21.0], "kd": [22.0, 23.0]}
    assert deviations(want, {"teacher": [20.1, 20.95], "kd": [22.0, 23.0]}) == pytest.approx(
        {"teacher": 0.1, "kd": 0.0})
    with pytest.raises(AssertionError, match="stages"):
        deviations(want, {"teacher": [20.0, 21.0]})
    with pytest.raises(AssertionError, match="kd: 1 slices"):
        deviations(want, {"teacher": [20.0, 21.0], "kd": [22.0]})


def test_the_fine_profile_catches_a_ten_percent_change_of_a_loss_weight(tmp_path):
    """The fine tolerance has power: a changed setting that a refactoring could slip in
    (imitation weight 1.0 -> 0.9, KD stage only) moves the first steps far beyond it."""
    want = json.loads(golden_file("first_steps").read_text())
    got = profile_psnrs(tmp_path, "first_steps", {"imitation_weight": 0.9})
    dev = deviations(want, got)
    assert dev["teacher"] <= PROFILES["first_steps"][1]  # the stages before KD are untouched
    assert dev["kd"] > 5 * PROFILES["first_steps"][1], dev
