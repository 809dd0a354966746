"""The installed kit carries no benchmark code: it lives in the checkout's ``benchmarks/``.

The wheel is what ``pyproject.toml``'s package search finds; these tests hold that search,
and simkit's own sources, to it (no module of the old names, no import of SimPy or of the
benchmarks package from inside simkit).
"""

import ast
import importlib.util
import tomllib
from pathlib import Path

import pytest
from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[2]
SIMKIT = ROOT / "simkit"


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports, wherever the import statement is."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_the_wheel_packages_simkit_and_nothing_else() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = find_packages(str(ROOT), **config["packages"]["find"])
    assert "simkit" in packages
    assert [p for p in packages if not p.startswith("simkit")] == []


@pytest.mark.parametrize("name", ["bench", "bench_live", "soak"])
def test_simkit_has_no_benchmark_module(name) -> None:
    assert importlib.util.find_spec(f"simkit.{name}") is None
    assert not (SIMKIT / f"{name}.py").exists()


def test_nothing_in_simkit_imports_simpy_or_the_benchmarks() -> None:
    sources = sorted(SIMKIT.rglob("*.py"))
    assert len(sources) > 10  # the walk found the package
    offenders = {
        str(path.relative_to(ROOT)): sorted(imports & {"simpy", "benchmarks"})
        for path in sources
        if (imports := imported_modules(path)) & {"simpy", "benchmarks"}
    }
    assert offenders == {}


def test_the_import_check_would_see_a_lazy_import(tmp_path) -> None:
    # The benchmarks imported SimPy inside functions; the check must catch that form too.
    module = tmp_path / "m.py"
    module.write_text("def f():\n    import simpy.core\n    from benchmarks import run\n")
    assert imported_modules(module) == {"simpy", "benchmarks"}
