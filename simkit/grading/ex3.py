"""Exercise 3, *tame the herd*: the learner's reconnect backoff.

The answer is a :class:`~simkit.model.Backoff` (or a subclass with its own ``delay``),
played on ``server-restart``: the herd of reconnects after the restart, the time tabs spend
offline, the pushes missed. Every tab gets its own copy of the answer (:class:`_PerTab`),
and each tab's delays are replayed alone afterwards: a tab whose delays depended on other
tabs (state shared across tabs) fails.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from simkit.grading.framework import (
    INVARIANTS,
    Book,
    Check,
    Exercise,
    Played,
    Prepared,
    Workload,
    book_check,
    summary_check,
)
from simkit.grading.harness import BASE_STRATEGY, connect_times, peak_per_second
from simkit.model.client import Backoff
from simkit.model.errors import ConfigError
from simkit.model.strategy import STRATEGIES, Strategy
from simkit.scenarios import SCENARIOS, Control, Scenario

if TYPE_CHECKING:
    from simkit.actors.env import Env


def _copy_of(answer: Backoff) -> Backoff:
    """A tab's own copy of the answer, with the attributes a subclass set in ``__init__``:
    ``Backoff`` is a slotted dataclass, whose deep copy keeps only its fields."""
    fresh = copy.deepcopy(answer)
    for name, value in getattr(answer, "__dict__", {}).items():
        object.__setattr__(fresh, name, copy.deepcopy(value))
    return fresh


def _call(backoff: Backoff, attempt: int, seed: int) -> float:
    """One call of ``backoff.delay`` with the tab's stream for this call: ``rng`` (a
    ``random.Random`` seeded from the tab's own stream) and, for the call's duration, Python's
    module-level ``random`` seeded the same way (its state is put back afterwards). So a
    delay drawn with ``random.uniform`` is the tab's own draw too, as reproducible as one
    drawn with ``rng.uniform``; any other source (a clock, a counter shared by the tabs) is
    not."""
    saved = random.getstate()
    random.seed(seed ^ 0x5EED)
    try:
        return backoff.delay(attempt, random.Random(seed))
    finally:
        random.setstate(saved)


class _PerTab:
    """The backoff the tabs see while an answer is graded: each tab gets its own deep copy
    of the answer, as each browser tab runs its own copy of the page's script. Each call
    gets a fresh random stream seeded from the tab's own, and is recorded, so that after the
    run each tab's calls can be replayed alone (:meth:`replay`)."""

    def __init__(self, answer: Backoff, book: Book) -> None:
        self.answer = answer
        self.book = book
        for name in ("mode", "base", "factor", "max_delay", "randomization", "first_max"):
            setattr(self, name, getattr(answer, name))
        self.tabs: dict[int, tuple[random.Random, Backoff, list[tuple[int, int, float]]]] = {}

    def delay(self, attempt: int, rng: random.Random) -> float:
        slot = self.tabs.get(id(rng))
        if slot is None:
            slot = self.tabs[id(rng)] = (rng, _copy_of(self.answer), [])
        seed = rng.getrandbits(64)
        value = _call(slot[1], attempt, seed)
        slot[2].append((attempt, seed, value))
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 3600:
            self.book["bad"] = self.book.get("bad", 0) + 1
            return 3600.0 if isinstance(value, int | float) and value > 3600 else 0.0
        return float(value)

    def bounds(self, attempt: int) -> tuple[float, float]:
        return self.answer.bounds(attempt)

    def replay(self) -> Book:
        """Replay each tab's calls on a fresh copy, alone: the number of tabs whose delays
        came out different (they depended on other tabs, or on anything but the tab's own
        calls and random stream)."""
        differ = 0
        for _, _, calls in self.tabs.values():
            alone = _copy_of(self.answer)
            for attempt, seed, value in calls:
                again = _call(alone, attempt, seed)
                if not (again == value or (again != again and value != value)):
                    differ += 1
                    break
        return {"shared": differ}


def _prepare_backoff(answer: object) -> Prepared:
    if not isinstance(answer, Backoff):
        raise ConfigError(
            "exercise 3 grades a Backoff (simkit.model.Backoff(mode, ...) or a subclass "
            f"with its own delay()); got {answer!r}"
        )
    try:
        _copy_of(answer)
    except Exception as exc:
        raise ConfigError(
            f"every tab runs its own copy of the backoff, but copy.deepcopy({answer!r}) "
            f"failed: {exc!r}"
        ) from exc
    base = STRATEGIES[BASE_STRATEGY]

    def make(book: Book) -> Strategy:
        return base.replace(name="my-backoff", backoff=_PerTab(answer, book), summary="")

    def replay(strategy: Strategy) -> Book:
        backoff = strategy.client.backoff
        return backoff.replay() if isinstance(backoff, _PerTab) else {}

    return Prepared("my-backoff", make, replay)


RESTART_AT = 60.0  # the server dies 60 s into the workload
# How long the server stays down, by seed: short restarts (a deploy, a crash and a
# supervisor's restart) and long outages (a database migration, a region failing over).
# They vary so that no backoff can be tuned to one length.
SHORT_OUTAGES = {0: 5.0, 1: 1.0, 2: 3.0, 3: 8.0, 4: 2.0}
LONG_OUTAGES = {0: 90.0, 1: 60.0, 2: 120.0, 3: 75.0, 4: 105.0}
LONG_DURATION = 240.0


