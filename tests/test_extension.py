"""The payoff of the registries: from this file alone, a new feature-KD method and a new toy
dataset are registered and run through training, evaluation and the ablation recipe on the
quick profile (params/ci.yaml). Nothing else in the package changes for them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kdmri.checkpoint import LAST, load_checkpoint
from kdmri.config import load_config
from kdmri.datasets import (
    DatasetSpec,
    PrepareOptions,
    SourceVolume,
    prepare,
    register_dataset,
    unregister_dataset,
)
from kdmri.datasets.examples import make_example_source
from kdmri.distill.registry import FEATURE_LOSSES, FeatureLoss, register_feature_loss
from kdmri.evaluation import evaluate
from kdmri.physics.masks import make_dataset_masks
from kdmri.runs import ablation_summary, run_ablation
from kdmri.training import train
from kdmri.training.recipes import ABLATIONS, Variant, register_ablation

# ---------------------------------------------------------------- a new feature-KD method


class ChannelMeanLoss(FeatureLoss):
    """Toy method: squared difference of the channel-mean maps of each layer pair."""

    def pair_loss(self, index, student, teacher):
        return (student.mean(dim=1) - teacher.mean(dim=1)).pow(2).mean()


@pytest.fixture
def toy_method():
    register_feature_loss("toy_mean")(ChannelMeanLoss)
    register_ablation("method-toy_mean", Variant("feature stage with the toy method, then KD",
                                                 ("feature", "kd"), {"feature_loss": "toy_mean"}))
    yield "toy_mean"
    del FEATURE_LOSSES["toy_mean"], ABLATIONS["method-toy_mean"]  # leave the registries as found


# ---------------------------------------------------------------- a new toy dataset
# As it would be written in kdmri/datasets/toy.py: a download of .npy volumes, its reader
# and an example writer, registered as one DatasetSpec.

TOY_SPLITS = {"train": "train", "val": "validation"}


def toy_write_example(folder: Path, n_subjects: int, n_slices: int) -> None:
    """``<train|val>/subjectN.npy`` volumes (24, 20, slices): smooth blobs, the last subject
    for validation."""
    rng = np.random.default_rng(0)
    h, w = TOY_SHAPE
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    for k in range(n_subjects):
        vol = np.stack([sum(np.exp(-((yy - rng.uniform(-.5, .5)) ** 2 + (xx - rng.uniform(-.5, .5)) ** 2)
                                   * rng.uniform(3, 9)) for _ in range(3)) for _ in range(n_slices)], -1)
        path = folder / ("val" if k == n_subjects - 1 else "train") / f"subject{k}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vol * 100)


def toy_discover(src: Path, options: PrepareOptions) -> list[SourceVolume]:
    return [SourceVolume(name=p.stem, subject=p.stem, sources=(p,), shape=tuple(np.load(p).shape),
                         load=lambda p=p: np.load(p), official_split=TOY_SPLITS.get(p.parent.name))
            for p in sorted(src.rglob("*.npy"))]


TOY_SHAPE = (24, 20)
TOY = DatasetSpec(name="toy", shape=TOY_SHAPE, label="Toy", title="toy blobs (.npy)",
                  discover=toy_discover, write_example=toy_write_example,
                  official_split=TOY_SPLITS, module=__name__)


@pytest.fixture
def toy_data(tmp_path):
    """The toy dataset registered, its example download converted by kdmri's own driver."""
    register_dataset(TOY)
    try:
        masks = tmp_path / "masks"
        make_dataset_masks(["toy"], accs=(4,), root=masks)
        src = make_example_source("toy", tmp_path / "download", n_subjects=4, n_slices=4)
        report = prepare("toy", src, tmp_path / "datasets", PrepareOptions(
            accs=("4x",), masks_root=masks, split="official", progress=False))
        assert report.volumes == {"train": 3, "validation": 1}
        yield tmp_path / "datasets" / "toy"
    finally:
        unregister_dataset("toy")


def quick_profile(data_root, tmp_path, **changes):
    """params/ci.yaml (the notebooks' quick profile) on the toy dataset."""
    return load_config("ci", {"dataset": "toy", "data_root": str(data_root),
                              "experiments_root": str(tmp_path / "exp"), "batch_size": 2, **changes})


def test_new_method_trains_evaluates_and_runs_as_an_ablation(toy_method, toy_data, tmp_path):
    cfg = quick_profile(toy_data, tmp_path)
    train(cfg, "teacher")
    mine = cfg.replace(feature_loss=toy_method, method="toy")
    out = train(mine.replace(teacher_method=cfg.method), "feature")
    history = load_checkpoint(out / LAST)["history"]
    assert [row["epoch"] for row in history] == [1, 2]
    assert history[-1]["train_feature"] < history[0]["train_feature"]  # the toy loss is learned
    report = evaluate(mine.replace(teacher_method=cfg.method), "feature")
    assert report["method"] == "toy" and np.isfinite(report["metrics"]["psnr"]["mean"])
    assert report["dataset"] == "toy" and report["n_slices"] == 4 and report["n_volumes"] == 1
    # through the ablation recipe, beside the plain student
    rep = run_ablation(cfg, "method-toy_mean")
    assert rep["config"]["feature_loss"] == "toy_mean" and rep["role"] == "kd"
    run_ablation(cfg, "neither")
    table = ablation_summary(cfg, ["method-toy_mean"])
    assert list(table.index) == ["neither", "method-toy_mean"]
    assert ABLATIONS["method-toy_mean"].changes == {"feature_loss": "toy_mean"}


def test_an_unknown_method_is_a_clear_error(toy_data, tmp_path):
    from kdmri.errors import ConfigError

    cfg = quick_profile(toy_data, tmp_path, feature_loss="nonesuch")
    train(cfg, "teacher")
    with pytest.raises(ConfigError, match="feature_loss='nonesuch'"):
        train(cfg, "feature")
