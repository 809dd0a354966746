"""Score a design of your own with the harness the built-in strategies use.

:func:`grade` plays a strategy (or just a registry policy, dropped into the
``postmortem-safe`` client and heartbeat) through a few virtual scenarios with
:func:`simkit.run` and checks, in each, the invariants a correct design keeps once the
workload has stopped and every timeout has passed: no stale socket, no dangling
entry, no unroutable tab, as many open sockets as connected tabs and, where the kit counts
them, no live tab left without a connection: together, the run's ``invariants_hold``.
Optional limits add
checks of your own, ``max_<measure>=`` or ``min_<measure>=`` for any number of the run's
summary (``min_delivery_ratio=0.95``, ``max_kicked_live_tabs=0``,
``max_peak_connect_rate=40``: connections accepted per second at the peak) or for
``peak_attempt_rate``, the most connection attempts begun in any one second, refused ones
included (a reconnect herd hammering a server that is down). Every check reports the number
it measured, so a failure says by how much.

>>> from simkit.grading import grade
>>> g = grade("kick-old", scenarios=["reload-storm"], tabs=20, duration=60)
>>> g.passed
False
"""

from __future__ import annotations

import copy
import functools
import inspect
import math
import random
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from simkit.api import run
from simkit.model.client import Backoff
from simkit.model.errors import ConfigError, choice
from simkit.model.latency import Latency
from simkit.model.liveness import Liveness
from simkit.model.registry import REGISTRIES, Action, Deliver, Hello, NoRoute, Registry
from simkit.model.strategy import STRATEGIES, Strategy
from simkit.results import Result
from simkit.scenarios import SCENARIOS, Scenario
from simkit.scenarios import scenario as scenario_of

if TYPE_CHECKING:
    from simkit.actors.tab import Tab

DEFAULT_SCENARIOS = ("reload-storm", "strict-mode", "flaky-network")
BASE_STRATEGY = "postmortem-safe"  # the client and heartbeat a bare registry is played with

# The run's own settings, in every summary but not results to put a limit on.
_SETTINGS = ("tabs", "duration", "settle", "seed", "scale")
# The invariant checks: (check, summary key that must be 0) besides open_sockets.
_ZEROES = ("stale", "dangling", "unroutable")


@functools.cache
def measures() -> tuple[str, ...]:
    """Every number a limit may name after ``max_`` or ``min_``: each numeric entry of a
    run's summary (read from a one-tab, one-second run, so the list follows the kit), plus
    ``peak_attempt_rate``."""
    summary = run("reload-storm", BASE_STRATEGY, tabs=1, duration=1.0, progress=False).summary
    numeric = [
        key
        for key, value in summary.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and key not in _SETTINGS
    ]
    return ("peak_attempt_rate", *numeric)


COLUMNS = ("scenario", "check", "measured", "limit", "passed")


