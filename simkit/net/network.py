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
from abc import ABC, abstractmethod
from collections.abc import Coroutine, Mapping
from typing import Any, TypedDict, cast
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from simkit.model.codes import CloseCode
from simkit.model.connection import ClientState, client_step
from simkit.net.common import BaseServer
from simkit.net.proxy import FaultProxy, Piped
from simkit.net.server import PONG
from simkit.runtime.census import Census
from simkit.runtime.interfaces import Clock, ServerActor, ServerEnd, TabCallbacks


class ConnectOptions(TypedDict, total=False):
    """The keyword arguments of a tab's ``websockets.asyncio.client.connect``."""

    host: str  # where the TCP connection goes (the proxy), when not the URL's host
    port: int
    proxy: None
    additional_headers: dict[str, str] | None
    ping_interval: float | None
    open_timeout: float
    close_timeout: float
    compression: None
    max_size: int


class ServerMessage(TypedDict, total=False):
    """A message from the server as the page's script reads it (the kit's protocol)."""

    t: str  # "push", "ping" or "welcome"
    id: int  # a push's id
    session: str  # a welcome's resume session


class LiveLink:
    """One tab's real WebSocket (client side)."""

    def __init__(
        self, net: ClientNetwork, conn: int, tab: TabCallbacks, user: str, session: str | None
    ):
        self.net = net
        self.id = conn
        self.tab = tab
        self.user = user
        self.session = session
        self.client: ClientState = ClientState.CONNECTING
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
        if self.client is ClientState.CLOSED:  # the page dropped it while connecting
            self.ws = ws  # the server has seen its handshake: it may be swept (_prune)
            ws.transport.abort()
            return
        self.ws = ws
        self.port = ws.transport.get_extra_info("sockname")[1]
        self.client = client_step(self.client, "open")
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
        if self.client is not ClientState.CLOSED:
            self.client = client_step(self.client, "closed")
            self.tab.on_close(self, code)

    def close(self, code: int) -> None:
        if self.client is ClientState.CONNECTING:
            # run() aborts the socket if the handshake completes
            self.client = client_step(self.client, "abort")
            return
        if self.client is not ClientState.OPEN or self.ws is None:
            return
        self.client = client_step(self.client, "close")
        self.net.spawn(self.ws.close(code))

    browser_close = close  # the browser's own close: a real socket closes the same way

    def abort(self) -> None:
        if self.client is ClientState.CLOSED:
            return
        self.client = client_step(self.client, "abort")
        if self.ws is not None:
            self.ws.transport.abort()

    def _piped(self) -> Piped | None:
        return self.net.proxy.connection(self.port) if self.port is not None else None

    def silence(self) -> None:
        if self.silent_since is not None:
            return
        self.silent_since = self.net.env_now()
        piped = self._piped()
        if piped is not None:
            piped.blackhole()

    def restore(self) -> None:
        if self.silent_since is None or self.client is ClientState.CLOSED:
            return
        piped = self._piped()
        if piped is not None:
            piped.drop_client()


