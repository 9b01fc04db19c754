"""The import graph: no circle anywhere, no arrow pointing up a layer, features that do not import each other.

Read from the source (every `import`, also inside functions and `TYPE_CHECKING` blocks), so a test run
that never imports a module still checks it.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("common", "adapters", "mesh", "worker", "gateway", "sdk", "examples")

ALLOWED = {
    "common": set(),
    "adapters": {"common"},
    "mesh": {"common"},
    "worker": {"common", "adapters", "mesh"},
    "gateway": {"common", "adapters", "mesh", "worker"},
    "sdk": {"common", "mesh"},
    "examples": {"sdk"},
}
"""Which top-level packages each one may import: gateway -> (db worker) -> mesh, adapters -> common; sdk -> mesh."""

DRIVERS = {"asyncpg", "aiomysql", "pymysql", "aiosqlite", "sqlite3", "pymongo", "mongomock", "adapters", "worker"}

GATEWAY_FEATURES = {"crud", "functions", "users", "admin", "static", "mission_control", "bridge", "live"}
"""Feature modules of the gateway: each may use the core and the plumbing, never another feature."""


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module(f): f for pkg in PACKAGES for f in (ROOT / pkg).rglob("*.py")}


def _imports(name: str, path: Path) -> set[str]:
    """Every module name `name` imports (absolute, relative resolved), project or not."""
    out: set[str] = set()
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.add(target)
            out.update(f"{target}.{alias.name}" for alias in node.names)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for target in _imports(name, path):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def test_there_is_no_import_circle() -> None:
    assert _cycles(_graph()) == []


def test_no_arrow_points_up_a_layer() -> None:
    wrong = sorted(
        f"{a} -> {b}"
        for a, targets in _graph().items()
        for b in targets
        if a.split(".")[0] != b.split(".")[0] and b.split(".")[0] not in ALLOWED[a.split(".")[0]]
    )
    assert wrong == []


@pytest.mark.parametrize("package", ["mesh", "sdk"])
def test_mesh_and_sdk_import_no_database_code(package: str) -> None:
    modules = _modules()
    wrong = sorted(
        f"{name} imports {target}"
        for name, path in modules.items()
        if name.split(".")[0] == package
        for target in _imports(name, path)
        if target.split(".")[0] in DRIVERS
    )
    assert wrong == []


def test_gateway_features_do_not_import_each_other() -> None:
    def feature(module: str) -> str | None:
        parts = module.split(".")
        if len(parts) > 1 and parts[0] == "gateway" and parts[1].startswith("admin_"):
            return "admin"  # Mission Control's admin modules are one feature with admin.py
        return parts[1] if len(parts) > 1 and parts[0] == "gateway" and parts[1] in GATEWAY_FEATURES else None

    wrong = sorted(
        f"{a} -> {b}"
        for a, targets in _graph().items()
        for b in targets
        if feature(a) and feature(b) and feature(a) != feature(b)
    )
    assert wrong == []


def test_the_checker_sees_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
