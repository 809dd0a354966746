"""The census changes only through its own methods: no module writes its counters.

The guard reads each module's syntax tree, not its text: a census is any expression named
``census`` (``census``, ``env.census``, ``self.core.env.census``) or a census record
(``truth``, ``self.truth``), plus any local name bound to one or to a part of one
(``counts = env.census.pushes``). Writing census state is then: storing to or deleting an
attribute or item below one (``=``, ``+=``, annotated, ``for``/``with`` targets, ``del``),
calling a mutating method on a part of one (``census.pushes.append(...)``; the census's own
methods, ``census.count_push(...)``, are its API), ``setattr``/``delattr`` on one, or a
``heapq``/``bisect`` function given a part of one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import simkit

PACKAGE = Path(simkit.__file__).parent

CENSUS_NAMES = frozenset({"census", "truth"})  # names and attributes that hold a census
MUTATORS = frozenset(
    {
        "append",
        "appendleft",
        "add",
        "clear",
        "discard",
        "extend",
        "extendleft",
        "insert",
        "pop",
        "popitem",
        "popleft",
        "remove",
        "reverse",
        "rotate",
        "setdefault",
        "sort",
        "update",
        "difference_update",
        "intersection_update",
        "symmetric_difference_update",
        "__setitem__",
        "__delitem__",
        "__setattr__",
        "__delattr__",
        "__iadd__",
        "__isub__",
    }
)
MUTATING_FUNCTIONS = frozenset(
    {"heappush", "heappop", "heapify", "heapreplace", "heappushpop", "insort", "insort_right"}
)


class _Reach:
    """What an expression is: a census (or record), a part of one, or neither."""

    def __init__(self, tree: ast.AST) -> None:
        self.holders: set[str] = set()  # local names bound to a census
        self.parts: set[str] = set()  # local names bound to a part of one
        for _ in range(3):  # aliases of aliases: a few passes reach a fixed point
            for node in ast.walk(tree):
                if isinstance(node, ast.Assign | ast.AnnAssign | ast.NamedExpr):
                    value = node.value
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    kind = self.kind(value) if value is not None else None
                    for target in targets:
                        if isinstance(target, ast.Name) and kind is not None:
                            (self.holders if kind == "census" else self.parts).add(target.id)

    def kind(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            if node.id in CENSUS_NAMES or node.id in self.holders:
                return "census"
            return "part" if node.id in self.parts else None
        if isinstance(node, ast.Attribute):
            if node.attr in CENSUS_NAMES:
                return "census"
            return "part" if self.kind(node.value) is not None else None
        if isinstance(node, ast.Subscript):
            return "part" if self.kind(node.value) is not None else None
        return None


def writes_to_census(tree: ast.AST) -> list[tuple[int, str]]:
    """Every write to census state in ``tree``: (line, the expression written)."""
    reach = _Reach(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute | ast.Subscript) and isinstance(
            node.ctx, ast.Store | ast.Del
        ):
            if reach.kind(node.value) is not None:
                found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Call):
            func = node.func
            if (
                isinstance(func, ast.Attribute)
                and func.attr in MUTATORS
                and reach.kind(func.value) == "part"
            ):
                found.append((node.lineno, ast.unparse(func)))
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            first = reach.kind(node.args[0]) if node.args else None
            if (name in ("setattr", "delattr") and first is not None) or (
                name in MUTATING_FUNCTIONS and first == "part"
            ):
                found.append((node.lineno, ast.unparse(node)))
    return sorted(found)


def offenders(package: Path) -> list[str]:
    """``path:line: expression`` for every census write in ``package`` outside census.py."""
    out = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "census.py":
            continue
        for line, target in writes_to_census(ast.parse(path.read_text())):
            out.append(f"{path.relative_to(package.parent)}:{line}: {target}")
    return out


def test_no_module_but_the_census_writes_census_state() -> None:
    assert offenders(PACKAGE) == []


SYNTHETIC = """\
env.census.pings += 1
self.truth.deaf = True
census.pushes["lost"] = 3
self.core.env.census.rows["t"].append(1.0)
counts = env.census.pushes
counts["x"] += 1
del census.servers[4]
setattr(truth, "live", False)
for census.cursor in range(3): pass
heapq.heappush(census.queue, 1)
c = self.env.census
c.stale.add(7)
x: int = census.stale
x = census.stale
census.count_push(1)
env.census.set_current(truth, None)
n = len(census.tabs.get(3, ()))
self.census = Census()
env.census = None
items.append(census.stale)
"""


def test_the_check_finds_every_kind_of_write_and_passes_reads() -> None:
    lines = [line for line, _ in writes_to_census(ast.parse(SYNTHETIC))]
    assert lines == [1, 2, 3, 4, 6, 7, 8, 9, 10, 12]


def test_the_check_fails_on_a_synthetic_module(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "actors").mkdir(parents=True)
    (package / "runtime").mkdir()
    (package / "runtime" / "census.py").write_text("self.census.stale = 1\n")  # its own
    (package / "actors" / "good.py").write_text("env.census.count_push(1)\n")
    (package / "actors" / "bad.py").write_text(
        "x = 1\ncounted = env.census.cluster\ncounted.clear()\n"
    )
    assert offenders(package) == ["pkg/actors/bad.py:3: counted.clear"]
