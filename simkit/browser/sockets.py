"""A page's WebSockets as Chromium's DevTools Protocol reports them, with no instrumentation
of the page: a sans-I/O tracker (no asyncio, no clock reads: every time comes with its event).

Whose front end is under test does not matter: the tracker reads CDP's Network domain
(``Network.enable`` on the tab's session) and is told which tab a CDP session belongs to and
when page loads begin and end. It answers what an engineer asks of a page's sockets: how
many each page load opened, how many were open at once (per tab and in all), which were
still open when their load ended (and for how long after), who closed what and when as far
as the browser knows, and which handshakes failed. The server's side of the story (the close
code, which CDP never reports) comes in through :meth:`SocketTracker.server_saw`, called by
whatever sits on the server's end (the kit's server or its fault proxy).

Sockets that are not the app's own (a dev server's hot-reload socket: Next's
``/_next/webpack-hmr``, webpack-hot-middleware's ``/__webpack_hmr``, ``sockjs-node``,
Vite's HMR, which asks for the ``vite-hmr`` subprotocol) are told apart by
:class:`DevServerFilter`, which a caller may replace by any ``(url, protocol) -> bool``.
They are recorded (``app=False``) and left out of every count.

Each socket has an explicit state (:class:`Socket`, one transition table, as
:mod:`simkit.model.page`): an event its state does not allow raises
:class:`~simkit.model.errors.IllegalTransition` and leaves the state unchanged.

What Chromium reports (measured with headless Chromium 156.0.8078.129, Debian, started as
:mod:`simkit.browser.chromium` does and driven by raw CDP; pages served from
``http://127.0.0.1:P`` opening ``ws://127.0.0.1:Q``, P != Q; tests in
``tests/browser/test_sockets.py``):

- Loopback to loopback is not blocked by Local Network Access: the page on one port opens a
  socket to another port, the server answers 101.
- ``webSocketCreated`` *is* emitted (with ``requestId`` and ``url``, and no timestamp: the
  tracker takes the caller's time, or the handshake's), as the page calls
  ``new WebSocket``; then ``webSocketWillSendHandshakeRequest`` (its headers carry
  ``Sec-WebSocket-Key``, which the server sees too: the key that joins the two sides),
  ``webSocketHandshakeResponseReceived`` (status 101), ``webSocketFrameSent`` /
  ``Received`` (data frames only: close frames are not reported). Every ``timestamp`` is
  seconds of the same monotonic clock as Python's :func:`time.monotonic` on Linux (they
  differed by the delivery delay, a few ms), so a caller can time loads with it.
- A failed handshake: ``webSocketFrameError`` ("Error in connection establishment:
  net::ERR_...", or "Error during WebSocket handshake: Unexpected response code: 404", with
  no handshake response event), then ``webSocketClosed``.
- Reload, navigation to a new document, ``Page.crash`` (``Inspector.targetCrashed``) and
  ``Target.closeTarget`` (``Target.detachedFromTarget``): the sockets of the page that went
  away get **no** ``webSocketClosed``, whether the page closed them in ``pagehide`` (the
  server sees the page's code, 1000) or left them to the browser (the server sees 1001).
  So the tracker closes them itself when told the load ended, and only the server's code
  says who closed them.
- Back/forward cache: navigating away leaves the cached page's sockets open (no event);
  history back is a ``Page.frameNavigated`` of type ``BackForwardCacheRestore`` with the
  cached load's ``loaderId``, after which Chromium closes every socket that lived through
  the cache (``webSocketClosed``; the server sees 1001). A socket the page opens on
  ``pageshow`` may be reported *before* that ``frameNavigated``: a socket created while a
  tab has no current load, or after :meth:`SocketTracker.restoring`, waits for the next
  load of that tab. A socket the page closed in
  ``pagehide`` as it entered the cache was reported closed in some runs and not in others:
  only the server's code is sure.
- Freeze (``Page.setWebLifecycleState`` frozen): ``webSocketFrameError`` "Page entered
  Back-Forward Cache." on each open socket, which stays open; on resume
  ``webSocketClosed`` (the server sees 1001). A socket still connecting when the page
  freezes gets the same error and its 101 may follow (seen with background tabs): it stays
  connecting, not failed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Generic, TypedDict, TypeVar
from urllib.parse import urlsplit

from simkit.model.errors import ConfigError, IllegalTransition

if TYPE_CHECKING:
    import pandas as pd

    from simkit.browser.cdp import CDPParams

# -- which sockets are the app's ------------------------------------------------------------

DEV_SERVER_PATTERNS: tuple[str, ...] = (
    r"/_next/webpack-hmr",  # next dev (webpack and Turbopack)
    r"/__webpack_hmr",  # webpack-hot-middleware
    r"/sockjs-node",  # create-react-app / webpack-dev-server 3
)
# Vite's HMR socket has no telling path (the dev server's root, ``?token=...``): it is known
# by the subprotocol it asks for. webpack-dev-server 4+ uses ``/ws``, which too many apps
# use to be ignored by default: add ``r"/ws$"`` to the patterns for such a dev server.
DEV_SERVER_PROTOCOLS: tuple[str, ...] = ("vite-hmr", "vite-ping")


class DevServerFilter:
    """``filter(url, protocol) -> True`` for a dev server's own socket (hot reload), which
    the tracker leaves out of the app's counts. ``patterns`` are regular expressions searched
    in the URL; ``protocols`` are subprotocols the page asks for (``Sec-WebSocket-Protocol``,
    known from the handshake on). Replace either to fit another dev server; a plain
    ``lambda url, protocol: False`` counts every socket."""

    def __init__(
        self,
        patterns: Iterable[str] = DEV_SERVER_PATTERNS,
        protocols: Iterable[str] = DEV_SERVER_PROTOCOLS,
    ) -> None:
        self.patterns = tuple(patterns)
        try:
            self.regex = re.compile("|".join(f"(?:{p})" for p in self.patterns) or r"(?!)")
        except re.error as error:
            raise ConfigError(f"bad dev-server URL pattern in {self.patterns!r}: {error}") from None
        self.protocols = frozenset(p.strip().lower() for p in protocols)

    def __call__(self, url: str, protocol: str | None = None) -> bool:
        if self.regex.search(url):
            return True
        asked = {p.strip().lower() for p in (protocol or "").split(",") if p.strip()}
        return bool(asked & self.protocols)


# -- one socket's states --------------------------------------------------------------------


class Socket(Enum):
    CONNECTING = "connecting"  # created, handshake not answered yet
    OPEN = "open"  # 101 received
    FAILED = "failed"  # the handshake failed (an error or a non-101 answer), not closed yet
    CLOSED = "closed"


# Chromium's frame error on every socket of a page that is frozen (or enters the cache)
FROZEN = "Page entered Back-Forward Cache."

TRANSITIONS: dict[Socket, dict[str, Socket]] = {
    Socket.CONNECTING: {
        "handshake": Socket.CONNECTING,
        "frozen": Socket.CONNECTING,  # frozen mid-handshake: the 101 may still come
        "accepted": Socket.OPEN,
        "refused": Socket.FAILED,
        "error": Socket.FAILED,
        "closed": Socket.CLOSED,
        "unload": Socket.CLOSED,
    },
    Socket.OPEN: {
        "frame": Socket.OPEN,
        "error": Socket.OPEN,  # e.g. a frozen page's "Page entered Back-Forward Cache."
        "closed": Socket.CLOSED,
        "unload": Socket.CLOSED,
    },
    Socket.FAILED: {
        # a page that closes a socket it just created (the post-mortem's manager, hidden while
        # connecting) gets "WebSocket is closed before the connection is established." at
        # once; the network service may then report the handshake it was already sending,
        # and even the server's answer (seen with Chromium 156): the key still joins the
        # server's end, and the page never had the socket open
        "handshake": Socket.FAILED,
        "accepted": Socket.FAILED,
        "refused": Socket.FAILED,
        "error": Socket.FAILED,
        "closed": Socket.CLOSED,
        "unload": Socket.CLOSED,
    },
    Socket.CLOSED: {},
}


def step(state: Socket, event: str) -> Socket:
    """The state after ``event``; raises IllegalTransition (state unchanged) if not allowed."""
    try:
        return TRANSITIONS[state][event]
    except KeyError:
        raise IllegalTransition("websocket", state.value, event) from None


# What the server's close code says about who closed (CDP never says).
BROWSER_CODES = {1001: "browser"}  # going away: the browser closed it for its page
ABNORMAL_CODES = {1006: "abnormal"}  # no close frame: the network or a process died


TabT = TypeVar("TabT", bound=Hashable)
"""Whatever names a tab for the tracker's caller (the browser runtime: the tab's index)."""


@dataclass
class SocketRecord(Generic[TabT]):
    """One WebSocket of one tab, as far as CDP (and the server, if told) knows.

    Times are the caller's clock (CDP's timestamps, or the times given with the events).
    ``load_ended``: when its page load ended (or entered the back/forward cache) while this
    socket was still open; ``closed_by``: ``page``, ``browser`` (1001), ``server``,
    ``abnormal`` (1006), ``unload`` (closed as its load ended, by the page's ``pagehide``
    or the browser: only the server's code can say which) or ``unknown`` (CDP's
    ``webSocketClosed`` while the page lived: the page or the server)."""

    id: str
    tab: TabT
    load: str | None
    url: str
    app: bool
    created: float | None
    state: Socket = Socket.CONNECTING
    key: str | None = None
    protocol: str | None = None
    opened: float | None = None
    closed: float | None = None
    status: int | None = None
    error: str | None = None
    errors: int = 0
    sent: int = 0
    received: int = 0
    load_ended: float | None = None
    unloaded: bool = False  # closed by the tracker as its load ended (CDP said nothing)
    server_code: int | None = None
    server_time: float | None = None
    server_by: str | None = None

    @property
    def failed(self) -> bool:
        """The handshake never succeeded (an error or a non-101 answer)."""
        return self.opened is None and (self.error is not None or self.status is not None)

    @property
    def end(self) -> float | None:
        """When the socket stopped being open: the earlier of CDP's and the server's."""
        times = [t for t in (self.closed, self.server_time) if t is not None]
        return min(times) if times else None

    @property
    def closed_by(self) -> str | None:
        if self.server_code is not None:
            if self.server_by == "server":
                return "server"
            code = self.server_code
            return BROWSER_CODES.get(code) or ABNORMAL_CODES.get(code) or "page"
        if self.state is not Socket.CLOSED:
            return None
        return "unload" if self.unloaded else "unknown"

    @property
    def left_open(self) -> bool | None:
        """Still open when its load ended, and not closed by the page itself then: True;
        closed by the page (or before the end): False; None when only the server's code
        could tell (closed as its load ended, no code given)."""
        if self.load_ended is None or self.opened is None:
            return False
        by = self.closed_by
        if by == "page":
            return False
        if by == "unload":
            return None
        return True  # still open, or closed later by the browser, the server or a fault

    def linger(self, now: float) -> float | None:
        """Seconds it stayed open after its load ended (up to ``now`` if still open)."""
        if not self.left_open or self.load_ended is None:
            return None
        end = self.end
        return max(0.0, (now if end is None else end) - self.load_ended)

    def row(self, now: float) -> dict[str, object]:
        row = asdict(self)
        row["state"] = self.state.value
        row.update(
            failed=self.failed,
            closed_by=self.closed_by,
            left_open=self.left_open,
            linger=self.linger(now),
        )
        return row


class Load(Enum):
    ACTIVE = "active"
    CACHED = "cached"  # in the back/forward cache: may be restored
    ENDED = "ended"


@dataclass
class LoadRecord(Generic[TabT]):
    """One page load of one tab (a ``loaderId`` or any key the caller chooses)."""

    tab: TabT
    load: str
    started: float
    state: Load = Load.ACTIVE
    ended: float | None = None
    sockets: list[str] = field(default_factory=list)


NETWORK = (
    "Network.webSocketCreated",
    "Network.webSocketWillSendHandshakeRequest",
    "Network.webSocketHandshakeResponseReceived",
    "Network.webSocketFrameSent",
    "Network.webSocketFrameReceived",
    "Network.webSocketFrameError",
    "Network.webSocketClosed",
)
PAGE = ("Page.frameNavigated", "Inspector.targetCrashed", "Target.detachedFromTarget")
EVENTS = NETWORK + PAGE  # every CDP event :meth:`SocketTracker.observe` reads


class LoadRow(TypedDict, Generic[TabT]):
    """One page load in :meth:`SocketTracker.per_load`."""

    tab: TabT
    load: str
    started: float
    ended: float | None
    state: str
    sockets: int  # app sockets it opened (created)
    opened: int  # of which the handshake succeeded
    left_open: int  # of which were still open when the load ended


class SocketSummary(TypedDict):
    """:meth:`SocketTracker.summary`: plain numbers for a run's summary."""

    sockets: int
    sockets_ignored: int
    loads: int
    sockets_per_load_max: int
    sockets_per_load_mean: float
    max_open: int
    max_open_per_tab: dict[str, int]
    open_now: int
    left_open: int
    left_open_unknown: int
    linger_max: float
    closed_by: dict[str, int]
    handshake_failures: int
    handshake_errors: dict[str, int]
    server_unmatched: int


