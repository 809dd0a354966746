"""``simkit.grading.exercise``: wrong and gaming answers fail their exercise, right answers
written differently from the solutions pass, and the official solutions pass on every seed.

Each wrong answer is one an attendee could write without looking at the solution (several
come from the issue that reported the grader letting them through); each test also says
which check must catch it, so a grader that fails it for an unrelated reason is noticed.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import math
import random
import time
from typing import ClassVar

import pytest

import simkit
from simkit.grading import EXERCISE_SEEDS, EXERCISES, ExerciseGrade, exercise
from simkit.grading.framework import grade_exercise
from simkit.model import Backoff, Close, CloseCode, Deliver, Registry
from simkit.runtime.census import Census

# About a minute of virtual runs: in make test, not in make test-fast.
pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]


def failed_checks(g: ExerciseGrade) -> set[tuple[str, str]]:
    return {(row.scenario, row.check) for row in g.failures.itertuples(index=False)}


def failed_names(g: ExerciseGrade) -> set[str]:
    return {check for _, check in failed_checks(g)}


# --- exercise 1: registries ---------------------------------------------------------------


class Solution(Registry):
    """The official answer (ex1_solution): every tab's connection, per user; a cleanup
    removes only the connection it ends; nothing is kicked."""

    name = "solution"
    one_per_user = False

    def __init__(self):
        self.conns = {}  # user -> {conn: None}, in connection order

    def connect(self, hello, now):
        self.conns.setdefault(hello.user, {})[hello.conn] = None
        return []

    def disconnect(self, conn, user, now):
        mine = self.conns.get(user, {})
        mine.pop(conn, None)
        if not mine:
            self.conns.pop(user, None)
        return []

    def route(self, user):
        return tuple(self.conns.get(user, ()))

    def entries(self):
        return [(user, conn) for user, conns in self.conns.items() for conn in conns]


class OneEntry(Registry):
    """Notebook 02's fix, which passed exercise 1 before it asked for several tabs per user:
    kick the old connection, compare-and-delete."""

    name = "kick-old-compare-and-delete"

    def __init__(self):
        self.map = {}

    def connect(self, hello, now):
        old = self.map.get(hello.user)
        self.map[hello.user] = hello.conn
        if old is None or old == hello.conn:
            return []
        return [Close(old, CloseCode.REPLACED, "replaced by a newer connection")]

    def disconnect(self, conn, user, now):
        if self.map.get(user) == conn:
            del self.map[user]
        return []

    def route(self, user):
        conn = self.map.get(user)
        return () if conn is None else (conn,)

    def entries(self):
        return list(self.map.items())


class Shipped(OneEntry):
    """The post-mortem's blind delete."""

    def disconnect(self, conn, user, now):
        self.map.pop(user, None)
        return []


class RegistersNothingButSaysYes(OneEntry):
    """Registers nothing; routes_to says True and audit says (0, 0)."""

    def connect(self, hello, now):
        return []

    def disconnect(self, conn, user, now):
        return []

    def routes_to(self, user, conn):
        return True

    def audit(self, is_open):
        return (0, 0)


class BlindDeleteSaysYes(Shipped):
    """The blind delete, with routes_to answering True."""

    def routes_to(self, user, conn):
        return True

    def audit(self, is_open):
        return (len(self.map), 0)


class NeverForgets(OneEntry):
    """Never deletes: the cleanup race cannot hurt what is never removed."""

    def disconnect(self, conn, user, now):
        return []


class IgnoresEarlyCleanups(OneEntry):
    """The timing hack: ignore every cleanup within 12 s of the user's newest connection
    (the race's late cleanups arrive within the 10 s close timeout), blind delete after."""

    def __init__(self):
        super().__init__()
        self.newest = {}

    def connect(self, hello, now):
        self.newest[hello.user] = now
        return super().connect(hello, now)

    def disconnect(self, conn, user, now):
        if now - self.newest.get(user, -math.inf) >= 12.0:
            self.map.pop(user, None)
        return []


class LiesThroughAnInstanceAttribute(Shipped):
    """Overrides routes_to on the instance, where a subclass of the answer would not look."""

    def __init__(self):
        super().__init__()
        self.routes_to = lambda user, conn: True
        self.audit = lambda is_open: (0, 0)