@dataclass
class Grade:
    """The verdict of :func:`grade`: one row per (scenario, check) in ``table``."""

    name: str
    table: pd.DataFrame
    tabs: int
    duration: float
    seed: int
    results: dict[str, Result] = field(default_factory=dict, repr=False)

    @property
    def passed(self) -> bool:
        """True when every check of every scenario passed."""
        return bool(self.table["passed"].all())

    @property
    def failures(self) -> pd.DataFrame:
        """Only the rows that failed."""
        return self.table[~self.table["passed"]]

    def __str__(self) -> str:
        failed = int((~self.table["passed"]).sum())
        total = len(self.table)
        verdict = "PASS" if failed == 0 else f"FAIL ({failed} of {total} checks failed)"
        head = (
            f"grade of {self.name!r} ({self.tabs} tabs, {_number(self.duration)} s, "
            f"seed {self.seed}): {verdict}"
        )
        rows = [("scenario", "check", "measured", "limit", "result")]
        rows += [
            (
                row.scenario,
                row.check,
                _number(row.measured),
                row.limit,
                "pass" if row.passed else "FAIL",
            )
            for row in self.table.itertuples(index=False)
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [head]
        for r in rows:
            cells = [
                r[i].rjust(widths[i]) if i == 2 else r[i].ljust(widths[i]) for i in range(len(r))
            ]
            lines.append("  " + "  ".join(cells).rstrip())
        return "\n".join(lines)

    __repr__ = __str__


def grade(
    strategy_or_registry: str | Strategy | Callable[[], Registry],
    scenarios: Iterable[str | Scenario] = DEFAULT_SCENARIOS,
    tabs: int = 50,
    duration: float = 120.0,
    seed: int = 0,
    *,
    settle: float | None = None,
    **limits: float,
) -> Grade:
    """Run a design through ``scenarios`` and check each invariant, with the measured number.

    ``strategy_or_registry`` is a :class:`~simkit.Strategy`, a strategy preset name, a
    registry preset name, or a registry factory (your own ``Registry`` subclass); a bare
    registry runs with the ``postmortem-safe`` client (the user's own id, pagehide,
    single-flight guard) and its 20 s/20 s heartbeat. ``limits`` are extra checks named
    ``max_<measure>`` or ``min_<measure>`` (see :func:`measures`). Every run is virtual and
    seeded: the same arguments give the same grade.
    """
    strategy = _strategy(strategy_or_registry)
    chosen = [scenario_of(item) for item in _listed(scenarios)]
    if not chosen:
        raise ConfigError(f"grade needs at least one scenario; choose from: {', '.join(SCENARIOS)}")
    bounds = _bounds(limits)
    trace = any(measure == "peak_attempt_rate" for measure, _, _ in bounds)
    rows: list[dict[str, Any]] = []
    results: dict[str, Result] = {}
    for sc in chosen:
        result = run(
            sc,
            strategy,
            tabs=tabs,
            duration=duration,
            seed=seed,
            settle=settle,
            trace=trace,
            progress=False,
        )
        results[sc.name] = result
        rows.extend(_checks(sc.name, result, bounds))
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table["passed"] = table["passed"].astype(bool)
    return Grade(strategy.name, table, tabs, float(duration), seed, results)


# --- helpers ------------------------------------------------------------------------------


def _strategy(value: object) -> Strategy:
    if isinstance(value, Strategy):
        return value
    if isinstance(value, str):
        if value in STRATEGIES:
            return STRATEGIES[value]
        if value in REGISTRIES:
            return _with_registry(REGISTRIES[value], value)
        raise choice("strategy or registry", value, list(dict.fromkeys([*STRATEGIES, *REGISTRIES])))
    if isinstance(value, Registry):
        raise ConfigError(
            f"pass the registry class (a factory), not an instance: {type(value).__name__}, "
            f"not {type(value).__name__}(); every run needs a fresh, empty registry"
        )
    if callable(value):
        name = getattr(value, "name", None)
        if not isinstance(name, str) or name == "custom":
            name = getattr(value, "__name__", "custom")
        return _with_registry(value, name)
    raise ConfigError(
        "grade needs a Strategy, a strategy or registry preset name, or a Registry "
        f"subclass; got {value!r}"
    )


def _with_registry(factory: Callable[[], Registry], name: str) -> Strategy:
    return STRATEGIES[BASE_STRATEGY].replace(name=name, registry=factory, summary="")


def _listed(scenarios: Iterable[str | Scenario] | str | Scenario) -> list[str | Scenario]:
    if isinstance(scenarios, str | Scenario):
        return [scenarios]
    return list(scenarios)


def _bounds(limits: dict[str, float]) -> list[tuple[str, str, float]]:
    """``max_x=1`` -> ("x", "<=", 1.0); unknown names raise ConfigError listing the valid."""
    bounds = []
    for key, value in limits.items():
        kind, _, measure = key.partition("_")
        if kind not in ("max", "min") or measure not in measures():
            valid = [f"{k}_{m}" for m in measures() for k in ("max", "min")]
            raise choice("limit", key, valid)
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise ConfigError(f"limit {key} must be a number, got {value!r}")
        bounds.append((measure, "<=" if kind == "max" else ">=", float(value)))
    return bounds


def _checks(
    scenario: str, result: Result, bounds: list[tuple[str, str, float]]
) -> list[dict[str, Any]]:
    s = result.summary
    rows = [_row(scenario, f"final {name}", s[f"final_{name}"], "==", 0) for name in _ZEROES]
    connected = s["final_connected_tabs"]
    rows.append(
        {
            "scenario": scenario,
            "check": "final open_sockets",
            "measured": float(s["final_open_sockets"]),
            "limit": f"== {connected} (connected tabs)",
            "passed": s["final_open_sockets"] == connected,
        }
    )
    if "final_disconnected_tabs" in s:  # live tabs left without a connection
        rows.append(
            _row(scenario, "final disconnected_tabs", s["final_disconnected_tabs"], "==", 0)
        )
    for measure, op, bound in bounds:
        value = peak_attempt_rate(result) if measure == "peak_attempt_rate" else s[measure]
        rows.append(_row(scenario, measure, value, op, bound))
    return rows


def _row(scenario: str, check: str, value: float, op: str, bound: float) -> dict[str, Any]:
    value = float(value)
    if math.isnan(value):
        ok = False  # nothing was measured (e.g. no push was sent): not a pass
    elif op == "==":
        ok = value == bound
    elif op == "<=":
        ok = value <= bound
    else:
        ok = value >= bound
    return {
        "scenario": scenario,
        "check": check,
        "measured": value,
        "limit": f"{op} {_number(bound)}",
        "passed": ok,
    }


def peak_attempt_rate(result: Result) -> int:
    """The most connection attempts begun in any one second of ``result`` (needs a trace).

    Every attempt counts, refused ones too: while a server is down its accept loop (or the
    load balancer in front of it) still takes every one. The summary's
    ``peak_connect_rate`` counts only the connections the server accepted.
    """
    if result.trace is None:
        raise ConfigError("peak_attempt_rate needs a run made with trace=True")
    return _peak_per_second(_connect_times(result.trace))


def _connect_times(trace: pd.DataFrame) -> pd.Series:
    """When each connection attempt began (the trace's time column is ``time``; ``t`` in
    traces made before it was renamed)."""
    column = "time" if "time" in trace.columns else "t"
    return trace.loc[trace["event"] == "connect", column]


def _peak_per_second(times: pd.Series) -> int:
    if times.empty:
        return 0
    return int(times.floordiv(1.0).value_counts().max())


def _number(value: float) -> str:
    value = float(value)
    if math.isnan(value):
        return "nan"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}" if abs(value) < 1 else f"{value:.4f}".rstrip("0").rstrip(".")