class SocketTracker(Generic[TabT]):
    """Every WebSocket of every tab, fed CDP events and told about page loads.

    - :meth:`attach` says which tab a CDP session (a flattened ``Target.attachToTarget``)
      belongs to; events of sessions not attached are ignored.
    - :meth:`load_started`, :meth:`load_ended`, :meth:`load_restored`, :meth:`evicted`,
      :meth:`tab_gone` say where each tab's page loads begin and end; :meth:`observe` also
      derives them from ``Page.frameNavigated`` (main frame), ``Inspector.targetCrashed``
      and ``Target.detachedFromTarget`` when given the time they arrived. CDP cannot say
      whether a page left by a navigation waits in the back/forward cache, nor which page
      a socket reported during a history back belongs to: the caller, who pressed the
      buttons, says so with :meth:`entering_cache` and :meth:`restoring`.
    - :meth:`observe` takes ``(method, params, session)`` as a :class:`RawCDP` listener
      gets them: register it for :data:`EVENTS`.
    - :meth:`server_saw` adds the server's close code.

    ``ignore(url, protocol)`` picks out sockets that are not the app's (default
    :class:`DevServerFilter`).
    """

    def __init__(self, ignore: Callable[[str, str | None], bool] | None = None) -> None:
        self.ignore = DevServerFilter() if ignore is None else ignore
        self.sockets: dict[str, SocketRecord[TabT]] = {}  # CDP requestId -> socket
        self.loads: dict[tuple[TabT, str], LoadRecord[TabT]] = {}
        self.current: dict[TabT, LoadRecord[TabT] | None] = {}  # tab -> its running load
        self.sessions: dict[str, TabT] = {}
        self.waiting: dict[TabT, list[SocketRecord[TabT]]] = {}  # created between loads
        self.expect_cache: set[TabT] = set()
        self.expect_restore: set[TabT] = set()
        self.unmatched: list[tuple[str, int, float]] = []  # server_saw with no socket
        self.last = 0.0  # the latest time seen (a summary's "now")

    # -- who is who ------------------------------------------------------------------------

    def attach(self, session: str, tab: TabT) -> None:
        """CDP ``session`` is tab ``tab``'s (any hashable name)."""
        self.sessions[session] = tab
        self.current.setdefault(tab, None)

    def _seen(self, time: float | None) -> None:
        if time is not None and time > self.last:
            self.last = time

    # -- page loads ------------------------------------------------------------------------

    def load_started(self, tab: TabT, load: str, time: float) -> LoadRecord[TabT]:
        """A new page load of ``tab`` begins (its previous load, if running, ends now: in the
        back/forward cache if :meth:`entering_cache` was called for this tab)."""
        self._seen(time)
        if (tab, load) in self.loads:
            raise ConfigError(f"tab {tab!r}: page load {load!r} has already started")
        if self.current.get(tab) is not None:
            self.load_ended(tab, time, cached=tab in self.expect_cache)
        self.expect_cache.discard(tab)
        self.expect_restore.discard(tab)
        record = LoadRecord(tab, load, time)
        self.loads[(tab, load)] = record
        self.current[tab] = record
        self._adopt(tab, record)
        return record

    def entering_cache(self, tab: TabT) -> None:
        """The next end of ``tab``'s load by a navigation is an entry into the back/forward
        cache (the caller knows: it navigated away to put the page there)."""
        self.expect_cache.add(tab)

    def restoring(self, tab: TabT) -> None:
        """The caller pressed history back on ``tab`` to restore a cached page: sockets
        created from now on belong to the next load or restore of the tab, not to the page
        being left (measured: a socket the restored page opens in ``pageshow`` is reported
        before the restore's ``frameNavigated``)."""
        self.expect_restore.add(tab)

    def load_ended(
        self, tab: TabT, time: float, *, cached: bool = False
    ) -> LoadRecord[TabT] | None:
        """``tab``'s running load ends (reload, navigation, crash, close) or, with
        ``cached``, waits in the back/forward cache (its sockets stay open). The sockets of an
        ended load that CDP still counts open are closed now (CDP will not report them)."""
        self._seen(time)
        record = self.current.get(tab)
        if record is None:
            return None
        self.current[tab] = None
        record.state = Load.CACHED if cached else Load.ENDED
        record.ended = time
        for sid in record.sockets:
            sock = self.sockets[sid]
            if sock.state is Socket.CLOSED:
                continue
            # open as far as CDP knows: a server's close seen a moment earlier does not
            # count (the server's clock and CDP's delivery race at a page's unload)
            sock.load_ended = time
            if not cached:
                self._unload(sock, time)
        return record

    def load_restored(self, tab: TabT, load: str, time: float) -> LoadRecord[TabT]:
        """``tab``'s cached ``load`` comes back from the back/forward cache."""
        self._seen(time)
        record = self.loads.get((tab, load))
        if record is None or record.state is not Load.CACHED:
            state = "unknown" if record is None else record.state.value
            raise IllegalTransition("page load", state, "restore")
        if self.current.get(tab) is not None:
            self.load_ended(tab, time)
        self.expect_cache.discard(tab)
        self.expect_restore.discard(tab)
        record.state = Load.ACTIVE
        self.current[tab] = record
        self._adopt(tab, record)
        return record

    def evicted(self, tab: TabT, load: str, time: float) -> None:
        """A cached load is dropped from the cache (its sockets close now)."""
        self._seen(time)
        record = self.loads.get((tab, load))
        if record is None or record.state is not Load.CACHED:
            state = "unknown" if record is None else record.state.value
            raise IllegalTransition("page load", state, "evict")
        record.state = Load.ENDED
        for sid in record.sockets:
            if self.sockets[sid].state is not Socket.CLOSED:
                self._unload(self.sockets[sid], time)

    def tab_gone(self, tab: TabT, time: float) -> None:
        """The tab is closed or crashed: its running load ends, its cached loads too."""
        self.load_ended(tab, time)
        for record in list(self.loads.values()):
            if record.tab == tab and record.state is Load.CACHED:
                self.evicted(tab, record.load, time)

    def _adopt(self, tab: TabT, record: LoadRecord[TabT]) -> None:
        for sock in self.waiting.pop(tab, []):
            sock.load = record.load
            record.sockets.append(sock.id)

    def _unload(self, sock: SocketRecord[TabT], time: float) -> None:
        sock.state = step(sock.state, "unload")
        sock.closed = time
        sock.unloaded = True

    # -- CDP events ------------------------------------------------------------------------

    def observe(
        self, method: str, params: CDPParams, session: str | None, time: float | None = None
    ) -> SocketRecord[TabT] | None:
        """One CDP event of an attached session. ``time`` is when it happened, on the clock
        of CDP's timestamps (needed for events without one: ``webSocketCreated``, and the
        page events); an event's own ``timestamp`` wins. Returns the socket it concerned."""
        if method == "Target.detachedFromTarget":  # on the browser's session: names the tab's
            session = params.get("sessionId")
        tab = self.sessions.get(session or "")
        if tab is None:
            return None
        stamp = params.get("timestamp", time)
        if method in PAGE:
            if stamp is None:
                raise ConfigError(f"{method} carries no timestamp: pass the time it arrived")
            self._page(tab, method, params, float(stamp))
            return None
        if method not in NETWORK:
            raise ConfigError(f"not a CDP event the tracker reads: {method!r}")
        self._seen(stamp)
        rid = params.get("requestId", "")
        if method == "Network.webSocketCreated":
            return self._created(tab, rid, params.get("url", ""), stamp)
        sock = self.sockets.get(rid)
        if sock is None:  # opened before this session was watched
            return None
        if method == "Network.webSocketWillSendHandshakeRequest":
            sock.state = step(sock.state, "handshake")
            headers = {
                k.lower(): v for k, v in params.get("request", {}).get("headers", {}).items()
            }
            sock.key = headers.get("sec-websocket-key", sock.key)
            sock.protocol = headers.get("sec-websocket-protocol", sock.protocol)
            if sock.created is None:
                sock.created = stamp
            if sock.app and self.ignore(sock.url, sock.protocol):
                sock.app = False
        elif method == "Network.webSocketHandshakeResponseReceived":
            status = params.get("response", {}).get("status")
            failed = sock.state is Socket.FAILED  # the page gave up on it already
            sock.state = step(sock.state, "accepted" if status == 101 else "refused")
            sock.status = status
            if status == 101 and not failed:
                sock.opened = stamp
        elif method in ("Network.webSocketFrameSent", "Network.webSocketFrameReceived"):
            sock.state = step(sock.state, "frame")
            if method.endswith("Sent"):
                sock.sent += 1
            else:
                sock.received += 1
        elif method == "Network.webSocketFrameError":
            message = params.get("errorMessage", "")
            frozen = message.startswith(FROZEN) and sock.state is Socket.CONNECTING
            # a page frozen mid-handshake: the handshake goes on (101 may follow), not failed
            sock.state = step(sock.state, "frozen" if frozen else "error")
            sock.errors += 1
            if not frozen:
                sock.error = sock.error or message
        else:  # webSocketClosed
            sock.state = step(sock.state, "closed")
            sock.closed = stamp
        return sock

    def _created(self, tab: TabT, rid: str, url: str, time: float | None) -> SocketRecord[TabT]:
        if rid in self.sockets:
            raise IllegalTransition("websocket", self.sockets[rid].state.value, "created")
        record = None if tab in self.expect_restore else self.current.get(tab)
        sock = SocketRecord(
            rid, tab, record.load if record else None, url, not self.ignore(url, None), time
        )
        self.sockets[rid] = sock
        if record is not None:
            record.sockets.append(rid)
        else:
            self.waiting.setdefault(tab, []).append(sock)
        return sock

    def _page(self, tab: TabT, method: str, params: CDPParams, time: float) -> None:
        if method == "Page.frameNavigated":
            frame = params.get("frame", {})
            if frame.get("parentId"):
                return  # an iframe: its sockets count for the page load around it
            load = frame.get("loaderId", "")
            if params.get("type") == "BackForwardCacheRestore":
                self.load_restored(tab, load, time)
            elif (tab, load) not in self.loads:
                self.load_started(tab, load, time)
        else:  # crashed, or the tab closed (detached)
            self.tab_gone(tab, time)

    # -- the server's side -----------------------------------------------------------------

    def server_saw(
        self, url_or_key: str, code: int, time: float, *, by: str = "client"
    ) -> SocketRecord[TabT] | None:
        """The server (or the proxy) saw a socket close with ``code`` at ``time`` (``by``:
        ``client`` or ``server``, who sent the first close). ``url_or_key`` is the socket's
        ``Sec-WebSocket-Key`` (exact), or its URL or path (then the oldest socket of that URL
        with no code yet). Returns the socket, or None (recorded in ``unmatched``)."""
        if by not in ("client", "server"):
            raise ConfigError(f"server_saw: by={by!r}; choose one of: client, server")
        self._seen(time)
        found = next((s for s in self.sockets.values() if s.key == url_or_key), None)
        if found is None:
            for sock in self.sockets.values():
                if sock.server_code is None and sock.opened is not None:
                    url = urlsplit(sock.url)
                    path = url.path + (f"?{url.query}" if url.query else "")
                    if url_or_key in (sock.url, path, url.path):
                        found = sock
                        break
        if found is None:
            self.unmatched.append((url_or_key, code, time))
            return None
        found.server_code, found.server_time, found.server_by = int(code), time, by
        return found

    # -- answers ---------------------------------------------------------------------------

    def records(self, *, app_only: bool = True) -> list[SocketRecord[TabT]]:
        return [s for s in self.sockets.values() if s.app or not app_only]

    def open_at(self, time: float, tab: TabT | None = None) -> int:
        """How many app sockets were open at ``time`` (of ``tab``, or of every tab)."""
        return sum(
            1
            for s in self.records()
            if (tab is None or s.tab == tab)
            and s.opened is not None
            and s.opened <= time
            and (s.end is None or s.end > time)
        )

    def max_open(self, tab: TabT | None = None) -> int:
        """The most app sockets open at once (of ``tab``, or of every tab)."""
        moves: list[tuple[float, int]] = []
        for s in self.records():
            if (tab is None or s.tab == tab) and s.opened is not None:
                moves.append((s.opened, 1))
                if s.end is not None:
                    moves.append((s.end, -1))
        best = count = 0
        for _, move in sorted(moves):  # at a tie, a close (-1) before an open
            count += move
            best = max(best, count)
        return best

    def per_load(self) -> list[LoadRow[TabT]]:
        """One row per page load: how many app sockets it opened and left open."""
        rows: list[LoadRow[TabT]] = []
        for record in self.loads.values():
            socks = [self.sockets[i] for i in record.sockets if self.sockets[i].app]
            rows.append(
                {
                    "tab": record.tab,
                    "load": record.load,
                    "started": record.started,
                    "ended": record.ended,
                    "state": record.state.value,
                    "sockets": len(socks),
                    "opened": sum(1 for s in socks if s.opened is not None),
                    "left_open": sum(1 for s in socks if s.left_open),
                }
            )
        return rows

    def summary(self, now: float | None = None) -> SocketSummary:
        """Plain numbers (no pandas) for a run's summary; ``now`` (default: the latest time
        seen) bounds the linger of sockets still open."""
        now = self.last if now is None else now
        socks = self.records()
        loads = self.per_load()
        counts = [row["sockets"] for row in loads]
        lingers = [x for s in socks if (x := s.linger(now)) is not None]
        tabs = sorted({s.tab for s in socks} | set(self.current), key=repr)
        return {
            "sockets": len(socks),
            "sockets_ignored": len(self.sockets) - len(socks),
            "loads": len(loads),
            "sockets_per_load_max": max(counts, default=0),
            "sockets_per_load_mean": sum(counts) / len(counts) if counts else 0.0,
            "max_open": self.max_open(),
            "max_open_per_tab": {str(t): self.max_open(t) for t in tabs},
            "open_now": sum(1 for s in socks if s.opened is not None and s.end is None),
            "left_open": sum(1 for s in socks if s.left_open),
            "left_open_unknown": sum(1 for s in socks if s.left_open is None),
            "linger_max": max(lingers, default=0.0),
            "closed_by": dict(Counter(by for s in socks if (by := s.closed_by) is not None)),
            "handshake_failures": sum(1 for s in socks if s.failed),
            "handshake_errors": dict(
                Counter(s.error or f"status {s.status}" for s in socks if s.failed)
            ),
            "server_unmatched": len(self.unmatched),
        }

    def frame(self, now: float | None = None, *, app_only: bool = True) -> pd.DataFrame:
        """One row per socket (pandas imported only here)."""
        import pandas as pd

        now = self.last if now is None else now
        return pd.DataFrame([s.row(now) for s in self.records(app_only=app_only)])
