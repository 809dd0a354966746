"""The ``browser`` runtime: real Chromium tabs play a scenario against a real LocalServer.

Each of the scenario's tabs is a real page (the kit's own page, ``/``, with the strategy's
client policy in its query string) in a window of its own, so it is visible until the
scenario hides it; tabs of one person share a browser context (so ``shared`` identity
shares localStorage). The page's own JavaScript manages its connection; the scenario's
script only does what a user or the browser does. Chromium is started directly and driven
through raw CDP (:mod:`simkit.browser.cdp`), not Playwright: Playwright's focus emulation
keeps every page visible, and a visible page cannot be hidden or frozen. The verbs:

- ``load`` / ``reload`` / ``close``: ``Page.navigate`` / ``Page.reload`` /
  ``Target.closeTarget`` (``pagehide`` runs, ``beforeunload`` does not, as ``Tab.close``);
- ``crash``: ``Page.crash`` (the renderer dies, no handler runs);
- ``hide`` / ``show``: minimize the tab's window / bring it back (``visibilitychange``);
- ``freeze`` / ``resume``: ``Page.setWebLifecycleState`` frozen / active. Chromium hides a
  visible page before freezing it (a real browser freezes only background tabs), so the
  page sees ``visibilitychange`` hidden first, then ``freeze``; resume shows it again;
- ``enter_bfcache`` / ``restore``: navigate to the server's ``/stats`` (same origin, no
  script), then history back. Chromium 156 headless keeps the page in the back/forward
  cache *with its WebSocket open* (``pagehide``/``pageshow`` with ``persisted``); if a page
  is refused or dropped from the cache, its load ends there and ``restore`` is a new load
  (counted in ``summary["browser_bfcache"]``, with Chromium's reasons in
  ``summary["browser_bfcache_blocked"]``);
- ``evict``: close the tab that holds the cached page. CDP has no call to evict one page
  from the cache (Chromium does it after 600 s, when the cache is full, or under memory
  pressure: ``Memory.simulatePressureNotification`` critical evicts *every* cached page of
  the browser, measured: the server sees 1001, history back is a new load with the reason
  ``CacheLimitPrunedOnCriticalMemoryPressure``); closing the tab destroys the one cached
  page the same way: the browser closes its socket (1001) and no page handler runs;
- ``duplicate``: a new tab in its own window whose sessionStorage is a copy of the
  original's (what Chromium's "Duplicate tab" does), then the page loads;
- ``lose_network`` / ``regain_network``: the fault proxy between Chromium and the server;
- ``process_dies`` is not played (counted in ``summary["browser_not_played"]``): in
  Chromium it takes every tab's socket down at once; the calibration measures it.

Where real Chromium 156 differs from the tab model (:class:`simkit.actors.tab.Tab`),
measured by ``tests/browser/test_background_tabs.py``: a page is always hidden before it is
frozen or enters the cache, so a ``disconnect-when-hidden`` page closes its socket (1000)
first and reconnects when shown again; and when a page wakes, Chromium's close of the
surviving socket reaches the server as 1001 but the page as 1006 (not clean), so a page
with no ``resume``/``pageshow`` handler but ordinary retry-on-close logic reconnects by
itself after its backoff, where the model leaves it offline.

Ground truth comes from both ends: the server attributes every connection to its tab from
the ``link`` id in the page's WebSocket URL (``tab * 10000 + n``), and the page reports
every step of its own (load, connecting, open, close, push, pageshow) through a CDP binding
(what a page does as it enters the cache is never reported: see :class:`BrowserCensus`).
The Python side only says when a page load *ended* (it knows: it pressed reload) and when a
page stops running code (frozen, in the cache: from the verb on). The census, the Server
actor, the observer and the push source are the ones every other runtime uses, so the same
metrics come back in the same :class:`~simkit.results.Result`.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import TYPE_CHECKING, TypeVar, cast, overload

from simkit.actors.env import Env
from simkit.browser.cdp import CDPHost, CDPParams, RawChromium
from simkit.browser.tab import MAX_TABS, BrowserTab, stop_tabs
from simkit.model.client import Storage
from simkit.model.errors import BrowserError, ConfigError
from simkit.model.liveness import CLOSE_TIMEOUT
from simkit.model.strategy import Strategy
from simkit.net.common import ServerLink
from simkit.net.realtime import KitServerRuntime
from simkit.runtime.census import Census
from simkit.runtime.interfaces import ClientEnd, Clock, ServerActor, TabCallbacks

if TYPE_CHECKING:
    from simkit.scenarios import Scenario

T = TypeVar("T")

BROWSER_SCALE = 0.1  # wall seconds per scenario second: a 60 s scenario takes 6 s


class BrowserLink:
    """What the server knows of one of our pages' connections (its ``client``)."""

    __slots__ = ("id", "silent_since", "tab")

    def __init__(self, conn: int, tab: BrowserTab) -> None:
        self.id, self.tab = conn, tab
        self.silent_since: float | None = None