class ClientNetwork(ABC):
    """The tabs' side of a real-time run: each link a real ``websockets`` client through
    one :class:`FaultProxy`. Who answers (the kit's own server, a target of the user's,
    several nodes) is the subclass's: where a link dials, which server ends are open, how
    the server restarts, and how the run's server actor is attached."""

    PRUNE_FLOOR = 1024  # links kept before the first sweep of finished ones

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        census: Census,
        proxy: FaultProxy,
        *,
        scale: float,
        close_timeout: float,
        links: dict[int, Any] | None = None,  # LiveLinks, shared with a LocalServer's clients
    ) -> None:
        self.loop = loop
        self.census = census
        self.proxy = proxy
        self.scale = scale
        self.close_timeout = close_timeout
        # Where links are looked up by id (a LocalServer shares this dict: it attributes a
        # handshake to its link); a network whose server is not the kit's keeps its own.
        self.links: dict[int, LiveLink] = {} if links is None else links
        self._prune_at = self.PRUNE_FLOOR
        self._next_id = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.env: Clock | None = None  # the run's clock, once attached
        self.errors: list[BaseException] = []

    # -- what the server side decides -------------------------------------------------------

    @property
    @abstractmethod
    def open_links(self) -> Mapping[int, ServerEnd]:
        """The server ends open now, by connection id."""

    @property
    @abstractmethod
    def server(self) -> ServerActor:
        """The run's server actor, once attached."""

    @abstractmethod
    def attach(self, clock: Clock, server: ServerActor) -> None:
        """Bind the run's clock and server actor (before any tab runs)."""

    @abstractmethod
    def dial(self, link: LiveLink) -> tuple[str, ConnectOptions]:
        """Where ``link`` connects and the options of its ``connect``."""

    @abstractmethod
    def restart_server(self, downtime: float) -> None:
        """The server process dies and is back ``downtime`` scenario seconds later."""

    def options(self) -> ConnectOptions:
        """The ``connect`` options every tab's client uses (a browser's, as far as
        ``websockets`` can play one)."""
        return {
            "proxy": None,
            "ping_interval": None,  # browsers do not ping; the server's keepalive does
            "open_timeout": 10.0 * self.scale + 1.0,
            "close_timeout": self.close_timeout * self.scale,
            "compression": None,
            "max_size": 2**16,
        }

    # -- hooks a subclass may override (the hooks run just before the tab hears) -----------

    def opened(self, link: LiveLink) -> None:  # noqa: B027 (an optional hook)
        """``link``'s handshake completed, just before its tab hears of it (the LocalServer
        has already told the census)."""

    def refused(self, link: LiveLink, error: BaseException) -> None:  # noqa: B027
        """``link``'s handshake failed (refused, unreachable or timed out)."""

    def decode(self, link: LiveLink, raw: str | bytes) -> ServerMessage:
        """One message from the server as the page's script reads it."""
        message: ServerMessage = json.loads(raw)  # the kit's own server: its own protocol
        return message

    def ended(self, link: LiveLink, code: int, by_server: bool) -> None:  # noqa: B027
        """``link`` closed for the page with ``code`` (``by_server``: the server sent the
        first close frame), just before its tab hears of it."""

    def env_now(self) -> float:
        assert self.env is not None, "attach() first"
        return self.env.now()

    def spawn(self, coro: Coroutine[object, None, None]) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            error = task.exception()
            if error is not None:
                self.errors.append(error)

    def connect(self, tab: TabCallbacks, user: str, session: str | None) -> LiveLink:
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
            if link.client is ClientState.CLOSED
            and link.ws is not None
            and conn not in open_at_server
        ]
        for conn in done:
            del self.links[conn]
        self._prune_at = max(self.PRUNE_FLOOR, 2 * len(self.links))

    def finish(self) -> None:  # noqa: B027 (nothing to settle)
        """Nothing to settle at the end of a run: live heartbeats run for real."""

    async def aclose(self) -> None:
        """End the run: close every tab's socket now (not at garbage collection)."""
        for link in self.links.values():
            if link.ws is not None:
                link.ws.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class LiveNetwork(ClientNetwork):
    """The tabs' side of a live run, bound to the kit's own server (a ``LocalServer`` on
    either stack) behind one FaultProxy."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        census: Census,
        server: BaseServer,
        proxy: FaultProxy,
        *,
        scale: float,
        close_timeout: float,
    ) -> None:
        super().__init__(
            loop, census, proxy, scale=scale, close_timeout=close_timeout, links=server.clients
        )
        self.local = server

    @property
    def open_links(self) -> Mapping[int, ServerEnd]:
        return self.local.open_links

    @property
    def server(self) -> ServerActor:
        return cast(ServerActor, self.local.core)

    def attach(self, clock: Clock, server: ServerActor) -> None:
        self.local.core = server
        self.env = clock

    def dial(self, link: LiveLink) -> tuple[str, ConnectOptions]:
        """The LocalServer's route through the proxy, carrying the run's link id."""
        query: dict[str, str | int] = {"user": link.user, "link": link.id}
        if link.session:
            query["session"] = link.session
        return f"ws://127.0.0.1:{self.proxy.port}/ws?{urlencode(query)}", self.options()

    def restart_server(self, downtime: float) -> None:
        self.spawn(self.local.restart(downtime * self.scale))
