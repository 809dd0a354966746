"""The ``browser`` runtime: real Chromium tabs play a scenario against a real LocalServer.

Each of the scenario's tabs is a real page (the kit's own page, ``/``, with the strategy's
client policy in its query string); tabs of one person share a browser context (so
``shared`` identity shares localStorage). The page's own JavaScript manages its connection;
the scenario's script only does what a user or the browser does (reload, close, crash via
CDP ``Page.crash``, freeze/resume via CDP ``Page.setWebLifecycleState``, a silently dead
network via the fault proxy between Chromium and the server).

Ground truth comes from both ends: the server attributes every connection to its tab from
the ``link`` id in the page's WebSocket URL (``tab * 10000 + n``), and the page reports
every step of its own (load, connecting, open, close, push) through a Playwright binding.
The Python side only says when a page load *ended* (it knows: it pressed reload). The
census, the Server actor, the observer and the push source are the ones every other
runtime uses, so the same metrics come back in the same :class:`~simkit.results.Result`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlencode

from simkit.actors.env import Env
from simkit.actors.play import _observe, _push_source
from simkit.actors.server import Server
from simkit.browser.chromium import Chromium
from simkit.model.errors import ConfigError
from simkit.runtime.census import Census

BROWSER_SCALE = 0.1  # wall seconds per scenario second: a 60 s scenario takes 6 s
MAX_TABS = 60  # link ids are tab * 10000 + n, below the server's outside ids (1e6)
OP_TIMEOUT = 10.0  # seconds for one browser operation (goto, reload, CDP call)


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


class BrowserTab:
    """A scenario's tab played by a real page; the verbs of :class:`simkit.actors.tab.Tab`."""

    def __init__(self, run: BrowserRun, index: int, person: str, context: Any) -> None:
        self.run = run
        self.env = run.env
        self.index = index
        self.person = person
        self.context = context
        self.truth = self.env.census.add_tab(index, person)
        self.work_rng = self.env.rng("tab", index, "work")
        self.page: Any = None
        self.load_id: str | None = None
        self.expecting = False  # a page load was asked for and has not reported yet
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

    def load(self, *, strict_mode: bool = False) -> None:
        self.strict = self.strict or strict_mode
        self._do(self._goto)

    async def reload(self, downtime: float, *, vanish: bool = False, strict_mode: bool = False):
        """Press reload. ``downtime`` is the browser's own (only the script waits it);
        ``vanish``: the old socket's path died silently first (its close never arrives)."""

        async def press() -> None:
            if vanish:
                self.lose_network()
            self._end()
            await self._loaded(self.page.reload(timeout=OP_TIMEOUT * 1000))

        self._do(press)
        await self.env.sleep(downtime)

    def close(self) -> None:
        self._do(lambda: self._gone(self.page.close()))

    def crash(self) -> None:
        self._do(lambda: self._gone(self.run.chrome.crash(self.page)))

    async def _gone(self, action: Any) -> None:
        self._end()
        self.gone = True
        await action

    def freeze(self) -> None:
        self.deaf_since = self.now
        self.truth.receiving, self.truth.deaf = False, True
        self._do(lambda: self.run.chrome.freeze(self.page))

    def resume(self) -> None:
        self.deaf_since = None
        self.truth.receiving, self.truth.deaf = True, False
        self._do(lambda: self.run.chrome.resume(self.page))

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

    def hide(self) -> None:
        self.run.not_played["hide"] = self.run.not_played.get("hide", 0) + 1

    def show(self) -> None:
        self.run.not_played["show"] = self.run.not_played.get("show", 0) + 1

    def __getattr__(self, verb: str) -> Any:
        if verb in ("enter_bfcache", "restore", "evict", "duplicate"):

            def unsupported(*args: Any, **kwargs: Any) -> None:
                self.run.not_played[verb] = self.run.not_played.get(verb, 0) + 1

            return unsupported
        raise AttributeError(verb)

    # -- the page --------------------------------------------------------------------------

    def url(self) -> str:
        c = self.env.strategy.client
        b = c.backoff
        query = {
            "tab": self.index,
            "person": self.person,
            "ws": self.run.proxy.port,
            "stats": 0,
            "scale": self.env.scale,
            "identity": c.identity,
            "unload": c.unload,
            "visibility": c.visibility,
            "guard": c.guard,
            "guard_wait": c.guard_wait,
            "on_resume": c.on_resume,
            "on_pageshow": c.on_pageshow,
            "backoff": b.mode,
            "base": b.base,
            "factor": b.factor,
            "max": b.max_delay,
            "rand": b.randomization,
            "first_max": b.first_max,
            "strict": int(self.strict),
        }
        return f"{self.run.local.http_url}?{urlencode(query)}"

    async def _goto(self) -> None:
        if self.page is None:
            self.page = await self.context.new_page()
            self.run.pages[id(self.page)] = self
        await self._loaded(self.page.goto(self.url(), timeout=OP_TIMEOUT * 1000))

    async def _loaded(self, navigation: Any) -> None:
        """Navigate, then wait for the new page load's own report (reports from the old
        load that arrive later are ignored: the verbs run in order, one at a time)."""
        self.expecting = True
        self.arrived.clear()
        await navigation
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.arrived.wait(), timeout=2.0)

    def _do(self, op: Any) -> None:
        self.ops.put_nowait(op)

    async def _work(self) -> None:
        while True:
            op = await self.ops.get()
            try:
                await asyncio.wait_for(op(), timeout=OP_TIMEOUT)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if not self.gone:
                    self.run.errors.append(f"tab {self.index}: {type(error).__name__}: {error}")

    def _end(self) -> None:
        """This page load is over (Python knows: it pressed the button)."""
        self.load_id = None
        self.deaf_since = None
        self.env.census.page_ended(self.truth)

    def _piped(self) -> tuple[Any, Any]:
        conn = self.truth.current
        side = self.run.local.open_links.get(conn) if conn is not None else None
        if side is None or side.client is None:
            return None, None
        port = side.ws.remote_address[1]
        for piped in list(self.run.proxy.connections.values()):
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
                self.expecting = False
                self.load_id = ev["load"]
                census.page_loaded(self.truth, ev["user"])
                self.arrived.set()
            return
        if ev.get("load") != self.load_id or self.load_id is None:
            return  # an old page load, or one whose end Python has already counted
        link = ev.get("link")
        if kind == "connecting" and link is not None:
            census.set_current(self.truth, link)
            side = census.servers.get(link)
            if side is not None and side.stale:
                # the handshake reached the server before the page's report reached us
                side.stale = False
                census.stale -= 1
        elif kind == "open" and self.truth.current == link:
            census.set_connected(self.truth, True)
        elif kind == "close" and self.truth.current == link:
            census.set_current(self.truth, None)
        elif kind == "push":
            self.received += 1


