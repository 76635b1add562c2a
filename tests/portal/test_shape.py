"""The shape of the code base: which app may import which, and how long a module may grow.

Read from the source with `ast`, so an import inside a function counts as much as one at the
top of a module (deferring an import hides a cycle from Python, not from a reader)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The project's apps: every package with an AppConfig, and `portal` (code the apps share).
# (Six apps when issue #22 asked for this test; any new one is counted from the start.)
APPS = sorted({path.parent.name for path in ROOT.glob("*/apps.py")} | {"portal"})
# The project package wires the apps together (settings, URLs) and also keeps a few helpers
# of its own (outbound limits, ids, health): each of its modules is a node of its own, so that
# `urls.py` importing every app is no cycle while a helper importing an app that imports it is.
PROJECT = "emodal_portal"

MAX_LINES = 450


def app_modules() -> Iterator[Path]:
    for package in [*APPS, PROJECT]:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).parts
            if "migrations" not in parts and "tests" not in parts:
                yield path


def node_of(dotted: str) -> str | None:
    """The graph's node for an imported module (None: not the project's code)."""
    parts = dotted.split(".")
    if parts[0] in APPS:
        return parts[0]
    if parts[0] == PROJECT:
        return ".".join(parts[:2])
    return None


def imported(source: str, module: str) -> Iterator[tuple[str, int]]:
    """Each module (dotted, absolute) that `module`'s source imports, with its line, wherever
    the import is."""
    package = module.split(".")[:-1]  # a package's __init__ counts as inside the package
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from package import module` imports the module.
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno


def app_graph() -> dict[str, dict[str, str]]:
    """{node: {node it imports: where (the first such import, as path:line)}}."""
    graph: dict[str, dict[str, str]] = {}
    for path in app_modules():
        dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        source = node_of(dotted.removesuffix(".__init__"))
        assert source is not None
        for name, line in imported(path.read_text(), dotted):
            target = node_of(name)
            if target is not None and target != source:
                where = f"{path.relative_to(ROOT)}:{line}"
                graph.setdefault(source, {}).setdefault(target, where)
    return graph


def find_cycle(graph: dict[str, dict[str, str]]) -> list[str] | None:
    """One cycle of the graph as [a, b, …, a], or None."""
    state: dict[str, str] = {}  # "open" while on the path, "done" once explored

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for target in sorted(graph.get(node, {})):
            if state.get(target) == "open":
                return [*path[path.index(target) :], node, target]
            if target not in state:
                found = visit(target, [*path, node])
                if found:
                    return found
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [])
            if found:
                return found
    return None


def test_the_graph_sees_imports_inside_functions_and_relative_ones() -> None:
    source = (
        "import os\n"
        "from . import sibling\n"
        "from ..other import thing\n"
        "def later():\n"
        "    from queries_app.services import start_query\n"
    )
    found = {name for name, _ in imported(source, "containers_app.engine.module")}
    assert found == {
        "os",
        "containers_app.engine.sibling",
        "containers_app.other.thing",
        "queries_app.services.start_query",
    }
    assert find_cycle({"a": {"b": "x"}, "b": {"c": "y"}, "c": {"a": "z"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": "x"}, "b": {"c": "y"}}) is None


def cycle_text(graph: dict[str, dict[str, str]], cycle: list[str]) -> str:
    return "\n  ".join(f"{a} -> {b} ({graph[a][b]})" for a, b in pairwise(cycle))


def test_the_apps_import_each_other_without_a_cycle() -> None:
    graph = app_graph()
    assert {"queries_app", "sessions_app"} <= set(graph)  # the walk did read the code
    cycle = find_cycle(graph)
    if cycle:
        pytest.fail("Import cycle between apps:\n  " + cycle_text(graph, cycle))


def module_lengths() -> dict[str, int]:
    return {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for path in app_modules()
        if path.relative_to(ROOT).parts[0] in APPS
    }


def test_no_module_of_the_apps_is_over_the_limit() -> None:
    lengths = module_lengths()
    assert lengths, "the walk did read the code"
    over = {module: n for module, n in lengths.items() if n > MAX_LINES}
    assert not over, f"over {MAX_LINES} lines, to split: " + ", ".join(
        f"{module} ({n})" for module, n in sorted(over.items())
    )
