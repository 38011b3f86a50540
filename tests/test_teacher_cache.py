"""The frozen teacher's part computed once per run (kdmri.training.teacher_cache and the KD
stage's output cache) gives the same losses and gradients as running the teacher every step,
also under the bf16 + channels-last fast path, and validation never reads the cache."""

import pytest
import torch

from kdmri.distill.attention import attention_map, normalise_map
from kdmri.distill.objective import CachedTeacher
from kdmri.distill.registry import build_feature_loss
from kdmri.training import train
from kdmri.training.engine import StageRunner
from kdmri.training.stages import get_stage
from kdmri.training.strategy import default_strategy

FAST = {"precision": "bf16", "channels_last": True}


def _losses_and_grads(cfg, stage):
    torch.manual_seed(0)
    strategy = default_strategy(cfg)
    runner = StageRunner(get_stage(stage), cfg, strategy)
    ds = runner.task.dataset(runner.cfg, "train")
    model = runner.build_model()
    runner.setup(model, ds)
    net = strategy.prepare_model(model)
    out = []
    for batch in strategy.batches(strategy.train_loader(ds, cfg.batch_size, cfg.seed, 0)):
        net.zero_grad()
        loss, _ = runner.loss(net, batch)
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        out.append((loss.detach(), grads))
    runner.model = model
    return runner, out


@pytest.mark.parametrize("fast", [False, True], ids=["fp32", "bf16-channels-last"])
@pytest.mark.parametrize("stage", ["feature", "kd"])
def test_cached_teacher_gives_the_losses_and_gradients_of_the_live_teacher(tiny_cfg, stage, fast):
    cfg = tiny_cfg.replace(epochs=1, **(FAST if fast else {}))
    for s in ("teacher", "feature") if stage == "kd" else ("teacher",):
        train(cfg, s)
    cached, with_cache = _losses_and_grads(cfg, stage)
    live, without = _losses_and_grads(cfg.replace(teacher_cache=False), stage)
    if stage == "feature":
        assert isinstance(cached.feature_cache, CachedTeacher) and cached.cache is None
        assert len(cached.feature_cache.targets) == len(cached.feature_loss.pairs)
        assert cached.feature_cache.image.shape[0] == 6  # every training slice
    else:
        assert cached.cache is not None and cached.cache.shape[0] == 6
    assert live.cache is None and live.feature_cache is None
    assert len(with_cache) == len(without) == 3
    for (l1, g1), (l2, g2) in zip(with_cache, without):
        torch.testing.assert_close(l1, l2, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)


def test_validation_runs_the_teacher_not_the_training_cache(tiny_cfg):
    cfg = tiny_cfg.replace(epochs=1)
    train(cfg, "teacher")
    runner, _ = _losses_and_grads(cfg, "feature")
    # spoil the cache: a validation batch's indices must not look it up
    runner.feature_cache = CachedTeacher(runner.feature_cache.image + 1.0,
                                         [t + 1.0 for t in runner.feature_cache.targets])
    val = runner.task.dataset(runner.cfg, "validation")
    batch = next(iter(runner.strategy.batches(runner.strategy.eval_loader(val, 2))))
    loss, _ = runner.validate(runner.model, batch)
    live = StageRunner(get_stage("feature"), cfg.replace(teacher_cache=False), runner.strategy)
    model = runner.build_model()
    live.setup(model, runner.task.dataset(runner.cfg, "train"))
    model.load_state_dict(runner.model.state_dict())
    live.feature_loss.load_state_dict(runner.feature_loss.state_dict())
    assert loss == pytest.approx(live.validate(model, batch)[0], rel=1e-6)


def test_attention_targets_equal_the_loss_on_features():
    torch.manual_seed(0)
    pairs = [("s1", "t1"), ("s2", "t2")]
    s = {"s1": torch.rand(3, 4, 5, 6, requires_grad=True), "s2": torch.rand(3, 2, 5, 6, requires_grad=True)}
    t = {"t1": torch.rand(3, 8, 5, 6), "t2": torch.rand(3, 8, 5, 6)}
    loss = build_feature_loss("at_kdmri", pairs)
    targets = loss.teacher_targets(t)
    assert targets[0].shape == (3, 5, 6)  # the channel-sum map: per sample, 1/8 of the feature
    torch.testing.assert_close(normalise_map(targets[0]), attention_map(t["t1"]))
    assert loss.from_targets(s, targets).item() == loss(s, t).item()
    # the batch-normalised form normalises after the cache: the same per-sample target
    batch = build_feature_loss("at_kdmri", pairs, mode="batch")
    assert batch.from_targets(s, batch.teacher_targets(t)).item() == batch(s, t).item()
    # a teacher of another resolution: its map is interpolated to the student's, cached or not
    t_big = {"t1": torch.rand(3, 8, 10, 12), "t2": torch.rand(3, 8, 10, 12)}
    assert loss.from_targets(s, loss.teacher_targets(t_big)).item() == loss(s, t_big).item()
    with pytest.raises(ValueError, match="at_kdmri pair 0 .*teacher map \\(3, 5, 6\\) does not match"):
        loss.from_targets({"s1": torch.rand(2, 4, 5, 6), "s2": s["s2"]}, targets)


def test_a_kd_stage_without_teacher_terms_does_not_load_the_teacher(tiny_cfg):
    cfg = tiny_cfg.replace(epochs=1, kd_init="scratch", imitation_weight=0.0)
    runner = StageRunner(get_stage("kd"), cfg, default_strategy(cfg))  # no teacher trained: none needed
    runner.setup(runner.build_model(), runner.task.dataset(runner.cfg, "train"))
    assert runner.teacher is None and runner.cache is None
    assert train(cfg, "kd").joinpath("model.pt").is_file()
