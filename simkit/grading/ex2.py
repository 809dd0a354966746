"""Exercise 2, *a heartbeat under a proxy*: the learner's heartbeat numbers.

The answer is a :class:`~simkit.Liveness` or an ``(interval, timeout)`` pair; only its
numbers are used (rebuilt in a plain ``Liveness``, so a subclass's methods never run). It is
played behind an idle-cutting proxy (``proxy-idle``, each seed also without the proxy, to
count the reconnects the proxy caused) and on ``phones-die`` (half-open sockets only the
heartbeat can find) and ``slow-phones`` (live tabs on a slow mobile network: a timeout
shorter than its round trips closes live peers), both defined here. Every workload counts
the live peers the heartbeat declared dead.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from simkit.grading.framework import (
    INVARIANTS,
    Book,
    Check,
    Exercise,
    Played,
    Prepared,
    Workload,
    nothing_to_replay,
    summary_check,
)
from simkit.grading.harness import BASE_STRATEGY
from simkit.model.codes import CloseCode
from simkit.model.errors import ConfigError
from simkit.model.latency import Latency
from simkit.model.liveness import Liveness
from simkit.model.strategy import STRATEGIES, Strategy
from simkit.scenarios import SCENARIOS, Scenario

if TYPE_CHECKING:
    from simkit.runtime.interfaces import TabActor


def _prepare_liveness(answer: object) -> Prepared:
    rule = _plain_liveness(answer)
    base = STRATEGIES[BASE_STRATEGY]

    def make(book: Book) -> Strategy:
        return base.replace(name=rule.name, liveness=rule, summary="")

    return Prepared(rule.name, make, nothing_to_replay)


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


async def _phones_die(tab: TabActor, sc: Scenario) -> None:
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
    return float(p.summary["connects"] - p.without_proxy.summary["connects"])


def _live_peers_declared_dead(p: Played) -> float:
    """Connections the heartbeat closed (code 1011, keepalive timeout) whose peer was alive:
    every such close minus the detections of a dead peer (a silent path or a page that
    runs no code). A timeout shorter than the network's round trip closes live tabs."""
    trace = p.result.trace
    assert trace is not None
    closed = trace.loc[trace["code"] == int(CloseCode.KEEPALIVE_TIMEOUT), "conn"].nunique()
    return float(closed - p.summary["detections"])


LIVE_PEERS = Check("live peers declared dead", _live_peers_declared_dead, "==", 0)


async def _on_the_move(tab: TabActor, sc: Scenario) -> None:
    """Tabs open and stay (a reload every two minutes or so), on a slow mobile network:
    every peer is alive and answers every ping, but an answer can take over a second."""
    rng = tab.work_rng
    await tab.sleep(rng.uniform(0.0, 5.0))
    tab.load()
    while True:
        gap = rng.expovariate(1 / 120.0)
        if tab.now + gap >= sc.duration:
            return
        await tab.sleep(gap)
        await tab.reload(rng.uniform(0.05, 0.5))


SLOW_PHONES = Scenario(
    "slow-phones",
    "tabs that stay open on a slow mobile network (one way 50 ms + up to 600 ms); all alive",
    _on_the_move,
    latency=Latency(0.05, 0.6),
)


def _pings_per_tab_hour(p: Played) -> float:
    s = p.summary
    return float(s["heartbeat_pings"] * 3600.0 / (s["tabs"] * (s["duration"] + s["settle"])))


EXERCISE = Exercise(
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
                LIVE_PEERS,
                Check("reconnects the proxy caused", _proxy_cuts, "<=", 0),
                Check("heartbeat pings per tab-hour", _pings_per_tab_hour, "<=", 150),
                summary_check("delivery_ratio", ">=", 0.99),
            ),
            without_proxy=True,
            trace=True,
        ),
        Workload(
            "phones-die",
            PHONES_DIE,
            tabs=50,
            duration=300.0,
            settle=90.0,
            checks=(
                *INVARIANTS,
                summary_check("detections", ">=", 5, "dead peers found by the heartbeat"),
                summary_check("detection_delay_max", "<=", 60, "slowest detection (s)"),
                LIVE_PEERS,
            ),
            trace=True,
        ),
        Workload(
            "slow-phones",
            SLOW_PHONES,
            tabs=50,
            duration=300.0,
            settle=90.0,
            checks=(*INVARIANTS, LIVE_PEERS),
            trace=True,
        ),
    ),
    _prepare_liveness,
)

__all__ = ["EXERCISE", "PHONES_DIE", "SLOW_PHONES"]
