"""The import plan (#36): no circle among psyprobe's modules, and no import pointing back up the
layers — read from the source, lazy imports inside functions included (they are still a
dependency), imports for type checking alone left out (they never run).

The layers, lowest first: what a package may import is in its own layer or below.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
LAYERS: list[set[str]] = [
    # neutral ground: no psyprobe import but among themselves
    {"errors", "version", "untrusted", "inputs", "libraries", "stats", "progress"},
    {"instruments"},
    {"prompting"},
    {"models", "records"},
    {"scoring", "runs"},
    {"safety", "capability"},  # the measures' own data, readers and metrics
    {"report"},
    {"engine", "collected", "editing"},
    {"study"},
    {"api", "cli", "__main__", "__init__"},  # the front doors
]
# Imports that still point up, each with the change that removes it: only ever shrinks.
KNOWN_UPWARD: set[tuple[str, str]] = set()
pytestmark = pytest.mark.unit


def _modules() -> dict[str, Path]:
    root = SRC / "psyprobe"
    return {
        ".".join(f.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__"): f
        for f in root.rglob("*.py")
    }


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module → the psyprobe modules it imports (outside ``if TYPE_CHECKING:``)."""

    def resolve(name: str) -> str:
        while name not in modules:
            name = name.rpartition(".")[0]
        return name

    edges: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for inner in ast.walk(node)
        }
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("psyprobe"):
                base = node.module or ""
                targets = [resolve(f"{base}.{a.name}") for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [resolve(a.name) for a in node.names if a.name.startswith("psyprobe")]
            else:
                continue
            edges[module].update(t for t in targets if t != module)
    return edges


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_no_module_imports_itself_through_others() -> None:
    edges = _imports(_modules())
    seen: dict[str, int] = {}  # 1: on the current path, 2: done
    circles: list[list[str]] = []

    def walk(module: str, path: list[str]) -> None:
        seen[module] = 1
        for target in sorted(edges[module]):
            if seen.get(target) == 1:
                circles.append([*path[path.index(target) :], target])
            elif target not in seen:
                walk(target, [*path, target])
        seen[module] = 2

    for module in sorted(edges):
        if module not in seen:
            walk(module, [module])
    assert not circles, "\n".join(" → ".join(c) for c in circles)


def test_no_import_points_back_up_the_layers() -> None:
    layer = {package: n for n, packages in enumerate(LAYERS) for package in packages}
    modules = _modules()
    assert {_package(m) for m in modules} == set(layer), "a package without a layer"
    upward = {
        (_package(a), _package(b)): f"{a} → {b}"
        for a, targets in _imports(modules).items()
        for b in targets
        if layer[_package(b)] > layer[_package(a)]
    }
    assert set(upward) - KNOWN_UPWARD == set(), "\n".join(
        upward[k] for k in sorted(set(upward) - KNOWN_UPWARD)
    )
    assert set(upward) >= KNOWN_UPWARD, "a known upward import is gone: drop it from the list"
