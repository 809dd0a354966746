"""The package's import graph holds the layering the README describes.

Read from the source with ``ast`` (nothing is imported), every import counts, also one
inside a function: a function-level import still ties the two modules together, it only
hides the tie until the function runs. Imports under ``if TYPE_CHECKING:`` are left out,
since they never run. Three rules:

- no cycles between modules,
- no underscore name imported from another module (``from simkit.x import _y``): what
  another module needs is public API, named and documented as such,
- each module imports only from its own floor or lower ones (:data:`FLOORS`).

Each failure names the module, the import statement and its file and line. The checker is
also run on tiny synthetic packages, so it is shown able to fail.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

SIMKIT = Path(__file__).resolve().parents[1] / "simkit"

# Module prefix -> floor; the first matching prefix wins. A module may import from its own
# floor and the floors below it. "simkit" (the package itself) matches what no line above
# names, so a new top-level module sits on the top floor until it is given a place here.
FLOORS: list[tuple[str, int]] = [
    ("simkit.model", 0),
    ("simkit.calibration", 0),
    ("simkit.runtime", 1),
    ("simkit.actors", 2),
    ("simkit.scenarios", 2),
    ("simkit.results", 2),
    ("simkit.checks", 2),
    ("simkit.plots", 2),
    ("simkit.net", 3),
    ("simkit.virtual", 3),
    ("simkit.live", 3),
    ("simkit.browser", 3),
    ("simkit.api", 4),
    ("simkit.grading", 4),
    ("simkit.cli", 4),
    ("simkit.study", 4),
    ("simkit.widgets", 4),
    ("simkit.adapters", 4),  # imported by web apps: only the pure model below it
    ("simkit.__main__", 4),
    ("simkit", 4),
]


@dataclass(frozen=True)
class Import:
    """One module-to-module edge: ``source`` imports ``target`` at ``path:line``."""

    source: str
    target: str
    names: tuple[str, ...]  # the names taken from ``target`` (empty for ``import x``)
    path: Path
    line: int
    statement: str

    def where(self) -> str:
        return f"{self.path}:{self.line}: {self.source} has `{self.statement}`"


def modules_of(root: Path) -> dict[str, Path]:
    """Every module of the package in ``root`` (a folder with ``__init__.py``), by name."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def is_type_checking(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` or ``if typing.TYPE_CHECKING:``."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement in ``node``, at any depth, except under TYPE_CHECKING."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
        return
    if isinstance(node, ast.If) and is_type_checking(node.test):
        children: list[ast.AST] = list(node.orelse)  # the else branch does run
    else:
        children = list(ast.iter_child_nodes(node))
    for child in children:
        yield from import_nodes(child)


