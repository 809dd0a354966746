"""The WebSocket tracker (:mod:`simkit.browser.sockets`) on recorded CDP event sequences, no
browser: the sequences follow what headless Chromium 156 emitted in
``tests/browser/test_sockets.py`` (which runs the same pages for real). Here, not under
``tests/browser/``, because that folder marks every test ``browser``."""

from __future__ import annotations

from typing import Any

import pytest

from simkit.browser.sockets import (
    EVENTS,
    TRANSITIONS,
    DevServerFilter,
    Socket,
    SocketTracker,
    step,
)
from simkit.model.errors import ConfigError, IllegalTransition

S = "SESSION"
URL = "ws://127.0.0.1:9001/ws"


class Feed:
    """Writes CDP events into a tracker the way RawCDP's listeners would."""

    def __init__(self, tracker: SocketTracker | None = None) -> None:
        self.t = tracker or SocketTracker()
        self.t.attach(S, "tab0")
        self.n = 0

    def ev(self, method: str, time: float | None = None, **params: Any) -> Any:
        return self.t.observe(f"Network.{method}", params, S, time)

    def navigated(self, loader: str, time: float, restore: bool = False) -> None:
        frame = {"id": "F", "loaderId": loader, "url": "http://127.0.0.1:9000/p.html"}
        params = {"frame": frame, "type": "BackForwardCacheRestore" if restore else "Navigation"}
        self.t.observe("Page.frameNavigated", params, S, time)

    def socket(self, t: float, url: str = URL, protocol: str | None = None, status: int = 101):
        """A socket created at ``t`` and answered (101) a millisecond later."""
        self.n += 1
        rid = f"r{self.n}"
        self.ev("webSocketCreated", t, requestId=rid, url=url)
        headers = {"Sec-WebSocket-Key": f"key{self.n}"}
        if protocol:
            headers["Sec-WebSocket-Protocol"] = protocol
        self.ev(
            "webSocketWillSendHandshakeRequest",
            requestId=rid,
            timestamp=t,
            request={"headers": headers},
        )
        self.ev(
            "webSocketHandshakeResponseReceived",
            requestId=rid,
            timestamp=t + 0.001,
            response={"status": status},
        )
        return rid


def leaky_reloads(feed: Feed, reloads: int, codes: bool = True) -> None:
    """Two sockets per load, never closed by the page; each reload's frameNavigated ends
    the load (CDP reports no webSocketClosed) and the server sees 1001."""
    for load in range(reloads + 1):
        t0 = 10.0 * load
        feed.navigated(f"L{load}", t0)
        if load and codes:
            for rid in feed.t.loads[("tab0", f"L{load - 1}")].sockets:
                feed.t.server_saw(feed.t.sockets[rid].key or "", 1001, t0 + 0.002)
        feed.socket(t0 + 0.1)
        feed.socket(t0 + 0.2)
        feed.ev("webSocketFrameSent", requestId=f"r{feed.n}", timestamp=t0 + 0.3)


def test_leaky_sequence_counts_two_per_load_left_open_closed_by_the_browser():
    feed = Feed()
    leaky_reloads(feed, 3)
    s = feed.t.summary()
    assert s["loads"] == 4 and s["sockets"] == 8, s
    assert s["sockets_per_load_max"] == 2 and s["sockets_per_load_mean"] == 2.0, s
    assert s["max_open"] == 2 and s["max_open_per_tab"] == {"tab0": 2}, s
    assert s["left_open"] == 6 and s["left_open_unknown"] == 0, s
    assert s["closed_by"] == {"browser": 6}, s
    assert s["open_now"] == 2 and s["handshake_failures"] == 0, s
    # closed at the unload (the tracker's time), before the server's code came: no linger
    assert s["linger_max"] == pytest.approx(0.0), s
    assert [row["left_open"] for row in feed.t.per_load()] == [2, 2, 2, 0]
    assert feed.t.sockets["r1"].sent == 0 and feed.t.sockets["r2"].sent == 1


