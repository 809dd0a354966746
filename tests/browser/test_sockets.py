"""Pages the kit did not write (``examples/frontends/``) in real headless Chromium, their
WebSockets read from CDP's Network domain by :class:`simkit.browser.sockets.SocketTracker`.

The page is served from one port of 127.0.0.1 and opens its socket on another (a plain
``websockets`` server that echoes and tells the tracker every close code it saw, keyed by
``Sec-WebSocket-Key``). Each test starts one Chromium (raw CDP, as the browser runtime
does) and stops it and both servers in ``finally`` blocks, also on failure; every wait is
bounded. These tests are where the facts in :mod:`simkit.browser.sockets`'s docstring were
measured (headless Chromium 156).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from simkit.browser.cdp import RawCDP, RawChromium
from simkit.browser.sockets import EVENTS, Socket, SocketTracker

# Marked ``browser`` by its folder (tests/conftest.py skips it without Chromium).
pytestmark = pytest.mark.timeout(90)

FRONTENDS = Path(__file__).resolve().parents[2] / "examples" / "frontends"
TAB = "tab0"
RELOADS = 3


def run(coro: Awaitable[Any], limit: float = 60.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, limit))  # type: ignore[arg-type]


@asynccontextmanager
async def servers(tracker: SocketTracker):
    """(page port, socket port): the pages over HTTP on one port, an echo WebSocket server
    on another that reports each close to the tracker."""

    async def echo(ws: ServerConnection) -> None:
        assert ws.request is not None
        key = ws.request.headers.get("Sec-WebSocket-Key", "")
        try:
            async for message in ws:
                await ws.send(f"echo {message}")
        except Exception:
            pass
        finally:
            code = ws.close_code if ws.close_code is not None else 1006
            tracker.server_saw(key, code, time.monotonic())

    def pages(connection: ServerConnection, request: Any) -> Any:
        name = request.path.split("?")[0].lstrip("/")
        if name == "refuse":  # a WebSocket endpoint that answers 404
            return connection.respond(404, "no socket here\n")
        if name == "away":  # a page with no script (for the back/forward cache)
            return connection.respond(200, "away\n")
        path = FRONTENDS / name
        if not name.endswith(".html") or not path.is_file():
            return connection.respond(404, "not found\n")
        response = connection.respond(200, path.read_text(encoding="utf-8"))
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "text/html; charset=utf-8"
        return response

    async with (
        serve(echo, "127.0.0.1", 0) as app,
        serve(echo, "127.0.0.1", 0, process_request=pages) as web,
    ):
        yield web.sockets[0].getsockname()[1], app.sockets[0].getsockname()[1]


class Harness:
    """One tab of a raw-CDP Chromium, watched by a tracker (times: ``time.monotonic``,
    the clock of CDP's own timestamps)."""

    def __init__(self, cdp: RawCDP, tracker: SocketTracker) -> None:
        self.cdp, self.tracker = cdp, tracker
        self.seen: list[str] = []
        self.summary: dict[str, Any] = {}
        self.skew = 0.0  # the largest |CDP timestamp - time.monotonic()| seen
        self.session = ""
        self.target = ""
        for method in EVENTS:
            cdp.on(method, self._listener(method))

    async def open(self) -> None:
        made = await self.cdp.send("Target.createTarget", {"url": "about:blank"})
        self.target = made["targetId"]
        attached = await self.cdp.send(
            "Target.attachToTarget", {"targetId": self.target, "flatten": True}
        )
        self.session = attached["sessionId"]
        self.tracker.attach(self.session, TAB)
        await self.send("Network.enable")
        await self.send("Page.enable")

    def _listener(self, method: str) -> Callable[[dict[str, Any], str | None], None]:
        def heard(params: dict[str, Any], session: str | None) -> None:
            now = time.monotonic()
            self.seen.append(method)
            if "timestamp" in params:  # CDP's clock against Python's
                self.skew = max(self.skew, abs(params["timestamp"] - now))
            self.tracker.observe(method, params, session, now)

        return heard

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.cdp.send(method, params or {}, self.session)

    async def until(self, what: Callable[[], bool], why: str, limit: float = 5.0) -> None:
        deadline = time.monotonic() + limit
        while not what():
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {limit} s: {why}; {self.tracker.summary()}")
            await asyncio.sleep(0.02)

    def load(self) -> Any:
        return self.tracker.current.get(TAB)

    def open_in_load(self) -> int:
        load = self.load()
        if load is None:
            return 0
        socks = [self.tracker.sockets[i] for i in load.sockets]
        return sum(1 for s in socks if s.opened is not None and s.end is None)

    async def loaded(self, action: Awaitable[Any], sockets: int) -> None:
        """Run a navigation; wait for a new load whose ``sockets`` sockets are open."""
        before = self.load()
        await action
        await self.until(
            lambda: self.load() is not before and self.open_in_load() >= sockets,
            f"a new page load with {sockets} open socket(s)",
        )

    def server_closed_all_but_current(self) -> bool:
        """The server has given a code for every socket that CDP or the tracker closed."""
        return all(
            s.server_code is not None
            for s in self.tracker.records()
            if s.state is Socket.CLOSED and s.opened is not None
        )


async def session(
    page: str, play: Callable[[Harness, str, int], Awaitable[None]]
) -> tuple[SocketTracker, Harness]:
    tracker = SocketTracker()
    async with servers(tracker) as (web, app):
        chrome = RawChromium()
        try:
            cdp = await chrome.start()
            harness = Harness(cdp, tracker)
            await harness.open()
            url = f"http://127.0.0.1:{web}/{page}?ws=ws://127.0.0.1:{app}/ws"
            await play(harness, url, web)
            harness.summary = tracker.summary()  # before Chromium stops (then 1006s)
        finally:
            await chrome.stop()
    return tracker, harness


async def reloads(h: Harness, url: str, sockets: int) -> None:
    await h.loaded(h.send("Page.navigate", {"url": url}), sockets)
    for _ in range(RELOADS):
        await asyncio.sleep(0.2)
        await h.loaded(h.send("Page.reload"), sockets)
    await h.until(h.server_closed_all_but_current, "the server saw every old socket close")


def test_leaky_page_two_sockets_per_load_left_for_the_browser_to_close():
    async def play(h: Harness, url: str, web: int) -> None:
        await reloads(h, url, 2)

    tracker, h = run(session("leaky.html", play))
    s = h.summary
    assert s["loads"] == RELOADS + 1, s
    assert s["sockets"] == 2 * (RELOADS + 1), s
    assert s["sockets_per_load_max"] == 2 and s["sockets_per_load_mean"] == 2.0, s
    assert s["max_open_per_tab"] == {TAB: 2} and s["max_open"] == 2, s
    # every ended load left both its sockets open: Chromium closed them (1001)
    assert s["left_open"] == 2 * RELOADS and s["left_open_unknown"] == 0, s
    assert s["closed_by"] == {"browser": 2 * RELOADS}, s
    assert s["open_now"] == 2 and s["handshake_failures"] == 0, s
    for row in tracker.per_load()[:-1]:
        assert row["sockets"] == 2 and row["left_open"] == 2, row
    # measured: webSocketCreated is emitted; a reload reports no webSocketClosed
    assert h.seen.count("Network.webSocketCreated") == 2 * (RELOADS + 1)
    assert "Network.webSocketClosed" not in h.seen
    # measured: CDP's timestamps are time.monotonic() seconds, late by the delivery only
    assert 0.0 < h.skew < 1.0, h.skew
    frame = tracker.frame()
    assert len(frame) == 2 * (RELOADS + 1) and frame["left_open"].sum() == 2 * RELOADS


def test_correct_page_one_socket_per_load_closed_in_pagehide():
    async def play(h: Harness, url: str, web: int) -> None:
        await reloads(h, url, 1)

    tracker, h = run(session("correct.html", play))
    s = h.summary
    assert s["loads"] == RELOADS + 1 and s["sockets"] == RELOADS + 1, s
    assert s["sockets_per_load_max"] == 1 and s["max_open"] == 1, s
    assert s["left_open"] == 0 and s["left_open_unknown"] == 0, s
    assert s["closed_by"] == {"page": RELOADS}, s
    assert all(r.server_code == 1000 for r in tracker.records() if r.closed is not None)
    assert "Network.webSocketClosed" not in h.seen  # closed in pagehide: CDP says nothing


def test_without_server_codes_who_closed_at_unload_is_unknown():
    """CDP alone cannot tell a page's pagehide close from the browser's: say so."""

    async def play(h: Harness, url: str, web: int) -> None:
        h.tracker.server_saw = lambda *a, **k: None  # type: ignore[method-assign]
        await h.loaded(h.send("Page.navigate", {"url": url}), 1)
        await h.loaded(h.send("Page.reload"), 1)

    _, h = run(session("correct.html", play))
    s = h.summary
    assert s["left_open"] == 0 and s["left_open_unknown"] == 1, s
    assert s["closed_by"] == {"unload": 1}, s


def test_failed_handshakes_crash_and_close():
    """A refused port and a 404 are handshake failures (webSocketFrameError, then
    webSocketClosed); Page.crash closes the page's socket without pagehide (1001), while
    Target.closeTarget runs pagehide (1000); neither reports webSocketClosed."""
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]

    async def play(h: Harness, url: str, web: int) -> None:
        await h.loaded(h.send("Page.navigate", {"url": url}), 1)
        for target in (f"ws://127.0.0.1:{dead}/ws", f"ws://127.0.0.1:{web}/refuse"):
            await h.send("Runtime.evaluate", {"expression": f"new WebSocket({target!r}), 1"})
        await h.until(lambda: h.tracker.summary()["handshake_failures"] == 2, "two failures")
        first = h.load().sockets[0]
        with pytest.raises(Exception):  # noqa: B017 - the renderer dies before it answers
            await h.cdp.send("Page.crash", {}, h.session, timeout=2.0)
        await h.until(lambda: h.tracker.sockets[first].server_code is not None, "crash close")
        # a second tab for the close: the crashed one is gone
        await h.open()
        await h.loaded(h.send("Page.navigate", {"url": url}), 1)
        last = h.load().sockets[-1]
        await h.cdp.send("Target.closeTarget", {"targetId": h.target})
        await h.until(lambda: h.tracker.sockets[last].server_code is not None, "close close")
        await h.until(lambda: h.load() is None, "Target.detachedFromTarget ended the load")

    tracker, h = run(session("correct.html", play))
    failed = [r for r in tracker.records() if r.failed]
    assert len(failed) == 2 and all(r.state is Socket.CLOSED for r in failed)
    errors = " | ".join(r.error or "" for r in failed)
    assert "Error in connection establishment: net::ERR_CONNECTION_REFUSED" in errors, errors
    assert "Error during WebSocket handshake: Unexpected response code: 404" in errors, errors
    crashed, closed = (r for r in tracker.records() if r.opened is not None)
    assert crashed.server_code == 1001 and crashed.closed_by == "browser" and crashed.left_open
    assert closed.server_code == 1000 and closed.closed_by == "page" and not closed.left_open
    assert "Inspector.targetCrashed" in h.seen and "Target.detachedFromTarget" in h.seen
    assert h.seen.count("Network.webSocketClosed") == 2  # the two failures only


