"""The study's converged results in notebooks 03-07 (kdmri.tools.converged): a tiny study
published into a temporary folder stands in for the package's published checkpoints."""

from __future__ import annotations

import json

import pytest
from test_study import tiny_study  # noqa: F401  (the module-scoped tiny study fixture)

import kdmri.pretrained as pretrained
from kdmri.config import load_config
from kdmri.errors import ConfigError, DataError
from kdmri.reporting.published import publish
from kdmri.tools import converged
from kdmri.training import study as protocol


@pytest.fixture(autouse=True)
def _own_manifests(own_manifests_only):
    """The tiny study is published under the package's names: the package manifest is left out."""


@pytest.fixture(scope="module")
def published(tiny_study, tmp_path_factory):  # noqa: F811
    """Seed 1 of the tiny study published into a temporary package folder."""
    tmp = tmp_path_factory.mktemp("published")
    out, manifest = tmp / "pkg" / "study", tmp / "pkg" / "manifest.yaml"
    names = publish(tiny_study["root"], 1, out, manifest, commit="abc")
    return {**tiny_study, "out": out, "manifest": manifest, "names": names, "tmp": tmp}


def _cfg(published, tmp_path, **changes):
    settings = published["settings"]
    return load_config("ci", {"data_root": settings.source, "experiments_root": str(tmp_path / "exp"),
                              "progress": False, **changes})


@pytest.mark.parametrize("family", ["core", "ablation"])
def test_every_published_model_is_evaluated_on_both_sets_as_published(published, tmp_path, family):
    cfg = _cfg(published, tmp_path)  # max_val_slices 8: the converged view uses every slice
    result = converged.converged_results(cfg, family, "study", manifests=[published["manifest"]], show=False)
    expected = converged.family_experiments(family)
    assert [m.experiment for m in result.models] == expected and result.source == "study"
    entries = pretrained.entries([published["manifest"]])
    for m in result.models:
        for test in ("slab", "shift"):
            assert m.figures[test]["psnr"] == pytest.approx(entries[m.name].metrics[test]["psnr"], abs=1e-4)
            assert m.figures[test]["ssim"] == pytest.approx(entries[m.name].metrics[test]["ssim"], abs=1e-5)
            report = json.loads((cfg.experiment(m.name, "pretrained") / f"test_{test}" / "report.json")
                                .read_text())
            assert report["n_slices"] == {"slab": 3, "shift": 2}[test]  # every slice of the tiny sets
        assert m.parameters > 0 and m.curve is not None and m.curve["lr_step"] >= 1
    row = result.table.loc[expected[0]]
    assert row["slab PSNR"] == pytest.approx(row["slab PSNR published"], abs=0.01)
    assert set(result.figures) == {"reconstructions", "learning_curves"}
    assert len(result.figures["reconstructions"].axes) == 2 * (len(expected) + 2) + 1
    assert result.summary == published["out"] / "summary.json"


def test_the_notebook_line_when_nothing_is_published_or_another_dataset(published, tmp_path, monkeypatch,
                                                                        capsys):
    empty = tmp_path / "empty.yaml"
    empty.write_text("checkpoints: {}\n")
    monkeypatch.setattr(pretrained, "MANIFEST", empty)  # the package's manifest, as it is before publishing
    monkeypatch.delenv(pretrained.MANIFEST_ENV, raising=False)
    assert converged.converged_results(_cfg(published, tmp_path), "core", show=False) is None
    out = capsys.readouterr().out.strip()
    assert out.count("\n") == 0 and "not published in this copy yet" in out and "study-publish" in out
    other = load_config("ci").replace(dataset="acdc")
    assert converged.converged_results(other, "core", manifests=[published["manifest"]], show=False) is None
    out = capsys.readouterr().out.strip()
    assert out.count("\n") == 0 and "demo dataset" in out and "acdc" in out
    # a family the study runs at 4x only, asked at 8x: said plainly, nothing evaluated
    at8 = _cfg(published, tmp_path, acc="8x")
    assert converged.converged_results(at8, "sft", manifests=[published["manifest"]], show=False) is None
    assert "at 4x only, not at 8x" in capsys.readouterr().out


