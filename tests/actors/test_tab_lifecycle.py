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


def _restored(handler: str):
    strategy = SAFE.replace(name=f"pageshow-{handler}", unload="none", on_pageshow=handler)
    return simkit.run(BFCACHE, strategy, tabs=2, duration=150, seed=0, trace=True)


@pytest.mark.parametrize("handler", ["reconnect", "none"])
def test_a_bfcache_restore_closes_the_surviving_socket_and_the_page_comes_back(handler) -> None:
    r = _restored(handler)
    ts = r.timeseries.set_index("t")
    assert ts.loc[60.0, "open_sockets"] == 2  # its socket stayed open in the cache
    assert ts.loc[60.0, "live_tabs"] == 1  # ...for a page nobody is looking at
    cleanups = r.trace[(r.trace.event == "server-cleanup") & (r.trace.time.between(90, 95))]
    assert (cleanups.code == 1001).sum() == 1  # Chromium closes it on restore
    # Real Chromium: the page sees that close as unclean (1006), so even without a
    # pageshow handler its ordinary retry brings it back (measured in the browser runtime).
    assert r.summary["final_connected_tabs"] == 2 and r.summary["final_disconnected_tabs"] == 0
    assert r.summary["invariants_hold"]


def test_a_pageshow_handler_reconnects_before_the_retry_would() -> None:
    def back_at(r) -> float:
        opens = r.trace[(r.trace.event == "server-open") & (r.trace.time > 90)]
        return float(opens.time.iloc[0])

    handler, retry = back_at(_restored("reconnect")), back_at(_restored("none"))
    assert 90 < handler < 90.2 < retry  # at once vs after the backoff's first delay


def test_freezing_a_visible_page_hides_it_first() -> None:
    # Chromium hides a page before freezing it: a disconnect-when-hidden page closes its
    # socket (1000) at the freeze and reconnects when it is resumed and shown.
    strategy = SAFE.replace(
        name="hide-first", visibility="disconnect-when-hidden", on_resume="none"
    )
    r = simkit.run(FREEZE, strategy, tabs=2, duration=200, seed=1, trace=True)
    at_freeze = r.trace[(r.trace.event == "server-cleanup") & r.trace.time.between(30, 31)]
    assert len(at_freeze) == 1 and at_freeze.code.iloc[0] == 1000
    ts = r.timeseries.set_index("t")
    assert ts.loc[100.0, "open_sockets"] == 1 and ts.loc[160.0, "connected_tabs"] == 2
    assert r.summary["invariants_hold"]


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


def test_a_socket_closed_while_frozen_is_retried_when_the_page_wakes() -> None:
    # The app heartbeat reaps the frozen tab; its page sees the close only when it runs
    # again (Chromium queues the event), and then its ordinary retry brings it back.
    strategy = SAFE.replace(name="reaped", liveness="app", on_resume="none", unload="none")
    r = simkit.run(FREEZE, strategy, tabs=3, duration=300, seed=1)
    assert r.summary["detections_app"] == 1  # it was reaped while frozen
    assert r.summary["final_disconnected_tabs"] == 0 and r.summary["invariants_hold"]


def test_no_background_tab_is_stranded_without_lifecycle_handlers() -> None:
    r = simkit.run("background-tabs", STRATEGIES["before"], tabs=40, duration=300, seed=2)
    assert r.summary["final_disconnected_tabs"] == 0
