"""What an exercise is and how one is played and judged.

:func:`simkit.grading.grade` is the open harness: you choose the scenarios, the size and
the limits. An exercise (``simkit.grading.exercise(N, answer)``, behind the three exercise
notebooks) is the strict one. It fixes everything but the answer (scenario, size, seeds,
limits), plays the answer over several seeds, and never takes the truth from the answer: a
registry is asked only what it holds (``entries()``) and is held to it; a heartbeat is
rebuilt from its numbers; a backoff runs one instance per tab and is replayed tab by tab to
prove no tab's delays depended on another's. Each exercise (``ex1``, ``ex2``, ``ex3``)
says how its answer is prepared and which workloads it is played on; this module plays
them and keeps, for each check, the worst seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pandas as pd

from simkit.api import run
from simkit.grading.harness import COLUMNS, Grade, Row, check_row, format_number, text_columns
from simkit.model.strategy import Strategy
from simkit.results import Result
from simkit.scenarios import Scenario

EXERCISE_SEEDS = (0, 1, 2, 3, 4)

# What the grader watched during one run, by name (a count the answer must keep at 0).
Book = dict[str, float]


@dataclass(frozen=True)
class Check:
    """One graded number: ``measure`` reads it off a played run, ``op`` and ``bound`` judge
    it (``==``, ``<=`` or ``>=``)."""

    name: str
    measure: Callable[[Played], float]
    op: str
    bound: float


@dataclass(frozen=True)
class Workload:
    """A scenario at a fixed size, played once per seed, and the checks it must pass."""

    name: str
    scenario: Scenario
    tabs: int
    duration: float
    settle: float | None
    checks: tuple[Check, ...]
    trace: bool = False
    without_proxy: bool = False  # also play each seed with no idle proxy, to compare
    # The scenario a seed plays, when it changes with the seed (e.g. the outage's length),
    # and the sentence that says how (shown in the verdict).
    per_seed: Callable[[int], Scenario] | None = None
    varies: str = ""

    def scenario_for(self, seed: int) -> Scenario:
        """The scenario seed ``seed`` plays."""
        return self.scenario if self.per_seed is None else self.per_seed(seed)

    def describe(self, settle: float) -> str:
        sc = self.scenario
        latency = f"latency {format_number(sc.latency.base * 1000)} ms"
        if sc.latency.jitter:
            latency += f" + up to {format_number(sc.latency.jitter * 1000)} ms jitter"
        proxy = (
            "no idle proxy"
            if sc.idle_timeout is None
            else f"a proxy cutting sockets idle for {format_number(sc.idle_timeout)} s"
        )
        extra = "; each seed also played without the proxy" if self.without_proxy else ""
        if self.varies:
            extra += f"; {self.varies}"
        return (
            f"{self.name}: {self.tabs} tabs, {format_number(self.duration)} s of workload + "
            f"{format_number(settle)} s settling, {latency}, {format_number(sc.push_rate)} "
            f"pushes/s per tab, {proxy}{extra}. {sc.summary}"
        )


@dataclass
class Played:
    """One workload played once: the run, what the grader watched, the comparison run."""

    workload: Workload
    seed: int
    result: Result
    book: Book
    without_proxy: Result | None = None

    @property
    def summary(self) -> dict[str, Any]:
        return self.result.summary


class Prepared(NamedTuple):
    """An answer made ready to play: the name its verdict shows, ``make`` (a fresh strategy
    for one run, wired to write what the grader watches into the given book) and ``replay``
    (after that run, more of the book from what the strategy recorded)."""

    name: str
    make: Callable[[Book], Strategy]
    replay: Callable[[Strategy], Book]


def nothing_to_replay(strategy: Strategy) -> Book:
    """The ``replay`` of an answer whose runs record nothing to replay."""
    return {}


@dataclass(frozen=True)
class Exercise:
    """What one exercise grades: its answer, its workloads and seeds, where to read up.

    ``prepare`` checks an answer (a clear :class:`~simkit.ConfigError` when it is not the
    kind of object the exercise takes) and makes it ready to play."""

    number: int
    title: str
    notebook: str
    lesson: str
    answer: str  # what kind of object the answer is
    workloads: tuple[Workload, ...]
    prepare: Callable[[object], Prepared] = field(repr=False)
    seeds: tuple[int, ...] = EXERCISE_SEEDS


class SeededRow(Row):
    """A check's row for one seed (:attr:`ExerciseGrade.per_seed`), or for the worst seed
    (:attr:`ExerciseGrade.table`)."""

    seed: int


@dataclass(repr=False)
class ExerciseGrade(Grade):
    """The verdict of :func:`~simkit.grading.exercise`. ``table`` has one row per
    (workload, check) with the worst value over the seeds and the seed it came from;
    ``per_seed`` has every row."""

    number: int = 0
    title: str = ""
    seeds: tuple[int, ...] = ()
    workloads: tuple[str, ...] = ()
    per_seed: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __str__(self) -> str:
        failed = int((~self.table["passed"]).sum())
        total = len(self.table)
        verdict = "PASS" if failed == 0 else f"FAIL ({failed} of {total} checks failed)"
        head = [
            f"exercise {self.number} ({self.title}), answer {self.name!r}: {verdict}",
            f"  seeds {', '.join(map(str, self.seeds))}; each check shows the worst seed",
            *[f"  - {line}" for line in self.workloads],
        ]
        t = self.table
        rows = [("workload", "check", "worst", "limit", "seed", "result")]
        rows += [
            (
                scenario,
                check,
                format_number(measured),
                limit,
                str(seed),
                "pass" if passed else "FAIL",
            )
            for scenario, check, measured, limit, seed, passed in zip(
                t["scenario"],
                t["check"],
                t["measured"],
                t["limit"],
                t["seed"],
                t["passed"],
                strict=True,
            )
        ]
        return "\n".join(head + text_columns(rows, right=(2,)))

    __repr__ = __str__


def grade_exercise(ex: Exercise, answer: object) -> ExerciseGrade:
    """Play ``answer`` on every workload of ``ex`` over its seeds and judge every check."""
    name, make, replay = ex.prepare(answer)
    rows: list[SeededRow] = []
    results: dict[str, Result] = {}
    described: list[str] = []
    for workload in ex.workloads:
        settle = None
        for seed in ex.seeds:
            book: Book = {}
            strategy = make(book)
            scenario = workload.scenario_for(seed)
            result = run(
                scenario,
                strategy,
                tabs=workload.tabs,
                duration=workload.duration,
                seed=seed,
                settle=workload.settle,
                trace=workload.trace,
                progress=False,
            )
            settle = result.summary["settle"]
            book.update(replay(strategy))
            reference = None
            if workload.without_proxy:
                reference = run(
                    scenario.with_(idle_timeout=None),
                    make({}),
                    tabs=workload.tabs,
                    duration=workload.duration,
                    seed=seed,
                    settle=workload.settle,
                    progress=False,
                )
            played = Played(workload, seed, result, book, reference)
            results[f"{workload.name} seed {seed}"] = result
            for check in workload.checks:
                row = check_row(
                    workload.name, check.name, check.measure(played), check.op, check.bound
                )
                rows.append({**row, "seed": seed})
        described.append(workload.describe(float(settle or 0.0)))
    per_seed = pd.DataFrame(rows, columns=[*COLUMNS, "seed"])
    per_seed["passed"] = per_seed["passed"].astype(bool)
    return ExerciseGrade(
        name,
        _worst(per_seed),
        tabs=0,
        duration=0.0,
        seed=ex.seeds[0],
        results=results,
        number=ex.number,
        title=ex.title,
        seeds=ex.seeds,
        workloads=tuple(described),
        per_seed=per_seed,
    )


def _worst(per_seed: pd.DataFrame) -> pd.DataFrame:
    """One row per (workload, check): the seed whose number came closest to (or went
    furthest past) the limit; it passes only if every seed passed."""
    rows = []
    for _, group in per_seed.groupby(["scenario", "check"], sort=False):
        slack = [
            _slack(measured, limit)
            for measured, limit in zip(group["measured"], group["limit"], strict=True)
        ]
        worst = group.iloc[min(range(len(slack)), key=slack.__getitem__)].to_dict()
        worst["passed"] = bool(group["passed"].all())
        rows.append(worst)
    table = pd.DataFrame(rows, columns=[*COLUMNS, "seed"])
    table["passed"] = table["passed"].astype(bool)
    table["seed"] = table["seed"].astype(int)
    return table


def _slack(measured: float, limit: str) -> float:
    op, _, bound_text = limit.partition(" ")
    bound = float(bound_text)
    if math.isnan(measured):
        return -math.inf
    if op == "<=":
        return bound - measured
    if op == ">=":
        return measured - bound
    return -abs(measured - bound)


# --- the common checks --------------------------------------------------------------------


def final_check(name: str) -> Check:
    """The summary's ``final_<name>`` must be 0 once the run has settled."""
    return Check(f"final {name}", lambda p: p.summary[f"final_{name}"], "==", 0)


INVARIANTS = (
    final_check("stale"),
    final_check("dangling"),
    final_check("unroutable"),
    Check(
        "final open sockets beyond connected tabs",
        lambda p: p.summary["final_open_sockets"] - p.summary["final_connected_tabs"],
        "==",
        0,
    ),
    final_check("disconnected_tabs"),
)


def summary_check(key: str, op: str, bound: float, name: str | None = None) -> Check:
    """A limit on the summary's number ``key`` (shown as ``name``, by default the key)."""
    return Check(name or key, lambda p: p.summary[key], op, bound)


def book_check(key: str, name: str) -> Check:
    """What the grader counted under ``key`` in its book must stay 0."""
    return Check(name, lambda p: p.book.get(key, 0), "==", 0)


__all__ = [
    "EXERCISE_SEEDS",
    "INVARIANTS",
    "Book",
    "Check",
    "Exercise",
    "ExerciseGrade",
    "Played",
    "Prepared",
    "SeededRow",
    "Workload",
    "book_check",
    "final_check",
    "grade_exercise",
    "nothing_to_replay",
    "summary_check",
]
