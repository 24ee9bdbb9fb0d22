"""The layers stay layered: benchmarks -> pipelines -> rl -> engine, no import pointing up, no circles.

Every module of engine/, rl/, pipelines/ and benchmarks/ is read with `ast` (nothing is imported):
imports at any depth (inside functions too) and `importlib.import_module("...")` / `__import__("...")`
with a literal name are imports; a "package.module[:attribute]" string that names a project module
(the recipe registry's lazy references, a `python -m module` command) is a reference too: it may not
point up either, though it makes no import circle. tests/ is a consumer at the top, like benchmarks/
(benchmarks use tests/support). A circle is reported as the modules along it.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
RANK = {"engine": 0, "rl": 1, "pipelines": 2, "benchmarks": 3, "tests": 3}
WALKED = ("engine", "rl", "pipelines", "benchmarks")
IMPORT_CALLS = {"import_module", "__import__"}
MODULE_STRING = re.compile(r"(?:engine|rl|pipelines|benchmarks|tests)(?:\.\w+)+(?::\w+)?")


def project_modules(root: Path) -> dict[str, Path]:
    """Dotted name -> file of every module under the walked packages (a package is its __init__.py)."""
    modules = {}
    for top in WALKED:
        for path in sorted((root / top).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _exists(root: Path, name: str) -> bool:
    base = root.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _target(root: Path, name: str) -> str | None:
    """The project module `name` refers to: itself, or its longest existing prefix (`pkg.Class`)."""
    if name.split(".")[0] not in RANK:
        return None
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if _exists(root, ".".join(parts[:end])):
            return ".".join(parts[:end])
    return None


def _absolute(module: str, is_package: bool, level: int, name: str | None) -> str:
    """`from ..x import y` inside `module` -> the absolute dotted name it reads."""
    if not level:
        return name or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def references(root: Path, module: str, path: Path) -> tuple[set[str], set[str]]:
    """(imported, named): the project modules `module` imports, at any depth of its code, and those
    it names in a module string without importing them."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    imported: set[str] = set()
    named: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, is_package, node.level, node.module)
            imported.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in IMPORT_CALLS:
                imported.add(node.args[0].value)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_STRING.fullmatch(node.value):
            named.add(node.value.split(":")[0])
    return _resolve(root, module, path, imported), _resolve(root, module, path, named)


def _resolve(root: Path, module: str, path: Path, names: set[str]) -> set[str]:
    found = set()
    for name in names:
        if module.startswith("benchmarks.") and (path.parent / f"{name.split('.')[0]}.py").is_file():
            name = f"benchmarks.{name}"  # benchmark scripts import their siblings by bare name (`from common import ...`)
        target = _target(root, name)
        if target and target != module:
            found.add(target)
    return found


def import_graph(root: Path, *, named: bool = False) -> dict[str, set[str]]:
    """module -> the project modules it imports (with `named`: or names in a module string)."""
    graph = {}
    for module, path in project_modules(root).items():
        imported, strings = references(root, module, path)
        graph[module] = imported | strings if named else imported
    return graph


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """`a -> b` for every reference from a lower layer to a higher one."""
    rank = lambda name: RANK[name.split(".")[0]]  # noqa: E731
    return sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets if rank(b) > rank(a))


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected group of modules (Tarjan), as the path a -> ... -> a."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_circle(graph, set(group)) for group in groups]


def _circle(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """A shortest path from the group's first module back to itself, inside the group."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for nxt in sorted(graph[node] & group):
                if nxt == start:
                    return paths[node] + [start]
                if nxt not in paths:
                    paths[nxt] = paths[node] + [nxt]
                    nxt_frontier.append(nxt)
        frontier = nxt_frontier
    raise AssertionError(f"no circle through {start} in {sorted(group)}")


def package_of(module: str) -> str:
    """The sub-package a module belongs to: its first two dotted parts (`engine.data.formats.verl` ->
    `engine.data`); a top-level module or package is its own group."""
    return ".".join(module.split(".")[:2])


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The module graph folded onto sub-packages: `a -> b` when some module of a imports one of b."""
    packages: dict[str, set[str]] = {package_of(module): set() for module in graph}
    for module, targets in graph.items():
        packages[package_of(module)].update(package_of(t) for t in targets if package_of(t) != package_of(module))
    return packages


def test_no_import_points_up():
    bad = upward_imports(import_graph(REPO, named=True))
    assert not bad, "imports pointing up (order: benchmarks -> pipelines -> rl -> engine):\n" + "\n".join(bad)


def test_no_import_circles():
    cycles = import_cycles(import_graph(REPO))
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_package_circles():
    """Sub-packages are layered too: a circle between two of them (engine.data -> engine.verifiers ->
    engine.data) means code sits in the wrong one, even where no two modules import each other."""
    cycles = import_cycles(package_graph(import_graph(REPO)))
    assert not cycles, "package circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_walk_sees_every_kind_of_reference(tmp_path):
    """The checker on a small tree with one of each violation: nested and relative imports, import_module
    strings and registry-style strings all count; sibling imports of benchmark scripts resolve."""
    files = {
        "engine/__init__.py": "",
        "engine/a.py": "def f():\n    from pipelines.recipe import run\n",
        "engine/b.py": "from . import c\n",
        "engine/c.py": "import importlib\nmod = importlib.import_module('engine.b')\n",
        "engine/d.py": "RECIPE = 'rl.trainer:run'\n",
        "rl/__init__.py": "",
        "rl/trainer.py": "from engine.a import f\n",
        "pipelines/__init__.py": "",
        "pipelines/recipe.py": "from rl import trainer\nfrom engine import a\n",
        "benchmarks/common.py": "",
        "benchmarks/bench.py": "from common import x\nfrom tests.support.sim import y\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "tests" / "support").mkdir(parents=True)
    (tmp_path / "tests" / "support" / "sim.py").write_text("")
    graph = import_graph(tmp_path)
    assert graph["benchmarks.bench"] == {"benchmarks.common", "tests.support.sim"}
    assert graph["pipelines.recipe"] == {"rl.trainer", "engine.a"}
    assert graph["engine.d"] == set()  # a module string is no import ...
    assert upward_imports(graph) == ["engine.a -> pipelines.recipe"]
    assert upward_imports(import_graph(tmp_path, named=True)) == ["engine.a -> pipelines.recipe", "engine.d -> rl.trainer"]  # ... but may not point up
    cycles = import_cycles(graph)
    assert ["engine.b", "engine.c", "engine.b"] in cycles
    assert ["engine.a", "pipelines.recipe", "engine.a"] in cycles
