"""``simkit.grading`` is the package and ``simkit.grade`` the function: the names the docs
use resolve to what they say, and the tamper check covers every grading module."""

import inspect
import sys

import pytest

import simkit
import simkit.grading
from simkit.grading import Grade, exercise, framework, grade, harness, table
from simkit.model import KickOldSafe


def test_the_documented_names_resolve() -> None:
    assert inspect.isfunction(simkit.grading.exercise)
    assert inspect.isfunction(exercise) and exercise is table.exercise
    assert grade is harness.grade and Grade is harness.Grade
    assert set(simkit.grading.EXERCISES) == {1, 2, 3}


def test_simkit_grade_is_the_function_and_grading_the_module() -> None:
    """No function/module name clash: ``simkit.grade`` and ``simkit.Grade`` come from this
    package (``simkit/__init__.py``'s lazy table), and no module ``simkit.grade`` exists."""
    assert simkit.grade is grade and simkit.Grade is Grade
    assert inspect.ismodule(simkit.grading)
    assert "simkit.grade" not in sys.modules


@pytest.mark.parametrize(
    ("owner", "name"),
    [
        (harness, "check_row"),  # the first module loaded
        (framework.Workload, "describe"),
        (table, "exercise"),  # the last: the snapshot is taken after it
    ],
)
def test_a_patched_grading_module_is_refused(monkeypatch, owner: object, name: str) -> None:
    original = getattr(owner, name)
    monkeypatch.setattr(owner, name, lambda *args, **kwargs: original(*args, **kwargs))
    with pytest.raises(simkit.ConfigError, match=rf"\.{name} was replaced"):
        simkit.grading.exercise(1, KickOldSafe)  # refused before anything is played
