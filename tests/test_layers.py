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


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the nodes inside `if TYPE_CHECKING:` blocks (annotations only: never executed)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for n in node.body:
                skip.update(id(m) for m in ast.walk(n))
    return skip


def module_graph() -> dict[str, set[str]]:
    """repspace module -> the repspace modules it imports (at module level or inside functions)."""
    def name_of(path: Path) -> str:
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    mods = {name_of(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text())
        skip = _type_checking_only(tree)
        deps: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in mods)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    deps.add(full if full in mods else node.module)
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def test_no_import_cycle_between_modules():
    """Not even between the modules of one package, lazy imports included (a cycle is a design knot)."""
    graph = module_graph()
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> list[str]:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [m, n] if n in stack else [m, n]
            if state.get(n) is None and (found := visit(n, stack + [m])):
                return found
        state[m] = 2
        return []

    for m in sorted(graph):
        if state.get(m) is None and (cycle := visit(m, [])):
            raise AssertionError(" -> ".join(cycle))


def test_no_source_file_above_500_lines():
    long = {str(p.relative_to(ROOT)): n for p in ROOT.rglob("*.py") if (n := len(p.read_text().splitlines())) > 500}
    assert not long, long


def test_only_collections_touches_a_store():
    """The CLI, the service and the integrations use `Collection` methods; a `Store` is the collection core's."""
    offenders = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] == "collections":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "store":
                offenders.append(f"{rel}:{node.lineno}")
            if isinstance(node, ast.ImportFrom) and node.module and node.module.endswith(("_store", ".store")) \
                    and node.module.startswith("repspace.collections"):
                offenders.append(f"{rel}:{node.lineno}")
    assert not offenders, offenders
