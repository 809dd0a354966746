"""Your front end under test: the kit's Chromium tabs on a page it did not write.

``simkit.run(scenario, runtime=Browser(page="http://127.0.0.1:3000/?ws={ws}",
target="ws://127.0.0.1:8000/ws"))`` loads your page in every tab and plays the scenario's
verbs on it exactly as :mod:`simkit.browser.runtime` does for the kit's own page (load,
reload, close, crash, hide/show, freeze/resume, back/forward cache, duplicate, network loss
and return). The page is not changed and runs no code of the kit's; the truth comes from
the two places the kit sees without it:

- **the browser** (client side): CDP's Network domain, read by
  :class:`~simkit.browser.sockets.SocketTracker`: which sockets each page load opened, when
  each opened and closed as the browser saw it, which were still open when their load ended;
- **the wire** (server side): every socket goes through the kit's fault proxy, whose bytes
  give the request (its ``Sec-WebSocket-Key`` joins it to the socket CDP reports), the
  server's 101, and the first close frame of each side (:class:`~simkit.browser.wire.Wire`);
  a socket is open at the server exactly as long as the proxy holds its upstream end.

Those facts feed the same census as every runtime (a socket open at the server that is
not its tab's newest is stale; two open for one user are a duplicate), so the same
:class:`~simkit.results.Result`, metrics and plots come back. The registry's columns come
from the kit's own server (read in-process) or from your server's stats route
(:mod:`simkit.net.target`), else they are NaN with the reason in
``summary["unknown_metrics"]``, as in target mode. The page's client policy is its own
code: ``summary["client_policy"]`` says so, and the strategy only chooses what the kit's
own server does (nothing, against a target).

``{ws}`` in the page URL is the URL-encoded WebSocket URL of the kit's proxy in front of the
server (the target's path and query, or the kit's ``/ws``), with ``user=<the tab's user>``
(unless the target's URL places ``{user}`` itself) and ``simkit_conn=<tab*10000+n>`` (the
stats protocol's id; one per page load the kit starts, shared by every socket of that
load). ``{user}`` and ``{tab}`` are the tab's user and index.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Awaitable
from dataclasses import replace
from string import Formatter
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote, urlsplit

from simkit.actors.env import Env
from simkit.browser.cdp import CDPError, CDPHost, CDPParams, Listener, RawChromium
from simkit.browser.sockets import (
    EVENTS,
    DevServerFilter,
    SocketRecord,
    SocketSummary,
    SocketTracker,
)
from simkit.browser.tab import LOAD_WAIT, MAX_TABS, BrowserTab, stop_tabs
from simkit.browser.wire import Wire
from simkit.model.client import Storage
from simkit.model.codes import CloseCode
from simkit.model.errors import BrowserError, ConfigError
from simkit.model.liveness import CLOSE_TIMEOUT
from simkit.model.page import step
from simkit.model.strategy import Strategy
from simkit.net.proxy import Piped
from simkit.net.realtime import RealtimeRuntime
from simkit.net.server import LocalServer
from simkit.net.target import (
    CONNECT_TIMEOUT,
    REGISTRY_COLUMNS,
    STATS_TIMEOUT,
    Mirror,
    StatsUnavailable,
    Target,
    TargetServer,
    fetch_registry,
    parse_target,
)
from simkit.net.target.report import When, unknown
from simkit.runtime.census import Census
from simkit.runtime.interfaces import ClientEnd, Clock, ServerActor, TabCallbacks

if TYPE_CHECKING:
    from simkit.scenarios import Scenario

FIELDS = ("ws", "user", "tab")
PAGE_TIMEOUT = 5.0  # seconds the page URL may take to answer the check before the run
RETRIES = 20  # CDP calls retried while a page's process is swapped (0.05 s apart)
MANY_SOCKETS = 10  # a load that opens more app sockets than this gets a note
AWAY = "data:text/html,<title>away</title>"  # where a tab goes to put its page in the cache


def check_page(url: object) -> str:
    """An ``http(s)://`` page URL whose ``{fields}`` are among :data:`FIELDS`."""
    if not isinstance(url, str) or not url:
        raise ConfigError(
            f"page must be an http:// URL such as 'http://127.0.0.1:3000/?ws={{ws}}', got {url!r}"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"page {url!r}: must be an http:// or https:// URL with a host (Chromium loads it)"
        )
    try:
        names = [name for _, name, _, _ in Formatter().parse(url) if name is not None]
    except ValueError as error:
        raise ConfigError(f"page {url!r}: bad template ({error}); write {{{{ for a brace") from None
    for name in names:
        if name not in FIELDS:
            raise ConfigError(
                f"page {url!r}: unknown field {{{name}}}; choose among "
                + ", ".join(f"{{{f}}}" for f in FIELDS)
            )
    return url


