"""The census changes only through its own methods: no module writes its counters."""

from __future__ import annotations

import ast
from pathlib import Path

import simkit

PACKAGE = Path(simkit.__file__).parent


def writes_to_census(tree: ast.AST) -> list[tuple[int, str]]:
    """Assignments whose target reaches into a census (``census.x += 1``,
    ``env.census.pushes["y"] += 1``, ``truth.deaf = ...`` on a census record)."""
    found = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.Assign):
            targets = list(node.targets)
        for target in targets:
            for part in ast.walk(target):
                text = ast.unparse(part)
                if isinstance(part, ast.Attribute | ast.Subscript) and (
                    "census." in text or text.startswith("self.truth.")
                ):
                    found.append((node.lineno, ast.unparse(target)))
                    break
    return found


def test_no_module_but_the_census_writes_census_state() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "census.py":
            continue
        for line, target in writes_to_census(ast.parse(path.read_text())):
            offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {target}")
    assert offenders == []


def test_the_check_finds_a_write() -> None:
    tree = ast.parse("env.census.pings += 1\nself.truth.deaf = True\nx = census.stale\n")
    assert [line for line, _ in writes_to_census(tree)] == [1, 2]