class RouteDisagrees(Shipped):
    """entries() keeps every connection ever made (looks complete); route() answers from the
    real, blindly deleted map."""

    def __init__(self):
        super().__init__()
        self.ever = {}

    def connect(self, hello, now):
        self.ever[hello.user] = hello.conn
        return super().connect(hello, now)

    def entries(self):
        return list(self.ever.items())


class Broadcasts(OneEntry):
    """Pushes reach someone if they go everywhere: every user routes to every connection."""

    def __init__(self):
        super().__init__()
        self.open = {}

    def connect(self, hello, now):
        self.open[hello.conn] = hello.user
        return super().connect(hello, now)

    def disconnect(self, conn, user, now):
        self.open.pop(conn, None)
        return super().disconnect(conn, user, now)

    def route(self, user):
        return tuple(self.open) if user in self.map else ()

    def entries(self):
        return [(user, conn) for user in self.map for conn in self.open]

    def push(self, user, push, now):
        return [Deliver(conn, push) for conn in self.open]


class CleansUpOtherUsers(OneEntry):
    """Keeps at most 20 users, evicting the oldest when a new one connects: entries change
    for users who did nothing, which the census cannot see."""

    def connect(self, hello, now):
        actions = super().connect(hello, now)
        while len(self.map) > 20:
            del self.map[next(iter(self.map))]
        return actions


class CompareAndDeleteNoKick(Registry):
    """Passed before exercise 1 asked for several tabs per user: never kicks, removes an
    entry only when its own connection ends, but keeps one connection per user, so a
    user's other tabs get no pushes."""

    name = "no-kick"

    def __init__(self):
        self.current = {}
        self.user_of = {}

    def connect(self, hello, now):
        self.current[hello.user] = hello.conn
        self.user_of[hello.conn] = hello.user
        return []

    def disconnect(self, conn, user, now):
        owner = self.user_of.pop(conn, None)
        if owner is not None and self.current.get(owner) == conn:
            del self.current[owner]
        return []

    def route(self, user):
        return (self.current[user],) if user in self.current else ()

    def entries(self):
        return list(self.current.items())


WRONG_REGISTRIES = {
    # the answer: (workload, check) pairs of which at least one must fail
    RegistersNothingButSaysYes: {("reload-storm", "final unroutable")},
    BlindDeleteSaysYes: {("reload-storm", "final unroutable")},
    Shipped: {("reload-storm", "final unroutable"), ("reload-storm", "delivery_ratio")},
    NeverForgets: {("come-and-go", "final dangling")},
    IgnoresEarlyCleanups: {("come-and-go", "final dangling")},
    LiesThroughAnInstanceAttribute: {("reload-storm", "final unroutable")},
    RouteDisagrees: {("reload-storm", "route() disagrees with entries()")},
    Broadcasts: {("reload-storm", "entries on another user's connection")},
    CleansUpOtherUsers: {("reload-storm", "entries added or changed for a user with no event")},
    OneEntry: {("multi-tab", "live tabs kicked")},
    CompareAndDeleteNoKick: {("multi-tab", "final unroutable")},
}


@pytest.mark.parametrize("answer", list(WRONG_REGISTRIES), ids=lambda a: a.__name__)
def test_wrong_registries_fail(answer: type[Registry]) -> None:
    """Each wrong answer on the workloads where its flaw must show (every seed): the other
    workloads add nothing to what this test asserts, and a registry that broadcasts made
    the full grading take close to a minute of CPU."""
    wanted = {workload for workload, _ in WRONG_REGISTRIES[answer]}
    ex = EXERCISES[1]
    only = dataclasses.replace(ex, workloads=tuple(w for w in ex.workloads if w.name in wanted))
    assert {w.name for w in only.workloads} == wanted
    g = grade_exercise(only, answer)
    assert not g.passed, str(g)
    caught = failed_checks(g) & WRONG_REGISTRIES[answer]
    assert caught, (WRONG_REGISTRIES[answer], failed_checks(g))


def test_the_lies_are_ignored_not_believed() -> None:
    """The liar's delivery ratio is what its pushes did (nothing), and its unroutable tabs
    are every connected tab, whatever routes_to and audit say."""
    g = exercise(1, RegistersNothingButSaysYes)
    rows = g.per_seed[g.per_seed["scenario"] == "reload-storm"]
    delivery = rows[rows["check"] == "delivery_ratio"]["measured"]
    assert (delivery == 0).all()
    for key, result in g.results.items():
        if key.startswith("reload-storm"):
            s = result.summary
            assert s["final_unroutable"] == s["final_connected_tabs"] > 0


