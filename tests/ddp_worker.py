"""Run under torchrun by tests/test_distributed.py: trains the stages named on the command
line with the configuration in a JSON file, and records which rank wrote which file."""

import json
import os
import sys
from pathlib import Path

import torch

import kdmri.io
from kdmri.config import Config
from kdmri.training import train

torch.set_num_threads(1)
spec = json.loads(Path(sys.argv[1]).read_text())
rank = int(os.environ["RANK"])
writes = Path(spec["writes_dir"]) / f"rank{rank}.txt"
real_atomic_path = kdmri.io.atomic_path


def recording_atomic_path(path):
    with open(writes, "a") as fh:
        fh.write(f"{path}\n")
    return real_atomic_path(path)


kdmri.io.atomic_path = recording_atomic_path  # every kdmri writer goes through this helper
for run in spec["runs"]:
    cfg = Config(**run["config"])
    # reuse=False: train under DDP even where an identical stage exists (the test compares them)
    train(cfg, run["stage"], stop_after=run.get("stop_after"), reuse=False)
