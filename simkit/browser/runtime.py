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
import contextlib
import json
from collections import Counter
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from simkit.actors.env import Env
from simkit.browser.cdp import RawCDP, RawChromium
from simkit.live.runtime import LiveRuntime
from simkit.model.client import Storage
from simkit.model.errors import BrowserError, ConfigError
from simkit.model.liveness import CLOSE_TIMEOUT
from simkit.model.page import Page, step
from simkit.model.strategy import Strategy
from simkit.runtime.census import Census
from simkit.runtime.interfaces import Clock, ServerActor

if TYPE_CHECKING:
    from simkit.scenarios import Scenario

BROWSER_SCALE = 0.1  # wall seconds per scenario second: a 60 s scenario takes 6 s
MAX_TABS = 60  # link ids are tab * 10000 + n, below the server's outside ids (1e6)
OP_TIMEOUT = 10.0  # seconds for one browser operation (navigation, CDP call)
LOAD_WAIT = 5.0  # seconds to wait for a new page load (or a restore) to report itself


class BrowserLink:
    """What the server knows of one of our pages' connections (its ``client``)."""

    __slots__ = ("id", "silent_since", "tab")

    def __init__(self, conn: int, tab: BrowserTab) -> None:
        self.id, self.tab, self.silent_since = conn, tab, None


class Attribution(dict):
    """``LocalServer.clients``: link id -> BrowserLink, made on first sight of the id."""

    def __init__(self, tabs: dict[int, BrowserTab]) -> None:
        super().__init__()
        self.tabs = tabs

    def get(self, key: int, default: Any = None) -> Any:
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
        truth = self.tabs.get(side.tab) if side is not None else None  # type: ignore[arg-type]
        if truth is not None and truth.current == conn and truth.deaf:
            self.set_current(truth, None)