def check_ignore(pattern: object) -> str:
    """A regular expression for socket URLs that are not the app's."""
    if not isinstance(pattern, str):
        raise ConfigError(f"ignore must be a regular expression (a string), got {pattern!r}")
    DevServerFilter(patterns=(pattern,))  # a bad one fails here, naming it
    return pattern


def fill(template: str, *, ws: str, user: str, tab: int) -> str:
    """The page URL of one tab: ``{ws}`` URL-encoded, ``{user}`` too, ``{tab}`` a number."""
    return template.format(ws=quote(ws, safe=""), user=quote(user, safe=""), tab=tab)


def probe(url: str, timeout: float = PAGE_TIMEOUT) -> None:
    """Does the page answer at all (before Chromium starts)? A ConfigError says how not."""
    request = urllib.request.Request(url, headers={"User-Agent": "simkit page check"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read(1)
    except urllib.error.HTTPError as error:
        raise ConfigError(
            f"page {url!r} answered HTTP {error.code} {error.reason}; is it the right URL?"
        ) from None
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        why = getattr(error, "reason", None) or error
        raise ConfigError(
            f"page {url!r} does not answer within {timeout:g} s ({why}); is its server running?"
        ) from None


class PageEnd:
    """The server's end of one of the page's sockets, as the proxy sees it (a
    :class:`~simkit.runtime.interfaces.ServerEnd` that cannot send: the kit does not push
    through a page it did not write)."""

    __slots__ = ("code", "id", "key", "piped", "session", "silent_since", "tab", "user", "wire")

    def __init__(self, conn: int, piped: Piped, wire: Wire, user: str, tab: int | None):
        self.id, self.piped, self.wire, self.user, self.tab = conn, piped, wire, user, tab
        self.key = wire.key
        self.session: str | None = None
        self.silent_since: float | None = None
        self.code: int | None = None

    @property
    def tab_index(self) -> int | None:
        return self.tab

    def send(self, message: tuple[object, ...]) -> None:
        """The kit does not push through a page it did not write."""

    def server_close(self, code: int, reason: str = "") -> None:
        """The kit does not close sockets on the server's behalf."""

    def server_dies(self) -> None:
        """The kit does not kill the server's process."""


class PageNetwork:
    """The network the run core sees: the sockets open at the server (the proxy holds
    them); the page opens its own, so :meth:`connect` is never called."""

    def __init__(self, run: FrontendRuntime) -> None:
        self.run = run
        self.core: ServerActor | None = None

    @property
    def open_links(self) -> dict[int, PageEnd]:
        return self.run.ends

    @property
    def server(self) -> ServerActor:
        assert self.core is not None, "attach() first"
        return self.core

    def attach(self, clock: Clock, server: ServerActor) -> None:
        self.core = server

    def connect(self, tab: TabCallbacks, user: str, session: str | None) -> ClientEnd:
        raise BrowserError("in a page run the page opens its own sockets")

    def finish(self) -> None:
        """Nothing to settle: the browser's and the server's timers ran for real."""

    def restart_server(self, downtime: float) -> None:
        """The kit's own server restarts; a target is not the kit's to restart, so the proxy
        goes down instead (every socket reset, new ones refused) for ``downtime``."""
        run = self.run
        run.outages += 1
        wall = downtime * run.scale
        if run.local is not None:
            task = run.loop.create_task(run.local.restart(wall))
            run.background.add(task)
            return
        run.faults.set_down(True)
        run.loop.call_later(wall, run.faults.set_down, False)


class PageTab(BrowserTab):
    """A scenario tab playing the verbs on your page: the browser runtime's tab, with the
    page's URL from the template, no report binding, and its loads seen through CDP."""

    def __init__(self, run: FrontendRuntime, index: int, person: str, context: str) -> None:
        # a FrontendRuntime has what a BrowserTab uses of its run except the kit's server,
        # which PageTab's overrides never reach; no Protocol names that yet
        super().__init__(run, index, person, context)  # type: ignore[arg-type]
        self.page_run = run
        self.navigations = 0
        self.restored = False  # the last history back came out of the cache
        self.loaded = asyncio.Event()

    def url(self) -> str:
        self.navigations += 1
        return self.page_run.page_url(self.index, self.person, self.navigations)

    async def _open_target(self) -> None:
        """The window opened for this tab before the clock started, if there is one."""
        blank = self.page_run.blanks.pop(self.index, None)
        if blank is None:
            await super()._open_target()
        else:
            await self._adopt_target(blank)

    async def _watch(self) -> None:
        """A page the kit did not write reports nothing: its sockets are read from CDP's
        Network domain, attributed to this tab's session."""
        assert self.session is not None
        self.page_run.tracker.attach(self.session, self.index)
        await self._send("Network.enable", {})

    async def _goto(self, copied: asyncio.Future[str] | None = None) -> None:
        if self.session is None:
            await self._open_target()
        assert self.session is not None
        script = None
        if copied is not None:  # a duplicate: sessionStorage filled before the page runs
            items = await copied
            source = f"for (const [k, v] of {items}) sessionStorage.setItem(k, v);"
            added = await self._send("Page.addScriptToEvaluateOnNewDocument", {"source": source})
            script = added.get("identifier")
        try:
            await self._loaded(self._navigate(self.url()))
        finally:
            if script is not None:
                with contextlib.suppress(Exception):
                    await self._send(
                        "Page.removeScriptToEvaluateOnNewDocument", {"identifier": script}
                    )

    async def _loaded(self, navigation: Awaitable[object]) -> None:
        """Navigate; once the navigation commits the census hears of the new load (a page
        that never finishes loading is counted, and live all the same: its scripts may well
        be running); then wait (bounded) for its load event, or for the restored page's
        commit, which alone says whether history back came out of the cache."""
        self.expecting = True
        self.restored = False
        self.loaded.clear()
        census = self.env.census
        try:
            await navigation
            if not self.restoring:  # committed: the page runs, whether it finishes or not
                census.page_loaded(self.truth, self.person)
            try:
                await asyncio.wait_for(self.loaded.wait(), timeout=LOAD_WAIT)
            except TimeoutError:
                self.page_run.slow_loads += 1
        finally:
            self.expecting = False
        if self.restoring:
            self.restoring = False
            if self.restored:
                self.run.bfcache["restored"] += 1
                return
            self.run.bfcache["reloaded"] += 1
            census.page_ended(self.truth)  # the cached load is gone: this is a new one
            census.page_loaded(self.truth, self.person)

    def enter_bfcache(self) -> None:
        """Navigate away (to a page of no origin of yours): the page may wait in the
        back/forward cache, its sockets open unless its ``pagehide`` closed them."""
        self._step("enter_bfcache")
        self.env.census.page_away(self.truth)
        self._go_deaf()
        self._do(self._away)

    async def _away(self) -> None:
        # told when the tab's earlier operations are done (a load still pending would
        # otherwise be taken for the entry into the cache)
        self.page_run.tracker.entering_cache(self.index)
        await self._navigate(AWAY)

    def restore(self) -> None:
        step(self.state, "restore")  # an illegal restore raises here, before anything runs
        self._do(self._back_pressed)
        super().restore()

    async def _back_pressed(self) -> None:
        self.page_run.tracker.restoring(self.index)

    async def _send(self, method: str, params: CDPParams) -> CDPParams:
        """A CDP call on the tab's session, retried for a moment while a cross-site
        navigation (the cache's ``data:`` page and back) swaps the page's process: Chromium
        then answers "Not attached to an active page" for a few milliseconds."""
        for _ in range(RETRIES):
            try:
                return await super()._send(method, params)
            except CDPError as error:
                if "Not attached to an active page" not in str(error):
                    raise
                await asyncio.sleep(0.05)
        return await super()._send(method, params)

    def _mine(self) -> list[PageEnd]:
        return [end for end in self.page_run.ends.values() if end.tab == self.index]

    def lose_network(self) -> None:
        """Every socket of this tab goes silent (the proxy blackholes each)."""
        for end in self._mine():
            if end.silent_since is None:
                end.silent_since = self.now
                end.piped.blackhole()

    def regain_network(self) -> None:
        """The network is back on a new path: the page sees its silent sockets fail."""
        for end in self._mine():
            if end.silent_since is not None:
                end.piped.drop_client()


class FrontendRuntime(RealtimeRuntime, CDPHost):
    """Your page in real Chromium tabs, through the fault proxy, against the kit's own
    server (``target=None``) or your server (``target=`` a ``ws://`` URL)."""

    name = "browser"
    default_scale = 0.1

    def __init__(
        self,
        scenario: Scenario,
        strategy: Strategy,
        page: str,
        *,
        target: str | None = None,
        ignore: str | None = None,
        tabs: int,
        scale: float | None = None,
        seed: int = 0,
        close_timeout: float = CLOSE_TIMEOUT,
        stats_timeout: float = STATS_TIMEOUT,
    ) -> None:
        if tabs > MAX_TABS:
            raise ConfigError(f"the browser runtime plays at most {MAX_TABS} tabs, got {tabs}")
        super().__init__(scenario, strategy, scale=scale, seed=seed, close_timeout=close_timeout)
        self.page = check_page(page)
        self.target = parse_target(target) if target is not None else None
        patterns = (*DevServerFilter().patterns, *(() if ignore is None else (ignore,)))
        self.tracker: SocketTracker[int] = SocketTracker(DevServerFilter(patterns=patterns))
        self.stats_timeout = stats_timeout
        self.local: LocalServer | None = None
        self.sessions: dict[str, BrowserTab] = {}
        self.tabs: dict[int, BrowserTab] = {}
        self.contexts: dict[str, str] = {}
        self.errors: list[str] = []
        self.not_played: dict[str, int] = {}
        self.bfcache: Counter[str] = Counter(restored=0, reloaded=0)
        self.background: set[asyncio.Task[None]] = set()
        self.chrome: RawChromium | None = None
        self.env: Env | None = None  # set by prepare()
        self.version = "unknown"
        # the wire: one Wire per proxied connection, and the server ends it opened
        self.wires: dict[Piped, Wire] = {}
        self.ends: dict[int, PageEnd] = {}
        self.by_key: dict[str, PageEnd] = {}  # Sec-WebSocket-Key -> its end (open or not)
        self.by_stats_id: dict[str, int] = {}  # simkit_conn -> the newest conn that sent it
        self.local_ids: dict[int, int] = {}  # the kit's server's conn id -> ours
        self.next_conn = 0
        self.core: TargetServer | None = None
        self.refused: Counter[int] = Counter()  # handshakes the server answered non-101
        self.not_proxied = 0  # app sockets that did not go through the kit's proxy
        self.slow_loads = 0
        self.strays: list[str] = []  # pages that navigated away on their own
        self.outages = 0
        self.tracker_errors: list[str] = []
        self.stats_problem: str | None = None
        self.stats_polls = self.stats_failures = self.foreign_entries = 0
        self._poller: asyncio.Task[None] | None = None
        # tab index -> a blank window opened before the clock started (see prepare())
        self.blanks: dict[int, str] = {}

    # -- set-up ----------------------------------------------------------------------------

    def ws_base(self) -> Target:
        """The target as the page must dial it: the same path and query at the proxy."""
        proxy = self.faults.port
        if self.target is None:
            return parse_target(f"ws://127.0.0.1:{proxy}/ws")
        return replace(self.target, host="127.0.0.1", port=proxy)

    def page_url(self, tab: int, user: str, navigation: int) -> str:
        ws = self.ws_base().url_for(user, tab * 10000 + navigation)
        return fill(self.page, ws=ws, user=user, tab=tab)

    async def start(self) -> None:
        self._running = asyncio.get_running_loop()
        await asyncio.to_thread(probe, fill(self.page, ws="ws://127.0.0.1:9/ws", user="u", tab=0))
        if self.target is not None:
            target = self.target
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(target.host, target.port), CONNECT_TIMEOUT
                )
                writer.transport.abort()
            except (OSError, TimeoutError) as error:
                raise ConfigError(
                    f"target {target.url!r} is unreachable: no TCP connection to "
                    f"{target.host}:{target.port} within {CONNECT_TIMEOUT:g} s "
                    f"({str(error) or type(error).__name__}); is the server running?"
                ) from None
            try:
                await fetch_registry(target.host, target.port, self.stats_timeout)
            except StatsUnavailable as error:
                self.stats_problem = str(error)
            proxy = await self.open_proxy(target.port, target.host)
        else:
            self.local = LocalServer(
                self.strategy, scale=self.scale, close_timeout=self.close_timeout
            )
            await self.local.start()
            proxy = await self.open_proxy(self.local.port)
        proxy.on_data = self._on_data
        proxy.on_closed = self._on_closed
        self.chrome = RawChromium()
        self._connection = await self.chrome.start()
        with contextlib.suppress(Exception):
            self.version = (await self.cdp.send("Browser.getVersion", {}))["product"]
        for method in EVENTS:
            self.cdp.on(method, self._cdp(method))
        self.cdp.on("Page.loadEventFired", self._load_fired)

    def census(self, one_per_user: bool) -> Census:
        # The page's policy is unknown: more than one open socket per user counts.
        return Census(one_per_user=True)

    def network(self, loop: asyncio.AbstractEventLoop, census: Census) -> PageNetwork:
        return PageNetwork(self)

    def server_actor(self, env: Env) -> TargetServer:
        self.core = TargetServer(env)
        return self.core

    async def prepare(self, env: Env, people: list[str]) -> None:
        self.env = env
        for person in people:
            if person not in self.contexts:
                made = await self.cdp.send("Target.createBrowserContext", {})
                self.contexts[person] = made["browserContextId"]
        # Each tab's window is opened before the clock starts, as a user's window exists
        # before the user loads the page: opening 12 windows at once took about 2.5 s on two
        # cores (measured), which a scaled run would otherwise count as the first load's.
        blanks = await asyncio.gather(*(self._blank(person) for person in people))
        self.blanks = dict(enumerate(blanks))
        if self.stats_problem is None:
            self._poller = env.loop.create_task(self._poll(env), name="registry poller")

    async def _blank(self, person: str) -> str:
        made = await self.cdp.send(
            "Target.createTarget",
            {"url": "about:blank", "browserContextId": self.contexts[person], "newWindow": True},
        )
        return str(made["targetId"])

    def tab(self, env: Env, index: int, person: str, storage: Storage) -> BrowserTab:
        tab = PageTab(self, index, person, self.contexts[person])
        self.tabs[index] = tab
        return tab

    # -- the wire (server side) ------------------------------------------------------------

    def _on_data(self, piped: Piped, upstream: bool, data: bytes) -> None:
        wire = self.wires.get(piped)
        if wire is None:
            wire = self.wires[piped] = Wire()
        for fact in wire.feed(upstream, data):
            if fact == "response":
                self._answered(piped, wire)
            elif fact == "close" and wire.key is not None:
                end = self.by_key.get(wire.key)
                if end is not None and end.code is None:
                    end.code = wire.client_close or wire.server_close

    def _answered(self, piped: Piped, wire: Wire) -> None:
        """The server answered a handshake: a 101 opens the server's end of a socket."""
        if wire.status != 101:
            self.refused[wire.status or 0] += 1
            return
        # A page that adds its own ``user`` and ``simkit_conn`` to ``{ws}`` (the post-mortem's
        # front end does) sends each twice: the kit's first, the page's last. The tab is the
        # kit's id's; the user is the last one, the one Starlette (so FastAPI) reads; every
        # id joins a registry entry to this socket, whichever one the server kept.
        query = parse_qs(urlsplit(wire.request or "").query)
        stats_ids = query.get("simkit_conn", [])
        ours = next((s for s in stats_ids if s.isdigit()), "")
        tab = int(ours) // 10000 if ours else None
        truth = self.tabs.get(tab) if tab is not None else None
        user = query.get("user", [truth.person if truth is not None else ""])[-1]
        self.next_conn += 1
        end = PageEnd(self.next_conn, piped, wire, user, tab)
        self.ends[end.id] = end
        if end.key:
            self.by_key[end.key] = end
        for stats_id in stats_ids:
            self.by_stats_id[stats_id] = end.id
        if self.core is not None:
            self.core.on_open(end)  # census.server_opened: stale until its page claims it
            sock = next(
                (s for s in self.tracker.sockets.values() if s.key and s.key == end.key), None
            )
            if sock is not None and sock.opened is not None:
                self._client_opened(sock, end)

    def _on_closed(self, piped: Piped) -> None:
        """The server's side of a proxied connection has ended."""
        wire = self.wires.pop(piped, None)
        if wire is None or wire.key is None:
            return
        end = self.by_key.get(wire.key)
        if end is None or end.id not in self.ends:
            return
        del self.ends[end.id]
        code = end.code if end.code is not None else int(CloseCode.ABNORMAL)
        by = "server" if wire.first_close == "server" else "client"
        self.tracker.server_saw(wire.key, code, time.monotonic(), by=by)
        if self.core is not None and self.env is not None:
            self.core.on_close(end, code)

    # -- the browser (client side) ---------------------------------------------------------

    def _cdp(self, method: str) -> Listener:
        def listener(params: CDPParams, session: str | None) -> None:
            if method == "Page.frameNavigated":
                self._navigated(params, session)  # the tab's own account comes first
            try:
                sock = self.tracker.observe(method, params, session, time.monotonic())
                if sock is not None and sock.app:
                    self._socket_event(method, sock)
            except Exception as error:  # the reader swallows a listener's error: keep it
                self.tracker_errors.append(f"{method}: {type(error).__name__}: {error}")

        return listener

    def _load_fired(self, params: CDPParams, session: str | None) -> None:
        tab = self.sessions.get(session or "")
        if isinstance(tab, PageTab) and tab.expecting:
            tab.loaded.set()

    def _navigated(self, params: CDPParams, session: str | None) -> None:
        tab = self.sessions.get(session or "")
        frame = params.get("frame", {})
        if not isinstance(tab, PageTab) or frame.get("parentId"):
            return
        if params.get("type") == "BackForwardCacheRestore":
            tab.restored = True
            tab.loaded.set()
        elif not tab.expecting and not frame.get("url", "").startswith("data:"):
            # a navigation the kit did not ask for: the page went somewhere on its own
            self.strays.append(f"tab {tab.index} -> {frame.get('url', '')[:120]}")

    def _socket_event(self, method: str, sock: SocketRecord[int]) -> None:
        tab = self.tabs.get(sock.tab)
        if tab is None or self.env is None:
            return
        if method == "Network.webSocketHandshakeResponseReceived" and sock.opened is not None:
            end = self.by_key.get(sock.key or "")
            if end is None:
                if not sock.url.startswith(f"ws://127.0.0.1:{self.faults.port}/"):
                    self.not_proxied += 1
                return
            self._client_opened(sock, end)
        elif method == "Network.webSocketClosed":
            end = self.by_key.get(sock.key or "")
            if end is not None and tab.truth.current == end.id:
                self.env.census.set_current(tab.truth, None)

    def _client_opened(self, sock: SocketRecord[int], end: PageEnd) -> None:
        """The page sees its socket open: the newest socket of the tab's running load is
        its current one (an older one still open is stale from now)."""
        tab = self.tabs.get(sock.tab)
        current = self.tracker.current.get(sock.tab)
        if tab is None or current is None or sock.load != current.load:
            return
        if end.id not in self.ends:
            return
        census = tab.env.census  # the run's Env, which the tab was made with
        census.claim(tab.truth, end.id)
        census.set_connected(tab.truth, True)

    # -- the registry ----------------------------------------------------------------------

    async def _poll(self, env: Env) -> None:
        """Read the registry once per sampling step, just before each sample: in-process
        from the kit's server, else over the target's stats route."""
        loop, step = env.loop, self.scenario.step
        wall = step * self.scale
        lead = min(0.1, wall / 4)
        n = 0
        while True:
            n += 1
            await asyncio.sleep(max(0.0, env.start + n * wall - lead - loop.time()))
            self.stats_polls += 1
            before = frozenset(self.ends)
            if self.local is not None:
                pairs = self._local_entries()
            else:
                assert self.target is not None
                try:
                    raw = await fetch_registry(
                        self.target.host,
                        self.target.port,
                        min(self.stats_timeout, max(0.3, wall * 0.8)),
                    )
                except StatsUnavailable:
                    self.stats_failures += 1
                    continue
                pairs = [(user, self.by_stats_id.get(str(conn), -1)) for user, conn in raw]
            mirror = Mirror.of(
                pairs, lambda c: 0 < c <= self.next_conn, before=before,
                is_open=self.ends.__contains__,
            )  # fmt: skip
            self.foreign_entries = max(self.foreign_entries, mirror.foreign)
            if self.core is not None:
                self.core.registry = mirror

    def _local_entries(self) -> list[tuple[str, int]]:
        """The kit's server's registry in our connection ids (joined by the proxy's port)."""
        local = self.local
        assert local is not None
        for conn, link in list(local.open_links.items()):
            if conn not in self.local_ids:
                ws = getattr(link, "ws", None)
                port = ws.remote_address[1] if ws is not None else None
                piped = self.faults.connection_to(port) if port is not None else None
                wire = self.wires.get(piped) if piped is not None else None
                end = self.by_key.get(wire.key or "") if wire is not None else None
                if end is not None:
                    self.local_ids[conn] = end.id
        registry = getattr(local.core, "registry", None)
        entries = registry.entries() if registry is not None else []
        return [(user, self.local_ids.get(conn, -1)) for user, conn in entries]

    def unknown_columns(self) -> tuple[str, ...]:
        return REGISTRY_COLUMNS if self.stats_problem is not None else ()

    # -- the summary -----------------------------------------------------------------------

    def summary(self) -> dict[str, object]:
        sockets = self.tracker.summary()
        # loads still waiting for their load event as the run ends did not finish either
        self.slow_loads += sum(1 for tab in self.tabs.values() if tab.expecting)
        layout: dict[str, object] = {
            "page": self.page,
            "target": None if self.target is None else self.target.url,
            "client_policy": "the page's own code (unknown to the kit)",
            "server_policy": (
                f"the kit's server playing {self.strategy.name!r}"
                if self.target is None
                else "the target's own (unknown to the kit)"
            ),
            "browser": "chromium",
            "browser_version": self.version,
            "page_sockets": sockets,
            "page_loads_per_tab": {
                str(i): sum(1 for row in self.tracker.per_load() if row["tab"] == i)
                for i in sorted(self.tabs)
            },
            "handshakes_refused": {str(k): v for k, v in sorted(self.refused.items())},
            "page_load_timeouts": self.slow_loads,
            "page_strays": list(self.strays[:20]),
            "sockets_not_proxied": self.not_proxied,
            "stats_polls": self.stats_polls,
            "stats_failures": self.stats_failures,
            "registry_foreign_entries": self.foreign_entries,
            "proxy_outages": self.outages,
            "browser_errors": len(self.errors),
            "page_tracker_errors": self.tracker_errors[:5],
            "browser_not_played": dict(self.not_played),
            "browser_bfcache": dict(self.bfcache),
        }
        if self.errors:
            layout["browser_first_error"] = self.errors[0][:300]
        holds = {When.ALWAYS}
        if self.stats_problem is not None:
            holds.add(When.NO_STATS)
        summary, why = unknown(layout, holds, self.stats_problem)
        summary["starved_tabs"] = math.nan
        why["starved_tabs"] = "the kit does not read the page's messages (no instrumentation)"
        why["delivery_ratio"] = (
            "the kit does not push through a page it did not write; CDP's frame counts are "
            "in page_sockets"
        )
        summary["notes"] = self.notes(sockets)
        summary["unknown_metrics"] = why
        return summary

    def notes(self, sockets: SocketSummary) -> list[str]:
        """What a person pointing the kit at a front end must hear first."""
        said = []
        loads = sockets["loads"]
        if loads and sockets["sockets"] == 0:
            said.append(
                f"the page opened no WebSocket in {loads} page loads: does it read {{ws}} "
                "from its URL (and is {ws} in --page)?"
            )
        if sockets["sockets_per_load_max"] > MANY_SOCKETS:
            said.append(
                f"one page load opened {sockets['sockets_per_load_max']} WebSockets "
                f"(mean {sockets['sockets_per_load_mean']:.1f} per load)"
            )
        if self.not_proxied:
            said.append(
                f"{self.not_proxied} sockets did not go through the kit's proxy (the page "
                "dials its own URL, not {ws}): no network fault reaches them, the server "
                "side does not see them"
            )
        if self.refused:
            said.append(
                "the server refused handshakes: "
                + ", ".join(f"HTTP {k} x{v}" for k, v in sorted(self.refused.items()))
            )
        failures = sockets["handshake_failures"]
        if failures:
            said.append(
                f"{failures} handshakes failed in the browser "
                f"({', '.join(list(sockets['handshake_errors'])[:3])})"
            )
        if self.slow_loads:
            said.append(
                f"{self.slow_loads} page loads did not finish (no load event within "
                f"{LOAD_WAIT:g} s, or by the end of the run); they were played as loaded"
            )
        if self.strays:
            said.append(
                f"the page navigated away on its own {len(self.strays)} times "
                f"(first: {self.strays[0]})"
            )
        if self.stats_problem is not None:
            said.append(
                f"no stats route ({self.stats_problem}): registry_entries, dangling and "
                "unroutable are unknown (NaN)"
            )
        elif self.stats_failures:
            said.append(
                f"the stats route failed {self.stats_failures} of {self.stats_polls} polls "
                "(the server went away?); those samples reuse its previous answer"
            )
        return said

    # -- the end ---------------------------------------------------------------------------

    async def stop(self) -> None:
        try:
            if self._poller is not None:
                self._poller.cancel()
                await asyncio.gather(self._poller, return_exceptions=True)
            await stop_tabs(self.tabs.values(), self.background, self.chrome)
        finally:
            await super().stop()
            await self.settle_tasks()

    async def stop_servers(self) -> None:
        if self.local is not None:
            await self.local.stop()


__all__ = [
    "AWAY",
    "FIELDS",
    "FrontendRuntime",
    "PageEnd",
    "PageNetwork",
    "PageTab",
    "check_ignore",
    "check_page",
    "fill",
    "probe",
]
