"""The batch runner on tiny notebooks written in tmp_path."""

import json

import nbformat
import nbformat.v4 as nbf
import pytest
import yaml

from kdmri.config import ConfigError, load_config
from kdmri.tools import batch
from kdmri.tools.cli import main


def write_nb(path, params: str, *code: str):
    cells = [nbf.new_code_cell(params, metadata={"tags": ["parameters"]})] if params else []
    cells += [nbf.new_code_cell(c) for c in code]
    nb = nbf.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


def write_params(path, **values):
    path.write_text(yaml.safe_dump(values))
    return path


PARAMS_CELL = 'params_file = None\ndataset = "demo"\nepochs = 1\n'


@pytest.fixture
def setup(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    exp = str(tmp_path / "exp")
    p1 = write_params(tmp_path / "a.yaml", dataset="alpha", acc="4x", epochs=2, lr=0.0123,
                      experiments_root=exp)
    p2 = write_params(tmp_path / "b.yaml", dataset="beta", acc="8x", epochs=3, experiments_root=exp)
    return tmp_path, nbs, p1, p2


class Recorder:
    """A fake executor: records the calls, writes the output, fails for chosen notebooks."""

    def __init__(self, fail=()):
        self.calls, self.fail = [], set(fail)

    def __call__(self, notebook, output, parameters, cwd):
        self.calls.append((notebook.name, output, parameters, cwd))
        output.write_text("{}")
        if notebook.name in self.fail:
            raise RuntimeError(f"{notebook.name} broke\nsecond line")


def test_dependency_order_output_paths_and_parameters(setup):
    tmp, nbs, p1, p2 = setup
    for name in ("10_late.ipynb", "2_middle.ipynb", "01_first.ipynb", "extra.ipynb"):
        write_nb(nbs / name, PARAMS_CELL + "flag = 0\n", "x = 1")
    given = [nbs / n for n in ("extra.ipynb", "10_late.ipynb", "2_middle.ipynb", "01_first.ipynb")]
    rec = Recorder()
    report = batch.run_batch([p1, p2], given, {"flag": 5, "seed": 7}, tmp / "runs", execute=rec,
                             progress=False)
    assert report.ok and len(report.results) == 8
    order = [c[0] for c in rec.calls]
    assert order == ["01_first.ipynb", "2_middle.ipynb", "10_late.ipynb", "extra.ipynb"] * 2
    outputs = [c[1] for c in rec.calls]
    assert outputs[0] == (tmp / "runs" / "alpha" / "acc_4x" / "01_first.ipynb").resolve()
    assert outputs[4] == (tmp / "runs" / "beta" / "acc_8x" / "01_first.ipynb").resolve()
    assert all(c[3] == nbs.resolve() for c in rec.calls)  # executed in the notebook's folder
    params = rec.calls[0][2]
    # Config fields that are notebook parameters get the resolved values; notebook-only
    # overrides reach the notebooks that declare them; everything else goes via params_file
    assert params["dataset"] == "alpha" and params["epochs"] == 2 and params["flag"] == 5
    assert set(params) == {"params_file", "dataset", "epochs", "flag"}
    resolved = load_config(params["params_file"])
    assert resolved.lr == 0.0123 and resolved.seed == 7 and resolved == load_config(p1, {"seed": 7})
    assert (tmp / "runs" / "summary.md").is_file()
    runs = json.loads((tmp / "runs" / "summary.json").read_text())
    assert [r["notebook"] for r in runs[:4]] == order[:4] and all(r["ok"] for r in runs)


def test_failure_stops_only_the_jobs_that_need_it(setup):
    tmp, nbs, p1, _ = setup
    names = ("03_teacher_student", "04_kd_mri", "06_super_resolution")  # 04 needs 03; 06 does not
    paths = [write_nb(nbs / f"{n}.ipynb", PARAMS_CELL, "x = 1") for n in names]
    rec = Recorder(fail={"03_teacher_student.ipynb"})
    report = batch.run_batch([p1], paths, out=tmp / "runs", execute=rec, progress=False)
    assert [c[0] for c in rec.calls] == ["03_teacher_student.ipynb", "06_super_resolution.ipynb"]
    assert not report.ok
    assert [r.job.notebook.name for r in report.failures] == ["03_teacher_student.ipynb", "04_kd_mri.ipynb"]
    assert report.failures[0].error == "RuntimeError: 03_teacher_student.ipynb broke"
    assert report.failures[1].error == "not run: needs 03_teacher_student.ipynb, which did not succeed"
    summary = (tmp / "runs" / "summary.md").read_text()
    assert "FAILED: RuntimeError: 03_teacher_student.ipynb broke" in summary and summary.count("| ok |") == 1


def test_validation_lists_every_problem_before_running(setup):
    tmp, nbs, p1, _ = setup
    good = write_nb(nbs / "01_good.ipynb", PARAMS_CELL, "x = 1")
    no_params_file = write_nb(nbs / "02_bad.ipynb", 'dataset = "demo"\n', "x = 1")
    bad_yaml = write_params(tmp / "bad.yaml", dataset="alpha", epochz=3)
    rec = Recorder()
    with pytest.raises(ConfigError) as err:
        batch.run_batch([p1, bad_yaml, tmp / "missing.yaml"], [good, no_params_file, nbs / "03_gone.ipynb"],
                        {"bogus": 1}, tmp / "runs", execute=rec, progress=False)
    text = str(err.value)
    assert "02_bad.ipynb: no `params_file`" in text
    assert "03_gone.ipynb: notebook not found" in text
    assert "--set bogus: neither a Config field nor a parameter" in text
    assert "epochz" in text and "missing.yaml" in text
    assert rec.calls == [] and not (tmp / "runs").exists()


def test_two_params_files_for_the_same_run_folder_are_refused(setup):
    tmp, nbs, p1, _ = setup
    twin = write_params(tmp / "twin.yaml", dataset="alpha", acc=4, epochs=9)
    nb = write_nb(nbs / "01_a.ipynb", PARAMS_CELL, "x = 1")
    with pytest.raises(ConfigError, match="both run alpha 4x"):
        batch.plan([p1, twin], [nb], out=tmp / "runs")


def test_a_notebook_without_parameters_cell_is_refused(setup):
    tmp, nbs, p1, _ = setup
    nb = write_nb(nbs / "01_plain.ipynb", "", "x = 1")
    with pytest.raises(ConfigError, match="no parameters"):
        batch.plan([p1], [nb], out=tmp / "runs")


def test_summary_holds_the_results_table(setup):
    tmp, nbs, p1, _ = setup
    cfg = load_config(p1)
    for role, label, psnr in (("zf", "ZF", 20.0), ("teacher", "teacher", 30.0)):
        folder = cfg.experiment(role)
        folder.mkdir(parents=True)
        metrics = {m: {"mean": v, "std": 0.1} for m, v in (("psnr", psnr), ("ssim", 0.9))}
        (folder / "report.json").write_text(json.dumps({
            "dataset": "alpha", "acc": "4x", "task": "recon", "method": "kdmri", "role": role,
            "label": label, "n_slices": 4, "parameters": 0 if role == "zf" else 141765, "metrics": metrics}))
    nb = write_nb(nbs / "01_a.ipynb", PARAMS_CELL, "x = 1")
    report = batch.run_batch([p1], [nb], out=tmp / "runs", execute=Recorder(), progress=False)
    assert "## alpha 4x" in report.summary
    assert "| ZF | 20.00 ± 0.10 |" in report.summary and "| teacher | 30.00 ± 0.10 |" in report.summary


def test_discovers_the_repository_notebooks_in_order():
    names = [p.name for p in batch.discover_notebooks()]
    numbers = [int(n.split("_")[0]) for n in names]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert names.index("03_teacher_student.ipynb") < names.index("04_kd_mri.ipynb")


def test_cli_runs_papermill_records_memory_and_exits_nonzero_on_failure(setup, capsys):
    tmp, nbs, p1, _ = setup
    check = ("import yaml\n"
             "assert yaml.safe_load(open(params_file))['lr'] == 0.0123  # not a notebook parameter\n"
             "assert epochs == 2 and dataset == 'alpha'\n"
             "print('epochs', epochs)")
    # 01 and 02 need only 00 (kdmri.tools.graph), so 02 runs although 01 fails
    write_nb(nbs / "00_data.ipynb", PARAMS_CELL, check)
    write_nb(nbs / "01_masks.ipynb", PARAMS_CELL, "raise ValueError('boom')")
    write_nb(nbs / "02_dc_cnn.ipynb", PARAMS_CELL, "print('third', epochs)")
    runs = tmp / "runs"
    code = main(["batch", "--params", str(p1), "--notebooks", *map(str, sorted(nbs.glob("*.ipynb"))),
                 "--out", str(runs), "--no-progress", "--calibration-steps", "1"])
    assert code == 1
    out = capsys.readouterr().out
    assert "1 of 3 notebook runs FAILED" in out and "ValueError: boom" in out
    # the wall time is stated with the machine's calibration, measured at start and end
    assert "wall time: " in out and "calibration: " in out and "min on a 270 ms machine" in out
    assert "min on a 270 ms machine" in (runs / "summary.md").read_text()
    folder = runs / "alpha" / "acc_4x"
    assert sorted(p.name for p in folder.iterdir()) == ["00_data.ipynb", "00_data.log", "01_masks.ipynb",
                                                        "01_masks.log", "02_dc_cnn.ipynb",
                                                        "02_dc_cnn.log", "params.yaml"]
    assert "third 2" in (folder / "02_dc_cnn.log").read_text()  # each notebook's output, streamed
    resolved = yaml.safe_load((folder / "params.yaml").read_text())
    assert resolved["notebook_parameters"]["figures_dir"] == str(folder / "figures")
    third = nbformat.read(str(folder / "02_dc_cnn.ipynb"), as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in third.cells)
    assert "third 2" in "".join(o.get("text", "") for c in third.cells for o in c.get("outputs", []))
    results = json.loads((runs / "summary.json").read_text())
    assert [r["ok"] for r in results] == [True, False, True]
    timing = results[0]["batch"]
    assert timing["calibration_ms"] > 0 and timing["wall_seconds"] > 0 and timing["reference_ms"] == 270
    assert all(r["reference_seconds"] >= 0 and r["batch"] == timing for r in results)
    assert all(r["peak_rss_mb"] and r["peak_rss_mb"] > 10 for r in results)  # the kernel's memory


def test_notebook_parameters_section_of_a_params_file(setup):
    tmp, nbs, _, _ = setup
    nb1 = write_nb(nbs / "01_a.ipynb", PARAMS_CELL + "ablations = ['neither']\n", "x = 1")
    nb2 = write_nb(nbs / "02_b.ipynb", PARAMS_CELL, "x = 1")
    pf = write_params(tmp / "c.yaml", dataset="alpha", epochs=4,
                      notebook_parameters={"ablations": ["both", "imitation"]})
    rec = Recorder()
    batch.run_batch([pf], [nb1, nb2], {}, tmp / "runs", execute=rec, progress=False)
    assert rec.calls[0][2]["ablations"] == ["both", "imitation"]
    assert "ablations" not in rec.calls[1][2]  # only where the notebook declares it
    assert load_config(pf).epochs == 4  # the section is not part of the Config
    bad = write_params(tmp / "d.yaml", dataset="alpha", notebook_parameters={"nope": 1})
    with pytest.raises(ConfigError, match="notebook_parameters.nope is not a parameter"):
        batch.run_batch([bad], [nb1], {}, tmp / "runs2", execute=Recorder(), progress=False)


def test_seed_runs_and_notebook_names(tmp_path):
    from kdmri.paths import experiments_dir, runs_dir
    from kdmri.tools.notebooks import notebooks_folder, resolve_notebook

    cfg = load_config("demo_4x")
    seed_cfg = cfg.replace(experiments_root=str(experiments_dir() / "seeds" / "seed43"))
    # a seed of a study: runs/seeds/seed43/demo/acc_4x, not runs/seeds/seed43/seeds/seed43/...
    assert batch.run_folder(seed_cfg, runs_dir() / "seeds" / "seed43") == \
        runs_dir() / "seeds" / "seed43" / "demo" / "acc_4x"
    quick = cfg.replace(experiments_root=str(experiments_dir() / "quick"))
    assert batch.run_folder(quick, runs_dir()) == runs_dir() / "quick" / "demo" / "acc_4x"
    assert batch.run_folder(cfg, tmp_path) == tmp_path / "demo" / "acc_4x"
    # --notebooks 03 05_sft_kd: a number or a stem names the notebook of notebooks/
    assert resolve_notebook("03") == resolve_notebook("3") == notebooks_folder() / "03_teacher_student.ipynb"
    assert resolve_notebook("05_sft_kd") == notebooks_folder() / "05_sft_kd.ipynb"
    assert resolve_notebook("99").name == "99"  # unknown: left as given, the plan names it
    with pytest.raises(ConfigError, match="99: notebook not found"):
        batch.plan(["demo_4x"], ["99"])