class BrowserTab:
    """A scenario's tab played by a real page; the verbs of :class:`simkit.actors.tab.Tab`.

    Verbs return at once (as in every runtime); the browser work they start runs in order,
    one operation at a time, in the tab's own worker. The page lifecycle follows the same
    transition table as the tab model (:mod:`simkit.model.page`), so a script that is
    illegal there raises the same error here.
    """

    def __init__(self, run: BrowserRuntime, index: int, person: str, context: str) -> None:
        self.run = run
        self.env = run.env
        self.index = index
        self.person = person
        self.context = context  # the person's browser context id
        self.truth = self.env.census.add_tab(index, person)
        self.work_rng = self.env.rng("tab", index, "work")
        self.state = Page.UNLOADED
        self.target: str | None = None
        self.session: str | None = None  # the flattened CDP session of the tab
        self.window: int | None = None
        self.load_id: str | None = None
        self.expecting = False  # a page load was asked for and has not reported yet
        self.minimized = False  # its window is minimized (the scenario hid the tab)
        self.restoring = False  # history back pressed, no pageshow or load seen yet
        self.strict = False
        self.deaf_since: float | None = None
        self.gone = False
        self.received = 0
        self.arrived = asyncio.Event()
        self.ops: asyncio.Queue = asyncio.Queue()
        self.worker = run.loop.create_task(self._work(), name=f"browser tab {index}")

    # -- the scenario's verbs --------------------------------------------------------------

    @property
    def now(self) -> float:
        return self.env.now()

    async def sleep(self, seconds: float) -> None:
        await self.env.sleep(seconds)

    def _step(self, event: str) -> None:
        self.state = step(self.state, event)

    def load(self, *, strict_mode: bool = False) -> None:
        self._step("load")
        self.strict = self.strict or strict_mode
        self._do(self._goto)

    async def reload(self, downtime: float, *, vanish: bool = False, strict_mode: bool = False):
        """Press reload. ``downtime`` is the browser's own (only the script waits it);
        ``vanish``: the old socket's path died silently first (its close never arrives)."""
        self._step("unload")
        self._step("load")
        self.strict = self.strict or strict_mode

        async def press() -> None:
            if vanish:
                self.lose_network()
            self._end()
            await self._front()  # the new page load is active, as in the model
            await self._loaded(self._send("Page.reload", {}))

        self._do(press)
        await self.env.sleep(downtime)

    def close(self) -> None:
        """Close the tab (``Target.closeTarget``: pagehide runs, beforeunload does not)."""
        self._step("close")
        self._do(lambda: self._gone(self._close_target()))

    def crash(self) -> None:
        """The renderer dies (CDP ``Page.crash``): no page handler runs."""
        self._step("crash")
        self._do(lambda: self._gone(self._crash()))

    async def _gone(self, action: Any) -> None:
        self._end()
        self.gone = True
        await action

    def hide(self) -> None:
        """The tab goes to the background: its window is minimized, the page sees
        ``visibilitychange`` hidden (Chromium throttles its timers from then on)."""
        self._step("hide")
        self.minimized = True
        self._do(lambda: self._window("minimized"))

    def show(self) -> None:
        self._step("show")
        self._do(self._front)

    def freeze(self) -> None:
        """``Page.setWebLifecycleState`` frozen. Chromium hides a visible page first (the
        page sees ``visibilitychange`` hidden, then ``freeze``); then the page runs no code
        while its socket stays open."""
        self._step("freeze")
        self._go_deaf()
        self._do(lambda: self._send("Page.setWebLifecycleState", {"state": "frozen"}))

    def resume(self) -> None:
        """Unfreeze the page and bring it to the front (it comes back from a freeze still
        hidden until its window is shown). Chromium closes the socket that lived through the
        freeze: the server sees 1001, the page 1006."""
        self._step("resume")
        self._wake()

        async def wake() -> None:
            await self._send("Page.setWebLifecycleState", {"state": "active"})
            if not self.minimized:  # the window is "normal" but its page hidden:
                await self._window("minimized")  # only a change of state shows it
            await self._front()

        self._do(wake)

    def enter_bfcache(self) -> None:
        """Navigate away (to the server's ``/stats``): ``pagehide`` (persisted) runs and the
        page waits in the back/forward cache, frozen, its socket open unless a handler
        closed it."""
        self._step("enter_bfcache")
        self.env.census.page_away(self.truth)
        self._go_deaf()

        self._do(lambda: self._navigate(self.run.server.http_url + "stats"))

    def restore(self) -> None:
        """History back: ``pageshow`` (persisted) if the page came out of the cache, else a
        new page load (the cache refused or dropped it)."""
        self._step("restore")
        self.env.census.page_back(self.truth)
        self._wake()

        async def back() -> None:
            self.restoring = True
            await self._front()  # the restored page is active, as in the model
            history = await self._send("Page.getNavigationHistory", {})
            index = history["currentIndex"]
            if index < 1:  # restore() without enter_bfcache(): entries[-1] would be wrong
                raise BrowserError(f"tab {self.index}: no page to go back to (history {index})")
            entry = history["entries"][index - 1]
            await self._loaded(self._send("Page.navigateToHistoryEntry", {"entryId": entry["id"]}))

        self._do(back)

    def evict(self) -> None:
        """The cached page is destroyed: its tab is closed. CDP cannot evict one page (a
        simulated critical memory pressure evicts them all); either way the browser closes
        the cached page's socket with 1001 and no handler runs."""
        self._step("evict")
        self._do(lambda: self._gone(self._close_target()))

    def duplicate(self, index: int) -> BrowserTab:
        """Duplicate this tab: a new tab (``index``) whose sessionStorage is a copy of this
        one's, as Chromium's "Duplicate tab" makes it (so per-tab ids clash)."""
        if index in self.run.tabs or not 0 <= index < MAX_TABS:
            raise ConfigError(f"duplicate: tab index {index} is taken or not below {MAX_TABS}")
        twin = BrowserTab(self.run, index, self.person, self.context)
        self.run.tabs[index] = twin
        twin._step("load")
        copied: asyncio.Future = self.run.loop.create_future()

        async def snapshot() -> None:
            items = "[]"
            if self.session is not None and not self.gone:
                with contextlib.suppress(Exception):
                    items = await self.run.cdp.evaluate(
                        self.session, "JSON.stringify(Object.entries(sessionStorage))"
                    )
            copied.set_result(items)

        self._do(snapshot)  # after this tab's earlier verbs
        twin._do(lambda: twin._goto(copied))
        return twin

    def lose_network(self) -> None:
        """The path of the current socket goes silent (the proxy blackholes it)."""
        piped, link = self._piped()
        if piped is not None:
            link.silent_since = self.now
            piped.blackhole()

    def regain_network(self) -> None:
        """The network is back on a new path: the page sees its old socket fail (1006)."""
        piped, link = self._piped()
        if piped is not None and link.silent_since is not None:
            piped.drop_client()

    def __getattr__(self, verb: str) -> Any:
        # ``process_dies`` (the tab model's 1006: the browser or its network service dies)
        # is not played: in Chromium that kills every tab's socket at once, not one tab's;
        # the calibration measures it with a browser of its own. Counted in
        # ``summary["browser_not_played"]``.
        if verb == "process_dies":

            def unsupported(*args: Any, **kwargs: Any) -> None:
                self.run.not_played[verb] = self.run.not_played.get(verb, 0) + 1

            return unsupported
        raise AttributeError(verb)

    def _go_deaf(self) -> None:
        self.deaf_since = self.now
        self.env.census.page_frozen(self.truth)

    def _wake(self) -> None:
        self.deaf_since = None
        self.env.census.page_woke(self.truth)

    # -- the page --------------------------------------------------------------------------

    def url(self) -> str:
        c = self.env.strategy.client
        b = c.backoff
        query = {
            "tab": self.index,
            "person": self.person,
            "ws": self.run.faults.port,
            "stats": 0,
            "scale": self.env.scale,
            "identity": c.identity,
            "unload": c.unload,
            "visibility": c.visibility,
            "guard": c.guard,
            "guard_wait": c.guard_wait,
            "on_resume": c.on_resume,
            "on_pageshow": c.on_pageshow,
            "on_replaced": c.on_replaced,
            "backoff": b.mode,
            "base": b.base,
            "factor": b.factor,
            "max": b.max_delay,
            "rand": b.randomization,
            "first_max": b.first_max,
            "strict": int(self.strict),
        }
        return f"{self.run.server.http_url}?{urlencode(query)}"

    async def _send(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        return await self.run.cdp.send(method, params, self.session, OP_TIMEOUT)

    async def _open_target(self) -> None:
        """A new tab in a window of its own, with the report binding installed before any
        page of it runs."""
        cdp = self.run.cdp
        made = await cdp.send(
            "Target.createTarget",
            {"url": "about:blank", "browserContextId": self.context, "newWindow": True},
        )
        self.target = made["targetId"]
        attached = await cdp.send(
            "Target.attachToTarget", {"targetId": self.target, "flatten": True}
        )
        self.session = attached["sessionId"]
        self.run.sessions[self.session] = self
        await self._send("Runtime.enable", {})  # no Runtime.bindingCalled without it
        await self._send("Runtime.addBinding", {"name": "simkitReport"})
        await self._send("Page.enable", {})  # for Page.backForwardCacheNotUsed
        window = await cdp.send("Browser.getWindowForTarget", {"targetId": self.target})
        self.window = window["windowId"]

    async def _navigate(self, url: str) -> None:
        result = await self._send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"navigation to {url} failed: {result['errorText']}")

    async def _goto(self, copied: asyncio.Future | None = None) -> None:
        if self.session is None:
            await self._open_target()
        assert self.session is not None
        if copied is not None:
            # a duplicate: the copy of sessionStorage goes in (same origin, a page that runs
            # no script) before the kit's page loads
            items = await copied
            await self._navigate(self.run.server.http_url + "stats")
            fill = f"for (const [k, v] of {items}) sessionStorage.setItem(k, v); location.pathname"
            for _ in range(100):
                if await self.run.cdp.evaluate(self.session, fill, OP_TIMEOUT) == "/stats":
                    break
                await asyncio.sleep(0.05)
        await self._loaded(self._navigate(self.url()))

    async def _loaded(self, navigation: Any) -> None:
        """Navigate, then wait for the new page load's own report (or the restored page's
        ``pageshow``); reports from the old load that arrive later are ignored: the verbs
        run in order, one at a time."""
        self.expecting = True
        self.arrived.clear()
        await navigation
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.arrived.wait(), timeout=LOAD_WAIT)

    async def _front(self) -> None:
        """Show the tab's window if the scenario had hidden it."""
        self.minimized = False
        await self._window("normal")

    async def _window(self, state: str) -> None:
        await self.run.cdp.send(
            "Browser.setWindowBounds",
            {"windowId": self.window, "bounds": {"windowState": state}},
            timeout=OP_TIMEOUT,
        )

    async def _close_target(self) -> None:
        await self.run.cdp.send("Target.closeTarget", {"targetId": self.target}, timeout=OP_TIMEOUT)

    async def _crash(self) -> None:
        with contextlib.suppress(Exception):  # the renderer may die before it answers
            await self.run.cdp.send("Page.crash", {}, self.session, timeout=2.0)

    def _do(self, op: Any) -> None:
        self.ops.put_nowait(op)

    async def _work(self) -> None:
        while True:
            op = await self.ops.get()
            try:
                await asyncio.wait_for(op(), timeout=OP_TIMEOUT + LOAD_WAIT)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if not self.gone:
                    self.run.errors.append(f"tab {self.index}: {type(error).__name__}: {error}")

    def _end(self) -> None:
        """This page load is over (Python knows: it pressed the button)."""
        self.load_id = None
        self.deaf_since = None
        self.restoring = False
        self.env.census.page_ended(self.truth)

    def _piped(self) -> tuple[Any, Any]:
        conn = self.truth.current
        side = self.run.server.open_links.get(conn) if conn is not None else None
        if side is None or side.client is None:
            return None, None
        port = side.ws.remote_address[1]
        for piped in list(self.run.faults.connections.values()):
            sock = piped._sw.get_extra_info("sockname")
            if sock is not None and sock[1] == port:
                return piped, side.client
        return None, None

    def on_report(self, ev: dict[str, Any]) -> None:
        """The page's own account of what it did (through the ``simkitReport`` binding)."""
        census = self.env.census
        kind = ev.get("e")
        if kind == "load":
            if self.expecting:
                if self.restoring:  # history back found the page gone from the cache
                    self.run.bfcache["reloaded"] += 1
                    if self.load_id is not None:  # dropped from the cache without a word
                        self.load_id = None
                        census.page_ended(self.truth)
                self.expecting = self.restoring = False
                self.load_id = ev["load"]
                census.page_loaded(self.truth, ev["user"])
                self.arrived.set()
            return
        if ev.get("load") != self.load_id or self.load_id is None:
            return  # an old page load, or one whose end Python has already counted
        link = ev.get("link")
        if kind == "connecting" and link is not None:
            # the handshake may have reached the server before the page's report reached us
            census.claim(self.truth, link)
            self.env.log("connect", link, ev.get("user"))
        elif kind == "open" and self.truth.current == link:
            census.set_connected(self.truth, True)
        elif kind == "close" and self.truth.current == link:
            census.set_current(self.truth, None)
            self.env.log("client-close", link, self.truth.user, ev.get("code"))
        elif kind == "elsewhere":
            census.page_gave_up(self.truth)
        elif kind == "push":
            self.received += 1
        elif kind == "pageshow" and self.restoring:
            self.run.bfcache["restored"] += 1
            self.expecting = self.restoring = False
            self.arrived.set()


