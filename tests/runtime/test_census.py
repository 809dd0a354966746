"""The census's incremental audit against a full walk, in every scenario and registry.

``dangling`` and ``unroutable`` are re-counted only for what changed since the last
sample (see ``simkit/runtime/census.py``); a missed change would silently freeze a wrong
count. With ``check=True`` every sample also walks the whole registry and every connected
tab, and raises on the first disagreement.
"""

import functools

import pytest

import simkit
from simkit.actors import play
from simkit.model import STRATEGIES, make_strategy
from simkit.model.registry import REGISTRIES, Naive
from simkit.runtime.census import Census


@pytest.fixture
def checked(monkeypatch):
    monkeypatch.setattr(play, "Census", functools.partial(Census, check=True))


@pytest.mark.parametrize("scenario", list(simkit.SCENARIOS))
@pytest.mark.parametrize("registry", list(REGISTRIES))
def test_incremental_audit_equals_a_full_walk(checked, scenario, registry):
    strategy = make_strategy(registry, registry=registry, identity="per-tab")
    result = simkit.run(scenario, strategy, tabs=24, duration=150, seed=5)
    assert len(result.timeseries) > 100  # every one of those samples was checked


class Hoarder(Naive):
    """Never forgets: every entry outlives its connection (dangling)."""

    def disconnect(self, conn, user, now):
        return []


def test_the_flaws_still_show_through_the_incremental_audit(checked):
    # Not a vacuous comparison: these runs do have unroutable tabs and dangling entries.
    ts = simkit.run("reload-storm", STRATEGIES["before"], tabs=40, duration=200, seed=2).timeseries
    assert ts["unroutable"].max() > 0
    hoarder = make_strategy("hoarder", registry=Hoarder, identity="per-tab")
    ts = simkit.run("flaky-network", hoarder, tabs=40, duration=200, seed=2).timeseries
    assert ts["dangling"].max() > 0


def test_a_missed_change_is_caught(checked, monkeypatch):
    # Break the bookkeeping on purpose: the check must notice, not pass silently.
    monkeypatch.setattr(Census, "set_connected", _forgetful(Census.set_connected))
    with pytest.raises(Exception, match="full walk says"):
        simkit.run("reload-storm", "before", tabs=40, duration=200, seed=2)


def _forgetful(method):
    def set_connected(self, truth, connected):
        method(self, truth, connected)
        self._dirty_tabs.discard(truth.index)

    return set_connected
