"""Real Chromium tabs hidden, frozen, parked in the back/forward cache, evicted and
duplicated by ``simkit.run(..., runtime="browser")`` (raw CDP, no Playwright).

Each runtime test is one bounded browser run at scale 0.25, about 15 s (its Chromium is
always stopped, also on failure: ``play_browser`` stops it in a ``finally``); the last test
drives one page through raw CDP for 2 s.
"""

import pytest

import simkit
from simkit.model.latency import Latency
from simkit.scenarios import SCENARIOS

# Marked ``browser`` by its folder: tests/conftest.py skips it, with the reason, when
# Chromium is missing (and fails it under SIMKIT_REQUIRE_BROWSER).
pytestmark = pytest.mark.timeout(90)
SCALE = 0.25  # wall seconds per scenario second
SIZE = {"tabs": 4, "duration": 40, "settle": 5, "seed": 1}


def _clean(s):
    assert s["browser_errors"] == 0, s.get("browser_first_error")
    assert s["browser_not_played"] == {}, s["browser_not_played"]


def test_hidden_tabs_disconnect_and_reconnect_as_the_model_predicts():
    """``postmortem`` disconnects when hidden: every hide is a real visibilitychange that
    closes the page's socket, every show a reconnect; the counts match the virtual run."""
    real = simkit.run("hidden-tabs", "postmortem", runtime="browser", scale=SCALE, **SIZE)
    model = simkit.run("hidden-tabs", "postmortem", **SIZE)
    r, m = real.summary, model.summary
    _clean(r)
    assert m["connects"] > SIZE["tabs"], "the scenario hid no tab: the test proves nothing"
    # one connect per load, one more per show: real pages saw visibilitychange both ways
    assert abs(r["connects"] - m["connects"]) <= 1, (r["connects"], m["connects"])
    assert r["invariants_hold"], {k: v for k, v in r.items() if k.startswith("final_")}
    assert r["final_connected_tabs"] == SIZE["tabs"]


def test_background_tabs_freeze_and_bfcache_for_real():
    """Frozen pages lose their pushes (the socket is fine, the page runs no code); pages
    sent away come back from the back/forward cache (``pageshow`` persisted), not reloaded;
    a handler reconnects once per wake-up, as the model's tab does."""
    real = simkit.run("background-tabs", "postmortem-safe", runtime="browser", scale=SCALE, **SIZE)
    model = simkit.run("background-tabs", "postmortem-safe", **SIZE)
    r, m = real.summary, model.summary
    _clean(r)
    assert r["browser_bfcache"]["restored"] >= 1, r["browser_bfcache"]
    assert r["browser_bfcache"]["reloaded"] == 0, r["browser_bfcache_blocked"]
    assert abs(r["connects"] - m["connects"]) <= 1, (r["connects"], m["connects"])
    if m["pushes_lost_frozen"]:
        assert r["pushes_lost_frozen"] >= 1, "no push was lost to a frozen real page"
    assert r["invariants_hold"], {k: v for k, v in r.items() if k.startswith("final_")}


async def _lives(tab, sc):
    """Tab 0: duplicated, sent to the cache, restored, sent again, evicted. Tab 1: frozen
    for good. Tab 2: frozen, then resumed."""
    await tab.sleep(0.5)
    tab.load()
    await tab.sleep(2.5)
    if tab.index == 0:
        tab.duplicate(3)
        await tab.sleep(2.0)
        tab.enter_bfcache()  # t = 5
        await tab.sleep(4.0)
        tab.restore()  # t = 9
        await tab.sleep(4.0)
        tab.enter_bfcache()  # t = 13
        await tab.sleep(2.0)
        tab.evict()  # t = 15
    elif tab.index == 1:
        tab.freeze()
    elif tab.index == 2:
        tab.freeze()  # t = 3
        await tab.sleep(4.0)
        tab.resume()  # t = 7