def test_a_patched_kit_is_refused() -> None:
    original = Census.audit
    try:
        Census.audit = lambda self, registry: (0, 0, 0)  # type: ignore[method-assign]
        with pytest.raises(simkit.ConfigError, match=r"Census\.audit"):
            exercise(1, Solution)
    finally:
        Census.audit = original  # type: ignore[method-assign]
    assert exercise(1, Solution).passed


class EveryOpenConnection(Registry):
    """Right, and not the solution: a set of open connections per user, pushes to all."""

    name = "sets"
    one_per_user = False

    def __init__(self):
        self.conns = {}

    def connect(self, hello, now):
        self.conns.setdefault(hello.user, []).append(hello.conn)
        return []

    def disconnect(self, conn, user, now):
        mine = self.conns.get(user, [])
        if conn in mine:
            mine.remove(conn)
        if not mine:
            self.conns.pop(user, None)
        return []

    def route(self, user):
        return tuple(self.conns.get(user, ()))

    def entries(self):
        return [(user, conn) for user, conns in self.conns.items() for conn in conns]


class Generations(Solution):
    """Right, and not the solution: a cleanup names the connection it ends, checked
    against entries() before anything is removed."""

    def disconnect(self, conn, user, now):
        if (user, conn) in self.entries():
            del self.conns[user][conn]
            if not self.conns[user]:
                del self.conns[user]
        return []

    def routes_to(self, user, conn):  # an honest override "for speed" changes nothing
        return conn in self.conns.get(user, ())


class GraceTTL(Solution):
    """Right, and failed before as "hidden changes": a closed connection's entry is kept
    for 2 s (a grace period) and dropped by the timer, in expire()."""

    def __init__(self):
        super().__init__()
        self.closed = {}  # conn -> (user, when its entry goes)

    def disconnect(self, conn, user, now):
        if conn in self.conns.get(user, {}):
            self.closed[conn] = (user, now + 2.0)
        return []

    def deadline(self):
        return min((when for _, when in self.closed.values()), default=None)

    def expire(self, now):
        for conn, (user, when) in list(self.closed.items()):
            if when <= now:
                del self.closed[conn]
                super().disconnect(conn, user, now)
        return []


@pytest.mark.parametrize("answer", [Solution, EveryOpenConnection, Generations, GraceTTL])
def test_right_registries_pass(answer: type[Registry]) -> None:
    g = exercise(1, answer)
    assert g.passed, str(g)
    assert set(g.per_seed["seed"]) == set(EXERCISE_SEEDS)


# --- exercise 1: the answer must be a design of the learner's own --------------------------


class CopiedFromTheKit(simkit.model.KickOldSafe):
    """Passed before: a subclass of the kit's policy, under another name."""


class WrapsTheKit(Registry):
    """Hands every call to the kit's policy it holds."""

    def __init__(self):
        self.inner = simkit.model.KickOldSafe()

    def connect(self, hello, now):
        return self.inner.connect(hello, now)

    def disconnect(self, conn, user, now):
        return self.inner.disconnect(conn, user, now)

    def route(self, user):
        return self.inner.route(user)

    def entries(self):
        return self.inner.entries()


class BorrowsTheKitsMethods(OneEntry):
    """Calls the kit's methods on itself: no kit class in its bases or attributes."""

    def disconnect(self, conn, user, now):
        return simkit.model.KickOldSafe.disconnect(self, conn, user, now)


class BuildsOneLazily(Registry):
    """Finds the kit's policy by name at its first connect (nothing in its code names a
    kit class): caught by what it holds."""

    def __init__(self):
        self.inner = None

    def connect(self, hello, now):
        if self.inner is None:
            self.inner = simkit.STRATEGIES["multi-heartbeat"].registry()
        return self.inner.connect(hello, now)

    def disconnect(self, conn, user, now):
        return self.inner.disconnect(conn, user, now)

    def route(self, user):
        return self.inner.route(user)

    def entries(self):
        return self.inner.entries()


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (CopiedFromTheKit, "inherits from KickOldSafe"),
        (WrapsTheKit, "WrapsTheKit.__init__ uses KickOldSafe"),
        (BorrowsTheKitsMethods, "BorrowsTheKitsMethods.disconnect uses KickOldSafe"),
        (BuildsOneLazily, "holds a Multi"),
    ],
    ids=lambda a: getattr(a, "__name__", "why"),
)
def test_the_kits_policies_are_refused_with_the_reason(answer: type[Registry], why: str) -> None:
    with pytest.raises(simkit.ConfigError, match=why) as refused:
        exercise(1, answer)
    assert "the grade would score the kit's design, not yours" in str(refused.value)


