"""Names that reach a SLURM job script or a notebook's set-up cell are checked against a
pattern (one error naming the key and the pattern) and quoted where they are written."""

from __future__ import annotations

import ast
import functools
import os

import pytest
from test_batch import PARAMS_CELL, write_nb, write_params

from kdmri.errors import ConfigError
from kdmri.tools import notebooks as nbt
from kdmri.tools.batch import plan
from kdmri.tools.cli import main
from kdmri.tools.jobs import SlurmOptions, submit_slurm


@pytest.fixture
def sbatch(tmp_path, monkeypatch):
    """A fake `sbatch` on PATH that records every script it is given, and the `srun` that
    submitit looks for before it submits (a fresh machine has neither)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text("#!/bin/sh\necho \"$1\" >> \"$0.files\"\n"
                                    "echo \"Submitted batch job $$\"\n")
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    for name in ("sbatch", "srun"):
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir / "sbatch.files"


def _jobs(tmp_path, **values):
    nbs = tmp_path / "nbs"
    nbs.mkdir(exist_ok=True)
    nb = write_nb(nbs / "00_data.ipynb", PARAMS_CELL, "x = 1")
    params = write_params(tmp_path / "p.yaml", experiments_root=str(tmp_path / "e"), **values)
    return plan([params], [nb], out=tmp_path / "runs"), params, nb


def _one_line(exc: pytest.ExceptionInfo, *needles: str) -> None:
    text = str(exc.value)
    assert len(text.splitlines()) == 1, text
    for needle in needles:
        assert needle in text, (needle, text)


@pytest.mark.parametrize("key", ["dataset", "method"])
def test_a_newline_in_a_name_is_refused_before_anything_is_submitted(tmp_path, sbatch, key, capsys):
    values = {"dataset": "knee", "acc": "4x", key: "knee\ntouch X #"}
    jobs, params, nb = _jobs(tmp_path, **values)
    with pytest.raises(ConfigError) as exc:
        submit_slurm(jobs, tmp_path / "runs", SlurmOptions())
    _one_line(exc, f"{params}: {key}=", repr("knee\ntouch X #"), "[A-Za-z0-9]")
    assert not sbatch.exists() and not (tmp_path / "runs").exists()
    code = main(["batch", "--params", str(params), "--notebooks", str(nb), "--executor", "slurm",
                 "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert not sbatch.exists()


@pytest.mark.parametrize("options, key", [
    (SlurmOptions(partition="gpu\n#SBATCH --qos=top"), "--partition"),
    (SlurmOptions(account="me; rm -rf ~"), "--account"),
    (SlurmOptions(extra={"qos\ntouch X": "high"}), "--slurm-option"),
    (SlurmOptions(extra={"comment": "a\nb"}), "--slurm-option comment"),
])
def test_slurm_options_that_would_break_the_script_are_refused(tmp_path, sbatch, options, key):
    jobs, _, _ = _jobs(tmp_path, dataset="knee", acc="4x")
    with pytest.raises(ConfigError) as exc:
        submit_slurm(jobs, tmp_path / "runs", options)
    _one_line(exc, f"{key}=", "pattern")
    assert not sbatch.exists()


def test_allowed_values_reach_the_script_quoted(tmp_path, sbatch):
    jobs, _, _ = _jobs(tmp_path, dataset="knee", acc="4x", method="kd.v2")
    options = SlurmOptions(partition="gpu,a100", extra={"constraint": "a100|h100", "comment": "two words"})
    submit_slurm(jobs, tmp_path / "runs", options)
    script = open(sbatch.read_text().split()[0]).read()
    for line in ("#SBATCH --job-name=kdmri-knee_4x-00_data", "#SBATCH --partition=gpu,a100",
                 "#SBATCH --constraint='a100|h100'", "#SBATCH --comment='two words'"):
        assert line in script.splitlines(), line


def test_the_repository_address_is_checked_and_quoted_in_the_setup_cell(tmp_path):
    bad = 'https://github.com/a/b"; import os; os.system("touch pwned"); "'
    for call in (nbt.setup_source, functools.partial(nbt.colab_badge, "00_data.ipynb"), nbt.readme_badges):
        with pytest.raises(ConfigError) as exc:
            call(bad)
        _one_line(exc, "--repo-url=", "pattern")
    nb = write_nb(tmp_path / "00_data.ipynb", PARAMS_CELL, "x = 1")
    before = nb.read_bytes()
    assert main(["notebooks", "sync", str(nb), "--repo-url", bad]) == 2
    assert nb.read_bytes() == before
    url = "https://git.example.org:8443/lab~x/kd%20mri.git"
    tree = ast.parse(nbt.setup_source(url))
    values = [n.value.value for n in tree.body if isinstance(n, ast.Assign)
              and [t.id for t in n.targets] == ["REPO_URL"]]
    assert values == [url]