class BrowserNetwork:
    """The network interface the Server actor sees (``open_links``, ``server``)."""

    def __init__(self, run: BrowserRun) -> None:
        self.run = run
        self.links = run.local.clients

    @property
    def open_links(self) -> dict[int, Any]:
        return self.run.local.open_links

    @property
    def server(self) -> Any:
        return self.run.local.core

    @server.setter
    def server(self, core: Any) -> None:
        self.run.local.core = core

    def restart_server(self, downtime: float) -> None:
        task = self.run.loop.create_task(self.run.local.restart(downtime * self.run.scale))
        self.run.background.add(task)


class BrowserRun:
    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.loop = asyncio.get_running_loop()
        self.pages: dict[int, BrowserTab] = {}
        self.tabs: dict[int, BrowserTab] = {}
        self.errors: list[str] = []
        self.not_played: dict[str, int] = {}
        self.background: set[asyncio.Task] = set()
        self.local: Any = None
        self.proxy: Any = None
        self.chrome: Chromium | None = None
        self.env: Any = None

    def report(self, source: dict[str, Any], ev: dict[str, Any]) -> None:
        tab = self.pages.get(id(source.get("page")))
        if tab is not None:
            tab.on_report(ev)


async def play_browser(sc, strat, tabs, duration, settle, seed, scale, trace, close_timeout):
    from simkit.live.proxy import FaultProxy, Toxics
    from simkit.live.server import LocalServer

    run = BrowserRun(scale)
    run.local = LocalServer(
        strat,
        scale=scale,
        close_timeout=close_timeout,
        own_core=False,
        clients=Attribution(run.tabs),
    )
    tasks: list[asyncio.Task] = []
    try:
        await run.local.start()
        toxics = Toxics(latency=sc.latency.base * scale, jitter=sc.latency.jitter * scale)
        idle = None if sc.idle_timeout is None else sc.idle_timeout * scale
        run.proxy = FaultProxy(run.local.port, defaults=toxics, idle_timeout=idle, seed=seed)
        await run.proxy.__aenter__()
        run.chrome = Chromium()
        await run.chrome.start()
        census = Census(one_per_user=strat.registry().one_per_user)
        network = BrowserNetwork(run)
        env = Env(run.loop, strat, census, network, seed, duration, scale=scale,
                  trace=[] if trace else None, start=run.loop.time())  # fmt: skip
        run.env = env
        server = Server(env)
        network.server = server
        sc = sc.with_(duration=duration)
        people = sc.people(tabs, env.rng("people"))
        contexts: dict[str, Any] = {}
        for person in people:
            if person not in contexts:
                contexts[person] = await run.chrome.new_context()
                await contexts[person].expose_binding("simkitReport", run.report)
        env.start = run.loop.time()  # the clock starts once the browser is ready
        for i, person in enumerate(people):
            run.tabs[i] = BrowserTab(run, i, person, contexts[person])
        tasks = [run.loop.create_task(sc.script(tab, sc)) for tab in run.tabs.values()]
        if sc.control is not None:
            tasks.append(run.loop.create_task(sc.control(env, sc)))
        end = duration + settle
        _observe(env, server, sc.step, end, None)
        if sc.push_rate > 0:
            _push_source(env, server, sorted(set(people), key=people.index), sc.push_rate * tabs)
        await env.sleep(end)
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                raise RuntimeError(f"scenario {sc.name!r}: {outcome!r}") from outcome
        extra = {
            "browser": "chromium",
            "browser_errors": len(run.errors),
            "browser_not_played": dict(run.not_played),
            "pushes_seen_by_pages": sum(t.received for t in run.tabs.values()),
        }
        if run.errors:
            extra["browser_first_error"] = run.errors[0][:300]
        return census, server, env, extra
    finally:
        for task in tasks:
            task.cancel()
        for tab in run.tabs.values():
            tab.worker.cancel()
        for task in run.background:
            task.cancel()
        if run.chrome is not None:
            await run.chrome.stop()
        if run.proxy is not None:
            with contextlib.suppress(Exception):
                await run.proxy.close()
        with contextlib.suppress(Exception):
            await run.local.stop()


def run_browser(sc, strat, tabs, duration, settle, seed, scale, trace):
    """``simkit.run(..., runtime="browser")``: play ``sc`` with real Chromium tabs."""
    from simkit.api import CLOSE_TIMEOUT, _in_thread, _result

    scale = BROWSER_SCALE if scale is None else scale
    if not (scale > 0 and scale == scale and scale != float("inf")):
        raise ConfigError(f"scale must be a positive number, got {scale!r}")
    if tabs > MAX_TABS:
        raise ConfigError(f"the browser runtime plays at most {MAX_TABS} tabs, got {tabs}")

    async def main():
        return await play_browser(sc, strat, tabs, duration, settle, seed, scale, trace,
                                  CLOSE_TIMEOUT)  # fmt: skip

    census, server, env, extra = _in_thread(main)
    result = _result(sc, strat, "browser", seed, tabs, duration, settle, scale, census, server, env)
    result.summary.update(extra)
    return result
