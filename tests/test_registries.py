"""One registry type for every named extension, each filled when its package is imported."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from kdmri.errors import ConfigError
from kdmri.registry import Registry, UnknownName

#: (module, attribute, built-in names that importing the module alone must register)
REGISTRIES = [
    ("kdmri.models.registry", "MODELS", {"dccnn", "vdsr", "sft", "unet"}),
    ("kdmri.distill.registry", "FEATURE_LOSSES", {"at_kdmri", "at", "fitnet", "sp", "cc", "fsp"}),
    ("kdmri.distill.objective", "TERMS", {"l1", "imitation", "feature", "sft"}),
    ("kdmri.training.stages", "INITIALISERS", {"scratch", "feature", "sft"}),
    ("kdmri.training.stages", "STAGES", {"teacher", "student", "feature", "kd", "sr-kd"}),
    ("kdmri.training.recipes", "ABLATIONS", {"neither", "both", "method-fsp"}),
    ("kdmri.models.tasks", "TASKS", {"recon", "sr"}),
    ("kdmri.datasets.registry", "DATASETS", {"cardiac", "mrbrain", "knee", "calgary", "demo"}),
    ("kdmri.physics.masks", "_GENERATORS", {"cartesian"}),
]


#: Registries whose entries live in other modules than the registry itself.
FILLED_ELSEWHERE = [r for r in REGISTRIES if r[1] in ("MODELS", "FEATURE_LOSSES", "DATASETS")]


@pytest.mark.parametrize("module, name, built_in", REGISTRIES, ids=[r[1] for r in REGISTRIES])
def test_every_registry_is_one_type_and_holds_the_built_ins(module, name, built_in):
    registry = getattr(importlib.import_module(module), name)
    assert type(registry) is Registry
    assert built_in <= set(registry), f"{module}.{name} lacks {built_in - set(registry)}"


@pytest.mark.parametrize("module, name, built_in", FILLED_ELSEWHERE, ids=[r[1] for r in FILLED_ELSEWHERE])
def test_importing_the_registry_module_alone_fills_it(module, name, built_in):
    """A fresh process that imports only the registry's module sees every built-in entry."""
    code = f"import {module} as m; print(' '.join(sorted(m.{name})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert built_in <= set(out.stdout.split()), f"{module}.{name}: {out.stdout!r}"


def test_registry_reads_as_a_dict_and_names_the_known_entries():
    reg: Registry[int] = Registry("widget", hint=" (register one with add)")
    reg.add("a", 1)
    reg.register("b")(2)
    assert "a" in reg and reg["b"] == 2 and sorted(reg) == ["a", "b"]
    assert dict(reg.items()) == {"a": 1, "b": 2}
    assert reg.get("zzz") is None
    message = r"^widget 'zzz': expected one of \['a', 'b'\] \(register one with add\)$"
    for lookup in (lambda: reg["zzz"], lambda: reg.lookup("zzz")):
        with pytest.raises(UnknownName, match=message):
            lookup()
    with pytest.raises(KeyError):  # dict users still catch a KeyError
        reg["zzz"]
    with pytest.raises(ConfigError, match="feature_loss='zzz': expected one of"):
        reg.lookup("zzz", "feature_loss")
    reg.add("a", 1)  # the same object again: fine
    with pytest.raises(ConfigError, match="widget 'a' is already registered"):
        reg.add("a", 3)
    reg.add("a", 3, replace=True)
    reg.remove("a")
    assert sorted(reg) == ["b"]
