"""Every numbered notebook doubles as a short slide deck (``jupyter nbconvert --to slides``):
its title and question, key table, key plot and conclusion are tagged as slides and its setup
cells are skipped, so a trainer can present one notebook's result on a handful of slides.
"""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NUMBERED = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def slide_types(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return [c.metadata.get("slideshow", {}).get("slide_type", "") for c in nb.cells]


def test_there_are_numbered_notebooks() -> None:
    assert len(NUMBERED) >= 10


@pytest.mark.parametrize("path", NUMBERED, ids=[p.name for p in NUMBERED])
def test_each_notebook_is_a_short_deck(path: Path) -> None:
    types = slide_types(path)
    assert types[0] == "slide", f"{path.name}: the title/question cell is not a slide"
    assert types.count("slide") >= 3, f"{path.name}: {types.count('slide')} slide cells, need 3"
    assert "skip" in types, f"{path.name}: no setup cell is skipped"


def test_nbconvert_makes_slides(tmp_path: Path) -> None:
    """One real conversion (no execution: the stored outputs are used), bounded in time."""
    source = NOTEBOOKS / "00_start_here.ipynb"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jupyter",
            "nbconvert",
            "--to",
            "slides",
            str(source),
            "--output-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    html = (tmp_path / "00_start_here.slides.html").read_text(encoding="utf-8")
    assert html.count("<section") >= 3
    assert "Start here" in html