def test_freeze_and_back_forward_cache():
    """Freeze: a frame error on the open socket, which stays open; resume closes it
    (webSocketClosed, 1001) and the correct page reconnects in the same load. The
    back/forward cache: the leaky page's sockets stay open while it is away, and close as
    it is restored (webSocketClosed, 1001): left open for as long as it was away."""
    away = 1.0

    async def freeze(h: Harness, url: str, web: int) -> None:
        await h.loaded(h.send("Page.navigate", {"url": url}), 1)
        first = h.load().sockets[0]
        await h.cdp.send("Target.createTarget", {"url": "about:blank"})  # hide it first
        await asyncio.sleep(0.3)
        await h.send("Page.setWebLifecycleState", {"state": "frozen"})
        await h.until(lambda: h.tracker.sockets[first].errors > 0, "a frame error on freeze")
        assert h.tracker.sockets[first].state is Socket.OPEN
        await h.send("Page.setWebLifecycleState", {"state": "active"})
        await h.until(lambda: h.open_in_load() == 1 and len(h.load().sockets) == 2, "reconnect")

    tracker, h = run(session("correct.html", freeze))
    old, new = tracker.records()
    assert old.load == new.load and old.closed is not None and old.server_code == 1001
    assert old.error == "Page entered Back-Forward Cache." and old.left_open is False
    assert new.state is Socket.OPEN

    async def cache(h: Harness, url: str, web: int) -> None:
        await h.loaded(h.send("Page.navigate", {"url": url}), 2)
        h.tracker.entering_cache(TAB)
        await h.loaded(h.send("Page.navigate", {"url": f"http://127.0.0.1:{web}/away"}), 0)
        await asyncio.sleep(away)
        history = await h.send("Page.getNavigationHistory")
        entry = history["entries"][history["currentIndex"] - 1]
        await h.send("Page.navigateToHistoryEntry", {"entryId": entry["id"]})
        await h.until(lambda: h.tracker.summary()["open_now"] == 0, "closed on restore")
        await h.until(h.server_closed_all_but_current, "the server saw both close")

    tracker, h = run(session("leaky.html", cache))
    s = h.summary
    assert s["loads"] == 2 and s["left_open"] == 2 and s["closed_by"] == {"browser": 2}, s
    assert away <= s["linger_max"] < away + 2.0, s
    assert h.seen.count("Network.webSocketClosed") == 2
    assert tracker.per_load()[0]["state"] == "active"  # restored, not reloaded


