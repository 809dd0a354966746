"""A page that stops reconnecting when it is replaced (``on_replaced="stop"``): the usual
end of a kick war between two tabs of one user under kick-old."""

from __future__ import annotations

import pytest

import simkit
from simkit.model.client import Client
from simkit.model.errors import ConfigError
from simkit.runtime.interfaces import TabActor
from simkit.scenarios import Scenario

SAFE = simkit.STRATEGIES["postmortem-safe"]
STOP = SAFE.replace(name="postmortem-safe-stop", on_replaced="stop")


def test_bad_value_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="on_replaced 'sulk'; choose one of: retry, stop"):
        Client(on_replaced="sulk")


def test_stopping_ends_the_kick_war_on_multi_tab() -> None:
    war = simkit.run("multi-tab", SAFE, tabs=40, duration=200).summary
    stop = simkit.run("multi-tab", STOP, tabs=40, duration=200).summary
    assert war["tabs_opened_elsewhere"] == 0
    assert stop["tabs_opened_elsewhere"] > 0
    assert stop["connects"] * 10 < war["connects"], (stop["connects"], war["connects"])
    assert stop["invariants_hold"] and not war["invariants_hold"]


async def _second_tab_then_reload_first(tab: TabActor, sc: Scenario) -> None:
    await tab.sleep(1.0 + 4.0 * tab.index)
    tab.load()
    if tab.index == 0:
        await tab.sleep(10.0)
        await tab.reload(0.2)


def _two_tabs(runtime: str, **options: float) -> simkit.Result:
    sc = Scenario(
        "replaced",
        "tab 1 replaces tab 0, which stops; the user reloads tab 0, which replaces tab 1",
        _second_tab_then_reload_first,
        tabs_per_person=(2, 2),
        push_rate=0.0,
        latency=simkit.Latency(0.01, 0.0),
    )
    return simkit.run(sc, STOP, tabs=2, duration=25, settle=5, runtime=runtime, trace=True,
                      **options)  # fmt: skip


def _check_two_tabs(r: simkit.Result) -> None:
    s = r.summary
    # tab 0 is replaced at t~5 and stops; reloaded at t~15 it replaces tab 1, which stops
    assert s["tabs_opened_elsewhere"] == 2, s
    assert s["connects"] == 3, s  # no retry after either replacement
    final = r.timeseries.iloc[-1]
    assert (final["open_sockets"], final["connected_tabs"], final["live_tabs"]) == (1, 1, 1)
    assert (final["stale"], final["unroutable"], final["dangling"]) == (0, 0, 0)


def test_a_stopped_page_comes_back_only_when_reloaded() -> None:
    _check_two_tabs(_two_tabs("virtual"))


@pytest.mark.live
def test_a_stopped_page_over_real_sockets() -> None:
    _check_two_tabs(_two_tabs("live", scale=0.1))


@pytest.mark.browser
def test_a_real_page_shows_opened_elsewhere() -> None:
    _check_two_tabs(_two_tabs("browser", scale=0.5))