def test_real_freeze_bfcache_evict_duplicate_without_handlers():
    """What Chromium itself does, with pages that have no unload, resume or pageshow
    handler, under a protocol and an app-level heartbeat:

    - a page in the back/forward cache keeps its socket open; on restore the browser closes
      it (1001) and the page's own close handling reconnects; eviction closes it (1001);
    - a frozen page is never reaped by protocol pings, only by the app heartbeat (1011);
    - on resume the browser closes the frozen page's socket (1001), the page reconnects;
    - a duplicated tab carries a copy of sessionStorage: the same per-tab id.
    """
    sc = SCENARIOS["background-tabs"].with_(
        name="lives", script=_lives, latency=Latency(0.001, 0.0), push_rate=0.0
    )
    strategy = simkit.make_strategy(
        "no-handlers", registry="multi", liveness="websockets+app", identity="per-tab",
        unload="none", on_resume="none", on_pageshow="none",
    )  # fmt: skip
    r = simkit.run(sc, strategy, tabs=3, duration=16, settle=44, trace=True,
                   runtime="browser", scale=SCALE)  # fmt: skip
    s = r.summary
    _clean(s)
    trace = r.trace
    opens = trace[trace.event == "server-open"]
    cleanups = trace[trace.event == "server-cleanup"]

    def of(frame, tab):
        return frame[frame.conn // 10000 == tab]

    def closes(tab):  # for the messages: (t, close code) of each of the tab's sockets
        return [(round(row.time, 1), row.code) for row in of(cleanups, tab).itertuples()]

    # tab 0: the socket outlives the trip to the cache and is closed as the page comes back
    first = of(cleanups, 0).iloc[0]
    assert first.code == 1001, closes(0)
    assert first.time >= 9.0, f"closed at {first.time:.1f} s, before the 9 s restore: {closes(0)}"
    assert s["browser_bfcache"] == {"restored": 1, "reloaded": 0}, s["browser_bfcache"]
    assert len(of(opens, 0)) == 2, "tab 0 did not reconnect after the restore"
    second = of(cleanups, 0).iloc[1]
    assert second.code == 1001 and second.time >= 15.0, closes(0)  # the eviction
    # tab 3, the duplicate, claims tab 0's per-tab id
    user0 = of(opens, 0).iloc[0].user
    assert of(opens, 3).iloc[0].user == user0, (user0, of(opens, 3).user.tolist())
    # tab 1: frozen for good, found by the app heartbeat only
    assert of(cleanups, 1).iloc[0].code == 1011, closes(1)
    assert s["detections_app"] == 1 and s["detections_protocol"] == 0
    # tab 2: resumed without a handler: the browser closes, the page reconnects by itself
    assert of(cleanups, 2).iloc[0].code == 1001, closes(2)
    assert of(cleanups, 2).iloc[0].time >= 7.0, closes(2)
    assert len(of(opens, 2)) == 2, "tab 2 did not reconnect after the resume"


def test_chromium_hides_a_page_before_freezing_it():
    """A visible page told to freeze is first hidden by Chromium: a page that disconnects
    when hidden closes its socket itself (1000) before it stops running code."""
    import asyncio

    from simkit.browser.cdp import RawChromium
    from simkit.net.server import LocalServer

    async def main():
        strategy = simkit.make_strategy("t", registry="multi", liveness="off")
        async with LocalServer(strategy) as server, RawChromium() as cdp:
            query = "stats=0&identity=shared&person=p&visibility=disconnect-when-hidden"
            url = f"{server.http_url}?{query}"
            page = await cdp.open(url, window=True)
            await server.until(lambda s: s.counts()["open_sockets"] == 1, timeout=10)
            assert await cdp.evaluate(page, "document.visibilityState") == "visible"
            await cdp.send("Page.setWebLifecycleState", {"state": "frozen"}, page)
            await server.until(lambda s: s.counts()["open_sockets"] == 0, timeout=10)
            cleanups = [e for e in server.events if e[1] == "cleanup"]
            assert [e[4] for e in cleanups] == ["1000"], cleanups
            events = await cdp.evaluate(page, "window.simkit.events.map(e => e.e).join(' ')")
            # hidden, the page closed its socket; then it froze (its own close event waits)
            assert events.endswith("open visibility freeze"), events

    asyncio.run(asyncio.wait_for(main(), 30))