def test_clear_errors_name_what_was_expected(published, tmp_path):
    import yaml

    cfg = _cfg(published, tmp_path)
    with pytest.raises(ConfigError, match="family 'cores': expected one of core, ablation, sft, sr"):
        converged.converged_results(cfg, "cores", manifests=[published["manifest"]], show=False)
    with pytest.raises(ConfigError, match="pretrained='yes': expected 'study'"):
        converged.converged_results(cfg, "core", "yes", manifests=[published["manifest"]], show=False)
    data = yaml.safe_load(published["manifest"].read_text())
    data["root"] = str(published["manifest"].parent)
    del data["checkpoints"]["study-4x-ctl_student"]
    partial = tmp_path / "partial.yaml"
    partial.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="'study-4x-ctl_student': not in the manifests"):
        converged.converged_results(cfg, "core", manifests=[partial], show=False)
    data = yaml.safe_load(published["manifest"].read_text())
    data["root"] = str(published["manifest"].parent)
    data["checkpoints"]["study-4x-kdmri_teacher"]["sha256"] = "0" * 64
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(DataError, match="study-4x-kdmri_teacher.*expected sha256 0000") as err:
        converged.converged_results(cfg, "core", manifests=[bad], show=False)
    assert "\n" not in str(err.value)


def test_comparison_table_reads_the_rows_of_the_acceleration_on_both_sets():
    row = {"comparison": "teacher - student", "acc": "4x", "seeds": 5, "difference": 0.4, "ci_low": 0.2,
           "ci_high": 0.6, "verdict": "beyond seed spread"}
    summary = {"tests": {"slab": {"comparisons": [row, {**row, "acc": "8x", "difference": 9.0}]},
                         "shift": {"comparisons": []}}}
    table = converged.comparison_table(summary, ["teacher - student"], "4x")
    assert table["test set"].tolist() == ["slab", "shift"]
    assert table.iloc[0]["a - b (dB)"] == 0.4 and table.iloc[0]["95 % CI over seeds"] == "[+0.200, +0.600]"
    assert table.iloc[1]["seeds"] == 0 and "not in the study's summary" in table.iloc[1]["95 % CI over seeds"]


def test_learning_curves_mark_the_selected_epoch_and_the_drop():
    from kdmri.reporting.published import curves_frame
    from kdmri.reporting.studyfigs import learning_curves

    record = {"kind": "teacher", "acc": "4x", "model": "kdmri_teacher", "seed": 42, "score": "val_psnr",
              "values": [20.0, 25.0, 26.0, 25.5], "lr_step": 2, "selected": 3}
    ax = learning_curves(curves_frame([record])).axes[0]
    curve, selected, drop = ax.lines[:3]  # then the legend's two markers
    assert list(curve.get_ydata()) == record["values"]
    assert (selected.get_xdata()[0], selected.get_ydata()[0]) == (3, 26.0) and drop.get_xdata()[0] == 2


def test_none_trains_the_family_of_one_seed_at_the_seeded_epochs(published, tmp_path, capsys):
    cfg = _cfg(published, tmp_path, seed=3)
    result = converged.converged_results(cfg, "core", None, manifests=[published["manifest"]], show=False,
                                         calibration=0.2)
    root = cfg.experiments_path / "study" / "seed3"
    out = capsys.readouterr().out
    assert "training the core family at the study's schedule (seed 3, 4x): about" in out
    assert not any(root.joinpath("pilot").glob("**/train_log.csv"))  # the pilot did not run
    assert json.loads((root / "study.json").read_text())["params"] == "ci"  # the published study's settings
    assert json.loads((root / "pilot" / "teacher.json").read_text())["seeded_from"].endswith("summary.json")
    assert (root / "units" / "seed3-4x-core.json").is_file()
    assert not (root / "units" / "seed3-4x-ablation.json").exists()  # only the family's units
    assert result.source == "trained"
    assert [m.experiment for m in result.models] == converged.family_experiments("core")
    summary = json.loads((published["out"] / "summary.json").read_text())
    for m in result.models:
        assert m.checkpoint.is_relative_to(root / "seeds" / "seed3")
        assert set(m.figures) == {"slab", "shift"} and m.published is not None
    teacher = next(m for m in result.models if m.experiment == "kdmri_teacher")
    chosen = summary["epochs"]["teacher"]["chosen"]
    assert (len(teacher.curve["values"]), teacher.curve["lr_step"]) == protocol.schedule(chosen)
    # a second call trains nothing more
    again = converged.converged_results(cfg, "core", "none", manifests=[published["manifest"]], show=False,
                                        calibration=0.2)
    assert "about 0.00 h" in capsys.readouterr().out
    assert again.table.equals(result.table)
