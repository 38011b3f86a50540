"""Pretrained checkpoints by name (kdmri.pretrained) over kdmri.fetch: manifests, the cache,
hashes, local paths and a local http server (127.0.0.1; nothing leaves the machine)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from kdmri import pretrained
from kdmri.checkpoint import atomic_save
from kdmri.errors import ConfigError, DataError
from kdmri.fetch import sha256_of
from kdmri.models.unet import UNet
from kdmri.tools.sitecheck import serve


@pytest.fixture
def served(tmp_path):
    """A folder served over http on 127.0.0.1: ``(folder, base URL)``."""
    folder = tmp_path / "served"
    folder.mkdir()
    with serve(folder) as url:
        yield folder, url.rstrip("/")


@pytest.fixture
def env(tmp_path, monkeypatch, own_manifests_only):
    cache = tmp_path / "cache"
    monkeypatch.setenv("KDMRI_CACHE", str(cache))
    monkeypatch.delenv(pretrained.MANIFEST_ENV, raising=False)
    return cache


def _checkpoint(path: Path) -> tuple[Path, UNet]:
    torch.manual_seed(0)
    model = UNet(chans=2, num_pool_layers=1)
    atomic_save({"model": model.state_dict(), "arch": model.arch(), "task": "recon",
                 "config": {"dataset": "demo", "acc": "4x"}}, path)
    return path, model


def _manifest(path: Path, entries: dict, root: str | None = None) -> Path:
    data = {"checkpoints": entries} | ({"root": root} if root else {})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_with_no_manifest_entry_an_unknown_name_says_so(env):
    assert pretrained.read_manifest(pretrained.MANIFEST) == {}  # the package's, emptied by `env`
    with pytest.raises(ConfigError, match=r"pretrained 'nope': unknown checkpoint; known: none yet"):
        pretrained.load("nope")


def test_http_url_is_fetched_once_into_the_cache_and_loaded(tmp_path, served, env, monkeypatch):
    folder, url = served
    ckpt, model = _checkpoint(folder / "tiny.pt")
    manifest = _manifest(tmp_path / "mine.yaml", {"tiny-unet": {
        "url": f"{url}/tiny.pt", "sha256": sha256_of(ckpt), "size": ckpt.stat().st_size,
        "command": "python -m kdmri train ...", "card": "A two-channel U-Net for tests."}})
    monkeypatch.setenv(pretrained.MANIFEST_ENV, str(manifest))
    loaded = pretrained.load("tiny-unet")
    assert not loaded.training
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    cached = pretrained.path("tiny-unet")
    assert cached.parent == env / "pretrained" and cached.name.startswith("tiny-unet-")
    ckpt.unlink()  # served no more: the verified cached copy is used
    assert pretrained.resolve_checkpoint("pretrained:tiny-unet") == cached
    assert pretrained.resolve_checkpoint("some/file.pt") == Path("some/file.pt")
    assert "A two-channel U-Net for tests." in pretrained.card("tiny-unet")


def test_relative_path_and_file_url_are_verified_in_place(tmp_path, env):
    ckpt, _ = _checkpoint(tmp_path / "repo" / "checkpoints" / "s.pt")
    sha = sha256_of(ckpt)
    manifests = [_manifest(tmp_path / "repo" / "meta" / "m.yaml", {
        "in-repo": {"url": "checkpoints/s.pt", "sha256": sha},
        "by-file-url": {"url": ckpt.as_uri(), "sha256": sha}}, root="..")]
    assert pretrained.path("in-repo", manifests) == ckpt  # a path: not copied
    assert pretrained.path("by-file-url", manifests).parent == env / "pretrained"
    assert isinstance(pretrained.load("pretrained:in-repo", manifests=manifests), UNet)


def test_wrong_hash_is_one_line_and_leaves_nothing(tmp_path, served, env):
    folder, url = served
    ckpt, _ = _checkpoint(folder / "tiny.pt")
    want = "0" * 64
    manifests = [_manifest(tmp_path / "m.yaml", {"bad": {"url": f"{url}/tiny.pt", "sha256": want}})]
    with pytest.raises(DataError) as err:
        pretrained.path("bad", manifests)
    text = str(err.value)
    assert "\n" not in text and "pretrained 'bad'" in text and f"expected sha256 {want}" in text
    assert sha256_of(ckpt) in text and "nothing stored" in text
    assert _files(env) == []  # no file and no temporary file in the cache
    with pytest.raises(DataError, match="server answered 404"):
        pretrained.path("gone", [_manifest(tmp_path / "g.yaml", {"gone": {
            "url": f"{url}/missing.pt", "sha256": want}})])
    assert _files(env) == []
    with pytest.raises(DataError, match=r"missing\.pt: file not found"):
        pretrained.path("local", [_manifest(tmp_path / "l.yaml", {"local": {
            "url": "missing.pt", "sha256": want}})])


def test_a_changed_cached_file_is_fetched_again(tmp_path, served, env):
    folder, url = served
    ckpt, _ = _checkpoint(folder / "tiny.pt")
    manifests = [_manifest(tmp_path / "m.yaml", {"t": {"url": f"{url}/tiny.pt", "sha256": sha256_of(ckpt)}})]
    cached = pretrained.path("t", manifests)
    cached.write_bytes(b"damaged")
    assert sha256_of(pretrained.path("t", manifests)) == sha256_of(ckpt)


@pytest.mark.parametrize("fields, message", [
    ({"url": "a.pt"}, r"checkpoint 'x': field 'sha256' is missing"),
    ({"url": "a.pt", "sha256": "abc"}, r"checkpoint 'x': field 'sha256': expected a sha256"),
    ({"url": "a.pt", "sha256": "0" * 64, "sise": 3}, r"checkpoint 'x': unknown field\(s\) \['sise'\]"),
    ({"url": "a.pt", "sha256": "0" * 64, "size": "big"},
     r"checkpoint 'x': field 'size' = 'big': expected a int"),
    ({"url": "ftp://h/a.pt", "sha256": "0" * 64}, r"checkpoint 'x': field 'url'"),
    ("just text", r"checkpoint 'x': expected a mapping of fields"),
])
def test_bad_manifest_entries_name_the_entry_and_field(tmp_path, env, fields, message):
    with pytest.raises(ConfigError, match=message):
        pretrained.entries([_manifest(tmp_path / "m.yaml", {"x": fields})])


def test_bad_manifest_files(tmp_path, env):
    bad_name = _manifest(tmp_path / "n.yaml", {"a/b": {"url": "a.pt", "sha256": "0" * 64}})
    with pytest.raises(ConfigError, match=r"checkpoint name 'a/b'"):
        pretrained.entries([bad_name])
    (tmp_path / "top.yaml").write_text("checkpoint: {}\n")
    with pytest.raises(ConfigError, match=r"top\.yaml: unknown key\(s\) \['checkpoint'\]"):
        pretrained.entries([tmp_path / "top.yaml"])
    with pytest.raises(ConfigError, match="manifest .*nowhere.yaml: file not found"):
        pretrained.entries([tmp_path / "nowhere.yaml"])
    one = _manifest(tmp_path / "one.yaml", {"same": {"url": "a.pt", "sha256": "0" * 64}})
    two = _manifest(tmp_path / "two.yaml", {"same": {"url": "b.pt", "sha256": "1" * 64}})
    with pytest.raises(ConfigError, match="'same' is named by two manifests"):
        pretrained.entries([one, two])


def test_commands_accept_pretrained_names(tmp_path, env, monkeypatch, capsys):
    from kdmri.tools.cli import main

    ckpt, _ = _checkpoint(tmp_path / "s.pt")
    monkeypatch.setenv(pretrained.MANIFEST_ENV, str(_manifest(tmp_path / "m.yaml", {
        "small": {"url": str(ckpt), "sha256": sha256_of(ckpt)}})))
    out = tmp_path / "small.ts"
    assert main(["export", "--checkpoint", "pretrained:small", "--format", "torchscript",
                 "--out", str(out), "--shape", "16", "16"]) == 0
    assert out.is_file()
    assert main(["export", "--checkpoint", "pretrained:other", "--out", str(tmp_path / "o.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pretrained 'other': unknown checkpoint; known: ['small']" in err


def test_evaluate_and_a_frozen_teacher_take_pretrained_names(tiny_cfg, tmp_path, env, monkeypatch):
    from kdmri.evaluation.evaluate import evaluate
    from kdmri.models.dccnn import build_dccnn
    from kdmri.training.engine import StageRunner
    from kdmri.training.stages import get_stage
    from kdmri.training.strategy import default_strategy

    torch.manual_seed(0)
    net = build_dccnn("student")
    ckpt = atomic_save({"model": net.state_dict(), "arch": net.arch(), "task": "recon"}, tmp_path / "st.pt")
    monkeypatch.setenv(pretrained.MANIFEST_ENV, str(_manifest(tmp_path / "m.yaml", {
        "tiny-student": {"url": ckpt.as_uri(), "sha256": sha256_of(ckpt)}})))
    report = evaluate(tiny_cfg, "student", checkpoint="pretrained:tiny-student", save_reconstructions=False)
    folder = tiny_cfg.experiment("tiny-student", "pretrained")
    assert folder.name == "pretrained_tiny-student" and (folder / "report.json").is_file()
    assert report["n_slices"] == 2 and report["checkpoint"].startswith("tiny-student-")
    cfg = tiny_cfg.replace(teacher_checkpoint="pretrained:tiny-student")
    teacher = StageRunner(get_stage("kd"), cfg, default_strategy(cfg)).load_teacher()
    assert all(torch.equal(a, b) for a, b in zip(teacher.state_dict().values(), net.state_dict().values()))