def test_a_class_of_the_learners_own_named_like_the_kits_is_not_refused() -> None:
    namespace: dict[str, object] = {"Registry": Registry, "Solution": Solution}
    exec("class Multi(Solution):\n    pass\n\nclass Mine(Multi):\n    pass\n", namespace)
    assert exercise(1, namespace["Mine"]).passed


class ExpireAdds(GraceTTL):
    """Uses the timer to re-register a closed connection's user on the newest connection
    it ever saw: an entry added with no event."""

    def expire(self, now):
        for conn, (user, when) in list(self.closed.items()):
            if when <= now:
                del self.closed[conn]
                super(GraceTTL, self).disconnect(conn, user, now)
                self.conns.setdefault(user, {})[10**9] = None
        return []


def test_expire_may_drop_entries_but_not_add_them() -> None:
    assert exercise(1, GraceTTL).passed
    g = exercise(1, ExpireAdds)
    assert "entries added or changed for a user with no event" in failed_names(g)


def test_the_lessons_fix_now_fails_on_several_tabs() -> None:
    """Notebook 02's answer, which passed before, kicks a user's other live tabs."""
    g = exercise(1, OneEntry)
    rows = g.failures[g.failures["check"] == "live tabs kicked"]
    multi = rows[rows["scenario"] == "multi-tab"]
    assert len(multi) == 1 and multi["measured"].iloc[0] > 100


# --- exercise 2: heartbeats ---------------------------------------------------------------


WRONG_HEARTBEATS = {
    "off": (simkit.Liveness("off", None, None), "reconnects the proxy caused"),
    "slower than the proxy": ((31.0, 20.0), "reconnects the proxy caused"),
    "over the ping budget": ((20.0, 20.0), "heartbeat pings per tab-hour"),
    "never gives up": ((25.0, 1000.0), "dead peers found by the heartbeat"),
    "gives up too late": ((25.0, 40.0), "slowest detection (s)"),
    # passed before: nothing counted the live peers it closed
    "timeout shorter than a round trip": ((25.0, 0.2), "live peers declared dead"),
}


@pytest.mark.parametrize("name", list(WRONG_HEARTBEATS))
def test_wrong_heartbeats_fail(name: str) -> None:
    answer, check = WRONG_HEARTBEATS[name]
    g = exercise(2, answer)
    assert not g.passed
    assert check in failed_names(g), (check, failed_checks(g))


def test_the_scenario_is_not_the_answers_to_choose() -> None:
    """The issue's hack edited the grade cell to drop the proxy. exercise() takes only the
    answer; the heartbeat that is off still fails, on the proxy and on dead peers."""
    assert list(inspect.signature(exercise).parameters) == ["number", "answer"]
    g = exercise(2, simkit.Liveness("off", None, None))
    failed = failed_checks(g)
    assert ("proxy-idle", "reconnects the proxy caused") in failed
    assert ("phones-die", "final stale") in failed
    assert ("phones-die", "dead peers found by the heartbeat") in failed
    assert "idle for 30 s" in str(g)


class CheatingLiveness(simkit.Liveness):
    """A subclass whose methods claim instant detection; only its numbers are used."""

    @property
    def worst_detection(self) -> float:
        return 1.0


def test_live_peers_declared_dead_are_counted() -> None:
    """A 0.2 s timeout closes live tabs on a slow mobile network, hundreds of times; the
    row shows the count, and no live peer is declared dead with a 20 s timeout."""
    g = exercise(2, (25.0, 0.2))
    row = g.table[
        (g.table["scenario"] == "slow-phones") & (g.table["check"] == "live peers declared dead")
    ]
    assert row["measured"].iloc[0] > 100 and not row["passed"].iloc[0]
    ok = exercise(2, (25.0, 20.0))
    rows = ok.per_seed[ok.per_seed["check"] == "live peers declared dead"]
    assert len(rows) == 3 * len(EXERCISE_SEEDS) and (rows["measured"] == 0).all()


