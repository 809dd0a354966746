"""Tabs alive to TCP but dead to the app: frozen pages and the back/forward cache."""

import pytest

import simkit
from simkit.model import STRATEGIES

SAFE = STRATEGIES["postmortem-safe"]


async def _freeze_tab0(tab, sc) -> None:
    tab.load()
    if tab.index == 0:
        await tab.sleep(30)
        tab.freeze()
        await tab.sleep(120)
        tab.resume()


async def _bfcache_tab0(tab, sc) -> None:
    tab.load()
    if tab.index == 0:
        await tab.sleep(30)
        tab.enter_bfcache()
        await tab.sleep(60)
        tab.restore()


FREEZE = simkit.Scenario("freeze-tab0", "tab 0 frozen 30-150 s", _freeze_tab0, push_rate=0.2)
BFCACHE = simkit.Scenario("bfcache-tab0", "tab 0 in bfcache 30-90 s", _bfcache_tab0)


def test_app_level_liveness_finds_a_frozen_tab_that_protocol_pings_miss() -> None:
    protocol = simkit.run(FREEZE, SAFE, tabs=3, duration=200, seed=1)
    app = simkit.run(FREEZE, SAFE.replace(name="app", liveness="app"), tabs=3, duration=200, seed=1)
    p_ts, a_ts = protocol.timeseries.set_index("t"), app.timeseries.set_index("t")
    # protocol-only: registered all along, every push to it silently lost
    assert p_ts.loc[30.0:149.0, "registry_entries"].min() == 3
    assert protocol.summary["detections"] == 0 and protocol.summary["pushes_lost_frozen"] > 0
    # app-level: declared dead within timeout .. interval + timeout of the freeze
    assert app.summary["detections_app"] == 1
    assert 20.0 <= app.summary["detection_delay_mean_app"] <= 40.0
    assert a_ts.loc[100.0, "registry_entries"] == 2  # its entry is gone while it is frozen
    assert app.summary["pushes_lost_frozen"] < protocol.summary["pushes_lost_frozen"]
    # after resume it reconnects and is routable again, under both rules
    assert protocol.summary["invariants_hold"] and app.summary["invariants_hold"]
    assert a_ts.loc[160.0, "registry_entries"] == 3


@pytest.mark.parametrize(("handler", "reconnects"), [("reconnect", True), ("none", False)])
def test_a_bfcache_restore_reconnects_only_with_a_pageshow_handler(handler, reconnects) -> None:
    strategy = SAFE.replace(name=f"pageshow-{handler}", unload="none", on_pageshow=handler)
    r = simkit.run(BFCACHE, strategy, tabs=2, duration=150, seed=0)
    ts = r.timeseries.set_index("t")
    assert ts.loc[60.0, "open_sockets"] == 2  # its socket stayed open in the cache
    assert ts.loc[60.0, "live_tabs"] == 1  # ...for a page nobody is looking at
    assert (r.summary["final_connected_tabs"] == 2) is reconnects
    assert (r.summary["final_disconnected_tabs"] == 0) is reconnects
    assert r.summary["invariants_hold"] is reconnects


def test_pagehide_closes_the_socket_when_the_page_enters_the_cache() -> None:
    r = simkit.run(BFCACHE, SAFE, tabs=2, duration=150, seed=0)  # unload="pagehide"
    assert r.timeseries.set_index("t").loc[60.0, "open_sockets"] == 1
    assert r.summary["invariants_hold"]


def test_background_tabs_protocol_only_loses_pushes_silently_app_level_knows() -> None:
    size = {"tabs": 100, "duration": 400, "seed": 2}
    resume = STRATEGIES["resume"]
    protocol = simkit.run("background-tabs", resume, **size).summary
    app = simkit.run("background-tabs", resume.replace(name="r-app", liveness="app"), **size)
    app = app.summary
    both = simkit.run(
        "background-tabs", resume.replace(name="r-both", liveness="websockets+app"), **size
    ).summary
    assert protocol["detections"] == 0 and protocol["pushes_lost_frozen"] > 0
    assert app["detections_app"] > 10 and app["pushes_lost_frozen"] < protocol["pushes_lost_frozen"]
    assert app["pushes_replayed"] > 0  # found dead, buffered, replayed on return
    assert app["delivery_ratio"] > protocol["delivery_ratio"] + 0.05
    assert both["detections_app"] == app["detections_app"] and both["detections_protocol"] == 0
    assert both["heartbeat_pings"] > app["heartbeat_pings"]  # two heartbeats cost twice


def test_freezing_a_tab_in_the_wrong_state_names_the_transition() -> None:
    async def bad(tab, sc) -> None:
        tab.load()
        tab.enter_bfcache()
        tab.freeze()

    with pytest.raises(Exception, match="page: event 'freeze' is not allowed in state 'bfcached'"):
        simkit.run(simkit.Scenario("bad", "", bad), SAFE, tabs=1, duration=10)
