"""A safe ``user -> WebSocket`` registry to drop into your own app.

The post-mortem's handler (close the old socket, ``del conns[user]``, register; delete again
in the disconnect branch) strands the new tab: the old handler's cleanup deletes the *new*
entry. On uvicorn's default WebSocket implementation that is not a race but a certainty
(issue #15 of the kit measured it). :class:`SafeRegistry` is the fix as a library, for
FastAPI/Starlette ``WebSocket`` objects and for ``websockets``' asyncio server:

- the registry's decisions come from the kit's pure policies (``kick-old-safe``, ``multi``,
  ``reject-new`` in :mod:`simkit.model.registry`), so the app runs exactly what the kit
  measured: compare-and-delete, never a blind ``del``;
- a kicked or refused socket is closed in the background with a timeout, never awaited by
  the handler that caused it (a half-open old socket cannot block the new one's
  registration);
- every send has a timeout and catches the stack's disconnect errors (a push to a dead tab
  neither raises into your code nor waits for TCP);
- an optional application-level heartbeat (``{"t": "ping"}`` answered by ``{"t": "pong"}``)
  reaps pages that stopped running code, which a protocol ping cannot see;
- the stats protocol (``GET /simkit/registry``) for ``simkit.run(..., target=...)``:
  :func:`stats_router` for FastAPI (``app.include_router(stats_router(registry))``) and
  :func:`stats_process_request` for ``websockets.asyncio.server.serve``.

Use it like this (FastAPI)::

    registry = SafeRegistry("kick-old-safe")
    app.include_router(stats_router(registry))

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, user: str):
        await websocket.accept()
        async with registry.connection(user, websocket) as conn:
            async for text in conn.messages():
                ...
    # elsewhere: await registry.push(user, json.dumps(...))

Importing this module pulls neither pandas nor matplotlib, nor FastAPI or websockets:
the stack's classes are only touched when a function for that stack is called.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from simkit.model.codes import CloseCode
from simkit.model.errors import ConfigError, choice
from simkit.model.registry import (
    Close,
    Deliver,
    Hello,
    KickOldSafe,
    Multi,
    Refuse,
    Registry,
    RejectNew,
)

if TYPE_CHECKING:  # type names only: importing this module imports neither stack
    from fastapi import APIRouter
    from starlette.websockets import WebSocket as StarletteSocket
    from typing_extensions import TypeIs
    from websockets.asyncio.server import ServerConnection
    from websockets.http11 import Request, Response

    Socket = StarletteSocket | ServerConnection
    """An accepted WebSocket of either stack the registry serves."""

POLICIES: dict[str, type[Registry]] = {
    "kick-old-safe": KickOldSafe,
    "multi": Multi,
    "reject-new": RejectNew,
}
STATS_PATH = "/simkit/registry"
PING, PONG = json.dumps({"t": "ping"}), json.dumps({"t": "pong"})

__all__ = [
    "PING",
    "POLICIES",
    "PONG",
    "STATS_PATH",
    "Connection",
    "SafeRegistry",
    "stats_process_request",
    "stats_router",
]


def _disconnect_errors() -> tuple[type[BaseException], ...]:
    """What the installed stacks raise for a socket that is gone (looked up when needed, so
    importing this module imports neither stack)."""
    errors: list[type[BaseException]] = [OSError, RuntimeError, EOFError]
    with contextlib.suppress(ImportError):
        from starlette.websockets import WebSocketDisconnect

        errors.append(WebSocketDisconnect)
    with contextlib.suppress(ImportError):
        from websockets.exceptions import ConnectionClosed

        errors.append(ConnectionClosed)
    return tuple(errors)


def _is_starlette(ws: Socket) -> TypeIs[StarletteSocket]:
    return hasattr(ws, "send_text") and hasattr(ws, "receive")


def _simkit_conn(ws: Socket) -> str | None:
    """The ``simkit_conn`` query parameter of a socket's handshake (the stats protocol)."""
    if _is_starlette(ws):
        value = ws.query_params.get("simkit_conn")
        return None if value is None else str(value)
    request = getattr(ws, "request", None)
    if request is None:
        return None
    found = parse_qs(urlsplit(request.path).query).get("simkit_conn")
    return found[0] if found else None


