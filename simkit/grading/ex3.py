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
from simkit.scenarios import SCENARIOS


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

    def replay(self) -> Book:
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


def _prepare_backoff(answer: object) -> Prepared:
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

    def make(book: Book) -> Strategy:
        return base.replace(name="my-backoff", backoff=_PerTab(answer, book), summary="")

    def replay(strategy: Strategy) -> Book:
        backoff = strategy.client.backoff
        return backoff.replay() if isinstance(backoff, _PerTab) else {}

    return Prepared("my-backoff", make, replay)


RESTART_AT = 60.0  # server-restart: the server dies at half time of a 120 s workload


def _herd_attempts(p: Played) -> float:
    trace = p.result.trace
    assert trace is not None
    times = connect_times(trace)
    return peak_per_second(times[times >= RESTART_AT])


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
    tabs: int = p.summary["tabs"]
    return round(float(offline) / tabs, 3)


EXERCISE = Exercise(
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
                Check("herd: connections accepted in its worst second", _herd_accepted, "<=", 40),
                Check(
                    "offline seconds per tab after the restart",
                    _offline_after_restart,
                    "<=",
                    8.0,
                ),
                summary_check("delivery_ratio", ">=", 0.88),
                book_check("shared", "tabs whose delays depend on other tabs"),
                book_check("bad", "delays not a number in [0, 3600] s"),
            ),
            trace=True,
        ),
    ),
    _prepare_backoff,
)

__all__ = ["EXERCISE", "RESTART_AT"]
