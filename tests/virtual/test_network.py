"""The in-memory network's shortcuts change nothing but speed."""

import json

import pytest

import simkit
from simkit.model import make_strategy
from simkit.model.latency import Latency
from simkit.virtual import network


def _through_the_loop(monkeypatch):
    """Every ping and pong as two messages through the loop, even with zero latency."""
    original = network.MemoryNetwork.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.instant = False

    monkeypatch.setattr(network.MemoryNetwork, "__init__", init)


def _fingerprint(result):
    return result.timeseries.to_csv(), json.dumps(result.summary, default=str, sort_keys=True)


@pytest.mark.parametrize(
    ("scenario", "liveness"),
    [("reference", "websockets"), ("background-tabs", "app"), ("flaky-network", "app")],
)
def test_zero_latency_pings_answered_at_once_give_the_same_run(monkeypatch, scenario, liveness):
    strategy = make_strategy("s", registry="kick-old-safe", liveness=liveness, identity="per-tab")
    sc = simkit.SCENARIOS[scenario].with_(latency=Latency(0.0, 0.0))
    fast = simkit.run(sc, strategy, tabs=30, duration=400, seed=9)
    assert fast.summary["heartbeat_pings"] > 100  # heartbeats really ran
    assert sc.latency.base == sc.latency.jitter == 0  # the shortcut is really taken
    if liveness != "websockets":
        assert fast.summary["detections"] > 0  # and some went unanswered
    with monkeypatch.context() as m:
        _through_the_loop(m)
        slow = simkit.run(sc, strategy, tabs=30, duration=400, seed=9)
    assert _fingerprint(fast) == _fingerprint(slow)


def test_two_heartbeat_rules_never_take_the_shortcut(monkeypatch) -> None:
    strategy = make_strategy("s", registry="kick-old-safe", liveness="websockets+app")
    sc = simkit.SCENARIOS["background-tabs"].with_(latency=Latency(0.0, 0.0))
    seen = []
    original = network.MemoryNetwork.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen.append(self.instant)

    monkeypatch.setattr(network.MemoryNetwork, "__init__", init)
    simkit.run(sc, strategy, tabs=5, duration=60, seed=1)
    assert seen == [False]
