"""Checkpoints are read with ``weights_only=True``: a pickled object that would run code on
load is refused with a DataError naming the file, and no code runs."""

from __future__ import annotations

import pathlib

import pytest
import torch

from kdmri.checkpoint import load_checkpoint, load_model
from kdmri.errors import DataError


class _WritesMarker:
    """Unpickling this calls ``Path.write_text(marker, "code ran")``."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.write_text, (self.marker, "code ran")


def _malicious_checkpoint(tmp_path) -> tuple[pathlib.Path, pathlib.Path]:
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "payload": _WritesMarker(marker)}, path)
    assert not marker.exists()
    return path, marker


@pytest.mark.parametrize("loader", [load_checkpoint, load_model])
def test_pickled_code_is_refused_and_never_run(tmp_path, loader):
    path, marker = _malicious_checkpoint(tmp_path)
    with pytest.raises(DataError, match="evil.pt") as info:
        loader(path)
    assert "not a readable kdmri checkpoint" in str(info.value)
    assert not marker.exists(), "loading a checkpoint executed pickled code"


def test_the_payload_really_runs_code_without_weights_only(tmp_path):
    """The check above means something: an unrestricted ``torch.load`` runs the payload."""
    path, marker = _malicious_checkpoint(tmp_path)
    torch.load(path, weights_only=False)
    assert marker.read_text() == "code ran"


def test_plain_checkpoint_still_loads(tmp_path):
    path = tmp_path / "ok.pt"
    torch.save({"model": {"w": torch.ones(3)}, "epoch": 2, "history": [{"val_loss": 0.5}]}, path)
    ckpt = load_checkpoint(path)
    assert ckpt["epoch"] == 2 and torch.equal(ckpt["model"]["w"], torch.ones(3))


def test_load_passes_weights_only_and_map_location_explicitly(tmp_path, monkeypatch):
    """torch < 2.6 defaults to weights_only=False: the flag must be passed, not inherited."""
    path = tmp_path / "ok.pt"
    torch.save({"model": {"w": torch.ones(1)}}, path)
    seen = []
    real = torch.load

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_checkpoint(path, map_location="cpu")
    assert seen[-1].get("weights_only") is True and seen[-1].get("map_location") == "cpu"


def test_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match=r"missing\.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"epoch": 1}, tmp_path / "nomodel.pt")
    with pytest.raises(DataError, match=r"nomodel\.pt: expected a kdmri checkpoint dict"):
        load_checkpoint(tmp_path / "nomodel.pt")
    torch.save({"model": {}}, tmp_path / "noarch.pt")
    with pytest.raises(DataError, match=r"noarch\.pt: checkpoint has no 'arch' entry"):
        load_model(tmp_path / "noarch.pt")
    from kdmri.checkpoint import arch_of
    from kdmri.models.dccnn import build_dccnn

    torch.save({"model": {"w": torch.ones(1)}, "arch": arch_of(build_dccnn("student"))},
               tmp_path / "misfit.pt")
    with pytest.raises(DataError, match=r"misfit\.pt: weights do not fit the stored architecture"):
        load_model(tmp_path / "misfit.pt")


def test_every_arch_kind_round_trips(tmp_path):
    from kdmri.checkpoint import arch_of, build_from_arch
    from kdmri.models.dccnn import build_dccnn
    from kdmri.models.sft import SFTTeacher
    from kdmri.models.unet import UNet
    from kdmri.models.vdsr import build_vdsr

    for model in (build_dccnn("student"), build_vdsr("student"), SFTTeacher(), UNet(chans=4, dc=True)):
        path = tmp_path / f"{type(model).__name__}.pt"
        torch.save({"model": model.state_dict(), "arch": arch_of(model)}, path)
        loaded, ckpt = load_model(path, map_location="cpu")
        assert type(loaded) is type(model) and ckpt["arch"] == arch_of(loaded)
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                     loaded.state_dict().values()))
    assert arch_of(SFTTeacher())["kind"] == "sft"
    for arch in ({}, {"kind": "nonesuch"}):
        with pytest.raises(DataError, match="checkpoint arch kind .*: expected one of .*'dccnn'"):
            build_from_arch(arch)
