"""Imports point downwards: no module imports in a circle, and no chat SDK below the surfaces."""

from __future__ import annotations

import ast

from tests.helpers import ROOT

PACKAGES = ("bot", "handlers", "workers", "platforms")
BELOW_THE_SURFACES = ("handlers", "workers", "platforms")
CHAT_SDKS = ("slack_sdk", "slack_bolt")


def module_name(path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path, modules: frozenset[str] = frozenset()) -> set[str]:
    """Every module `path` imports, at any depth (a function-level import is still a dependency).
    `from package import submodule` depends on the submodule (one of `modules`), not the package."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & modules
            names.update(submodules)
            if len(submodules) < len(node.names):
                names.add(node.module)
    return names


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    modules = frozenset(files)
    return {name: {m for m in imported(path, modules) if m in files and m != name} for name, path in files.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_in_a_circle():
    assert cycles(graph()) == []


def test_no_chat_sdk_below_the_surfaces():
    offenders = [str(path.relative_to(ROOT)) for package in BELOW_THE_SURFACES for path in (ROOT / package).rglob("*.py")
                 if any(name.split(".")[0] in CHAT_SDKS for name in imported(path))]
    assert offenders == []
