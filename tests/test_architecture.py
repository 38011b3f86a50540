"""The package's shape, checked from the source (AST), so the rules hold from now on:

* layers import only downward: base -> physics -> data -> models -> distill -> training ->
  evaluation -> reporting -> tutorial -> tools (a module may import its own layer or lower);
* no import cycle among kdmri's modules, function-level imports included;
* no module over 450 lines.

docs/ARCHITECTURE.md describes the layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kdmri"
MAX_LINES = 450

#: Layer of every module, by longest matching prefix (order = import direction).
LAYERS = ("base", "physics", "data", "models", "distill", "training", "evaluation", "reporting",
          "tutorial", "tools")
PREFIXES = {
    "kdmri": "base", "kdmri.errors": "base", "kdmri.paths": "base", "kdmri.io": "base",
    "kdmri.registry": "base",
    "kdmri.config": "base", "kdmri.progress": "base",
    "kdmri.physics": "physics", "kdmri.metrics": "physics",
    "kdmri.data": "data", "kdmri.datasets": "data",
    "kdmri.models": "models", "kdmri.checkpoint": "models",
    "kdmri.distill": "distill",
    "kdmri.training": "training",
    "kdmri.evaluation": "evaluation",
    "kdmri.reporting": "reporting",
    "kdmri.tutorial": "tutorial", "kdmri.runs": "tutorial", "kdmri.api": "tutorial",
    "kdmri.notebook_knobs": "tutorial",
    "kdmri.tools": "tools", "kdmri.__main__": "tools",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer_of(module: str) -> str:
    best = max((p for p in PREFIXES if module == p or module.startswith(p + ".")), key=len, default=None)
    if best is None:
        raise AssertionError(f"{module}: no layer assigned; add it to PREFIXES in {__file__}")
    return PREFIXES[best]


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """kdmri modules imported anywhere in ``path`` (function-level imports included)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parent + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name.startswith("kdmri") and name != module:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {m: imports_of(m, p, modules) for m, p in modules.items()}


def test_every_module_has_a_layer():
    for module in all_modules():
        layer_of(module)


def test_layers_import_only_downward():
    bad = []
    for module, targets in import_graph().items():
        mine = LAYERS.index(layer_of(module))
        for target in targets:
            if LAYERS.index(layer_of(target)) > mine:
                bad.append(f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)})")
    assert not bad, "upward imports:\n" + "\n".join(sorted(bad))


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checks_catch_violations():
    """The detectors themselves: a cycle and an upward edge are found."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert LAYERS.index(layer_of("kdmri.physics.fft")) < LAYERS.index(layer_of("kdmri.training.engine"))


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_size(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path}: {n} lines (at most {MAX_LINES}); split it by idea"
