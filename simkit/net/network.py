"""The live runtime's network: each tab link is a real ``websockets`` client connection,
through the fault proxy, to the ``LocalServer``.

It gives the tab actor exactly the interface of the in-memory :class:`~simkit.virtual.
network.Link` (``client`` state, ``close``, ``abort``, ``silence``, ``restore``) and calls
the same callbacks (``on_open``, ``on_message``, ``on_close``), so the actors do not know
which runtime they are in. A silent network is the proxy's blackhole; a network that comes
back on a new path drops the client's side of the proxy and leaves the server's half-open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from simkit.model.codes import CloseCode
from simkit.net.proxy import FaultProxy
from simkit.net.server import PONG, LocalServer
from simkit.runtime.interfaces import Clock, ServerActor


class LiveLink:
    """One tab's real WebSocket (client side)."""

    def __init__(self, net: LiveNetwork, conn: int, tab: Any, user: str, session: str | None):
        self.net = net
        self.id = conn
        self.tab = tab
        self.user = user
        self.session = session
        self.client = "connecting"
        self.silent_since: float | None = None
        self.ws: ClientConnection | None = None
        self.port: int | None = None

    @property
    def tab_index(self) -> int:
        return self.tab.index

    async def run(self) -> None:
        net = self.net
        url, options = net.dial(self)
        try:
            ws = await connect(url, **options)
        except (OSError, InvalidHandshake, TimeoutError) as error:
            net.refused(self, error)
            self._closed(int(CloseCode.ABNORMAL))
            return
        if self.client == "closed":  # the page dropped it while connecting
            self.ws = ws  # the server has seen its handshake: it may be swept (_prune)
            ws.transport.abort()
            return
        self.ws = ws
        self.port = ws.transport.get_extra_info("sockname")[1]
        self.client = "open"
        net.opened(self)
        self.tab.on_open(self)
        try:
            async for raw in ws:
                message = net.decode(self, raw)
                kind = message.get("t")
                if self.client != "open":
                    continue  # as in a browser: a page whose socket is closing gets no message
                if kind == "push":
                    self.tab.on_message(self, ("push", message["id"]))
                elif kind == "ping":
                    if self.tab.answers(self, "app"):  # only a page that runs code answers
                        self.net.spawn(self._pong(ws))
                elif kind == "welcome":
                    self.tab.on_message(self, ("welcome", message["session"]))
        except ConnectionClosed:
            pass
        rcvd = ws.protocol.close_rcvd
        code = rcvd.code if rcvd is not None else int(CloseCode.ABNORMAL)
        net.ended(self, code, bool(ws.protocol.close_rcvd_then_sent))
        self._closed(code)

    async def _pong(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(PONG)

    def _closed(self, code: int) -> None:
        if self.client != "closed":
            self.client = "closed"
            self.tab.on_close(self, code)

    def close(self, code: int) -> None:
        if self.client == "connecting":
            self.client = "closed"  # run() aborts the socket if the handshake completes
            return
        if self.client != "open" or self.ws is None:
            return
        self.client = "closing"
        self.net.spawn(self.ws.close(code))

    browser_close = close  # the browser's own close: a real socket closes the same way

    def abort(self) -> None:
        if self.client == "closed":
            return
        self.client = "closed"
        if self.ws is not None:
            self.ws.transport.abort()

    def _piped(self) -> Any:
        return self.net.proxy.connection(self.port) if self.port is not None else None

    def silence(self) -> None:
        if self.silent_since is not None:
            return
        self.silent_since = self.net.env_now()
        piped = self._piped()
        if piped is not None:
            piped.blackhole()

    def restore(self) -> None:
        if self.silent_since is None or self.client == "closed":
            return
        piped = self._piped()
        if piped is not None:
            piped.drop_client()


class LiveNetwork:
    """The tabs' side of a live run, bound to one LocalServer behind one FaultProxy."""

    PRUNE_FLOOR = 1024  # links kept before the first sweep of finished ones

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        census: Any,
        server: LocalServer | None,
        proxy: FaultProxy,
        *,
        scale: float,
        close_timeout: float,
    ) -> None:
        self.loop = loop
        self.census = census
        self.local = server  # None: a target's network (it overrides what uses this)
        self.proxy = proxy
        self.scale = scale
        self.close_timeout = close_timeout
        # Without a LocalServer (a target of the user's) nothing else looks links up.
        self.links = server.clients if server is not None else {}
        self._prune_at = self.PRUNE_FLOOR
        self._next_id = 0
        self._tasks: set[asyncio.Task] = set()
        self.env: Clock | None = None  # the run's clock, once attached
        self.errors: list[BaseException] = []

    @property
    def open_links(self) -> dict[int, Any]:
        assert self.local is not None
        return self.local.open_links

    # -- hooks a network without a LocalServer overrides (simkit.net.target) --------------

    def dial(self, link: LiveLink) -> tuple[str, dict[str, Any]]:
        """Where ``link`` connects and the options of its ``connect``: the LocalServer's
        route through the proxy, carrying the run's link id."""
        query: dict[str, Any] = {"user": link.user, "link": link.id}
        if link.session:
            query["session"] = link.session
        return f"ws://127.0.0.1:{self.proxy.port}/ws?{urlencode(query)}", {
            "proxy": None,
            "ping_interval": None,  # browsers do not ping; the server's keepalive does
            "open_timeout": 10.0 * self.scale + 1.0,
            "close_timeout": self.close_timeout * self.scale,
            "compression": None,
            "max_size": 2**16,
        }

    def opened(self, link: LiveLink) -> None:
        """``link``'s handshake completed, just before its tab hears of it (the LocalServer
        has already told the census)."""

    def refused(self, link: LiveLink, error: BaseException) -> None:
        """``link``'s handshake failed (refused, unreachable or timed out)."""

    def decode(self, link: LiveLink, raw: str | bytes) -> dict[str, Any]:
        """One message from the server as the page's script reads it."""
        return json.loads(raw)  # type: ignore[no-any-return]

    def ended(self, link: LiveLink, code: int, by_server: bool) -> None:
        """``link`` closed for the page with ``code`` (``by_server``: the server sent the
        first close frame), just before its tab hears of it."""

    @property
    def server(self) -> ServerActor:
        assert self.local is not None
        return self.local.core

    def attach(self, clock: Clock, server: ServerActor) -> None:
        assert self.local is not None
        self.local.core = server
        self.env = clock

    def env_now(self) -> float:
        assert self.env is not None, "attach() first"
        return self.env.now()

    def spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.errors.append(task.exception())  # type: ignore[arg-type]

    def connect(self, tab: Any, user: str, session: str | None) -> LiveLink:
        self._next_id += 1
        link = LiveLink(self, self._next_id, tab, user, session)
        if len(self.links) >= self._prune_at:
            self._prune()
        self.links[link.id] = link
        self.spawn(link.run())
        return link

    def _prune(self) -> None:
        """Forget links that are over at both ends: each held its closed client connection
        (about 11 kB) until the run ended, and a long run makes hundreds of thousands.
        Only links that opened: the server looked them up at their handshake, and will not
        again; a link whose handshake failed might still reach it late, so it stays."""
        open_at_server = self.open_links
        done = [
            conn
            for conn, link in self.links.items()
            if link.client == "closed" and link.ws is not None and conn not in open_at_server
        ]
        for conn in done:
            del self.links[conn]
        self._prune_at = max(self.PRUNE_FLOOR, 2 * len(self.links))

    def finish(self) -> None:
        """Nothing to settle at the end of a run: live heartbeats run for real."""

    def restart_server(self, downtime: float) -> None:
        assert self.local is not None
        self.spawn(self.local.restart(downtime * self.scale))

    async def aclose(self) -> None:
        """End the run: close every tab's socket now (not at garbage collection)."""
        for link in self.links.values():
            if link.ws is not None:
                link.ws.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