class Attribution(dict[int, BrowserLink]):
    """``LocalServer.clients``: link id -> BrowserLink, made on first sight of the id."""

    def __init__(self, tabs: dict[int, BrowserTab]) -> None:
        super().__init__()
        self.tabs = tabs

    @overload
    def get(self, key: int, default: None = None, /) -> BrowserLink | None: ...
    @overload
    def get(self, key: int, default: BrowserLink | T, /) -> BrowserLink | T: ...
    def get(self, key: int, default: object = None, /) -> object:
        if key not in self:
            tab = self.tabs.get(key // 10000)
            if tab is None:
                return default
            self[key] = BrowserLink(key, tab)
        return self[key]


class BrowserCensus(Census):
    """The census, told one thing more about pages that run no code (frozen, or in the
    back/forward cache): their reports come late or never (a frozen page reports its
    socket's close only when it resumes; what a page does as it enters the cache, e.g. its
    ``pagehide`` handler closing the socket, runs after the next page has committed, when
    the CDP session has moved on, and is never reported). So while a page runs no code, the
    server's end of its current socket closing means the page's end is closed too (a clean
    close completed, or the browser tore it down), as the tab model counts it."""

    def server_closed(self, conn: int) -> None:
        side = self.servers.get(conn)
        super().server_closed(conn)
        index = side.tab_index if side is not None else None
        truth = self.tabs.get(index) if index is not None else None
        if truth is not None and truth.current == conn and truth.deaf:
            self.set_current(truth, None)


class BrowserNetwork:
    """The network the Server actor sees: the LocalServer's open links; the pages' own
    JavaScript opens their sockets, so :meth:`connect` is never called."""

    def __init__(self, run: BrowserRuntime) -> None:
        assert run.local is not None
        self.run = run
        self.local = run.local
        self.links = run.local.clients

    @property
    def open_links(self) -> dict[int, ServerLink]:
        return self.local.open_links

    @property
    def server(self) -> ServerActor:
        return cast(ServerActor, self.local.core)

    def attach(self, clock: Clock, server: ServerActor) -> None:
        self.local.core = server

    def connect(self, tab: TabCallbacks, user: str, session: str | None) -> ClientEnd:
        raise BrowserError("in the browser runtime a page opens its own sockets")

    def finish(self) -> None:
        """Nothing to settle: the browser's and the server's timers ran for real."""

    def restart_server(self, downtime: float) -> None:
        task = self.run.loop.create_task(self.local.restart(downtime * self.run.scale))
        self.run.background.add(task)


class BrowserRuntime(KitServerRuntime, CDPHost):
    """Real Chromium pages against the kit's own server, through the fault proxy."""

    name = "browser"
    default_scale = BROWSER_SCALE

    def __init__(
        self,
        scenario: Scenario,
        strategy: Strategy,
        *,
        tabs: int,
        scale: float | None = None,
        seed: int = 0,
        close_timeout: float = CLOSE_TIMEOUT,
    ) -> None:
        if tabs > MAX_TABS:
            raise ConfigError(f"the browser runtime plays at most {MAX_TABS} tabs, got {tabs}")
        super().__init__(scenario, strategy, scale=scale, seed=seed, close_timeout=close_timeout)
        self.sessions: dict[str, BrowserTab] = {}  # CDP session id -> its tab
        self.tabs: dict[int, BrowserTab] = {}
        self.contexts: dict[str, str] = {}  # person -> browser context id
        self.errors: list[str] = []
        self.not_played: dict[str, int] = {}
        self.bfcache: Counter[str] = Counter(restored=0, reloaded=0)
        self.bfcache_blocked: Counter[str] = Counter()  # Chromium's reasons for not restoring
        self.background: set[asyncio.Task[None]] = set()
        self.chrome: RawChromium | None = None
        self.env: Env | None = None  # set by prepare()
        self.attribution = Attribution(self.tabs)

    def clients(self) -> Attribution:
        return self.attribution

    async def start(self) -> None:
        self._running = asyncio.get_running_loop()
        await super().start()
        self.chrome = RawChromium()
        self._connection = await self.chrome.start()
        self.cdp.on("Runtime.bindingCalled", self.on_binding)
        self.cdp.on("Page.backForwardCacheNotUsed", self.on_not_restored)

    def census(self, one_per_user: bool) -> Census:
        return BrowserCensus(one_per_user=one_per_user)

    def network(self, loop: asyncio.AbstractEventLoop, census: Census) -> BrowserNetwork:
        return BrowserNetwork(self)

    async def prepare(self, env: Env, people: list[str]) -> None:
        """One browser context per person (so ``shared`` identity shares localStorage)."""
        self.env = env
        for person in people:
            if person not in self.contexts:
                made = await self.cdp.send("Target.createBrowserContext", {})
                self.contexts[person] = made["browserContextId"]

    def tab(self, env: Env, index: int, person: str, storage: Storage) -> BrowserTab:
        tab = BrowserTab(self, index, person, self.contexts[person])
        self.tabs[index] = tab
        return tab

    def summary(self) -> dict[str, object]:
        extra: dict[str, object] = {
            "browser": "chromium",
            "browser_errors": len(self.errors),
            "browser_not_played": dict(self.not_played),
            "browser_bfcache": dict(self.bfcache),
            "browser_bfcache_blocked": dict(self.bfcache_blocked),
            "pushes_seen_by_pages": sum(t.received for t in self.tabs.values()),
        }
        if self.errors:
            extra["browser_first_error"] = self.errors[0][:300]
        return extra

    def losses(self) -> list[str]:
        """Chromium exited before the run was over (killed, crashed, out of memory): what
        the pages did after that was never played, whatever the counts say."""
        proc = self.chrome.proc if self.chrome is not None else None
        status = proc.poll() if proc is not None else None
        if status is None:
            return []
        return [
            f"Chromium exited during the run (exit status {status}); the pages played "
            f"nothing after that ({len(self.errors)} browser errors)"
        ]

    async def stop(self) -> None:
        try:
            await stop_tabs(self.tabs.values(), self.background, self.chrome)
        finally:
            await super().stop()  # the kit's server and proxy (no client network to close)

    def on_binding(self, params: CDPParams, session: str | None) -> None:
        """``Runtime.bindingCalled``: one report of a page (a JSON string)."""
        tab = self.sessions.get(session or "")
        if tab is None or params.get("name") != "simkitReport":
            return
        try:
            ev = json.loads(params.get("payload", ""))
        except ValueError:
            return
        if isinstance(ev, dict):
            tab.on_report(ev)

    def on_not_restored(self, params: CDPParams, session: str | None) -> None:
        """``Page.backForwardCacheNotUsed``: why history back was a new page load."""
        for why in params.get("notRestoredExplanations", ()):
            self.bfcache_blocked[f"{why.get('type')}:{why.get('reason')}"] += 1
