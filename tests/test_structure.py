"""The package's shape: imports go one way (no cycle, in-function imports included), nothing
imports the command line, and no file grows past 500 lines."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "autoresearch_portable"
NAME = PKG.name
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Every package module `module` imports, at the top or inside a function: `from X import Y`
    counts as X.Y where that is a module, else as X (a package's own __init__ is not counted
    for its submodules: importing a.b runs a/__init__ first, but that is Python's order, not
    an edge this package chose)."""
    is_pkg = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                src = ".".join(base + ([node.module] if node.module else []))
            else:
                src = node.module or ""
            for a in node.names:
                found.add(f"{src}.{a.name}" if f"{src}.{a.name}" in known else src)
    return {m for m in found if m in known and m != module}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(m, p, set(mods)) for m, p in mods.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_the_graph_sees_in_function_imports():
    graph = _graph()
    assert f"{NAME}.data.build" in graph[f"{NAME}.data"]  # data/__init__ imports prepare on first use
    assert f"{NAME}.backends.mlx" in graph[f"{NAME}.backends"]  # load_backend, inside a function


def test_no_import_cycle():
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_nothing_imports_the_cli():
    users = sorted(m for m, deps in _graph().items() if f"{NAME}.cli" in deps and m != f"{NAME}.__main__")
    assert users == []


def test_no_package_file_over_500_lines():
    long = {str(p.relative_to(PKG)): n for p in PKG.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


# Folders from the top down: a module imports only from its own folder or from folders below it.
# detect/ and backends/ know nothing of the harness; inside the harness, one experiment (experiment,
# workspace) uses records (ledger, verdict, results), which use the device's baseline (sizing,
# calibration, normalization), which runs runs (launch, runtime, confinement, clock), which are
# scored by the evaluator (score/).
LAYERS = (
    ("cli", "__main__"),
    ("cluster",),
    ("harness.experiment", "harness.workspace", "harness"),
    ("harness.records",),
    ("harness.baseline",),
    ("harness.run",),
    ("harness.score",),
    ("backends",),
    ("detect",),
    ("data",),
    ("errors", "fsutil", "paths", ""),
)


def _layer(module: str) -> int:
    """The index in LAYERS of the longest folder (or module) prefix that `module` falls under."""
    rel = module[len(NAME) + 1:] if module != NAME else ""
    best, depth = None, -1
    for i, names in enumerate(LAYERS):
        for n in names:
            if (n == "" or rel == n or rel.startswith(n + ".")) and len(n) > depth:
                best, depth = i, len(n)
    return best


def _upward(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} -> {d}" for m, deps in graph.items() for d in deps if _layer(d) < _layer(m))


def test_imports_point_down_folder_by_folder():
    assert _upward(_graph()) == []


def test_the_folder_check_finds_an_upward_import():
    assert _upward({f"{NAME}.detect.probe": {f"{NAME}.harness.run.peak"}}) == [
        f"{NAME}.detect.probe -> {NAME}.harness.run.peak"]
    assert _upward({f"{NAME}.harness.records.ledger": {f"{NAME}.harness.run.launch"}}) == []


def test_no_test_machinery_in_the_package():
    users = sorted(str(p.relative_to(PKG)) for p in PKG.rglob("*.py")
                   if any(isinstance(n, (ast.Import, ast.ImportFrom)) and any(
                       (getattr(n, "module", None) or a.name).startswith(("unittest", "pytest")) for a in n.names)
                          for n in ast.walk(ast.parse(p.read_text()))))
    assert users == []
