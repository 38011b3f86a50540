"""The committed notebooks follow the conventions (docs/NOTEBOOKS.md), the checker of
kdmri.tools.notebooks catches breaches, and the kdmri.tutorial helpers the notebooks call work."""

import math

import nbformat.v4 as nbf
import numpy as np
import pytest
import torch

from kdmri import tutorial as nb
from kdmri.config import FIELDS, NOTEBOOK_KEY, ConfigError, load_config, read_params
from kdmri.errors import DataError
from kdmri.tools import notebooks as nbt
from kdmri.tools.notebooks import discover_notebooks

NOTEBOOKS = discover_notebooks()


# --------------------------------------------------------------------------- committed notebooks


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_follows_the_conventions(path):
    assert nbt.check_notebook(path) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_defer_to_the_ci_profile(path):
    defaults = nbt.parameter_defaults(nbt.read_notebook(path))
    assert defaults.pop("params_file") == nbt.DEFAULT_PARAMS == "ci"
    assert all(v is None for v in defaults.values()), path.name
    ci = read_params("ci")
    knobs = {k for k in defaults if k not in FIELDS}
    assert knobs <= set(ci[NOTEBOOK_KEY]), f"{path.name}: ci.yaml lacks {knobs - set(ci[NOTEBOOK_KEY])}"
    # the notebook's Config is the one params/ci.yaml gives (same runs, same folder)
    config_params = {k: v for k, v in defaults.items() if k in FIELDS}
    assert nb.notebook_config("ci", verbose=False, **config_params) == load_config("ci")


def test_only_params_file_set_uses_that_files_settings(tmp_path, capsys):
    params = tmp_path / "one.yaml"
    params.write_text("dataset: demo\nepochs: 1\nlr: 0.005\nnotebook_parameters:\n  kd_epochs: 3\n"
                      "  ablations: [both]\n")
    cfg = nb.notebook_config(params, dataset=None, epochs=None, lr=None, progress=None)
    assert (cfg.epochs, cfg.lr, cfg.progress) == (1, 0.005, True)
    knobs = nb.notebook_knobs(params, kd_epochs=None, ablations=None, metric_level=None)
    assert knobs == (3, ["both"], "slice")
    assert "overrides" not in capsys.readouterr().out
    assert nb.notebook_knobs(params, kd_epochs=5) == (5,)
    assert "parameters cell overrides the params file: kd_epochs=3 -> 5" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="kd_epochz"):
        nb.notebook_knobs(params, kd_epochz=1)


