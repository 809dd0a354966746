"""``FastAPIServer``: the post-mortem's own stack, FastAPI on uvicorn, as a server of the kit.

It has :class:`~simkit.net.server.LocalServer`'s interface (``url``, ``GET /stats``,
``GET /``, ``registry_snapshot()``, ``counts()``, ``log``, ``async with``, ``restart``,
``push``, ``issue_token``) and shares everything but the transport with it
(:mod:`simkit.net.common`), so the live runtime and the Server actor run on it unchanged.
Get one with ``LocalServer(strategy, stack="fastapi", ws=IMPL)``, where ``IMPL`` is one of
uvicorn's three WebSocket implementations: ``websockets-sansio`` (uvicorn's default since
0.50), ``websockets`` (the legacy protocol, the default before) and ``wsproto``. They differ
exactly where the post-mortem's bug lives: what ``await websocket.close()`` does (returns at
once, or waits for the closing handshake), and when the closed connection's handler sees its
``WebSocketDisconnect``.

uvicorn runs in-process, on the run's own event loop (``uvicorn.Server.serve()`` as a task
on a socket bound here), so the census sees every event as it happens. Keepalive is the
strategy's (``ws_ping_interval``/``ws_ping_timeout``, scaled); uvicorn 0.54 honours them on
all three implementations.

Two handler modes:

- every registry policy of the kit (``postmortem-safe``, ``multi-heartbeat``, ...) runs as on
  the ``websockets`` server: the Server actor's pure registry decides;
- a strategy whose registry is
  :class:`~simkit.model.registry.CloseDeleteRegister` (the ``seed`` presets) runs **the
  post-mortem's handler as written**: a plain ``conns`` dict, ``await old.close()``, then
  ``del``, then register, ``except WebSocketDisconnect`` deleting blindly and ``except
  Exception`` closing the handler's own socket. The census reads that dict.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import warnings
from collections.abc import Iterator
from types import MethodType
from typing import Any, Protocol, cast
from urllib.parse import parse_qs

import uvicorn
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.protocols.websockets.wsproto_impl import WSProtocol
from uvicorn.server import ServerState
from wsproto.events import CloseConnection

from simkit.model.codes import CloseCode
from simkit.model.errors import ServiceError
from simkit.model.registry import CloseDeleteRegister
from simkit.model.strategy import Strategy
from simkit.net.common import MAX_MESSAGE, PONG, BaseServer, OwnClient, ServerLink, check_stack
from simkit.net.page import PAGE

with warnings.catch_warnings():  # uvicorn deprecates its legacy implementation on import
    warnings.simplefilter("ignore")
    from uvicorn.protocols.websockets.websockets_impl import WebSocketProtocol
# ... and websockets' legacy server warns about uvicorn's handler signature on every
# connection; the kit runs that implementation on purpose (it is the post-mortem's era's).
warnings.filterwarnings(
    "ignore", message="remove second argument of ws_handler", category=DeprecationWarning
)

# -- uvicorn's protocols, instrumented -------------------------------------------------------
# Each records what the handler cannot see through ASGI: whether a close frame was received
# and whether the keepalive gave up (ASGI reports both a reset and a keepalive timeout as
# 1005/1006), and takes the run's scaled close timeout (sansio and wsproto hard-code 10 s).


class _Config(uvicorn.Config):
    """uvicorn's configuration with the two settings it has no option for: the run's scaled
    close timeout and the deadline of a handshake. uvicorn hands every protocol it builds
    the Config it was started with, so the protocols below read them there."""

    simkit_close_timeout = 10.0
    simkit_open_timeout = 10.0


def _close_timeout(config: uvicorn.Config) -> float:
    return config.simkit_close_timeout if isinstance(config, _Config) else 10.0


class _Instrumented(Protocol):
    """What the kit reads of the protocol behind a WebSocket: one of the three below."""

    simkit_reaped: bool
    transport: asyncio.Transport | None

    def simkit_rcvd(self) -> int | None: ...


class _SansIO(WebSocketsSansIOProtocol):
    simkit_reaped = False

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],  # uvicorn's own signature
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.close_timeout = _close_timeout(config)

    def keepalive_timeout(self) -> None:
        self.simkit_reaped = True
        super().keepalive_timeout()

    def simkit_rcvd(self) -> int | None:
        rcvd = self.conn.close_rcvd
        return None if rcvd is None else int(rcvd.code)


class _WSProto(WSProtocol):
    simkit_reaped = False
    simkit_close: int | None = None

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],  # uvicorn's own signature
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.close_timeout = _close_timeout(config)

    def keepalive_timeout(self) -> None:
        self.simkit_reaped = True
        super().keepalive_timeout()

    def handle_close(self, event: CloseConnection) -> None:
        self.simkit_close = int(event.code)
        super().handle_close(event)

    def simkit_rcvd(self) -> int | None:
        return self.simkit_close


class _Legacy(WebSocketProtocol):
    simkit_reaped = False

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],  # uvicorn's own signature
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.close_timeout = _close_timeout(config)

    def fail_connection(self, code: int = 1006, reason: str = "") -> None:
        if code == CloseCode.KEEPALIVE_TIMEOUT:
            self.simkit_reaped = True
        super().fail_connection(code, reason)

    def simkit_rcvd(self) -> int | None:
        rcvd = self.close_rcvd
        return None if rcvd is None else int(rcvd.code)


class _H11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline on the request: a handshake that never
    finishes is dropped after ``open_timeout`` (as the ``websockets`` server does)."""

    # A stream protocol is always given a Transport; uvicorn narrows BaseProtocol's
    # BaseTransport the same way in the method overridden here, under the same ignore.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        config = self.config
        deadline = config.simkit_open_timeout if isinstance(config, _Config) else 10.0
        self.loop.call_later(deadline, self._simkit_deadline)

    def _simkit_deadline(self) -> None:
        if self.cycle is None and self.transport.get_protocol() is self:
            self.transport.close()