def _restart_for(outage: float) -> Control:
    async def restart(env: Env, sc: Scenario) -> None:
        await env.sleep(RESTART_AT)
        env.network.restart_server(outage)

    restart.__doc__ = f"The server dies at {RESTART_AT:g} s and is back {outage:g} s later."
    return restart


def _with_outages(base: Scenario, outages: dict[int, float]) -> Callable[[int], Scenario]:
    def scenario(seed: int) -> Scenario:
        if seed not in outages:
            raise ConfigError(
                f"no outage length for seed {seed}; the exercise's seeds are {sorted(outages)}"
            )
        return base.with_(control=_restart_for(outages[seed]))

    return scenario


SERVER_RESTART = SCENARIOS["server-restart"].with_(
    summary="every connection drops at once at 60 s; the server is back after a short outage",
)
LONG_OUTAGE = SCENARIOS["server-restart"].with_(
    name="long-outage",
    summary="every connection drops at once at 60 s; the server stays down for minutes",
)


def _outage(p: Played) -> float:
    table = LONG_OUTAGES if p.workload.name == LONG_OUTAGE.name else SHORT_OUTAGES
    return table[p.seed]


def _herd_attempts(p: Played) -> float:
    trace = p.result.trace
    assert trace is not None
    times = connect_times(trace)
    return peak_per_second(times[times >= RESTART_AT])


def _herd_accepted(p: Played) -> float:
    ts = p.result.timeseries
    accepted = ts["connects"].diff()
    return float(accepted[ts["t"] > RESTART_AT].max())


def _offline_beyond_the_outage(p: Played) -> float:
    """Seconds each tab spent loaded but without a connection, from the restart to the
    end of the workload, on average, minus the outage itself: the backoff's own wait."""
    ts = p.result.timeseries
    window = ts[(ts["t"] >= RESTART_AT) & (ts["t"] < p.summary["duration"])]
    step = float(ts["t"].iloc[1] - ts["t"].iloc[0])
    offline = (window["live_tabs"] - window["connected_tabs"]).sum() * step
    tabs: int = p.summary["tabs"]
    return round(float(offline) / tabs - _outage(p), 3)


def _late_attempts_per_tab_minute(p: Played) -> float:
    """Attempts begun in the outage's last 30 s, per tab and minute: with a delay that
    grows, a tab that has been refused for a minute or more tries rarely."""
    trace = p.result.trace
    assert trace is not None
    times = connect_times(trace)
    end = RESTART_AT + _outage(p)
    late = times[(times >= end - 30.0) & (times < end)]
    tabs: int = p.summary["tabs"]
    return round(len(late) / tabs / 0.5, 3)


def _herd_checks() -> tuple[Check, ...]:
    return (
        Check("herd: attempts in its worst second", _herd_attempts, "<=", 45),
        Check("herd: connections accepted in its worst second", _herd_accepted, "<=", 40),
    )


def _fair_checks() -> tuple[Check, ...]:
    return (
        book_check("shared", "tabs whose delays depend on other tabs"),
        book_check("bad", "delays not a number in [0, 3600] s"),
    )


EXERCISE = Exercise(
    3,
    "tame the herd",
    "exercises/ex3_tame_the_herd.ipynb",
    "06_restart_and_herds.ipynb",
    "a Backoff",
    (
        Workload(
            "server-restart",
            SERVER_RESTART,
            tabs=100,
            duration=120.0,
            settle=60.0,
            checks=(
                *INVARIANTS,
                *_herd_checks(),
                Check(
                    "offline seconds per tab beyond the outage",
                    _offline_beyond_the_outage,
                    "<=",
                    4.0,
                ),
                summary_check("delivery_ratio", ">=", 0.88),
                *_fair_checks(),
            ),
            trace=True,
            per_seed=_with_outages(SERVER_RESTART, SHORT_OUTAGES),
            varies="the outage lasts "
            + ", ".join(f"{v:g} s (seed {k})" for k, v in SHORT_OUTAGES.items()),
        ),
        Workload(
            "long-outage",
            LONG_OUTAGE,
            tabs=100,
            duration=LONG_DURATION,
            settle=60.0,
            checks=(
                *INVARIANTS,
                *_herd_checks(),
                Check(
                    "attempts per tab-minute in the outage's last 30 s",
                    _late_attempts_per_tab_minute,
                    "<=",
                    5.0,
                ),
                Check(
                    "offline seconds per tab beyond the outage",
                    _offline_beyond_the_outage,
                    "<=",
                    30.0,
                ),
                *_fair_checks(),
            ),
            trace=True,
            per_seed=_with_outages(LONG_OUTAGE, LONG_OUTAGES),
            varies="the outage lasts "
            + ", ".join(f"{v:g} s (seed {k})" for k, v in LONG_OUTAGES.items()),
        ),
    ),
    _prepare_backoff,
)

__all__ = ["EXERCISE", "LONG_OUTAGES", "RESTART_AT", "SHORT_OUTAGES"]