def test_correct_sequence_one_per_load_closed_by_the_page():
    feed = Feed()
    for load in range(4):
        t0 = 10.0 * load
        if load:  # pagehide: the server sees 1000 just before the new load commits
            feed.t.server_saw(f"key{load}", 1000, t0 - 0.001)
        feed.navigated(f"L{load}", t0)
        feed.socket(t0 + 0.1)
    s = feed.t.summary()
    assert s["sockets_per_load_max"] == 1 and s["max_open"] == 1, s
    assert s["left_open"] == 0 and s["left_open_unknown"] == 0, s
    assert s["closed_by"] == {"page": 3}, s


def test_without_the_servers_codes_the_unload_closes_are_unknown():
    feed = Feed()
    leaky_reloads(feed, 1, codes=False)
    s = feed.t.summary()
    assert s["left_open"] == 0 and s["left_open_unknown"] == 2, s
    assert s["closed_by"] == {"unload": 2}, s


def test_server_saw_matches_key_then_url_then_reports_unmatched():
    feed = Feed()
    feed.navigated("L0", 0.0)
    a, b = feed.socket(1.0), feed.socket(2.0)
    assert feed.t.server_saw("key2", 1000, 3.0) is feed.t.sockets[b]
    assert feed.t.server_saw("/ws", 4000, 3.5, by="server") is feed.t.sockets[a]
    assert feed.t.sockets[a].closed_by == "server"
    assert feed.t.server_saw("/ws", 1000, 4.0) is None  # both have a code now
    assert feed.t.summary()["server_unmatched"] == 1
    with pytest.raises(ConfigError, match="by='nobody'"):
        feed.t.server_saw("key1", 1000, 5.0, by="nobody")


def test_a_live_close_is_unknown_without_a_code_and_ends_concurrency():
    feed = Feed()
    feed.navigated("L0", 0.0)
    a = feed.socket(1.0)
    feed.ev("webSocketClosed", requestId=a, timestamp=2.0)
    b = feed.socket(3.0)
    assert feed.t.sockets[a].closed_by == "unknown" and feed.t.sockets[a].left_open is False
    assert feed.t.max_open() == 1 and feed.t.open_at(1.5) == 1 and feed.t.open_at(2.5) == 0
    assert feed.t.open_at(3.5, "tab0") == 1 and feed.t.sockets[b].state is Socket.OPEN


def test_handshake_failures():
    feed = Feed()
    feed.navigated("L0", 0.0)
    feed.ev("webSocketCreated", 1.0, requestId="x", url="ws://127.0.0.1:1/ws")
    error = "Error in connection establishment: net::ERR_CONNECTION_REFUSED"
    feed.ev("webSocketFrameError", requestId="x", timestamp=1.01, errorMessage=error)
    feed.ev("webSocketClosed", requestId="x", timestamp=1.02)
    refused = feed.socket(2.0, status=403)
    s = feed.t.summary()
    assert s["handshake_failures"] == 2, s
    assert s["handshake_errors"] == {error: 1, "status 403": 1}, s
    assert feed.t.sockets["x"].state is Socket.CLOSED and feed.t.sockets["x"].failed
    assert feed.t.sockets[refused].state is Socket.FAILED
    assert s["max_open"] == 0 and s["left_open"] == 0, s


def test_bfcache_keeps_sockets_open_until_restore_and_adopts_early_sockets():
    """The cached page's sockets stay open while it is away (no event), close as it is
    restored; a socket the page opens on pageshow can be reported before the restore's
    frameNavigated: it belongs to the restored load."""
    feed = Feed()
    feed.navigated("L0", 0.0)
    a, b = feed.socket(0.1), feed.socket(0.2)
    feed.t.entering_cache("tab0")
    feed.navigated("AWAY", 1.0)
    assert feed.t.loads[("tab0", "L0")].state.value == "cached"
    assert feed.t.open_at(2.0) == 2  # still open in the cache
    feed.t.restoring("tab0")  # history back pressed
    early = feed.socket(4.0)  # before the restore is reported
    assert feed.t.sockets[early].load is None
    feed.navigated("L0", 4.001, restore=True)
    for rid in (a, b):
        feed.ev("webSocketClosed", requestId=rid, timestamp=4.002)
    assert feed.t.sockets[early].load == "L0"
    s = feed.t.summary()
    assert s["loads"] == 2 and s["left_open"] == 2, s
    assert s["linger_max"] == pytest.approx(3.002), s
    assert feed.t.per_load()[0]["sockets"] == 3 and feed.t.per_load()[0]["state"] == "active"
    with pytest.raises(IllegalTransition, match="restore"):
        feed.t.load_restored("tab0", "AWAY", 5.0)  # ended, not cached


