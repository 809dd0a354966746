"""A held-out set of answers, written apart from the graders and their own tests: each wrong
answer is named for the mistake it makes and must fail the check that names that mistake;
each right answer, written differently from the solutions, must pass on every seed.

If a change to an exercise lets one of these wrong answers pass, the exercise stopped
teaching what it says; if a right one fails, the exercise asks for more than its task says.
"""

from __future__ import annotations

import heapq

import pytest

import simkit
from simkit.grading import exercise
from simkit.model import Backoff, Close, CloseCode, Registry

# About a minute of virtual runs: in make test, not in make test-fast.
pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]


def failed(g: simkit.grading.ExerciseGrade) -> set[str]:
    return set(g.failures["check"])


# --- exercise 1 ---------------------------------------------------------------------------


class _PerUserSets(Registry):
    one_per_user = False

    def __init__(self):
        self.by_user = {}

    def connect(self, hello, now):
        self.by_user.setdefault(hello.user, set()).add(hello.conn)
        return []

    def disconnect(self, conn, user, now):
        self.by_user.get(user, set()).discard(conn)
        if not self.by_user.get(user):
            self.by_user.pop(user, None)
        return []

    def route(self, user):
        return tuple(sorted(self.by_user.get(user, ())))

    def entries(self):
        return [(u, c) for u in sorted(self.by_user) for c in sorted(self.by_user[u])]


class KicksTheUsersOtherTabs(Registry):
    """One connection per user, compare-and-delete: safe in the race, but a user's second
    tab kicks the first."""

    def __init__(self):
        self.current = {}

    def connect(self, hello, now):
        old = self.current.get(hello.user)
        self.current[hello.user] = hello.conn
        return [] if old in (None, hello.conn) else [Close(old, CloseCode.REPLACED, "newer")]

    def disconnect(self, conn, user, now):
        if self.current.get(user) == conn:
            del self.current[user]
        return []

    def route(self, user):
        return (self.current[user],) if user in self.current else ()

    def entries(self):
        return list(self.current.items())


class ForgetsTheUserOnAnyClose(_PerUserSets):
    """Keeps every tab, but any close forgets the whole user: the race again, per user."""

    def disconnect(self, conn, user, now):
        self.by_user.pop(user, None)
        return []


class NeverRemoves(_PerUserSets):
    """Nothing is ever removed, so nothing can be removed wrongly: entries for the gone."""

    def disconnect(self, conn, user, now):
        return []


class ExpiresOpenConnections(_PerUserSets):
    """A TTL on every entry, 20 s from its connect, open or not: live tabs become
    unreachable (legal in expire(), and wrong)."""

    def __init__(self):
        super().__init__()
        self.timers = []

    def connect(self, hello, now):
        heapq.heappush(self.timers, (now + 20.0, hello.conn, hello.user))
        return super().connect(hello, now)

    def deadline(self):
        return self.timers[0][0] if self.timers else None

    def expire(self, now):
        while self.timers and self.timers[0][0] <= now:
            _, conn, user = heapq.heappop(self.timers)
            super().disconnect(conn, user, now)
        return []


class ConnectionOwnerMap(Registry):
    """Right: each connection remembers its user; a user's route is its open connections."""

    one_per_user = False

    def __init__(self):
        self.owner = {}

    def connect(self, hello, now):
        self.owner[hello.conn] = hello.user
        return []

    def disconnect(self, conn, user, now):
        self.owner.pop(conn, None)
        return []

    def route(self, user):
        return tuple(c for c, u in self.owner.items() if u == user)

    def entries(self):
        return [(u, c) for c, u in self.owner.items()]


class OneSecondGrace(_PerUserSets):
    """Right: a closed connection's entry goes 1 s later, by the timer (a TTL)."""

    def __init__(self):
        super().__init__()
        self.timers = []

    def disconnect(self, conn, user, now):
        heapq.heappush(self.timers, (now + 1.0, conn, user))
        return []

    def deadline(self):
        return self.timers[0][0] if self.timers else None

    def expire(self, now):
        while self.timers and self.timers[0][0] <= now:
            _, conn, user = heapq.heappop(self.timers)
            super().disconnect(conn, user, now)
        return []


