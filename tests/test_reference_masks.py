"""The KD-MRI repository's own masks (``masks --reference``): fetched over a local http server
(127.0.0.1) or a file:// URL, verified by sha256 and by the table of what a reference mask
is, stored only when both pass; ``mask_source`` picks them for a run. The real files cannot
be downloaded here: stand-ins satisfying the real table are served with a test manifest."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from kdmri.config import Config
from kdmri.errors import ConfigError, DataError
from kdmri.fetch import sha256_of
from kdmri.physics import reference_masks as ref
from kdmri.physics.masks import cartesian_mask, centre_band, line_profile, phase_encode_axis
from kdmri.tools.sitecheck import serve

ALL = [(d, a) for d in ref.REFERENCE_MASKS for a in (4, 5, 8)]


def stand_in(dataset: str, acc: int) -> np.ndarray:
    """A mask with the reference's shape, dtype, axis, line count and centre band."""
    spec = ref.reference_spec(dataset, acc)
    n = spec.shape[spec.axis]
    m = cartesian_mask(spec.shape, acc, seed=1, axis=spec.axis, centre_lines=spec.centre or 21,
                       fraction=spec.lines / n, exact_centre=True)
    return m.astype(spec.dtype)


@pytest.fixture
def mirror(tmp_path):
    """Stand-in reference files under ``served/`` and a test manifest of their hashes."""
    folder = tmp_path / "served"
    hashes = {}
    for dataset, acc in [("cardiac", 4), ("cardiac", 8), ("knee", 5)]:
        path = folder / ref.relative_name(dataset, acc)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, stand_in(dataset, acc))
        hashes[ref.relative_name(dataset, acc)] = sha256_of(path)
    manifest = tmp_path / "hashes.yaml"
    manifest.write_text(yaml.safe_dump(hashes))
    return folder, manifest


@pytest.fixture
def http_base(mirror):
    with serve(mirror[0]) as url:
        yield url.rstrip("/")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A project root of its own, so us_masks/reference/ is the test's."""
    root = tmp_path / "home"
    (root / "us_masks").mkdir(parents=True)
    monkeypatch.setenv("KDMRI_HOME", str(root))
    monkeypatch.delenv(ref.BASE_URL_ENV, raising=False)
    return root


def _stored(root):
    folder = root / "us_masks" / "reference"
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("dataset, acc", ALL)
def test_the_table_is_the_measured_reference(dataset, acc):
    spec = ref.reference_spec(dataset, acc)
    measured = {("cardiac", 4): 37, ("cardiac", 5): 30, ("cardiac", 8): 18, ("mrbrain", 4): 60,
                ("mrbrain", 5): 48, ("mrbrain", 8): 30, ("knee", 4): 94, ("knee", 5): 74, ("knee", 8): 50}
    assert spec.lines == measured[dataset, acc]
    assert (spec.shape, spec.axis, spec.dtype) == {"cardiac": ((150, 150), 0, "float64"),
                                                   "mrbrain": ((240, 240), 0, "float64"),
                                                   "knee": ((640, 368), 1, "float32")}[dataset]
    m = stand_in(dataset, acc)
    ref.check_reference_mask(m, dataset, acc, "stand-in")  # a mask of that table passes
    assert phase_encode_axis(m) == spec.axis and int(line_profile(m).sum()) == spec.lines
    assert spec.centre is None or centre_band(m) == spec.centre


@pytest.mark.parametrize("change, message", [
    (lambda m: m.T, r"expected a 150x150 float64 line mask varying along H with 37 sampled lines and "
                    r"a centre band of 10; its lines vary along W"),
    (lambda m: m.astype(np.float32), r"got shape \(150, 150\), dtype float32"),
    (lambda m: np.fft.fftshift(m), r"got 37 lines, centre band 0"),  # the centred layout
    (lambda m: np.where(np.arange(150)[:, None] == 40, 1.0, m), r"got 38 lines"),
    (lambda m: m * 2, r"values other than 0 and 1"),
])
def test_a_mask_off_the_table_is_refused(change, message):
    with pytest.raises(DataError, match=message):
        ref.check_reference_mask(change(stand_in("cardiac", 4)), "cardiac", 4, "where")


def test_fetch_over_http_verifies_and_stores_beside_kdmris(home, mirror, http_base, capsys):
    from kdmri.tools.cli import main

    folder, manifest = mirror
    assert main(["masks", "--reference", "--dataset", "cardiac", "--acc", "4", "8",
                 "--base-url", http_base, "--manifest", str(manifest)]) == 0
    assert _stored(home) == ["cardiac/mask_4x.npy", "cardiac/mask_8x.npy"]
    stored = home / "us_masks" / "reference" / "cardiac" / "mask_4x.npy"
    assert np.array_equal(np.load(stored, allow_pickle=False), stand_in("cardiac", 4))
    assert "sha256 verified" in capsys.readouterr().out
    # a file:// base URL (a mirror on disk) works the same way
    knee = ref.fetch_reference_masks(["knee"], [5], folder.as_uri(), manifest=manifest)
    assert knee == [home / "us_masks" / "reference" / "knee" / "mask_5x.npy"]