def test_freeze_error_keeps_the_socket_open():
    feed = Feed()
    feed.navigated("L0", 0.0)
    a = feed.socket(0.1)
    error = "Page entered Back-Forward Cache."
    feed.ev("webSocketFrameError", requestId=a, timestamp=1.0, errorMessage=error)
    assert feed.t.sockets[a].state is Socket.OPEN and feed.t.sockets[a].errors == 1
    feed.ev("webSocketClosed", requestId=a, timestamp=3.0)
    feed.t.server_saw("key1", 1001, 3.001)
    sock = feed.t.sockets[a]
    assert sock.closed_by == "browser" and sock.left_open is False and not sock.failed


def test_freeze_during_the_handshake_does_not_fail_it():
    feed = Feed()
    feed.navigated("L0", 0.0)
    rid = "r9"
    feed.ev("webSocketCreated", 0.1, requestId=rid, url=URL)
    error = "Page entered Back-Forward Cache."
    feed.ev("webSocketFrameError", requestId=rid, timestamp=0.2, errorMessage=error)
    sock = feed.t.sockets[rid]
    assert sock.state is Socket.CONNECTING and not sock.failed and sock.errors == 1
    feed.ev(
        "webSocketHandshakeResponseReceived", requestId=rid, timestamp=0.3, response={"status": 101}
    )
    assert sock.state is Socket.OPEN and sock.opened == 0.3


def test_crash_and_close_end_the_tab():
    feed = Feed()
    feed.navigated("L0", 0.0)
    a = feed.socket(0.1)
    feed.t.entering_cache("tab0")
    feed.navigated("L1", 1.0)  # L0 cached, its socket open
    b = feed.socket(1.1)
    feed.t.observe("Inspector.targetCrashed", {}, S, 2.0)
    assert feed.t.sockets[a].state is Socket.CLOSED and feed.t.sockets[b].state is Socket.CLOSED
    assert feed.t.loads[("tab0", "L0")].state.value == "ended"
    feed.t.attach("S2", "tab1")
    feed.t.observe("Page.frameNavigated", {"frame": {"loaderId": "M0"}}, "S2", 3.0)
    feed.t.observe("Network.webSocketCreated", {"requestId": "c", "url": URL}, "S2", 3.1)
    feed.t.observe("Target.detachedFromTarget", {"sessionId": "S2"}, None, 4.0)
    assert feed.t.sockets["c"].state is Socket.CLOSED and feed.t.current["tab1"] is None


def test_dev_server_sockets_are_recorded_but_not_counted():
    feed = Feed()
    feed.navigated("L0", 0.0)
    feed.socket(0.1, url="ws://127.0.0.1:3000/_next/webpack-hmr")
    feed.socket(0.2, url="ws://127.0.0.1:5173/?token=abc", protocol="vite-hmr")
    feed.socket(0.3, url="ws://127.0.0.1:8080/sockjs-node/123/abc/websocket")
    app = feed.socket(0.4)
    s = feed.t.summary()
    assert s["sockets"] == 1 and s["sockets_ignored"] == 3 and s["max_open"] == 1, s
    assert [r.id for r in feed.t.records()] == [app]
    assert len(feed.t.records(app_only=False)) == 4
    # the filter is the user's to replace
    everything = Feed(SocketTracker(ignore=lambda url, protocol: False))
    everything.navigated("L0", 0.0)
    everything.socket(0.1, url="ws://127.0.0.1:3000/_next/webpack-hmr")
    assert everything.t.summary()["sockets"] == 1
    mine = DevServerFilter(patterns=[r"/live$"], protocols=[])
    assert mine("ws://h/live") and not mine("ws://h/_next/webpack-hmr", "vite-hmr")
    with pytest.raises(ConfigError, match="pattern"):
        DevServerFilter(patterns=["("])


