"""The exercise table and its entry point, ``exercise(N, answer)``.

Each exercise lives in its own module (``ex1``, ``ex2``, ``ex3``: its answer, its scenarios,
its workloads and checks); this module numbers them, as the exercise notebooks do.
"""

from __future__ import annotations

from simkit.grading import ex1, ex2, ex3
from simkit.grading.framework import Exercise, ExerciseGrade, grade_exercise
from simkit.grading.tamper import KitSnapshot
from simkit.model.errors import choice

EXERCISES: dict[int, Exercise] = {
    ex.number: ex for ex in (ex1.EXERCISE, ex2.EXERCISE, ex3.EXERCISE)
}


def exercise(number: int, answer: object) -> ExerciseGrade:
    """Grade ``answer`` to exercise ``number`` (1, 2 or 3) and return the verdict.

    1. *Survive the race*: ``answer`` is your ``Registry`` subclass (the class). It runs in
       the ``postmortem-safe`` client and heartbeat. Pushes go down ``route()``; dangling
       and unroutable are counted from what ``entries()`` holds, and the grader checks that
       ``route()`` agrees with it: overriding ``routes_to``, ``audit`` or ``push`` changes
       nothing.
    2. *A heartbeat under a proxy*: ``answer`` is a :class:`~simkit.Liveness` (or an
       ``(interval, timeout)`` pair). Only its numbers are used.
    3. *Tame the herd*: ``answer`` is a :class:`~simkit.model.Backoff` (or a subclass with
       its own ``delay``). Every tab gets its own copy, and the grader replays each tab's
       delays alone afterwards: a tab whose delays depended on other tabs (state shared
       across tabs) fails.

    Every exercise is graded on fixed workloads over the seeds in ``EXERCISE_SEEDS``; the
    printed verdict names each workload's parameters and, for each check, the worst value
    over the seeds.
    """
    if isinstance(number, bool) or number not in EXERCISES:
        raise choice("exercise", number, [str(n) for n in EXERCISES])
    _KIT_AT_IMPORT.check_untouched()
    return grade_exercise(EXERCISES[number], answer)


# Taken last, when every grading module is loaded: see simkit.grading.tamper.
_KIT_AT_IMPORT = KitSnapshot()

__all__ = ["EXERCISES", "exercise"]