WRONG_1 = {
    KicksTheUsersOtherTabs: "live tabs kicked",
    ForgetsTheUserOnAnyClose: "final unroutable",
    NeverRemoves: "final dangling",
    ExpiresOpenConnections: "final unroutable",
}


@pytest.mark.parametrize("answer", list(WRONG_1), ids=lambda a: a.__name__)
def test_exercise_1_wrong(answer: type[Registry]) -> None:
    g = exercise(1, answer)
    assert WRONG_1[answer] in failed(g), str(g)


@pytest.mark.parametrize("answer", [ConnectionOwnerMap, OneSecondGrace], ids=lambda a: a.__name__)
def test_exercise_1_right(answer: type[Registry]) -> None:
    g = exercise(1, answer)
    assert g.passed, str(g)


# --- exercise 2 ---------------------------------------------------------------------------

WRONG_2 = {
    "pings too often for the budget": ((10.0, 20.0), "heartbeat pings per tab-hour"),
    "timeout under a slow round trip": ((25.0, 0.5), "live peers declared dead"),
    "interval longer than the proxy's idle cut": ((40.0, 15.0), "reconnects the proxy caused"),
    "waits too long to declare a silent peer dead": ((29.0, 45.0), "slowest detection (s)"),
}


@pytest.mark.parametrize("name", list(WRONG_2))
def test_exercise_2_wrong(name: str) -> None:
    answer, check = WRONG_2[name]
    g = exercise(2, answer)
    assert check in failed(g), str(g)


@pytest.mark.parametrize(
    "answer",
    [(24.0, 15.0), simkit.Liveness("short-timeout", 27.0, 10.0)],
    ids=["24s/15s", "27s/10s"],
)
def test_exercise_2_right(answer: object) -> None:
    g = exercise(2, answer)
    assert g.passed, str(g)


# --- exercise 3 ---------------------------------------------------------------------------

_QUEUE: list[float] = []


class SharedQueue(Backoff):
    """Tabs take turns from one list at module level: a herd tamer no page could run."""

    def delay(self, attempt, rng):
        _QUEUE.append(0.05)
        return 0.05 * len(_QUEUE) % 8.0


class SameDelayForAll(Backoff):
    """Waits, but every tab the same: the herd arrives 3 s later, all at once."""

    def delay(self, attempt, rng):
        return 3.0


class FixedWindowNoGrowth(Backoff):
    """Spreads the herd over 4-10 s and never grows: a long outage is retried all along."""

    def delay(self, attempt, rng):
        return rng.uniform(4.0, 10.0)


class EqualJitter(Backoff):
    """Right: AWS's "equal jitter" (half the grown delay fixed, half random), after a
    first retry spread over 7 s; it keeps its own attempt history, as a page's script may
    (each tab has its own copy)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        object.__setattr__(self, "history", [])

    def delay(self, attempt, rng):
        self.history.append(attempt)
        if attempt == 1:
            return rng.uniform(0.0, 7.0)
        cap = min(40.0, 3.0 * 2 ** (attempt - 2))
        return rng.uniform(cap / 2, cap)


WRONG_3 = {
    "shares state across tabs": (
        SharedQueue("immediate"),
        "tabs whose delays depend on other tabs",
    ),
    "same delay for every tab": (
        SameDelayForAll("immediate"),
        "herd: attempts in its worst second",
    ),
    "no growth in a long outage": (
        FixedWindowNoGrowth("immediate"),
        "attempts per tab-minute in the outage's last 30 s",
    ),
    "caps too low": (
        Backoff("rfc6455", base=2.0, factor=2.0, max_delay=6.0, first_max=6.0),
        "attempts per tab-minute in the outage's last 30 s",
    ),
}


@pytest.mark.parametrize("name", list(WRONG_3))
def test_exercise_3_wrong(name: str) -> None:
    answer, check = WRONG_3[name]
    g = exercise(3, answer)
    assert check in failed(g), str(g)


@pytest.mark.parametrize(
    "answer",
    [
        Backoff("rfc6455", base=2.5, factor=2.0, max_delay=40.0, first_max=6.5),
        EqualJitter("immediate"),
    ],
    ids=["rfc6455 6.5 s", "equal jitter"],
)
def test_exercise_3_right(answer: Backoff) -> None:
    g = exercise(3, answer)
    assert g.passed, str(g)