PROTOCOLS: dict[str, type[asyncio.Protocol]] = {
    "websockets-sansio": _SansIO,
    "websockets": _Legacy,
    "wsproto": _WSProto,
}


def protocol_of(websocket: WebSocket) -> _Instrumented:
    """uvicorn's protocol object behind a Starlette WebSocket (its ``receive`` is a bound
    method of it): the transport, and what was really sent and received."""
    # Starlette types ``receive`` as any ASGI callable; under uvicorn it is the bound
    # ``asgi_receive`` of one of PROTOCOLS, all three of which satisfy _Instrumented.
    receive = cast(MethodType, websocket._receive)
    return cast(_Instrumented, receive.__self__)


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, in process: signals belong to the program that runs it (a notebook,
    a test, the CLI), which uvicorn's own handlers would take over."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class FastAPILink(ServerLink):
    """A connection on the FastAPI server: a Starlette ``WebSocket``."""

    __slots__ = ("sent",)

    def __init__(
        self,
        owner: BaseServer,
        ws: WebSocket,
        conn: int,
        user: str,
        session: str | None,
        client: OwnClient | None,
    ) -> None:
        super().__init__(owner, ws, conn, user, session, client)
        self.sent: int | None = None

    async def write(self, text: str) -> None:
        # A socket that went away under a send is not the kit's error: uvicorn raises
        # ClientDisconnected, Starlette RuntimeError after a close.
        with contextlib.suppress(Exception):
            await self.ws.send_text(text)

    async def close_socket(self, code: int, reason: str) -> None:
        self.sent = code
        with contextlib.suppress(Exception):
            await self.ws.close(code, reason)

    def backlogged(self) -> bool:
        # uvicorn's legacy implementation returns from a send before the data is written
        # (measured: 116 MB buffered for a client that never reads), so count bytes too.
        transport = protocol_of(self.ws).transport
        limit = self.owner.max_queue * MAX_MESSAGE
        return transport is not None and transport.get_write_buffer_size() > limit

    def abort(self) -> None:
        transport = protocol_of(self.ws).transport
        if transport is not None:
            transport.abort()


def handler_close_code(websocket: WebSocket, asgi_code: int | None) -> int:
    """The code a handler's cleanup reports, as the ``websockets`` server reports it: the
    close frame received, else 1011 if the keepalive gave up, else the code the server sent
    if it closed (uvicorn's sansio and wsproto let the handler go before the echo; legacy
    stops reading after a protocol failure such as 1009), else 1006 (no close frame: ASGI
    says 1005 or 1006 there)."""
    proto = protocol_of(websocket)
    rcvd = proto.simkit_rcvd()
    if rcvd is not None:
        return rcvd
    if proto.simkit_reaped:
        return int(CloseCode.KEEPALIVE_TIMEOUT)
    sent = getattr(proto, "close_sent", None)
    if sent is not None and hasattr(sent, "code"):  # legacy: the Close frame it sent
        return int(sent.code)
    if sent and asgi_code not in (None, 1005, 1006):
        return int(asgi_code)
    return int(CloseCode.ABNORMAL)


