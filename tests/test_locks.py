"""The folder lock: a waiter gives up after its timeout naming the lock file and the holder
(pid and host, which the holder writes into the file); without fcntl it warns; it warns
when the mount keeps flock local to one node."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kdmri import locks
from kdmri.errors import WaitTimeout
from kdmri.locks import LOCK_NAME, folder_lock, node_local_locking

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def held(tmp_path):
    """``(folder, pid)``: another process holds ``<folder>/.lock`` until the test ends."""
    folder = tmp_path / "stage"
    script = ("import sys, time\nfrom kdmri.locks import folder_lock\n"
              f"with folder_lock({str(folder)!r}, 'training student'):\n"
              "    print('held', flush=True)\n    time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout.readline().strip() == "held"
        yield folder, proc.pid
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_waiter_times_out_naming_the_lock_file_and_holder(held, monkeypatch, capsys):
    folder, pid = held
    record = (folder / LOCK_NAME).read_text()
    assert record.startswith(f"pid {pid} on host {socket.gethostname()} since ")
    assert record.strip().endswith("training student")
    monkeypatch.setenv(locks.LOCK_TIMEOUT_ENV, "1")
    outcome = []

    def wait():
        try:
            with folder_lock(folder, "training student"):
                outcome.append("acquired")
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcome.append(exc)

    start = time.monotonic()
    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    waiter.join(30)
    assert not waiter.is_alive(), "the waiter still waits: no timeout"
    assert time.monotonic() - start < 20
    [exc] = outcome
    assert isinstance(exc, WaitTimeout), exc
    message = str(exc)
    assert str(folder / LOCK_NAME) in message and f"pid {pid} on host {socket.gethostname()}" in message
    assert "after 1 s of waiting (training student)" in message and "KDMRI_LOCK_TIMEOUT" in message
    assert "waiting for" in capsys.readouterr().err


def test_lock_file_names_the_holder_only_while_held(tmp_path):
    with folder_lock(tmp_path, "evaluating") as got:
        assert got
        assert locks.holder(tmp_path / LOCK_NAME).startswith(f"pid {os.getpid()} on host ")
    assert (tmp_path / LOCK_NAME).read_text() == ""
    assert locks.holder(tmp_path / LOCK_NAME).startswith("another process")


def test_no_fcntl_runs_unlocked_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(locks, "fcntl", None)  # as on Windows
    with pytest.warns(UserWarning, match=r"file locking is not available.*no fcntl"):
        with folder_lock(tmp_path / "stage") as got:
            assert got is False


MOUNTS = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:50 / {nfs} rw,relatime shared:30 - nfs server:/export rw,vers=3,{nfs_opts},addr=10.0.0.1
41 22 0:51 / {lustre} rw shared:31 - lustre mgs@tcp:/fs rw,{lustre_opts}
"""


@pytest.mark.parametrize(("nfs_opts", "lustre_opts", "where", "expected"), [
    ("nolock", "flock", "nfs", "nfs mounted with nolock"),
    ("local_lock=flock", "flock", "nfs", "nfs mounted with local_lock=flock"),
    ("local_lock=none", "flock", "nfs", None),  # lockd: flock works across nodes
    ("local_lock=none", "localflock", "lustre", "lustre mounted with localflock"),
    ("local_lock=none", "flock", "lustre", None),
    ("nolock", "localflock", "local", None),  # the root file system, ext4
])
def test_node_local_mounts_are_recognised(tmp_path, nfs_opts, lustre_opts, where, expected):
    nfs, lustre = tmp_path / "nfs", tmp_path / "lus tre"
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTS.format(nfs=nfs, lustre=str(lustre).replace(" ", "\\040"),
                                  nfs_opts=nfs_opts, lustre_opts=lustre_opts))
    folder = {"nfs": nfs, "lustre": lustre, "local": Path("/usr")}[where] / "exp" / "stage"
    reason = node_local_locking(folder, info)
    assert (reason is None) if expected is None else (expected in reason), reason


def test_folder_lock_warns_on_a_node_local_mount(tmp_path, monkeypatch):
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTS.format(nfs=tmp_path, lustre="/lustre", nfs_opts="nolock", lustre_opts="flock"))
    monkeypatch.setattr(locks, "MOUNTINFO", info)
    with pytest.warns(UserWarning, match="excludes only the processes of this node"):
        with folder_lock(tmp_path / "stage") as got:
            assert got
