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
