"""Grade a design of your own, openly or as one of the three exercises.

- :mod:`~simkit.grading.harness`: :func:`grade`, the open harness (you choose the scenarios,
  the size and the limits) and its verdict, :class:`Grade`;
- :mod:`~simkit.grading.framework`: what an exercise is (workloads, checks, seeds) and how
  one is played and judged;
- :mod:`~simkit.grading.ex1`, :mod:`~simkit.grading.ex2`, :mod:`~simkit.grading.ex3`: one
  module per exercise, with its own scenarios;
- :mod:`~simkit.grading.table`: the numbered exercises and :func:`exercise`, the strict
  grader behind the exercise notebooks;
- :mod:`~simkit.grading.tamper`: the refusal to grade a kit patched at run time.

>>> from simkit.grading import exercise, grade
"""

from simkit.grading.framework import EXERCISE_SEEDS, ExerciseGrade
from simkit.grading.harness import DEFAULT_SCENARIOS, Grade, grade, measures, peak_attempt_rate
from simkit.grading.table import EXERCISES, exercise

__all__ = [
    "DEFAULT_SCENARIOS",
    "EXERCISES",
    "EXERCISE_SEEDS",
    "ExerciseGrade",
    "Grade",
    "exercise",
    "grade",
    "measures",
    "peak_attempt_rate",
]