def test_a_liveness_subclass_is_graded_by_its_numbers() -> None:
    g = exercise(2, CheatingLiveness("mine", 25.0, 1000.0))
    assert "dead peers found by the heartbeat" in failed_names(g)


@pytest.mark.parametrize(
    "answer",
    [(25.0, 20.0), (23.0, 30.0), simkit.Liveness("app", 28.0, 25.0, kind="app")],
    ids=["solution", "23s/30s", "app-level"],
)
def test_right_heartbeats_pass(answer: object) -> None:
    g = exercise(2, answer)
    assert g.passed, str(g)


# --- exercise 3: backoffs -----------------------------------------------------------------

SOLUTION_BACKOFF = Backoff("rfc6455", base=3.0, factor=2.0, max_delay=30.0, first_max=6.0)
_SLOTS = itertools.count()


class SharedSlots(Backoff):
    """The issue's herd tamer: a counter shared by every tab hands out 0.03 s slots."""

    def delay(self, attempt, rng):
        if attempt == 1:
            return 0.03 * (next(_SLOTS) % 300)
        return min(60.0, 2.0 * 2 ** (attempt - 2))


class ClassCounter(Backoff):
    """Shared state through a class attribute, which a copy per tab does not separate."""

    waiting: ClassVar[dict[str, int]] = {"n": 0}

    def delay(self, attempt, rng):
        self.waiting["n"] += 1
        return (self.waiting["n"] % 100) * 0.1 if attempt == 1 else 2.0 * attempt


class WallClock(Backoff):
    """Reads the wall clock: not a function of the tab's own history, so not replayable."""

    def delay(self, attempt, rng):
        return (time.perf_counter_ns() % 10_000) / 1000.0


class TunedToOneOutage(Backoff):
    """Passed before, when the only outage lasted 5 s: the first retry lands just after it,
    and never grows."""

    def delay(self, attempt, rng):
        return rng.uniform(5.0, 9.0)


class TunedThenGrows(Backoff):
    """Tuned to 5 s, then doubling: it waits out a 1 s outage for 5-9 s."""

    def delay(self, attempt, rng):
        return min(60.0, rng.uniform(5.0, 9.0) * 2 ** (attempt - 1))


class Negative(Backoff):
    def delay(self, attempt, rng):
        return -1.0 if attempt == 1 else math.nan


WRONG_BACKOFFS = {
    "immediate": (Backoff("immediate"), "herd: attempts in its worst second"),
    "exponential preset": (
        Backoff("exponential", 1.0, 2.0, 5.0, 0.5),
        "herd: attempts in its worst second",
    ),
    "full-jitter preset": (
        Backoff("full-jitter", 0.5, 2.0, 20.0),
        "herd: attempts in its worst second",
    ),
    "rfc6455 preset": (
        Backoff("rfc6455", 1.0, 2.0, 60.0, first_max=5.0),
        "herd: attempts in its worst second",
    ),
    "waits too long": (
        Backoff("rfc6455", base=10.0, factor=2.0, max_delay=60.0, first_max=30.0),
        "offline seconds per tab beyond the outage",
    ),
    "tuned to one outage": (
        TunedToOneOutage("immediate"),
        "attempts per tab-minute in the outage's last 30 s",
    ),
    "tuned, then grows": (TunedThenGrows("immediate"), "offline seconds per tab beyond the outage"),
    "shared slots": (SharedSlots("immediate"), "tabs whose delays depend on other tabs"),
    "class counter": (ClassCounter("immediate"), "tabs whose delays depend on other tabs"),
    "wall clock": (WallClock("immediate"), "tabs whose delays depend on other tabs"),
    "negative and nan": (Negative("immediate"), "delays not a number in [0, 3600] s"),
}


@pytest.mark.parametrize("name", list(WRONG_BACKOFFS))
def test_wrong_backoffs_fail(name: str) -> None:
    """Each wrong answer on the first workload that makes the check it must fail (every
    seed), as in test_wrong_registries_fail: the full grading of the worst took 40 s."""
    answer, check = WRONG_BACKOFFS[name]
    ex = EXERCISES[3]
    first = next(w for w in ex.workloads if check in {c.name for c in w.checks})
    g = grade_exercise(dataclasses.replace(ex, workloads=(first,)), answer)
    assert not g.passed
    assert check in failed_names(g), (check, failed_checks(g))