# --- the graded exercises -----------------------------------------------------------------
#
# ``grade`` above is the open harness: you choose the scenarios, the size and the limits.
# ``exercise(N, answer)`` is the strict one behind the three exercise notebooks. It fixes
# everything but the answer (scenario, size, seeds, limits), plays the answer over several
# seeds, and never takes the truth from the answer: a registry is asked only what it holds
# (``entries()``) and is held to it; a heartbeat is rebuilt from its numbers; a backoff runs
# one instance per tab and is replayed tab by tab to prove no tab's delays depended on
# another's.

EXERCISE_SEEDS = (0, 1, 2, 3, 4)


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

    def describe(self, settle: float) -> str:
        sc = self.scenario
        latency = f"latency {_number(sc.latency.base * 1000)} ms"
        if sc.latency.jitter:
            latency += f" + up to {_number(sc.latency.jitter * 1000)} ms jitter"
        proxy = (
            "no idle proxy"
            if sc.idle_timeout is None
            else f"a proxy cutting sockets idle for {_number(sc.idle_timeout)} s"
        )
        extra = "; each seed also played without the proxy" if self.without_proxy else ""
        return (
            f"{self.name}: {self.tabs} tabs, {_number(self.duration)} s of workload + "
            f"{_number(settle)} s settling, {latency}, {_number(sc.push_rate)} pushes/s per "
            f"tab, {proxy}{extra}. {sc.summary}"
        )


@dataclass
class Played:
    """One workload played once: the run, what the grader watched, the comparison run."""

    workload: Workload
    seed: int
    result: Result
    book: dict[str, float]
    without_proxy: Result | None = None

    @property
    def summary(self) -> dict[str, Any]:
        return self.result.summary