def resolve_from(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module name ``from ... import`` reads from (relative imports resolved)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level - 1 > len(base) - 1:
        raise ValueError(f"{module}: relative import beyond the top package (level {node.level})")
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(root: Path) -> tuple[dict[str, Path], list[Import]]:
    """The package's modules and every import between two of them."""
    modules = modules_of(root)
    top = root.name
    edges: list[Import] = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in import_nodes(tree):
            statement = ast.unparse(node)
            if isinstance(node, ast.Import):
                targets = [(alias.name, ()) for alias in node.names]
            else:
                base = resolve_from(name, is_package, node)
                taken: dict[str, tuple[str, ...]] = {}
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    # ``from pkg import sub`` names a module when pkg/sub is one
                    if sub in modules:
                        taken.setdefault(sub, ())
                    else:
                        taken[base] = (*taken.get(base, ()), alias.name)
                targets = list(taken.items())
            for target, names in targets:
                if target == top or target.startswith(top + "."):
                    rel = path.relative_to(root.parent)  # e.g. simkit/api.py
                    edges.append(Import(name, target, names, rel, node.lineno, statement))
    return modules, edges


def floor_of(module: str, floors: Sequence[tuple[str, int]]) -> int:
    for prefix, floor in floors:
        if module == prefix or module.startswith(prefix + "."):
            return floor
    raise LookupError(f"{module} matches no prefix of the floor table {[p for p, _ in floors]}")


def cycles(modules: dict[str, Path], edges: list[Import]) -> list[list[Import]]:
    """One cycle (as its edges, in order) per strongly connected group of modules."""
    graph: dict[str, list[Import]] = {name: [] for name in modules}
    for edge in edges:
        if edge.target in graph:  # an import of a missing module is no edge
            graph[edge.source].append(edge)
    # Tarjan's strongly connected components, iteratively (no recursion limit).
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            outgoing = graph[node]
            if i < len(outgoing):
                work.append((node, i + 1))
                nxt = outgoing[i].target
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            for edge in outgoing:  # children done: take their low links
                if edge.target in on_stack:
                    low[node] = min(low[node], low[edge.target])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                self_loop = any(e.target == node for e in graph[node])
                if len(group) > 1 or self_loop:
                    groups.append(group)
    return [cycle_through(sorted(group), graph) for group in groups]


def cycle_through(group: list[str], graph: dict[str, list[Import]]) -> list[Import]:
    """A shortest cycle from the group's first module back to it, inside the group."""
    members = set(group)
    start = group[0]
    paths: dict[str, list[Import]] = {start: []}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for edge in graph[node]:
                if edge.target == start:
                    return [*paths[node], edge]
                if edge.target in members and edge.target not in paths:
                    paths[edge.target] = [*paths[node], edge]
                    following.append(edge.target)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {group}")  # pragma: no cover


def private_imports(edges: list[Import]) -> list[Import]:
    """Imports that take a ``_name`` (not a ``__dunder__``) from another module."""
    return [
        e
        for e in edges
        if any(n.startswith("_") and not n.endswith("__") for n in e.names)
        or any(part.startswith("_") and not part.endswith("__") for part in e.target.split("."))
    ]


def floor_violations(edges: list[Import], floors: Sequence[tuple[str, int]]) -> list[str]:
    return [
        f"{e.where()}: floor {floor_of(e.source, floors)} imports {e.target} "
        f"on floor {floor_of(e.target, floors)}"
        for e in edges
        if floor_of(e.target, floors) > floor_of(e.source, floors)
    ]


def describe_cycle(cycle: list[Import]) -> str:
    chain = " -> ".join([cycle[0].source, *(e.target for e in cycle)])
    return f"cycle {chain}:\n" + "\n".join(f"    {e.where()}" for e in cycle)


# The runtimes: adapters side by side on one floor. Each may use the floors below (the real
# sockets in simkit.net included) but never another runtime: what two of them share lives
# below them, so a change to one runtime cannot break another.
SIBLINGS = ("simkit.virtual", "simkit.live", "simkit.browser")


def sibling_imports(edges: list[Import], siblings: Sequence[str] = SIBLINGS) -> list[str]:
    """Imports from one runtime package into another."""

    def package(module: str) -> str | None:
        return next((p for p in siblings if module == p or module.startswith(p + ".")), None)

    return [
        f"{e.where()}: runtime {package(e.source)} imports runtime {package(e.target)}"
        for e in edges
        if package(e.source) and package(e.target) and package(e.source) != package(e.target)
    ]


def check(root: Path, floors: Sequence[tuple[str, int]]) -> dict[str, list[str]]:
    """Every violation in the package at ``root``, as messages, by rule."""
    return violations(*imports_of(root), floors)


def violations(
    modules: dict[str, Path], edges: list[Import], floors: Sequence[tuple[str, int]]
) -> dict[str, list[str]]:
    return {
        "cycles": [describe_cycle(c) for c in cycles(modules, edges)],
        "private": [
            f"{e.where()}: imports the private name(s) "
            f"{[n for n in e.names if n.startswith('_')] or e.target} from {e.target}"
            for e in private_imports(edges)
        ],
        "floors": floor_violations(edges, floors),
        "siblings": sibling_imports(edges),
    }


# --- the package itself ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> tuple[dict[str, Path], list[Import]]:
    return imports_of(SIMKIT)


@pytest.fixture(scope="module")
def found(graph) -> dict[str, list[str]]:
    return violations(*graph, FLOORS)


def test_the_package_is_found_with_its_imports(graph) -> None:
    modules, edges = graph
    assert {"simkit", "simkit.api", "simkit.model", "simkit.runtime.census"} <= set(modules)
    assert any(e.source == "simkit" for e in edges)  # the package __init__ re-exports
    assert all(floor_of(m, FLOORS) in range(5) for m in modules)


def test_no_import_cycles(found) -> None:
    assert not found["cycles"], "\n".join(found["cycles"])


def test_no_private_names_imported_across_modules(found) -> None:
    assert not found["private"], "\n".join(found["private"])


def test_each_module_imports_only_from_its_floor_or_below(found) -> None:
    assert not found["floors"], "\n".join(found["floors"])


def test_no_runtime_imports_another(found) -> None:
    assert not found["siblings"], "\n".join(found["siblings"])


def test_the_checker_finds_a_runtime_importing_another(tmp_path) -> None:
    root = write(
        tmp_path,
        {
            "__init__.py": "",
            "live/__init__.py": "",
            "live/runtime.py": "class LiveRuntime: ...\n",
            "browser/__init__.py": "",
            "browser/runtime.py": "from pkg.live.runtime import LiveRuntime\n",
            "net/__init__.py": "",
            "net/base.py": "X = 1\n",
            "virtual/__init__.py": "",
            "virtual/runtime.py": "from pkg.net.base import X\n",
        },
    )
    _, edges = imports_of(root)
    found = sibling_imports(edges, ("pkg.virtual", "pkg.live", "pkg.browser"))
    assert len(found) == 1 and "runtime pkg.browser imports runtime pkg.live" in found[0]


# --- the checker, shown able to fail --------------------------------------------------------


def write(root: Path, files: dict[str, str]) -> Path:
    """A synthetic package ``pkg`` under ``root``: {relative path: source}."""
    for rel, source in files.items():
        path = root / "pkg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return root / "pkg"


TOY_FLOORS = [("pkg.low", 0), ("pkg.high", 1), ("pkg", 1)]


def test_the_checker_finds_a_cycle_through_a_function_level_import(tmp_path) -> None:
    pkg = write(
        tmp_path,
        {
            "__init__.py": "",
            "high/__init__.py": "",
            "high/a.py": "from pkg.high import b\n",
            "high/b.py": "def f():\n    from . import c\n",
            "high/c.py": "import pkg.high.a\n",
        },
    )
    found = check(pkg, TOY_FLOORS)
    assert len(found["cycles"]) == 1, found
    message = found["cycles"][0]
    assert "pkg.high.a -> pkg.high.b -> pkg.high.c -> pkg.high.a" in message
    assert "high/b.py:2: pkg.high.b has `from . import c`" in message
    assert not found["private"] and not found["floors"]


def test_the_checker_finds_a_private_import_and_a_floor_violation(tmp_path) -> None:
    pkg = write(
        tmp_path,
        {
            "__init__.py": "",
            "low/__init__.py": "",
            "low/core.py": "_secret = 1\n\ndef g():\n    from pkg.high.api import run\n",
            "high/__init__.py": "",
            "high/api.py": "from ..low.core import _secret\n\ndef run():\n    pass\n",
        },
    )
    found = check(pkg, TOY_FLOORS)
    (private,) = found["private"]
    assert "high/api.py:1: pkg.high.api has `from ..low.core import _secret`" in private
    assert "['_secret'] from pkg.low.core" in private
    (floor,) = found["floors"]
    assert "low/core.py:4: pkg.low.core has `from pkg.high.api import run`" in floor
    assert "floor 0 imports pkg.high.api on floor 1" in floor
    assert len(found["cycles"]) == 1  # core -> api -> core, through g's import


def test_the_checker_ignores_type_checking_imports_but_not_their_else(tmp_path) -> None:
    pkg = write(
        tmp_path,
        {
            "__init__.py": "",
            "low/__init__.py": "",
            "low/a.py": (
                "import typing\nfrom typing import TYPE_CHECKING\n\n"
                "if TYPE_CHECKING:\n    from pkg.high.b import _Thing\n"
                "if typing.TYPE_CHECKING:\n    import pkg.high.b\n"
            ),
            "high/__init__.py": "",
            "high/b.py": "from pkg.low import a\n",
        },
    )
    assert check(pkg, TOY_FLOORS) == {"cycles": [], "private": [], "floors": [], "siblings": []}
    (pkg / "low" / "a.py").write_text(
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    pass\n"
        "else:\n    from pkg.high import b\n",
        encoding="utf-8",
    )
    found = check(pkg, TOY_FLOORS)
    assert len(found["cycles"]) == 1 and len(found["floors"]) == 1, found


def test_the_floor_table_first_match_wins_and_unknown_modules_fail() -> None:
    assert floor_of("simkit.model.registry", FLOORS) == 0
    assert floor_of("simkit.live", FLOORS) == 3
    assert floor_of("simkit.apiary", FLOORS) == 4  # by dotted prefix, not by characters
    assert floor_of("simkit", FLOORS) == 4
    with pytest.raises(LookupError, match=r"other\.mod matches no prefix"):
        floor_of("other.mod", FLOORS)
