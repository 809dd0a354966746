"""The notebooks as files: each .ipynb has its jupytext py:percent twin, in sync; lessons and
solutions are stored executed, without a traceback; the nbval sanitizer file is well formed.

nbval itself (``pytest --nbval notebooks``) re-runs the notebooks and compares outputs; these
checks are the cheap ones that catch a notebook edited on one side only, or committed
without running it.
"""

import re
from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
ALL = sorted(p for p in NOTEBOOKS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def is_exercise(path: Path) -> bool:
    """An exercise is stored unexecuted (its answer cell is for the learner to fill)."""
    return path.parent.name == "exercises" and "solution" not in path.stem


EXECUTED = [p for p in ALL if not is_exercise(p)]


def ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(NOTEBOOKS)) for p in paths]


def test_the_sequence_is_there() -> None:
    names = set(ids(ALL))
    for name in [
        "01_the_reload_bug.ipynb",
        "02_the_cleanup_race.ipynb",
        "04_page_lifecycle.ipynb",
        "05_identity_and_tabs.ipynb",
        "07_scale.ipynb",
        "exercises/ex1_survive_the_race.ipynb",
        "exercises/ex1_solution.ipynb",
    ]:
        assert name in names
    exercises = [p for p in ALL if is_exercise(p)]
    assert exercises
    for exercise in exercises:
        solution = exercise.with_name(exercise.stem.split("_")[0] + "_solution.ipynb")
        assert solution in ALL, f"{exercise.name} has no {solution.name}"


@pytest.mark.parametrize("path", ALL, ids=ids(ALL))
def test_paired_py_is_in_sync(path: Path) -> None:
    twin = path.with_suffix(".py")
    assert twin.exists(), f"{twin.name} missing: run jupytext --to py:percent {path.name}"
    expected = jupytext.writes(jupytext.read(path), fmt="py:percent")
    assert twin.read_text(encoding="utf-8") == expected, (
        f"{twin.name} and {path.name} differ: edit one, then "
        f"jupytext --to py:percent {path.name} (or --to ipynb from the .py, then execute)"
    )


def test_no_orphan_percent_scripts() -> None:
    for script in NOTEBOOKS.rglob("*.py"):
        if script.read_text(encoding="utf-8").startswith("# %%"):
            assert script.with_suffix(".ipynb").exists(), f"{script.name} has no notebook"


@pytest.mark.parametrize("path", EXECUTED, ids=ids(EXECUTED))
def test_every_code_cell_was_executed(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    unrun = [i for i, c in enumerate(code) if c.get("execution_count") is None]
    assert not unrun, f"{path.name}: code cells {unrun} were never executed"
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), f"{path.name}: not run top to bottom"


@pytest.mark.parametrize("path", ALL, ids=ids(ALL))
def test_no_output_holds_a_traceback(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            assert output.get("output_type") != "error", f"{path.name} cell {index}: error"
            text = output.get("text", "") + str(output.get("data", {}).get("text/plain", ""))
            assert "Traceback" not in text, f"{path.name} cell {index}: traceback"
            assert output.get("name") != "stderr", f"{path.name} cell {index}: stderr output"


def test_the_sanitizer_file_is_in_nbval_format() -> None:
    lines = (NOTEBOOKS / "sanitize.cfg").read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line.startswith("regex: "):
            assert lines[i + 1].startswith("replace: "), f"line {i + 2} must be its replace:"
            re.compile(line[len("regex: ") :])
        elif line.startswith("replace: "):
            assert lines[i - 1].startswith("regex: "), f"line {i + 1} has no regex: before it"
        else:
            assert not line.strip() or line.startswith("["), f"line {i + 1}: {line!r}"


def test_pairing_is_configured_in_the_notebooks_folder() -> None:
    text = (NOTEBOOKS / "jupytext.toml").read_text(encoding="utf-8")
    assert re.search(r'^formats\s*=\s*"ipynb,py:percent"\s*$', text, re.MULTILINE)


@pytest.mark.parametrize("path", ALL, ids=ids(ALL))
def test_opening_a_notebook_changes_nothing(path: Path) -> None:
    """A kernelspec in the file and the layout Jupyter writes: opening a notebook in
    JupyterLab and letting autosave run leaves a trainer's checkout clean."""
    text = path.read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=4)
    assert nb.metadata.get("kernelspec") == {
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "name": "python3",
    }, f"{path.name} has no python3 kernelspec: Jupyter would add one and mark it modified"
    assert nbformat.writes(nb) + "\n" == text, f"{path.name} is not in the layout Jupyter saves"