def test_save_figure_writes_only_with_a_run_folder(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    nb.set_figures_dir(None)
    assert nb.save_figure(fig, "x") == []
    params = tmp_path / "run.yaml"
    params.write_text(f"dataset: demo\nnotebook_parameters:\n  figures_dir: {tmp_path / 'figures'}\n")
    nb.notebook_config(params, verbose=False)
    try:
        written = nb.save_figure(fig, "curves")
        assert [p.name for p in written] == ["curves.png", "curves.pdf"]
        assert written[0].read_bytes()[:4] == b"\x89PNG" and written[1].read_bytes()[:4] == b"%PDF"
    finally:
        nb.set_figures_dir(None)
        plt.close(fig)


def test_readme_badges_follow_the_repository_address(tmp_path):
    readme = (nbt.project_root() / "README.md").read_text()
    assert nbt.readme_badges() in readme
    assert nbt.binder_badge() in readme and nbt.colab_badge("00_data.ipynb") in readme
    copy = tmp_path / "README.md"
    copy.write_text("# Title\n\ntext\n")
    url = "https://github.com/someone/kdmri"
    assert nbt.sync_readme(copy, url) and nbt.binder_badge(repo_url=url) in copy.read_text()
    assert not nbt.sync_readme(copy, url)
    assert "<org>" in nbt.setup_source() and "placeholder" in nbt.setup_source()


def test_there_are_notebooks_with_checked_outputs():
    checked = [c for p in NOTEBOOKS for c in nbt.read_notebook(p).cells if nbt.CHECK_TAG in nbt._tags(c)]
    assert len(checked) >= 6 and all(c.execution_count and c.outputs for c in checked)


# --------------------------------------------------------------------------- the checker


@pytest.fixture
def good(tmp_path):
    path = nbt.new_notebook(tmp_path / "05_example.ipynb", "05 · Example")
    notebook = nbt.read_notebook(path)
    notebook.cells.append(nbf.new_code_cell("print(1)", metadata={"tags": [nbt.CHECK_TAG]},
                                            execution_count=3, outputs=[nbf.new_output(
                                                "stream", name="stdout", text="1\n")]))
    nbt.write_notebook(notebook, path)
    return path


def _breach(path, change):
    notebook = nbt.read_notebook(path)
    change(notebook)
    nbt.write_notebook(notebook, path)
    return nbt.check_notebook(path)


def test_a_new_notebook_passes(good):
    assert nbt.check_notebook(good) == []
    with pytest.raises(ConfigError, match="already exists"):
        nbt.new_notebook(good, "again")


def test_outputs_in_an_unchecked_cell(good):
    def change(n):
        n.cells[4].outputs = [nbf.new_output("stream", name="stdout", text="hi\n")]
        n.cells[4].execution_count = 1
    assert any("not tagged 'nbval-check-output'" in p for p in _breach(good, change))


def test_unrun_checked_cell_with_outputs(good):
    def change(n):
        n.cells[-1].execution_count = None
    assert any("not executed with outputs" in p for p in _breach(good, change))


def test_checked_output_must_be_plain_text(good):
    def change(n):
        n.cells[-1].outputs = [nbf.new_output("display_data", data={"image/png": "AAAA"})]
    assert any("stdout or plain text" in p for p in _breach(good, change))


def test_absolute_paths(good):
    def change(n):
        n.cells.append(nbf.new_markdown_cell("see /home/someone/data"))
    assert any("absolute path" in p for p in _breach(good, change))


def test_parameters_cell_rules(good):
    def two_cells(n):
        n.cells.append(nbf.new_code_cell("x = 1", metadata={"tags": ["parameters"]}))
    assert any("exactly one cell tagged 'parameters'" in p for p in _breach(good, two_cells))


def test_parameters_must_be_plain_literals(good):
    def change(n):
        n.cells[3].source += "\nepochs = 2 * 3"
    assert any("plain literal" in p for p in _breach(good, change))


def test_params_file_and_unused_parameters(good):
    def change(n):
        n.cells[3].source = n.cells[3].source.replace("params_file = 'ci'", "params_file = None")
        n.cells[3].source += "\nunused_knob = 3"
    problems = _breach(good, change)
    assert any("`params_file = 'ci'`" in p for p in problems)
    assert any("['unused_knob'] must be None" in p for p in problems)
    assert any("'unused_knob' is never used" in p for p in problems)


def test_badge_setup_cell_and_papermill_leftovers(good):
    def change(n):
        n.cells[0].source = "# Title without badge"
        n.cells[1].source = "import kdmri"
        n.metadata["papermill"] = {"parameters": {}}
        n.cells.insert(4, nbf.new_code_cell("x = 1", metadata={"tags": ["injected-parameters"]}))
    problems = _breach(good, change)
    assert any("Colab badge" in p for p in problems)
    assert any("set-up cell" in p for p in problems)
    assert any("papermill metadata" in p for p in problems)
    assert any("injected-parameters" in p for p in problems)


def test_strip_outputs_keeps_only_checked_cells(good):
    notebook = nbt.read_notebook(good)
    notebook.metadata["papermill"] = {}
    notebook.cells[4].outputs = [nbf.new_output("stream", name="stdout", text="x\n")]
    notebook.cells[4].execution_count = 7
    notebook.cells[4].metadata["execution"] = {"t": 1}
    notebook.cells[-1].outputs = [nbf.new_output("stream", name="stdout", text="a\n"),
                                  nbf.new_output("stream", name="stdout", text="b\n")]
    notebook.cells.insert(4, nbf.new_code_cell("y = 2", metadata={"tags": ["injected-parameters"]}))
    stripped = nbt.strip_outputs(notebook)
    assert "papermill" not in stripped.metadata
    assert not any("injected-parameters" in nbt._tags(c) for c in stripped.cells)
    assert stripped.cells[4].outputs == [] and stripped.cells[4].execution_count is None
    assert "execution" not in stripped.cells[4].metadata
    assert [o["text"] for o in stripped.cells[-1].outputs] == ["a\nb\n"]  # streams coalesced
    assert stripped.cells[-1].execution_count == 3


def test_sync_rewrites_badge_and_setup_cell(good):
    url = "https://github.com/someone/kdmri"
    assert nbt.sync_notebook(good, url) is True
    notebook = nbt.read_notebook(good)
    assert nbt.colab_badge(good.name, url) in notebook.cells[0].source
    assert f'REPO_URL = "{url}"' in notebook.cells[1].source
    assert any("Colab badge" in p for p in nbt.check_notebook(good))  # differs from nbt.REPO_URL now
    assert nbt.sync_notebook(good, url) is False
    nbt.sync_notebook(good)
    assert nbt.check_notebook(good) == []


def test_notebooks_command_checks_and_strips(good, capsys):
    from kdmri.tools.cli import main

    assert main(["notebooks", "check", str(good)]) == 0 and capsys.readouterr().out == ""
    notebook = nbt.read_notebook(good)
    notebook.cells[4].outputs = [nbf.new_output("stream", name="stdout", text="x\n")]
    nbt.write_notebook(notebook, good)
    assert main(["notebooks", "check", str(good)]) == 1
    assert "outputs or an execution count" in capsys.readouterr().out
    assert main(["notebooks", "strip", str(good)]) == 0
    assert main(["notebooks", "check", str(good)]) == 0


def test_links():
    url = "https://github.com/org/kdmri"
    assert nbt.colab_url("01_masks.ipynb", url) == (
        "https://colab.research.google.com/github/org/kdmri/blob/main/notebooks/01_masks.ipynb")
    assert nbt.binder_url("01_masks.ipynb", url) == (
        "https://mybinder.org/v2/gh/org/kdmri/main?urlpath=lab/tree/notebooks/01_masks.ipynb")
    assert nbt.binder_badge(repo_url=url).startswith("[![Binder]")
    assert f'"{nbt.REPO_URL}"' in nbt.setup_source()


# --------------------------------------------------------------------------- helpers


def test_notebook_config_precedence(tmp_path, capsys):
    params = tmp_path / "p.yaml"
    params.write_text("dataset: demo\nepochs: 30\nlr: 0.005\n")
    cfg = nb.notebook_config(params, epochs=3, seed=None)
    assert cfg.epochs == 3 and cfg.lr == 0.005 and cfg.seed == 42  # cell > file > defaults
    out = capsys.readouterr().out
    assert "parameters cell overrides the params file: epochs=30 -> 3" in out
    assert "demo 4x | 3 epochs" in out
    with pytest.raises(ConfigError, match="epochz"):
        nb.notebook_config(None, epochz=3)


def test_ensure_data_names_the_missing_folder(tiny_cfg, tmp_path):
    assert nb.ensure_data(tiny_cfg) == tiny_cfg.data_path
    with pytest.raises(DataError, match="prepare"):
        nb.ensure_data(tiny_cfg.replace(data_root=str(tmp_path / "nowhere")))
    with pytest.raises(DataError, match="named 'demo'"):
        nb.ensure_data(tiny_cfg.replace(dataset="demo", data_root=str(tmp_path / "elsewhere")))


def test_masks_and_summary():
    masks = nb.load_masks(["demo"], accs=(4, 8))
    assert set(masks) == {("demo", "4x"), ("demo", "8x")}
    text = nb.mask_summary(masks)
    assert "demo       4x   96x96    24/96   cols      9   25.00%" in text
    regular = nb.equispaced_mask((8, 20), 4)
    centred = np.fft.fftshift(regular)
    assert centred[:, 10].all() and set(np.unique(regular)) == {0.0, 1.0}
    assert centred[0].sum() == len(set(range(2, 20, 4)) | {9, 10, 11})
    assert np.array_equal(nb.equispaced_mask((20, 8), 4, axis=0), regular.T)
    assert "rows" in nb.mask_summary(nb.load_masks(["cardiac"], accs=(4,)))


def test_models_features_attention_and_parameters(tiny_cfg):
    batch = nb.validation_slice(tiny_cfg)
    assert batch["input"].shape == (1, 1, 32, 24) and len(batch["volume"]) == 1
    teacher, student = nb.initial_model(tiny_cfg, "teacher"), nb.initial_model(tiny_cfg, "student")
    assert torch.equal(student.cascades[0].convs[0].weight,
                       nb.initial_model(tiny_cfg, "student").cascades[0].convs[0].weight)  # seeded
    summary = nb.parameter_summary({"teacher": teacher, "student": student})
    assert "teacher: 141,765 parameters" in summary and "student: 49,285 parameters" in summary
    assert "65.2 % fewer than the teacher" in summary
    assert nb.describe_cascade(student) == "1 -> 32 -> 32 -> 1 (3 3x3 convs, ReLU between)"
    maps = nb.attention_maps(teacher, batch, ["cascade1.conv3", "cascade5.conv3"])
    assert len(maps) == 2 and maps[0].shape == (32, 24)
    assert math.isclose(float(np.linalg.norm(maps[0])), 1.0, rel_tol=1e-5)
    with pytest.raises(KeyError, match="cascade1.conv9"):
        nb.attention_maps(student, batch, ["cascade1.conv9"])
    assert nb.feature_loss_value(tiny_cfg, student, teacher, batch) > 0
    assert nb.image(batch["target"]).shape == (32, 24)
    with pytest.raises(IndexError):
        nb.validation_slice(tiny_cfg, 99)


def test_feature_loss_value_is_the_training_stages_loss(tiny_cfg):
    """Built by the feature stage itself: feature_pairs, fsp's own pairs and fitnet's
    regressors follow the config, as in training."""
    from kdmri.distill.losses import build_feature_loss, default_fsp_pairs

    batch = nb.validation_slice(tiny_cfg)
    teacher, student = nb.initial_model(tiny_cfg, "teacher"), nb.initial_model(tiny_cfg, "student")
    s_feat, t_feat = nb.forward(student, batch).features, nb.forward(teacher, batch).features
    pair = [["cascade1.conv2", "cascade1.conv3"]]
    one = nb.feature_loss_value(tiny_cfg.replace(feature_pairs=pair), student, teacher, batch)
    want = build_feature_loss("at_kdmri", [tuple(pair[0])], mode="sample")(s_feat, t_feat)
    assert one == pytest.approx(float(want), rel=1e-6)
    assert one != pytest.approx(nb.feature_loss_value(tiny_cfg, student, teacher, batch), rel=1e-3)
    fsp = nb.feature_loss_value(tiny_cfg.replace(feature_loss="fsp", feature_forms="kdmri"),
                                student, teacher, batch)
    want = build_feature_loss("fsp", default_fsp_pairs())(s_feat, t_feat)
    assert fsp == pytest.approx(float(want), rel=1e-6)
    fsp = nb.feature_loss_value(tiny_cfg.replace(feature_loss="fsp"), student, teacher, batch)
    outs = [f"cascade{i}.out" for i in range(1, 5)]
    consecutive = [((a, b), (a, b)) for a, b in zip(outs[:-1], outs[1:])]
    want = build_feature_loss("fsp", consecutive, square=True)(s_feat, t_feat)  # the reference form
    assert fsp == pytest.approx(float(want), rel=1e-6)
    fitnet = nb.feature_loss_value(tiny_cfg.replace(feature_loss="fitnet", feature_forms="kdmri"),
                                   student, teacher, batch)
    assert math.isfinite(fitnet) and fitnet > 0
    # the reference form normalises along the batch axis: it vanishes on a single slice
    assert nb.feature_loss_value(tiny_cfg.replace(feature_loss="fitnet"), student, teacher, batch) == 0


def test_results_helpers_after_training(tiny_cfg):
    from kdmri.evaluation.evaluate import evaluate
    from kdmri.training.engine import train

    cfg = tiny_cfg.replace(epochs=1)
    for stage in ("teacher", "student"):
        train(cfg, stage)
    for stage in ("zf", "teacher", "student"):
        evaluate(cfg, stage)
    logs = nb.read_train_logs(cfg, {"T": "teacher"})
    assert list(logs) == ["T"] and len(logs["T"]) == 1
    batch = nb.validation_slice(cfg, 0)
    images = nb.reconstructions(cfg, {"ZF": "zf", "target": "target", "teacher": "teacher"}, batch)
    assert list(images) == ["ZF", "target", "teacher"] and images["teacher"].shape == (32, 24)
    assert np.allclose(images["ZF"], nb.image(batch["input"]))
    table = nb.results_for(cfg, ["zf", "teacher", "student"])
    assert list(table.index) == ["ZF", "teacher", "student"]
    assert "| ZF |" in nb.markdown(table).data
    d = nb.slice_differences(cfg, "teacher", "student")
    assert d.shape == (2,)
    text = nb.describe_difference({"mean": 0.5, "ci_low": 0.25, "ci_high": 0.75, "n": 16})
    assert text == "KD - student PSNR: +0.500 dB, 95 % CI [+0.250, +0.750] over 16 slices (paired)"
    trained = nb.trained_model(cfg, "teacher")
    assert not trained.training
    with pytest.raises(DataError, match="kd"):
        nb.reconstructions(cfg, {"KD": "kd"}, batch)
    with pytest.raises(DataError, match="train the 'kd' stage"):
        nb.read_train_logs(cfg, {"KD": "kd"})


def test_environment_report_names_versions():
    text = nb.environment_report()
    assert text.startswith("kdmri ") and f"torch {torch.__version__}" in text