class Connection:
    """One registered socket: ``refused`` (reject-new said no), :meth:`messages` to read it,
    :meth:`send` to write it with a timeout."""

    def __init__(self, registry: SafeRegistry, conn: int, user: str, ws: Socket) -> None:
        self.registry, self.id, self.user, self.ws = registry, conn, user, ws
        self.label = _simkit_conn(ws)
        self.refused = False
        self.heard = asyncio.get_running_loop().time()
        self._heartbeat: asyncio.Task[None] | None = None

    async def messages(self) -> AsyncIterator[str | bytes]:
        """Every message the client sends, until it disconnects; heartbeat answers are
        consumed here (they only prove the page runs). Nothing if the socket was refused."""
        if self.refused:
            return
        errors = self.registry.disconnect_errors
        loop = asyncio.get_running_loop()
        while True:
            try:
                if _is_starlette(self.ws):
                    message = await self.ws.receive()
                    if message["type"] == "websocket.disconnect":
                        return
                    data: str | bytes = message.get("text") or message.get("bytes") or ""
                else:
                    data = await self.ws.recv()
            except errors:
                return
            self.heard = loop.time()
            if data == PONG:
                continue
            yield data

    async def send(self, text: str) -> bool:
        """Send ``text`` within the registry's ``send_timeout``; False if the socket is gone
        or too slow (a slow one is then closed in the background: it is not reading)."""
        return await self.registry.send_to(self, text)


