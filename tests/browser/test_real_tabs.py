"""Real Chromium pages against a real LocalServer: the page's policies, the frozen case,
and ``simkit.run(..., runtime="browser")``."""

import asyncio
import time

import pytest

import simkit
from simkit.browser.chromium import Chromium
from simkit.net.server import LocalServer

LIMIT = 30.0  # seconds: no browser test may hang (Chromium is stopped on the way out)


def run(coro, limit: float = LIMIT):
    return asyncio.run(asyncio.wait_for(coro, limit))


# Marked ``browser`` by its folder: tests/conftest.py skips it, with the reason, when
# Chromium or Playwright is missing (and fails it under SIMKIT_REQUIRE_BROWSER).
pytestmark = pytest.mark.timeout(60)


async def _until(check, timeout=5.0, what="condition"):
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def _cleanups(server, user):
    return [e for e in server.events if e[1] == "cleanup" and e[3] == user]


def test_page_identity_policies_and_app_pings():
    async def main():
        strategy = simkit.make_strategy("t", registry="multi", liveness="app")
        # scale 0.05: an app ping every second
        async with LocalServer(strategy, scale=0.05) as server, Chromium() as chrome:
            if True:
                ctx = await chrome.new_context()
                page = await ctx.new_page()
                base = f"{server.http_url}?stats=0&identity="
                await page.goto(base + "per-tab")
                first = await page.evaluate("window.simkit.user")
                await page.reload()
                assert await page.evaluate("window.simkit.user") == first, "per-tab lost on reload"
                await page.goto(base + "fresh-per-load")
                fresh = await page.evaluate("window.simkit.user")
                await page.reload()
                assert await page.evaluate("window.simkit.user") != fresh
                await page.goto(base + "shared&person=alice")
                assert await page.evaluate("window.simkit.user") == "alice"
                other = await ctx.new_page()
                await other.goto(base + "shared&person=bob")  # localStorage already says alice
                assert await other.evaluate("window.simkit.user") == "alice"
                await page.wait_for_function("window.simkit.pongs >= 1", timeout=5000)
                assert server.core.env.census.pongs >= 1
        return True

    assert run(main())


def test_pagehide_closes_with_1000_and_no_handler_with_1001():
    async def main():
        async with LocalServer("multi-heartbeat") as server, Chromium() as chrome:
            page = await (await chrome.new_context()).new_page()
            for unload, code in (("pagehide", "1000"), ("none", "1001")):
                user = f"u-{unload}"
                await page.goto(
                    f"{server.http_url}?stats=0&identity=fresh-per-load&unload={unload}"
                )
                await page.wait_for_function("window.simkit.state === 'open'", timeout=5000)
                user = await page.evaluate("window.simkit.user")
                await page.reload()
                await _until(lambda u=user: _cleanups(server, u), what=f"close of {unload}")
                assert _cleanups(server, user)[0][4] == code, (unload, server.events)

    run(main())


@pytest.mark.parametrize("liveness, reaped", [("websockets", False), ("websockets+app", True)])
def test_frozen_page_answers_protocol_pings_but_not_app_pings(liveness, reaped):
    """A hidden page frozen through raw CDP: the socket stays open and the browser answers
    websockets' pings (the keepalive never reaps it), but the page runs no code, so the app
    heartbeat does (under Playwright a page could not be hidden or frozen: see the README)."""
    from simkit.browser.cdp import RawChromium

    async def main():
        strategy = simkit.make_strategy("t", registry="multi", liveness=liveness)
        # scale 0.05: pings every 1 s, 1 s timeout; close timeout 0.5 s
        async with LocalServer(strategy, scale=0.05) as server, RawChromium() as cdp:
            page = await cdp.open(f"{server.http_url}?stats=0&identity=shared&person=frozen")
            for _ in range(100):
                if await cdp.evaluate(page, "window.simkit && window.simkit.state") == "open":
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.5)
            assert not _cleanups(server, "frozen")
            visibility = await cdp.hide_and_freeze(page)
            assert visibility == "hidden"
            await asyncio.sleep(4.0)  # four ping intervals
            cleanups = _cleanups(server, "frozen")
            if not reaped:
                assert cleanups == [], f"protocol keepalive reaped a frozen page: {cleanups}"
                assert "frozen" in server.registry_snapshot()
                assert server.counts()["open_sockets"] == 1
            else:
                assert cleanups, "the app heartbeat did not reap the frozen page within 4 s"
                assert cleanups[0][4] == "1011", cleanups
            await cdp.resume(page)

    run(main())


def test_browser_runtime_reload_storm():
    r = simkit.run("reload-storm", "postmortem-safe", tabs=6, duration=30, runtime="browser")
    s = r.summary
    virtual = simkit.run("reload-storm", "postmortem-safe", tabs=6, duration=30)
    assert set(virtual.summary) <= set(s), set(virtual.summary) - set(s)
    assert list(r.timeseries.columns) == list(virtual.timeseries.columns)
    assert s["runtime"] == "browser"
    assert s["browser_errors"] == 0, s.get("browser_first_error")
    assert s["connects"] > 6, "the tabs never reloaded"
    assert s["final_live_tabs"] == 6
    assert s["invariants_hold"], {k: v for k, v in s.items() if k.startswith("final_")}