def test_correct_page_through_the_back_forward_cache():
    """The correct page closes its socket in pagehide as it enters the cache (CDP may or
    may not report that close: the server's 1000 says who closed it) and opens a new one
    on pageshow, reported before the restore's frameNavigated and counted in the restored
    load."""

    async def cache(h: Harness, url: str, web: int) -> None:
        await h.loaded(h.send("Page.navigate", {"url": url}), 1)
        h.tracker.entering_cache(TAB)
        await h.loaded(h.send("Page.navigate", {"url": f"http://127.0.0.1:{web}/away"}), 0)
        await asyncio.sleep(0.5)
        history = await h.send("Page.getNavigationHistory")
        entry = history["entries"][history["currentIndex"] - 1]
        h.tracker.restoring(TAB)
        await h.send("Page.navigateToHistoryEntry", {"entryId": entry["id"]})
        await h.until(lambda: h.load() is not None and h.open_in_load() == 1, "reconnected")
        await h.until(lambda: h.tracker.summary()["open_now"] == 1, "the old one closed")

    tracker, h = run(session("correct.html", cache))
    s = h.summary
    assert s["loads"] == 2 and s["sockets"] == 2 and s["max_open"] == 1, s
    assert s["left_open"] == 0 and s["closed_by"] == {"page": 1}, s
    first, second = tracker.records()
    assert first.load == second.load == tracker.per_load()[0]["load"]
    # CDP reports that close or not (both seen here): the server's 1000 says who closed
    assert first.server_code == 1000 and first.end is not None and s["open_now"] == 1
    assert h.seen.count("Network.webSocketClosed") <= 1