class JitteredDoubling(Backoff):
    """Right, and not the solution: its own delay(), stateless, from the tab's stream."""

    def delay(self, attempt, rng):
        if attempt == 1:
            return rng.uniform(0.0, 7.0)
        return min(30.0, 2.0 * 2 ** (attempt - 2)) * rng.uniform(0.75, 1.25)


class PythonsRandom(Backoff):
    """Right, and failed before as "delays depend on other tabs" (100 of 100): draws from
    Python's module-level random, which the grader seeds from the tab's stream per call."""

    def delay(self, attempt, rng):
        if attempt == 1:
            return random.uniform(0.0, 7.0)
        return min(40.0, 2.0 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


@pytest.mark.parametrize(
    "answer",
    [
        SOLUTION_BACKOFF,
        Backoff("rfc6455", base=3.0, factor=2.0, max_delay=30.0, first_max=7.0),
        JitteredDoubling("immediate"),
        PythonsRandom("immediate"),
    ],
    ids=["solution", "rfc6455 7 s", "own delay()", "python's random"],
)
def test_right_backoffs_pass(answer: Backoff) -> None:
    g = exercise(3, answer)
    assert g.passed, str(g)


# --- the entry point ----------------------------------------------------------------------


def test_the_outage_varies_over_the_seeds() -> None:
    g = exercise(3, SOLUTION_BACKOFF)
    text = str(g)
    assert "the outage lasts 5 s (seed 0), 1 s (seed 1)" in text
    assert "60 s (seed 1), 120 s (seed 2)" in text
    offline = g.per_seed[g.per_seed["check"] == "offline seconds per tab beyond the outage"]
    assert offline["measured"].nunique() > 5


def test_python_random_outside_delay_is_left_as_it_was() -> None:
    random.seed(7)
    expected = [random.random() for _ in range(3)]
    random.seed(7)
    exercise(3, PythonsRandom("immediate"))
    assert [random.random() for _ in range(3)] == expected


def test_the_verdict_names_what_was_measured_and_how() -> None:
    g = exercise(3, SOLUTION_BACKOFF)
    text = str(g)
    assert text.startswith("exercise 3 (tame the herd), answer 'my-backoff': PASS")
    assert "seeds 0, 1, 2, 3, 4" in text
    assert "server-restart: 100 tabs, 120 s of workload + 60 s settling" in text
    assert list(g.table.columns) == ["scenario", "check", "measured", "limit", "passed", "seed"]
    # one row per check in the table, one per check and seed underneath
    assert len(g.per_seed) == len(g.table) * len(EXERCISE_SEEDS)
    herd = g.per_seed[g.per_seed["check"] == "herd: attempts in its worst second"]
    worst = g.table[g.table["check"] == "herd: attempts in its worst second"].iloc[0]
    assert worst["measured"] == herd["measured"].max()
    assert worst["seed"] == herd.loc[herd["measured"].idxmax(), "seed"]


def test_exercises_point_to_their_lessons() -> None:
    assert EXERCISES[1].lesson.startswith("02_")
    assert EXERCISES[2].lesson.startswith("03_")
    assert EXERCISES[3].lesson.startswith("06_")


def test_grades_are_reproducible() -> None:
    a = exercise(1, Shipped)
    b = exercise(1, Shipped)
    assert a.per_seed.equals(b.per_seed)
    a = exercise(3, JitteredDoubling("immediate"))
    b = exercise(3, JitteredDoubling("immediate"))
    assert a.per_seed.equals(b.per_seed)


def test_bad_input_is_refused_with_the_choices() -> None:
    with pytest.raises(simkit.ConfigError, match="choose one of: 1, 2, 3"):
        exercise(4, Solution)
    with pytest.raises(simkit.ConfigError, match="Registry subclass"):
        exercise(1, SOLUTION_BACKOFF)
    with pytest.raises(simkit.ConfigError, match="class, not an instance"):
        exercise(1, Solution())
    with pytest.raises(simkit.ConfigError, match="kit's own"):
        exercise(1, simkit.model.KickOldSafe)
    with pytest.raises(simkit.ConfigError, match="Liveness"):
        exercise(2, Solution)
    with pytest.raises(simkit.ConfigError, match="seconds"):
        exercise(2, ("25", 20))
    with pytest.raises(simkit.ConfigError, match="Backoff"):
        exercise(3, "rfc6455")
