"""The package layers of docs/architecture.md: no import cycle between repspace's sub-packages, counting the
imports inside functions too (a lazy import is still a dependency)."""

import ast
from pathlib import Path

import repspace

ROOT = Path(repspace.__file__).parent


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "repspace" else None


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        pkg = rel.parts[0]
        deps = graph.setdefault(pkg, set())
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
            for n in names:
                p = _package(n)
                if p and p != pkg:
                    deps.add(p)
    return graph


def test_no_import_cycle_between_packages():
    graph = package_graph()
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(p, stack):
        state[p] = 1
        for q in sorted(graph.get(p, ())):
            if state.get(q) == 1:
                cycle.extend(stack[stack.index(q):] + [p, q] if q in stack else [p, q])
                return True
            if state.get(q) is None and visit(q, stack + [p]):
                return True
        state[p] = 2
        return False

    for p in sorted(graph):
        if state.get(p) is None and visit(p, []):
            break
    assert not cycle, " -> ".join(cycle)


def test_low_layers_import_nothing_above_them():
    graph = package_graph()
    assert graph["ops"] <= {"errors"}, graph["ops"]
    assert graph["training"] <= {"ops", "errors", "_io"}, graph["training"]  # the one loop, below its users
    assert graph["index"] <= {"ops", "errors", "_io", "spaces", "encoders", "compress", "estimator"}, graph["index"]
    for low in ("spaces", "datasets", "estimator", "nets"):
        assert not graph.get(low, set()) & {"cli", "service", "collections", "report", "studies", "compat"}, low
