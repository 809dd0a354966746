"""The conda route and the pip route must install the same runtime dependencies."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# conda-forge names for the same packages
CONDA_NAMES = {"redis-py": "redis"}


def _name(spec: str) -> str:
    name = re.split(r"[<>=!~ \[]", spec.strip(), maxsplit=1)[0].lower()
    return CONDA_NAMES.get(name, name)


def _names(spec: str) -> set[str]:
    """A pip requirement's package and the packages its extras name (``dask[distributed]``
    is ``dask`` and ``distributed`` on conda-forge)."""
    extras = re.search(r"\[(.*?)\]", spec)
    named = {e.strip().lower() for e in extras.group(1).split(",")} if extras else set()
    return {_name(spec)} | named


def test_environment_yml_lists_exactly_the_runtime_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = set().union(*(_names(spec) for spec in project["dependencies"]))
    dev = {_name(spec) for spec in project["optional-dependencies"]["dev"]}
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = lines.index("dependencies:")
    listed = {
        _name(line.split("#")[0].strip()[2:])
        for line in lines[start + 1 :]
        if line.strip().startswith("- ") and not line.strip().startswith("- pip:")
    }
    listed -= {"python", "pip"}
    assert runtime <= listed, f"missing from environment.yml: {runtime - listed}"
    assert listed <= runtime | dev, f"not in pyproject: {listed - runtime - dev}"


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
