"""``precision: auto`` takes bf16 only where it is fast (oneDNN's bf16 kernels on the CPU, a
GPU that supports it), fp32 elsewhere, and the checkpoint says which one a run used. On an
AVX2 CPU bf16 is emulated and several times slower than fp32 (benchmarks/fastpath_avx2.md),
so the demo's ``auto`` must not pick it there."""

from __future__ import annotations

import pytest
import torch

from kdmri.checkpoint import LAST, load_checkpoint
from kdmri.config import Config
from kdmri.errors import ConfigError
from kdmri.training import strategy, train


def test_fixed_precisions_are_kept_and_unknown_ones_named():
    assert strategy.resolve_precision("fp32") == "fp32"
    assert strategy.resolve_precision("bf16") == "bf16"
    with pytest.raises(ConfigError, match="precision='fp16'"):
        strategy.resolve_precision("fp16")
    with pytest.raises(ConfigError, match="'fp32', 'bf16' or 'auto'"):
        Config(precision="fp16")
    assert Config(precision="auto").precision == "auto"  # resolved by the strategy, per machine


@pytest.mark.parametrize("fast", [True, False])
def test_auto_follows_the_cpus_bf16_kernels(monkeypatch, fast):
    monkeypatch.setattr(strategy, "cpu_bf16_fast", lambda: fast)
    assert strategy.resolve_precision("auto", "cpu") == ("bf16" if fast else "fp32")
    assert strategy.SingleProcess("cpu", "auto").precision == ("bf16" if fast else "fp32")


@pytest.mark.parametrize("isa", ["SSE41", "AVX2", "avx2_vnni"])
def test_a_capped_onednn_isa_means_fp32(monkeypatch, isa):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
    assert strategy.cpu_bf16_fast() is False
    assert strategy.resolve_precision("auto", "cpu") == "fp32"


def test_an_avx512_cap_leaves_the_cpu_to_decide(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert strategy.cpu_bf16_fast() == torch.ops.mkldnn._is_mkldnn_bf16_supported()


def test_the_checkpoint_records_the_precision_a_run_used(tiny_cfg, monkeypatch):
    for fast in (False, True):
        monkeypatch.setattr(strategy, "cpu_bf16_fast", lambda fast=fast: fast)
        cfg = tiny_cfg.replace(precision="auto", epochs=1, method=f"auto{int(fast)}")
        ckpt = load_checkpoint(train(cfg, "teacher") / LAST)
        assert ckpt["config"]["precision"] == "auto"
        assert ckpt["precision_used"] == ("bf16" if fast else "fp32")


@pytest.mark.parametrize("fast", [True, False])
def test_the_study_plan_says_when_its_bf16_step_costs_do_not_apply(monkeypatch, tmp_path, fast):
    from kdmri.tools.study import precision_warning
    from kdmri.training.study import Settings

    monkeypatch.setattr(strategy, "cpu_bf16_fast", lambda: fast)
    note = precision_warning(tmp_path, Settings())  # the demo's params: precision auto
    assert (note is None) if fast else ("is fp32 on this machine" in note and "understate" in note)
    assert precision_warning(tmp_path, Settings(overrides={"precision": "fp32"})) is None