class FastAPIServer(BaseServer):
    """A FastAPI app on an in-process uvicorn server applying ``strategy``; see the module
    docstring. Options are :class:`~simkit.net.common.BaseServer`'s plus ``ws``."""

    stack = "fastapi"

    def __init__(
        self,
        strategy: str | Strategy = "postmortem-safe",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ws: str | None = None,
        **kwargs: Any,  # BaseServer's parameters, handed on
    ) -> None:
        super().__init__(strategy, host, port, **kwargs)
        self.ws_impl = check_stack("fastapi", ws)[1]
        self._uvicorn: uvicorn.Server | None = None
        self._serving: asyncio.Task[None] | None = None
        self.sockets: dict[int, WebSocket] = {}  # the as-written handler's sockets by conn
        self.app = self._app()

    @property
    def as_written(self) -> bool:
        """Does this server run the post-mortem's handler as written (the seed presets)?"""
        return isinstance(getattr(self.core, "registry", None), CloseDeleteRegister)

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self.prepare()
        interval, timeout = self.keepalive()
        config = _Config(
            self.app,
            http=_H11,
            ws=PROTOCOLS[self.ws_impl],
            ws_max_size=MAX_MESSAGE,
            ws_ping_interval=interval,
            ws_ping_timeout=timeout,
            ws_per_message_deflate=False,
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=math.ceil(self.close_timeout * self.scale + 1.0),
        )
        config.simkit_close_timeout = self.close_timeout * self.scale
        config.simkit_open_timeout = self.open_timeout
        # uvicorn logs every refused handshake and reset peer at INFO/WARNING/ERROR: a live
        # run makes thousands, which would flood a notebook (the server's own log keeps them)
        logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(128)
            sock.setblocking(False)
            self.port = sock.getsockname()[1]
            server = _Uvicorn(config)
            self._uvicorn = server
            self._serving = asyncio.get_running_loop().create_task(server.serve([sock]))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10.0
            while not server.started:
                if self._serving.done():
                    self._serving.result()  # raises what stopped it
                    raise ServiceError("uvicorn stopped before it started")
                if loop.time() > deadline:
                    raise TimeoutError("uvicorn did not start within 10 s")
                await asyncio.sleep(0.005)
        except BaseException:
            sock.close()
            await self._shutdown(force=True)
            raise

    async def _shutdown(self, *, force: bool) -> None:
        server, task = self._uvicorn, self._serving
        self._uvicorn = self._serving = None
        if server is None or task is None:
            return
        server.should_exit = True
        server.force_exit = force
        try:
            limit = self.close_timeout * self.scale + 3
            await asyncio.wait_for(asyncio.shield(task), timeout=limit)
        except Exception:
            server.force_exit = True
            for connection in list(server.server_state.connections):
                transport = getattr(connection, "transport", None)
                if transport is not None:
                    transport.abort()
            task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, timeout=5)
        finally:
            for listener in getattr(server, "servers", []):
                listener.close()

    async def stop(self) -> None:
        """Close every connection and free the port (also on error and interrupt); peers
        that ignore the close are reset after the close timeout."""
        try:
            await self._shutdown(force=False)
        finally:
            self.cancel_tasks()

    async def restart(self, downtime: float) -> None:
        """The process dies (every socket reset, no handler cleanup runs, the in-memory
        registry is lost) and comes back on the same port ``downtime`` seconds later."""
        self.dying = True
        server = self._uvicorn
        if server is not None:
            for listener in getattr(server, "servers", []):
                listener.close()  # a dead process accepts nothing: stop listening first
            for connection in list(server.server_state.connections):
                transport = getattr(connection, "transport", None)
                if transport is not None:
                    transport.abort()
        for link in list(self.open_links.values()):
            link.abort()
        # every old handler runs its cleanup while the server is still "dying" (the
        # census is told, the registry that died with the process is not)
        with contextlib.suppress(TimeoutError):
            await self.until(lambda s: not s.open_links, timeout=5.0)
        await self._shutdown(force=True)
        self.core.restart()
        self.sockets.clear()
        self.dying = False
        await asyncio.sleep(downtime)
        await self.start()

    # -- the app ---------------------------------------------------------------------------

    def _app(self) -> FastAPI:
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

        @app.get("/")
        async def page() -> HTMLResponse:
            return HTMLResponse(PAGE)

        @app.get("/stats")
        async def stats() -> Response:
            return Response(self.stats_json(), media_type="application/json")

        @app.get("/ws")
        async def plain_http() -> PlainTextResponse:
            return PlainTextResponse(
                "this is a WebSocket endpoint: send an Upgrade request\n", status_code=426
            )

        @app.websocket("/ws")
        async def ws(websocket: WebSocket) -> None:
            await self._handle(websocket)

        async def not_found(request: Request, exc: Exception) -> PlainTextResponse:
            return PlainTextResponse("not found\n", status_code=404)

        app.add_exception_handler(404, not_found)
        return app

    async def _handle(self, websocket: WebSocket) -> None:
        query_string = websocket.scope.get("query_string", b"")
        try:
            query_text = query_string.decode("utf-8")
        except UnicodeDecodeError:
            query_text = "%FF"  # parse_qs below reports it as not valid UTF-8
        user, problem, status = self.identify(query_text)
        if problem is not None:
            await websocket.send_denial_response(
                PlainTextResponse(problem + "\n", status_code=status)
            )
            return
        query = parse_qs(query_text)
        await websocket.accept()
        refusal = self.over_limit(user)
        if refusal is not None:
            await websocket.close(int(CloseCode.TRY_AGAIN_LATER), refusal)
            return
        conn, client = self.conn_id(query)
        session = query.get("session", [None])[0]
        link = FastAPILink(self, websocket, conn, user, session, client)
        if self.as_written:
            await self._as_written(websocket, link)
            return
        heartbeat = self.opened(link)
        asgi_code: int | None = None
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    asgi_code = message.get("code")
                    break
                if message.get("bytes") is not None:
                    await link.close_socket(1003, "binary messages are not accepted")
                    continue  # the disconnect follows
                if message.get("text") == PONG:
                    self.pong(link)
        finally:
            code = handler_close_code(websocket, asgi_code)
            proto = protocol_of(websocket)
            # uvicorn's keepalive lets the handler go at once (sansio, wsproto) or after the
            # close timeout (legacy, which waits for the closing handshake)
            lag = self.close_timeout if isinstance(proto, _Legacy) else 0.0
            reaped = lag if code == CloseCode.KEEPALIVE_TIMEOUT and proto.simkit_reaped else None
            self.closed(link, code, heartbeat, reaped_after=reaped)

    async def _as_written(self, websocket: WebSocket, link: FastAPILink) -> None:
        """The post-mortem's handler, line for line, on a plain ``conns`` dict (user id ->
        connection id; ``self.sockets`` maps that id to its WebSocket). The census is told
        of every change to the dict."""
        conns: dict[str, int] = self.core.registry.map
        census = self.core.env.census
        user_id, conn = link.user, link.id
        self.sockets[conn] = websocket
        heartbeat = self.opened(link, register=False)
        asgi_code: int | None = None
        try:
            try:
                if user_id in conns:
                    old = self.sockets[conns[user_id]]
                    self.event("close-old", conns[user_id], user_id, str(conn))
                    try:
                        await old.close()
                    finally:
                        del conns[user_id]
                        census.registry_changed(user_id)
                conns[user_id] = conn
                census.registry_changed(user_id)
                self.event("registered", conn, user_id)
                while True:
                    text = await websocket.receive_text()
                    if text == PONG:
                        self.pong(link)
            except WebSocketDisconnect as disconnect:
                asgi_code = disconnect.code
                if user_id in conns:
                    del conns[user_id]
                    census.registry_changed(user_id)
            except Exception as error:
                self.event("exception", conn, user_id, type(error).__name__)
                if user_id in conns:
                    del conns[user_id]
                    census.registry_changed(user_id)
                with contextlib.suppress(Exception):
                    await websocket.close()
        finally:
            self.sockets.pop(conn, None)
            code = handler_close_code(websocket, asgi_code)
            if code == CloseCode.ABNORMAL and getattr(protocol_of(websocket), "close_sent", None):
                code = int(CloseCode.NORMAL)  # its own close() in the exception path
            self.closed(link, code, heartbeat, unregister=False)