@dataclass(frozen=True)
class Exercise:
    """What one exercise grades: its answer, its workloads and seeds, where to read up."""

    number: int
    title: str
    notebook: str
    lesson: str
    answer: str  # what kind of object the answer is
    workloads: tuple[Workload, ...]
    seeds: tuple[int, ...] = EXERCISE_SEEDS


@dataclass(repr=False)
class ExerciseGrade(Grade):
    """The verdict of :func:`exercise`. ``table`` has one row per (workload, check) with
    the worst value over the seeds and the seed it came from; ``per_seed`` has every row."""

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
        rows = [("workload", "check", "worst", "limit", "seed", "result")]
        rows += [
            (
                row.scenario,
                row.check,
                _number(row.measured),
                row.limit,
                str(row.seed),
                "pass" if row.passed else "FAIL",
            )
            for row in self.table.itertuples(index=False)
        ]
        return "\n".join(head + _columns(rows, right=(2,)))

    __repr__ = __str__


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
    _check_kit_untouched()
    ex = EXERCISES[number]
    name, make, replay = _PREPARE[number](answer)
    rows: list[dict[str, Any]] = []
    results: dict[str, Result] = {}
    described: list[str] = []
    for workload in ex.workloads:
        settle = None
        for seed in ex.seeds:
            book: dict[str, float] = {}
            strategy = make(book)
            result = run(
                workload.scenario,
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
                    workload.scenario.with_(idle_timeout=None),
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
                row = _row(workload.name, check.name, check.measure(played), check.op, check.bound)
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
        number=number,
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
        slack = [_slack(row.measured, row.limit) for row in group.itertuples(index=False)]
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


# -- the common checks ---------------------------------------------------------------------


def _final(name: str) -> Check:
    return Check(f"final {name}", lambda p: p.summary[f"final_{name}"], "==", 0)


INVARIANTS = (
    _final("stale"),
    _final("dangling"),
    _final("unroutable"),
    Check(
        "final open sockets beyond connected tabs",
        lambda p: p.summary["final_open_sockets"] - p.summary["final_connected_tabs"],
        "==",
        0,
    ),
    _final("disconnected_tabs"),
)


def _summary(key: str, op: str, bound: float, name: str | None = None) -> Check:
    return Check(name or key, lambda p: p.summary[key], op, bound)


def _book(key: str, name: str) -> Check:
    return Check(name, lambda p: p.book.get(key, 0), "==", 0)


# -- exercise 1: a registry of your own ----------------------------------------------------


class _Witness(Registry):
    """The registry the server and the census see while an answer is graded.

    It passes ``connect``, ``disconnect`` and ``expire`` to the answer, then reads what the
    answer holds (``entries()``) and keeps a copy: every question the kit asks afterwards
    (``route``, ``routes_to``, ``audit``, where a push goes) is answered from that copy, so
    an answer cannot say one thing to the pushes and another to the census. It also checks
    what the kit relies on: ``route(user)`` gives the user's entries; an entry pairs a user
    with one of *that user's* connections; and entries change only for the user whose
    connection just opened or closed (the census re-counts only those).
    """

    def __init__(self, answer: Registry, book: dict[str, float]) -> None:
        self.answer = answer
        self.book = book
        self.one_per_user = bool(getattr(answer, "one_per_user", True))  # type: ignore[misc]
        self.owner: dict[int, str] = {}  # conn -> the user its handshake claimed
        self.held: dict[str, tuple[int, ...]] = {}
        self.wrong_user: dict[tuple[str, int], None] = {}
        self._read(None)

    def connect(self, hello: Hello, now: float) -> list[Action]:
        self.owner[hello.conn] = hello.user
        actions = list(self.answer.connect(hello, now) or ())
        self._read(hello.user)
        return actions

    def disconnect(self, conn: int, user: str, now: float) -> list[Action]:
        actions = list(self.answer.disconnect(conn, user, now) or ())
        self._read(user)
        return actions

    def deadline(self) -> float | None:
        return self.answer.deadline()

    def expire(self, now: float) -> list[Action]:
        actions = list(self.answer.expire(now) or ())
        self._read(None)
        return actions

    def route(self, user: str) -> tuple[int, ...]:
        return self.held.get(user, ())

    def entries(self) -> list[tuple[str, int]]:
        return [(user, conn) for user, conns in self.held.items() for conn in conns]

    def routes_to(self, user: str, conn: int) -> bool:
        return conn in self.held.get(user, ())

    def audit(self, is_open: Callable[[int], bool]) -> tuple[int, int]:
        entries = self.entries()
        return len(entries), sum(1 for _, conn in entries if not is_open(conn))

    def push(self, user: str, push: int, now: float) -> list[Action]:
        conns = self.held.get(user)
        if not conns:
            return [NoRoute(user, push)]
        return [Deliver(conn, push) for conn in conns]

    def _read(self, user: str | None) -> None:
        held: dict[str, dict[int, None]] = {}
        entries = self.answer.entries()
        try:
            pairs = [(u, c) for u, c in entries]
        except (TypeError, ValueError):
            raise ConfigError(
                f"entries() must return (user, connection) pairs, got {entries!r}"
            ) from None
        for u, c in pairs:
            if not isinstance(u, str) or isinstance(c, bool) or not isinstance(c, int):
                raise ConfigError(
                    f"entries() must return (user, connection) pairs of a str and an int, "
                    f"got {(u, c)!r}"
                )
            held.setdefault(u, {})[c] = None
            if self.owner.get(c, u) != u:
                self.wrong_user[(u, c)] = None
        now = {u: tuple(conns) for u, conns in held.items()}
        changed = [u for u in {**self.held, **now} if self.held.get(u) != now.get(u)]
        book = self.book
        hidden = sum(1 for u in changed if u != user)
        if hidden:
            book["hidden"] = book.get("hidden", 0) + hidden
        for u in changed if user is None else {*changed, user}:
            if set(self.answer.route(u)) != set(now.get(u, ())):
                book["route"] = book.get("route", 0) + 1
        book["wrong_user"] = len(self.wrong_user)
        self.held = now


def _prepare_registry(answer: object) -> tuple[str, Callable[..., Strategy], Callable]:
    if isinstance(answer, Registry):
        raise ConfigError(
            f"pass the registry class, not an instance: {type(answer).__name__}, not "
            f"{type(answer).__name__}(); every run needs a fresh, empty registry"
        )
    if not (isinstance(answer, type) and issubclass(answer, Registry)):
        raise ConfigError(
            f"exercise 1 grades a Registry subclass (your class itself); got {answer!r}"
        )
    if answer.__module__.startswith("simkit.") or answer is Registry:
        raise ConfigError(
            f"{answer.__name__} is one of the kit's own registries; the answer is a class you wrote"
        )
    try:
        answer()
    except Exception as exc:  # the learner's __init__: say what went wrong
        raise ConfigError(f"{answer.__name__}() failed: {exc!r}") from exc
    name = (
        answer.name
        if isinstance(answer.name, str) and answer.name != "custom"
        else (answer.__name__)
    )
    base = STRATEGIES[BASE_STRATEGY]

    def make(book: dict[str, float]) -> Strategy:
        def factory() -> Registry:
            return _Witness(answer(), book)

        return base.replace(name=name, registry=factory, summary="")

    return name, make, lambda strategy: {}


async def _come_and_go(tab: Tab, sc: Scenario) -> None:
    """People drop in and leave for good. A tab loads in the first half of the workload,
    reloads a few times (a tenth of the reloads after its socket silently died), and half
    of the tabs then close for good, most of them within seconds of their newest
    connection (a few vanish instead: the phone dies). A registry that never forgets, or
    that ignores cleanups arriving soon after a connection, keeps entries for people who
    are gone."""
    rng = tab.work_rng
    await tab.sleep(rng.uniform(0.0, sc.duration / 2))
    tab.load()
    for _ in range(rng.randint(0, 3)):
        await tab.sleep(rng.uniform(0.2, 15.0))
        if tab.now >= sc.duration:
            return
        await tab.reload(rng.uniform(0.05, 0.5), vanish=rng.random() < 0.1)
    if rng.random() < 0.5:
        return  # stays to the end
    await tab.sleep(rng.expovariate(1 / 4.0))
    if tab.now >= sc.duration:
        return
    if rng.random() < 0.2:
        tab.unload(vanish=True)
    else:
        tab.close()


COME_AND_GO = Scenario(
    "come-and-go",
    "people who reload a few times and leave for good, many seconds after connecting",
    _come_and_go,
    latency=Latency(0.01, 0.4),
)


# -- exercise 2: a heartbeat ---------------------------------------------------------------


def _prepare_liveness(answer: object) -> tuple[str, Callable[..., Strategy], Callable]:
    rule = _plain_liveness(answer)
    base = STRATEGIES[BASE_STRATEGY]

    def make(book: dict[str, float]) -> Strategy:
        return base.replace(name=rule.name, liveness=rule, summary="")

    return rule.name, make, lambda strategy: {}


def _plain_liveness(answer: object) -> Liveness:
    """The answer's numbers in a plain Liveness: a subclass's methods never run."""
    if isinstance(answer, tuple) and len(answer) == 2:
        interval, timeout = answer
        return Liveness("my-heartbeat", _seconds(interval), _seconds(timeout))
    if not isinstance(answer, Liveness):
        raise ConfigError(
            "exercise 2 grades a Liveness (simkit.Liveness(name, interval, timeout)) or an "
            f"(interval, timeout) pair of seconds; got {answer!r}"
        )
    also = None if answer.also is None else _plain_liveness(answer.also)
    return Liveness(
        str(answer.name),
        _seconds(answer.interval),
        _seconds(answer.timeout),
        answer.kind,
        str(answer.summary),
        also,
    )


def _seconds(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"heartbeat interval and timeout are seconds (numbers), got {value!r}")
    return float(value)


async def _phones_die(tab: Tab, sc: Scenario) -> None:
    """Tabs open and stay, reloading every two minutes or so, and a third of them die
    without a word during the workload (a phone's battery, a laptop lid): the page is gone
    and its socket half-open, with no proxy in the path to cut it. Only the server's
    heartbeat can find those peers."""
    rng = tab.work_rng
    await tab.sleep(rng.uniform(0.0, 5.0))
    tab.load()
    dies_at = rng.uniform(10.0, sc.duration) if rng.random() < 1 / 3 else math.inf
    while True:
        gap = rng.expovariate(1 / 120.0)
        if tab.now + gap >= min(dies_at, sc.duration):
            break
        await tab.sleep(gap)
        await tab.reload(rng.uniform(0.05, 0.5))
    if dies_at < sc.duration:
        await tab.sleep(dies_at - tab.now)
        tab.unload(vanish=True)


PHONES_DIE = Scenario(
    "phones-die",
    "tabs that stay open; a third die silently (half-open sockets), no proxy to cut them",
    _phones_die,
)


def _proxy_cuts(p: Played) -> float:
    """Connections the proxy cost: connects behind it minus connects without it (same seed,
    same heartbeat). Both runs draw the same random numbers until the proxy cuts a socket."""
    assert p.without_proxy is not None
    return p.summary["connects"] - p.without_proxy.summary["connects"]


def _pings_per_tab_hour(p: Played) -> float:
    s = p.summary
    return s["heartbeat_pings"] * 3600.0 / (s["tabs"] * (s["duration"] + s["settle"]))


# -- exercise 3: a reconnect backoff -------------------------------------------------------


class _PerTab:
    """The backoff the tabs see while an answer is graded: each tab gets its own deep copy
    of the answer, as each browser tab runs its own copy of the page's script. Each call
    gets a fresh random stream seeded from the tab's own, and is recorded, so that after the
    run each tab's calls can be replayed alone (:meth:`replay`)."""

    def __init__(self, answer: Backoff, book: dict[str, float]) -> None:
        self.answer = answer
        self.book = book
        for name in ("mode", "base", "factor", "max_delay", "randomization", "first_max"):
            setattr(self, name, getattr(answer, name))
        self.tabs: dict[int, tuple[random.Random, Backoff, list[tuple[int, int, float]]]] = {}

    def delay(self, attempt: int, rng: random.Random) -> float:
        slot = self.tabs.get(id(rng))
        if slot is None:
            slot = self.tabs[id(rng)] = (rng, copy.deepcopy(self.answer), [])
        seed = rng.getrandbits(64)
        value = slot[1].delay(attempt, random.Random(seed))
        slot[2].append((attempt, seed, value))
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 3600:
            self.book["bad"] = self.book.get("bad", 0) + 1
            return 3600.0 if isinstance(value, int | float) and value > 3600 else 0.0
        return float(value)

    def bounds(self, attempt: int) -> tuple[float, float]:
        return self.answer.bounds(attempt)

    def replay(self) -> dict[str, float]:
        """Replay each tab's calls on a fresh copy, alone: the number of tabs whose delays
        came out different (they depended on other tabs, or on anything but the tab's own
        calls and random stream)."""
        differ = 0
        for _, _, calls in self.tabs.values():
            alone = copy.deepcopy(self.answer)
            for attempt, seed, value in calls:
                again = alone.delay(attempt, random.Random(seed))
                if not (again == value or (again != again and value != value)):
                    differ += 1
                    break
        return {"shared": differ}


def _prepare_backoff(answer: object) -> tuple[str, Callable[..., Strategy], Callable]:
    if not isinstance(answer, Backoff):
        raise ConfigError(
            "exercise 3 grades a Backoff (simkit.model.Backoff(mode, ...) or a subclass "
            f"with its own delay()); got {answer!r}"
        )
    try:
        copy.deepcopy(answer)
    except Exception as exc:
        raise ConfigError(
            f"every tab runs its own copy of the backoff, but copy.deepcopy({answer!r}) "
            f"failed: {exc!r}"
        ) from exc
    base = STRATEGIES[BASE_STRATEGY]

    def make(book: dict[str, float]) -> Strategy:
        return base.replace(name="my-backoff", backoff=_PerTab(answer, book), summary="")

    def replay(strategy: Strategy) -> dict[str, float]:
        backoff = strategy.client.backoff
        return backoff.replay() if isinstance(backoff, _PerTab) else {}

    return "my-backoff", make, replay


RESTART_AT = 60.0  # server-restart: the server dies at half time of a 120 s workload


def _herd_attempts(p: Played) -> float:
    trace = p.result.trace
    assert trace is not None
    times = _connect_times(trace)
    return _peak_per_second(times[times >= RESTART_AT])


def _herd_accepted(p: Played) -> float:
    ts = p.result.timeseries
    accepted = ts["connects"].diff()
    return float(accepted[ts["t"] > RESTART_AT].max())


def _offline_after_restart(p: Played) -> float:
    """Seconds each tab spent loaded but without a connection, from the restart to the
    end of the workload, on average: the outage itself (5 s) plus the backoff's wait."""
    ts = p.result.timeseries
    window = ts[(ts["t"] >= RESTART_AT) & (ts["t"] < p.summary["duration"])]
    step = float(ts["t"].iloc[1] - ts["t"].iloc[0])
    offline = (window["live_tabs"] - window["connected_tabs"]).sum() * step
    return round(float(offline) / p.summary["tabs"], 3)


# -- the three exercises -------------------------------------------------------------------


def _registry_workload(sc: Scenario, min_delivery: float) -> Workload:
    return Workload(
        sc.name,
        sc,
        tabs=50,
        duration=120.0,
        settle=None,
        checks=(
            *INVARIANTS,
            _summary("delivery_ratio", ">=", min_delivery),
            _book("route", "route() disagrees with entries()"),
            _book("wrong_user", "entries on another user's connection"),
            _book("hidden", "entries changed for a user with no event"),
        ),
    )


EXERCISES: dict[int, Exercise] = {
    1: Exercise(
        1,
        "survive the race",
        "exercises/ex1_survive_the_race.ipynb",
        "02_the_cleanup_race.ipynb",
        "a Registry subclass",
        (
            _registry_workload(SCENARIOS["reload-storm"], 0.9),
            _registry_workload(SCENARIOS["strict-mode"], 0.9),
            _registry_workload(SCENARIOS["flaky-network"], 0.6),
            _registry_workload(COME_AND_GO, 0.9),
        ),
    ),
    2: Exercise(
        2,
        "a heartbeat under a proxy",
        "exercises/ex2_heartbeat_under_a_proxy.ipynb",
        "03_liveness.ipynb",
        "a Liveness or an (interval, timeout) pair",
        (
            Workload(
                "proxy-idle",
                SCENARIOS["proxy-idle"],
                tabs=50,
                duration=300.0,
                settle=90.0,
                checks=(
                    *INVARIANTS,
                    Check("reconnects the proxy caused", _proxy_cuts, "<=", 0),
                    Check("heartbeat pings per tab-hour", _pings_per_tab_hour, "<=", 150),
                    _summary("delivery_ratio", ">=", 0.99),
                ),
                without_proxy=True,
            ),
            Workload(
                "phones-die",
                PHONES_DIE,
                tabs=50,
                duration=300.0,
                settle=90.0,
                checks=(
                    *INVARIANTS,
                    _summary("detections", ">=", 5, "dead peers found by the heartbeat"),
                    _summary("detection_delay_max", "<=", 60, "slowest detection (s)"),
                ),
            ),
        ),
    ),
    3: Exercise(
        3,
        "tame the herd",
        "exercises/ex3_tame_the_herd.ipynb",
        "06_restart_and_herds.ipynb",
        "a Backoff",
        (
            Workload(
                "server-restart",
                SCENARIOS["server-restart"],
                tabs=100,
                duration=120.0,
                settle=60.0,
                checks=(
                    *INVARIANTS,
                    Check("herd: attempts in its worst second", _herd_attempts, "<=", 45),
                    Check(
                        "herd: connections accepted in its worst second", _herd_accepted, "<=", 40
                    ),
                    Check(
                        "offline seconds per tab after the restart",
                        _offline_after_restart,
                        "<=",
                        8.0,
                    ),
                    _summary("delivery_ratio", ">=", 0.88),
                    _book("shared", "tabs whose delays depend on other tabs"),
                    _book("bad", "delays not a number in [0, 3600] s"),
                ),
                trace=True,
            ),
        ),
    ),
}

_PREPARE: dict[int, Callable[[object], tuple[str, Callable[..., Strategy], Callable]]] = {
    1: _prepare_registry,
    2: _prepare_liveness,
    3: _prepare_backoff,
}


def _kit_functions() -> dict[str, object]:
    """Every function and method defined in a loaded simkit module, by dotted name."""
    found: dict[str, object] = {}
    for module_name, module in list(sys.modules.items()):
        if module is None or not (module_name == "simkit" or module_name.startswith("simkit.")):
            continue
        for owner_name, owner in list(vars(module).items()):
            if isinstance(owner, type) and owner.__module__ == module_name:
                for key, member in vars(owner).items():
                    if inspect.isfunction(member) or isinstance(
                        member, staticmethod | classmethod | property
                    ):
                        found[f"{module_name}.{owner_name}.{key}"] = member
            elif inspect.isfunction(owner) and owner.__module__ == module_name:
                found[f"{module_name}.{owner_name}"] = owner
    return found


def _check_kit_untouched() -> None:
    """Refuse to grade when a function of the kit was replaced at run time (say
    ``Census.audit = ...`` in a notebook): every function and method the kit had when this
    module was imported must still be the same object."""
    now = _kit_functions()
    for name, function in _KIT_AT_IMPORT.items():
        if now.get(name) is not function:
            raise ConfigError(
                f"{name} was replaced or removed after the kit was imported; restart the "
                "kernel to grade an unchanged kit"
            )


def _columns(rows: list[tuple[str, ...]], right: tuple[int, ...] = ()) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [
            r[i].rjust(widths[i]) if i in right else r[i].ljust(widths[i]) for i in range(len(r))
        ]
        lines.append("  " + "  ".join(cells).rstrip())
    return lines


_KIT_AT_IMPORT = _kit_functions()  # see _check_kit_untouched

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
