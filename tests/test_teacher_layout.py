"""The frozen teacher runs in the batches' memory format (channels-last when configured)."""

import torch

from kdmri.training.engine import StageRunner, train
from kdmri.training.stages import get_stage
from kdmri.training.strategy import default_strategy


def test_the_teacher_is_channels_last_with_the_batches(tiny_cfg):
    cfg = tiny_cfg.replace(epochs=1, channels_last=True, kd_init="scratch")
    train(cfg, "teacher")
    for flag in (True, False):
        run = cfg.replace(channels_last=flag)
        runner = StageRunner(get_stage("kd"), get_stage("kd").configure(run), default_strategy(run))
        convs = [m for m in runner.load_teacher().modules() if isinstance(m, torch.nn.Conv2d)]
        assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) == flag
                             for c in convs if min(c.weight.shape[:2]) > 1)  # C=1: both formats