class SafeRegistry:
    """``user -> socket(s)`` under one of :data:`POLICIES`, safe against the reload race.

    ``send_timeout``: seconds a push may wait for a socket before it is given up (and the
    socket closed). ``kick_timeout``: seconds a background close may take before the socket
    is dropped (aborted where the stack allows it). ``heartbeat``: ``(interval, timeout)``
    seconds of the application-level heartbeat, or None (rely on the server's protocol
    pings, e.g. uvicorn's ``--ws-ping-interval``).
    """

    def __init__(
        self,
        policy: str = "kick-old-safe",
        *,
        send_timeout: float = 5.0,
        kick_timeout: float = 5.0,
        heartbeat: tuple[float, float] | None = None,
    ) -> None:
        if policy not in POLICIES:
            raise choice("registry policy", policy, list(POLICIES))
        for name, value in (("send_timeout", send_timeout), ("kick_timeout", kick_timeout)):
            if not (isinstance(value, int | float) and value > 0):
                raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
        if heartbeat is not None and not (
            len(heartbeat) == 2 and all(isinstance(v, int | float) and v > 0 for v in heartbeat)
        ):
            raise ConfigError(
                f"heartbeat must be (interval, timeout) in positive seconds or None, got "
                f"{heartbeat!r}"
            )
        self.policy_name = policy
        self.policy: Registry = POLICIES[policy]()
        self.send_timeout, self.kick_timeout, self.heartbeat = send_timeout, kick_timeout, heartbeat
        self.sockets: dict[int, Connection] = {}
        self.disconnect_errors = _disconnect_errors()
        self.kicks = self.refusals = self.failed_sends = self.reaped = 0
        self._next = 0
        self._background: set[asyncio.Task[None]] = set()

    # -- connections -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def connection(self, user: str, ws: Socket) -> AsyncIterator[Connection]:
        """Register an accepted socket for ``user`` for the duration of the block; on the
        way out (normal end, disconnect, error) forget it only if the entry is still its own."""
        conn = self.register(user, ws)
        try:
            yield conn
        finally:
            self.unregister(conn)

    def register(self, user: str, ws: Socket) -> Connection:
        """Register ``ws`` now; the old socket, if the policy kicks one, closes in the
        background. Prefer :meth:`connection`, which also unregisters."""
        self._next += 1
        conn = Connection(self, self._next, user, ws)
        self.sockets[conn.id] = conn
        now = asyncio.get_running_loop().time()
        for action in self.policy.connect(Hello(conn.id, user), now):
            if isinstance(action, Refuse):
                conn.refused = True
                self.refusals += 1
                self.sockets.pop(conn.id, None)
                self._spawn(self._close(conn, int(action.code), action.reason))
            elif isinstance(action, Close):
                old = self.sockets.get(action.conn)
                if old is not None:
                    self.kicks += 1
                    self._spawn(self._close(old, int(action.code), action.reason))
        if self.heartbeat is not None and not conn.refused:
            conn._heartbeat = self._spawn(self._beat(conn))
        return conn

    def unregister(self, conn: Connection) -> None:
        """The handler of ``conn`` is done: compare-and-delete (the policy's rule)."""
        if conn._heartbeat is not None:
            conn._heartbeat.cancel()
        if self.sockets.pop(conn.id, None) is not None:
            now = asyncio.get_running_loop().time()
            self.policy.disconnect(conn.id, conn.user, now)

    # -- pushes ------------------------------------------------------------------------------

    async def push(self, user: str, text: str) -> int:
        """Send ``text`` to ``user``'s registered socket(s) concurrently; how many took it."""
        actions = self.policy.push(user, 0, asyncio.get_running_loop().time())
        targets = [
            self.sockets[a.conn]
            for a in actions
            if isinstance(a, Deliver) and a.conn in self.sockets
        ]
        results = await asyncio.gather(*(self.send_to(c, text) for c in targets))
        return sum(results)

    async def send_to(self, conn: Connection, text: str) -> bool:
        try:
            async with asyncio.timeout(self.send_timeout):
                if _is_starlette(conn.ws):
                    await conn.ws.send_text(text)
                else:
                    await conn.ws.send(text)
            return True
        except TimeoutError:
            self.failed_sends += 1
            self._spawn(self._close(conn, int(CloseCode.TRY_AGAIN_LATER), "send timed out"))
            return False
        except self.disconnect_errors:
            self.failed_sends += 1
            return False

    def entries(self) -> list[list[str | None]]:
        """``[[user, simkit_conn], ...]``: the stats protocol's answer."""
        return [
            [user, self.sockets[conn].label if conn in self.sockets else None]
            for user, conn in self.policy.entries()
        ]

    def users(self) -> list[str]:
        """Users with at least one registered socket."""
        return sorted({user for user, _ in self.policy.entries()})

    # -- background work ---------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[object, None, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _close(self, conn: Connection, code: int, reason: str) -> None:
        """Close ``conn`` within ``kick_timeout``; then drop it if the stack allows."""
        try:
            async with asyncio.timeout(self.kick_timeout):
                await conn.ws.close(code, reason)
        except TimeoutError:
            transport = getattr(conn.ws, "transport", None)
            if transport is not None:
                transport.abort()
        except self.disconnect_errors:
            pass

    async def _beat(self, conn: Connection) -> None:
        """Ping every ``interval``; close with 1011 when nothing came back in ``timeout``."""
        assert self.heartbeat is not None
        interval, timeout = self.heartbeat
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            sent = loop.time()
            if not await self.send_to(conn, PING):
                return
            await asyncio.sleep(timeout)
            if conn.heard < sent:
                self.reaped += 1
                await self._close(conn, int(CloseCode.KEEPALIVE_TIMEOUT), "heartbeat timeout")
                return

    async def aclose(self) -> None:
        """Cancel background closes and heartbeats (at the app's shutdown)."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)


# -- the stats protocol --------------------------------------------------------------------

Source = SafeRegistry | Callable[[], Iterable[tuple[str, object] | list[object]]]


def _entries(source: Source) -> list[list[str | None]]:
    pairs = source.entries() if isinstance(source, SafeRegistry) else source()
    return [[str(user), None if conn is None else str(conn)] for user, conn in pairs]


def stats_router(source: Source) -> APIRouter:
    """A FastAPI ``APIRouter`` answering ``GET /simkit/registry`` with ``{"entries":
    [[user, simkit_conn], ...]}``: ``app.include_router(stats_router(registry))``.
    ``source`` is a :class:`SafeRegistry` or a function returning (user, simkit_conn)
    pairs (e.g. from a dict of your own)."""
    from fastapi import APIRouter

    router = APIRouter()

    @router.get(STATS_PATH)
    async def simkit_registry() -> dict[str, list[list[str | None]]]:
        return {"entries": _entries(source)}

    return router


Fallback = Callable[
    ["ServerConnection", "Request"], "Response | Coroutine[object, None, Response | None] | None"
]
"""A ``process_request`` of websockets' own (sync or async), for other requests."""


def stats_process_request(
    source: Source, fallback: Fallback | None = None
) -> Callable[[ServerConnection, Request], Awaitable[Response | None]]:
    """A ``process_request`` for ``websockets.asyncio.server.serve`` answering ``GET
    /simkit/registry``; other requests go to ``fallback`` (or on to the handshake)."""

    async def process_request(connection: ServerConnection, request: Request) -> Response | None:
        if urlsplit(request.path).path == STATS_PATH:
            response = connection.respond(200, json.dumps({"entries": _entries(source)}))
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = "application/json"
            return response
        if fallback is None:
            return None
        result = fallback(connection, request)
        return await result if isinstance(result, Coroutine) else result

    return process_request