def test_illegal_transitions_raise_and_leave_the_state():
    feed = Feed()
    feed.navigated("L0", 0.0)
    feed.ev("webSocketCreated", 1.0, requestId="x", url=URL)
    with pytest.raises(IllegalTransition, match=r"'frame'.*'connecting'"):
        feed.ev("webSocketFrameReceived", requestId="x", timestamp=1.1)
    assert feed.t.sockets["x"].state is Socket.CONNECTING
    feed.ev("webSocketClosed", requestId="x", timestamp=1.2)
    for method in ("webSocketFrameSent", "webSocketClosed", "webSocketFrameError"):
        with pytest.raises(IllegalTransition):
            feed.ev(method, requestId="x", timestamp=1.3)
    with pytest.raises(IllegalTransition, match="created"):
        feed.ev("webSocketCreated", 1.4, requestId="x", url=URL)
    assert feed.t.sockets["x"].state is Socket.CLOSED
    with pytest.raises(ConfigError, match="already started"):
        feed.t.load_started("tab0", "L0", 2.0)
    # every state's row names only states of the table; CLOSED is final
    assert TRANSITIONS[Socket.CLOSED] == {}
    assert step(Socket.CONNECTING, "accepted") is Socket.OPEN


def test_events_not_ours_are_ignored_or_refused():
    feed = Feed()
    assert feed.t.observe("Network.webSocketCreated", {"requestId": "z"}, "OTHER", 1.0) is None
    assert feed.ev("webSocketClosed", requestId="never-created", timestamp=1.0) is None
    with pytest.raises(ConfigError, match="no timestamp"):
        feed.t.observe("Page.frameNavigated", {"frame": {"loaderId": "L"}}, S)
    with pytest.raises(ConfigError, match="not a CDP event"):
        feed.t.observe("Network.requestWillBeSent", {}, S, 1.0)
    assert "Network.webSocketCreated" in EVENTS and "Page.frameNavigated" in EVENTS
    iframe = {"frame": {"loaderId": "I", "parentId": "F"}}
    feed.t.observe("Page.frameNavigated", iframe, S, 1.0)
    assert feed.t.loads == {}


def test_frame_has_a_row_per_app_socket():
    feed = Feed()
    leaky_reloads(feed, 1)
    frame = feed.t.frame()
    assert len(frame) == 4 and int(frame["left_open"].sum()) == 2
    assert set(frame["state"]) == {"open", "closed"}
    assert {"closed_by", "linger", "key", "load"} <= set(frame.columns)


def test_a_socket_closed_as_it_was_created_may_report_its_handshake_after_failing():
    """The post-mortem's manager closes a socket still connecting (a tab hidden just after
    it connected): Chromium 156 reported the frame error, then the handshake it was already
    sending; the socket stays failed and keeps its key (the server's end joins it)."""
    feed = Feed()
    feed.navigated("L0", 0.0)
    feed.ev("webSocketCreated", 1.0, requestId="x", url=URL)
    error = "WebSocket is closed before the connection is established."
    feed.ev("webSocketFrameError", requestId="x", timestamp=1.001, errorMessage=error)
    feed.ev(
        "webSocketWillSendHandshakeRequest",
        requestId="x",
        timestamp=1.002,
        request={"headers": {"Sec-WebSocket-Key": "k"}},
    )
    sock = feed.t.sockets["x"]
    assert sock.state is Socket.FAILED and sock.key == "k" and sock.error == error
    # ...and the server's 101 too: the page never had it open
    feed.ev(
        "webSocketHandshakeResponseReceived",
        requestId="x",
        timestamp=1.0025,
        response={"status": 101},
    )
    assert sock.state is Socket.FAILED and sock.opened is None and sock.status == 101
    feed.ev("webSocketClosed", requestId="x", timestamp=1.003)
    assert sock.state is Socket.CLOSED and sock.failed
