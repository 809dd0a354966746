"""Grade a design of your own: :func:`grade`, the open harness, and :func:`exercise`, the
strict grader behind the exercise notebooks (see :mod:`simkit.grading.harness`)."""

from simkit.grading.harness import (
    DEFAULT_SCENARIOS,
    EXERCISE_SEEDS,
    EXERCISES,
    ExerciseGrade,
    Grade,
    exercise,
    grade,
    measures,
    peak_attempt_rate,
)

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
