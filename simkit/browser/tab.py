"""One scenario tab played by a real Chromium page: the verbs of the tab model on a page.

:class:`BrowserTab` satisfies the same :class:`~simkit.runtime.interfaces.TabActor`
contract as :class:`simkit.actors.tab.Tab`, so a scenario's script runs unchanged on a real
browser. Each verb returns at once (as in every runtime); the browser work it starts runs
in order, one operation at a time, in the tab's own worker task, bounded by
:data:`OP_TIMEOUT`. See :mod:`simkit.browser.runtime` for how each verb maps to CDP and
where real Chromium 156 differs from the model.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from simkit.model.errors import BrowserError, ConfigError
from simkit.model.page import Page, step

if TYPE_CHECKING:
    from simkit.browser.cdp import CDPParams, RawChromium
    from simkit.browser.runtime import BrowserLink, BrowserRuntime
    from simkit.net.proxy import Piped

MAX_TABS = 60  # link ids are tab * 10000 + n, below the server's outside ids (1e6)
OP_TIMEOUT = 10.0  # seconds for one browser operation (navigation, CDP call)
LOAD_WAIT = 5.0  # seconds to wait for a new page load (or a restore) to report itself


class BrowserTab:
    """A scenario's tab played by a real page; the verbs of :class:`simkit.actors.tab.Tab`.

    Verbs return at once (as in every runtime); the browser work they start runs in order,
    one operation at a time, in the tab's own worker. The page lifecycle follows the same
    transition table as the tab model (:mod:`simkit.model.page`), so a script that is
    illegal there raises the same error here.
    """

    def __init__(self, run: BrowserRuntime, index: int, person: str, context: str) -> None:
        if run.env is None:
            raise BrowserError("a browser tab is made once the run has prepared its Env")
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
        self.ops: asyncio.Queue[Callable[[], Awaitable[object]]] = asyncio.Queue()
        self.worker = run.loop.create_task(self._work(), name=f"browser tab {index}")

    # -- the scenario's verbs --------------------------------------------------------------

    @property
    def now(self) -> float:
        return float(self.env.now())

    async def sleep(self, seconds: float) -> None:
        await self.env.sleep(seconds)

    def _step(self, event: str) -> None:
        self.state = step(self.state, event)

    def load(self, *, strict_mode: bool = False) -> None:
        self._step("load")
        self.strict = self.strict or strict_mode
        self._do(self._goto)

    async def reload(
        self, downtime: float, *, vanish: bool = False, strict_mode: bool = False
    ) -> None:
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

    async def _gone(self, action: Awaitable[None]) -> None:
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
        # the same kind of tab (a page run's tab reads its own page and CDP)
        twin = type(self)(self.run, index, self.person, self.context)
        self.run.tabs[index] = twin
        twin._step("load")
        copied: asyncio.Future[str] = self.run.loop.create_future()

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
        found = self._piped()
        if found is not None:
            piped, link = found
            link.silent_since = self.now
            piped.blackhole()

    def regain_network(self) -> None:
        """The network is back on a new path: the page sees its old socket fail (1006)."""
        found = self._piped()
        if found is not None and found[1].silent_since is not None:
            found[0].drop_client()

    def unload(self, *, vanish: bool = False, page_close: bool = False) -> None:
        """Not played yet: the page going away with no new load has no verb here (a script
        reloads or closes the tab instead). Said at once, naming the verb."""
        raise BrowserError(
            f"tab {self.index}: unload is not played by the browser runtime; "
            "use reload(...) or close()"
        )

    def process_dies(self) -> None:
        """Not played (the tab model's 1006: the browser or its network service dies): in
        Chromium that kills every tab's socket at once, not one tab's; the calibration
        measures it with a browser of its own. Counted in ``summary["browser_not_played"]``."""
        self.run.not_played["process_dies"] = self.run.not_played.get("process_dies", 0) + 1

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

    async def _send(self, method: str, params: CDPParams) -> CDPParams:
        return await self.run.cdp.send(method, params, self.session, OP_TIMEOUT)

    async def _open_target(self) -> None:
        """A new tab in a window of its own, with the report binding installed before any
        page of it runs."""
        cdp = self.run.cdp
        made = await cdp.send(
            "Target.createTarget",
            {"url": "about:blank", "browserContextId": self.context, "newWindow": True},
        )
        await self._adopt_target(made["targetId"])

    async def _adopt_target(self, target: str) -> None:
        """Attach to ``target`` (a blank tab of this tab's browser context) and watch it."""
        cdp = self.run.cdp
        self.target = target
        attached = await cdp.send(
            "Target.attachToTarget", {"targetId": self.target, "flatten": True}
        )
        self.session = attached["sessionId"]
        self.run.sessions[self.session] = self
        await self._watch()
        await self._send("Page.enable", {})  # for Page.backForwardCacheNotUsed
        window = await cdp.send("Browser.getWindowForTarget", {"targetId": self.target})
        self.window = window["windowId"]

    async def _watch(self) -> None:
        """How this tab learns what its page does, before any page of it runs: the kit's
        own page reports through a binding (a page of yours is watched through CDP's
        Network domain instead: :class:`simkit.browser.frontend.PageTab`)."""
        await self._send("Runtime.enable", {})  # no Runtime.bindingCalled without it
        await self._send("Runtime.addBinding", {"name": "simkitReport"})

    async def _navigate(self, url: str) -> None:
        result = await self._send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"navigation to {url} failed: {result['errorText']}")

    async def _goto(self, copied: asyncio.Future[str] | None = None) -> None:
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

    async def _loaded(self, navigation: Awaitable[object]) -> None:
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

    def _do(self, op: Callable[[], Awaitable[object]]) -> None:
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

    def _piped(self) -> tuple[Piped, BrowserLink] | None:
        """The proxied path of the tab's current socket and its link, if open at both."""
        conn = self.truth.current
        side = self.run.server.open_links.get(conn) if conn is not None else None
        if side is None or side.client is None:
            return None
        link = self.run.attribution.get(side.id)  # side.client, as the browser runtime made it
        piped = self.run.faults.connection_to(side.ws.remote_address[1])
        return (piped, link) if piped is not None and link is not None else None

    def on_report(self, ev: CDPParams) -> None:  # the page's JSON report
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


async def stop_tabs(
    tabs: Iterable[BrowserTab], background: Iterable[asyncio.Task[None]], chrome: RawChromium | None
) -> None:
    """The browser side of a run's stop: every tab's worker and background task cancelled,
    then Chromium stopped (the same for the kit's page and for a page of yours)."""
    for tab in tabs:
        tab.worker.cancel()
    for task in background:
        task.cancel()
    if chrome is not None:
        await chrome.stop()