def test_an_altered_file_is_one_line_and_nothing_is_stored(home, mirror, http_base, capsys):
    from kdmri.tools.cli import main

    folder, manifest = mirror
    path = folder / "cardiac" / "mask_4x.npy"
    expected = sha256_of(path)
    altered = stand_in("cardiac", 4)
    altered[0, 0] = 0.0
    np.save(path, altered)
    assert main(["masks", "--reference", "--dataset", "cardiac", "--acc", "4",
                 "--base-url", http_base, "--manifest", str(manifest)]) == 2
    (err,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert "reference mask cardiac/mask_4x.npy" in err
    assert f"expected sha256 {expected}" in err and "nothing stored" in err
    assert _stored(home) == []  # neither the file nor a temporary one


def test_the_table_is_checked_after_the_hash(home, mirror):
    folder, manifest = mirror
    path = folder / "cardiac" / "mask_8x.npy"
    np.save(path, stand_in("cardiac", 4))  # a valid mask, but the 4x one, with a matching hash
    hashes = yaml.safe_load(manifest.read_text()) | {"cardiac/mask_8x.npy": sha256_of(path)}
    manifest.write_text(yaml.safe_dump(hashes))
    with pytest.raises(DataError, match=r"expected a 150x150 float64 .* 18 sampled lines .*got 37 lines"):
        ref.fetch_reference_masks(["cardiac"], [8], folder, manifest=manifest)
    assert _stored(home) == []
    with pytest.raises(ConfigError, match=r"no sha256 for mrbrain/mask_4x.npy"):
        ref.fetch_reference_masks(["mrbrain"], [4], folder, manifest=manifest)


def test_the_built_in_hashes_are_the_reference_files(home, mirror):
    """Without a manifest the pinned hashes apply: the stand-ins are refused."""
    folder, _ = mirror
    with pytest.raises(DataError, match="expected sha256 9a420a62e19afb88d8b94d1177ec44fead4199d5d56993b04"):
        ref.fetch_reference_masks(["cardiac"], [4], folder)
    assert ref.DEFAULT_BASE_URL == ("https://raw.githubusercontent.com/Bala93/KD-MRI/"
                                    "918c3de44e46e9a8f3aeca522b415fd7993ac1c5/us_masks")


def test_mask_source_chooses_the_runs_mask(home, mirror):
    folder, manifest = mirror
    cfg = Config(dataset="cardiac", acc="4x", mask_source="reference")
    with pytest.raises(DataError, match=r"reference mask not found; fetch it with `python -m kdmri masks "
                                        r"--reference`"):
        ref.run_mask(cfg)
    ref.fetch_reference_masks(["cardiac"], [4], folder, manifest=manifest)
    assert ref.run_mask(cfg) == home / "us_masks" / "reference" / "cardiac" / "mask_4x.npy"
    assert ref.run_mask(Config(dataset="cardiac", acc="4x")) is None  # kdmri: each file's own
    with pytest.raises(ConfigError, match="reference mask demo 4x"):
        ref.run_mask(Config(dataset="demo", mask_source="reference"))
    with pytest.raises(ConfigError, match="set one of the two"):
        ref.run_mask(cfg.replace(mask="x.npy"))
    with pytest.raises(ConfigError, match=r"mask_source='kdmri-ish': expected one of \['kdmri', 'refer"):
        Config(mask_source="kdmri-ish")


def test_a_runs_own_mask_undersamples_the_data_anew(tiny_folder):
    """With a mask given (mask / mask_source: reference) input and k-space are made with that
    mask, not read as stored (the stored ones were made with the file's own mask)."""
    import torch

    from kdmri.data.volumes import SliceDataset
    from kdmri.physics.fft import fft2, ifft2

    other = cartesian_mask((32, 24), 4, seed=99, axis=0)
    item = SliceDataset(tiny_folder, 4, mask=other)[1]
    want_k = fft2(item["target"][0].double()) * torch.from_numpy(other).double()
    assert torch.allclose(item["kspace"][0].to(torch.complex128), want_k, atol=1e-5)
    assert torch.allclose(item["input"][0].double(), ifft2(want_k).real, atol=1e-5)
    stored = SliceDataset(tiny_folder, 4)[1]
    assert not torch.allclose(stored["kspace"], item["kspace"], atol=1e-3)


def test_every_report_records_the_mask_source(tiny_cfg):
    from kdmri.evaluation.evaluate import evaluate

    report = evaluate(tiny_cfg, "zf", save_reconstructions=False)
    assert report["mask_source"] == "kdmri" and report["config"]["mask_source"] == "kdmri"