class BrowserNetwork:
    """The network the Server actor sees: the LocalServer's open links; the pages' own
    JavaScript opens their sockets, so :meth:`connect` is never called."""

    def __init__(self, run: BrowserRuntime) -> None:
        assert run.local is not None
        self.run = run
        self.local = run.local
        self.links = run.local.clients

    @property
    def open_links(self) -> dict[int, Any]:
        return self.local.open_links  # type: ignore[return-value]

    @property
    def server(self) -> ServerActor:
        return self.local.core

    def attach(self, clock: Clock, server: ServerActor) -> None:
        self.local.core = server

    def connect(self, tab: Any, user: str, session: str | None) -> Any:
        raise BrowserError("in the browser runtime a page opens its own sockets")

    def finish(self) -> None:
        """Nothing to settle: the browser's and the server's timers ran for real."""

    def restart_server(self, downtime: float) -> None:
        task = self.run.loop.create_task(self.local.restart(downtime * self.run.scale))
        self.run.background.add(task)


class BrowserRuntime(LiveRuntime):
    """Real Chromium pages against the live runtime's server and proxy."""

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
        self.cdp: RawCDP = None  # type: ignore[assignment]
        self.env: Any = None
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]

    def clients(self) -> dict[int, Any]:
        return Attribution(self.tabs)

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        await super().start()
        self.chrome = RawChromium()
        self.cdp = await self.chrome.start()
        self.cdp.on("Runtime.bindingCalled", self.on_binding)
        self.cdp.on("Page.backForwardCacheNotUsed", self.on_not_restored)

    def census(self, one_per_user: bool) -> Census:
        return BrowserCensus(one_per_user=one_per_user)

    def network(self, loop: asyncio.AbstractEventLoop, census: Census) -> Any:
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

    def summary(self) -> dict[str, Any]:
        extra: dict[str, Any] = {
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
            for tab in self.tabs.values():
                tab.worker.cancel()
            for task in self.background:
                task.cancel()
            if self.chrome is not None:
                await self.chrome.stop()
        finally:
            await super().stop()

    def on_binding(self, params: dict[str, Any], session: str | None) -> None:
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

    def on_not_restored(self, params: dict[str, Any], session: str | None) -> None:
        """``Page.backForwardCacheNotUsed``: why history back was a new page load."""
        for why in params.get("notRestoredExplanations", ()):
            self.bfcache_blocked[f"{why.get('type')}:{why.get('reason')}"] += 1
