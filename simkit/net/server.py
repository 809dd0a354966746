"""``LocalServer``: a real WebSocket server on 127.0.0.1 that applies a strategy.

It is the live runtime's server end and also a thing to poke at by hand: ``GET /`` serves a
page that behaves like the post-mortem's client, ``GET /stats`` answers JSON counts, and
``/ws?user=ID[&session=TOKEN]`` is the WebSocket. The registry policy is the pure model's;
liveness is websockets' own keepalive (``ping_interval``/``ping_timeout``), scaled with the
run. Every connection's handler ends in a ``finally`` that tells the registry, exactly where
the post-mortem's cleanup ran.

Use it in a notebook cell as ``async with LocalServer("postmortem-safe") as server:``.
``LocalServer(strategy, stack="fastapi", ws=...)`` gives the same interface on FastAPI and
uvicorn instead (:mod:`simkit.net.fastapi_stack`); what both stacks share (validation,
limits, counting, the log, the app heartbeat) is in :mod:`simkit.net.common`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import weakref
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from simkit.model.codes import CloseCode
from simkit.model.errors import ConfigError
from simkit.model.strategy import Strategy
from simkit.net.common import (
    EVENT_LOG,
    MAX_MESSAGE,
    MAX_USER_ID,
    OUTSIDE_IDS,
    PING,
    PONG,
    STACKS,
    BaseServer,
    ServerLink,
    check_stack,
    check_user_id,
)
from simkit.net.page import PAGE

__all__ = [
    "EVENT_LOG",
    "MAX_USER_ID",
    "OUTSIDE_IDS",
    "PING",
    "PONG",
    "STACKS",
    "LocalServer",
    "ServerLink",
    "WebsocketsLink",
    "check_user_id",
]

_quiet = logging.getLogger("simkit.live.websockets")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


class WebsocketsLink(ServerLink):
    """A connection on the ``websockets`` server."""

    __slots__ = ()

    async def write(self, text: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(text)

    async def close_socket(self, code: int, reason: str) -> None:
        await self.ws.close(code, reason)

    def abort(self) -> None:
        self.ws.transport.abort()


class LocalServer(BaseServer):
    """A real local WebSocket server applying ``strategy`` (see :class:`BaseServer` for the
    options). ``stack="fastapi"`` (with ``ws=`` one of uvicorn's WebSocket implementations)
    returns a :class:`~simkit.net.fastapi_stack.FastAPIServer` with the same interface."""

    __signature__: ClassVar[inspect.Signature]  # set below from BaseServer's: read by inspect

    def __new__(
        cls,
        strategy: str | Strategy = "postmortem-safe",
        *args: Any,
        stack: str = "websockets",
        ws: str | None = None,
        **kwargs: Any,  # BaseServer's parameters, handed on (see _signature)
    ) -> Any:  # a LocalServer, or a FastAPIServer (which mypy will not let __new__ say)
        stack, ws = check_stack(stack, ws)
        if cls is LocalServer and stack == "fastapi":
            from simkit.net.fastapi_stack import FastAPIServer

            return FastAPIServer(strategy, *args, ws=ws, **kwargs)
        return super().__new__(cls)

    def __init__(
        self,
        strategy: str | Strategy = "postmortem-safe",
        *args: Any,
        stack: str = "websockets",
        ws: str | None = None,
        **kwargs: Any,  # BaseServer's parameters, handed on (see _signature)
    ) -> None:
        super().__init__(strategy, *args, **kwargs)
        self._ws_server: Server | None = None
        # who each handshake claimed to be, from _http to _handle (weak: a handshake that
        # fails after _http leaves nothing behind)
        self._users: weakref.WeakKeyDictionary[ServerConnection, str] = weakref.WeakKeyDictionary()

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self.prepare()
        interval, timeout = self.keepalive()
        self._ws_server = server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._http,
            ping_interval=interval,
            ping_timeout=timeout,
            close_timeout=self.close_timeout * self.scale,
            open_timeout=self.open_timeout,
            max_size=MAX_MESSAGE,
            compression=None,
            logger=_quiet,
        )
        self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close every connection and free the port (also on error and interrupt). Peers
        that do not answer the close within the close timeout are reset."""
        if self._ws_server is None:
            return
        server, self._ws_server = self._ws_server, None
        server.close(close_connections=True)
        try:
            await asyncio.wait_for(
                server.wait_closed(), timeout=self.close_timeout * self.scale + 2
            )
        except TimeoutError:
            for link in list(self.open_links.values()):
                link.abort()
            await asyncio.wait_for(server.wait_closed(), timeout=5)
        finally:
            self.cancel_tasks()

    async def restart(self, downtime: float) -> None:
        """The process dies (every socket reset, no handler cleanup runs, the in-memory
        registry is lost) and comes back on the same port ``downtime`` seconds later."""
        server, self._ws_server = self._ws_server, None
        if server is None:
            raise ConfigError("restart() of a server that is not running: start() it first")
        self.dying = True
        for link in list(self.open_links.values()):
            link.abort()
        server.close(close_connections=False)
        await server.wait_closed()
        self.core.restart()
        self.dying = False
        await asyncio.sleep(downtime)
        await self.start()

    # -- HTTP and WebSocket ----------------------------------------------------------------

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        path = url.path
        if path == "/ws":
            user, problem, status = self.identify(url.query)
            if problem is not None:
                return connection.respond(status, problem + "\n")
            self._users[connection] = user
            return None
        if path == "/stats":
            return _typed(connection.respond(200, self.stats_json()), "application/json")
        if path == "/":
            return _typed(connection.respond(200, PAGE), "text/html; charset=utf-8")
        return connection.respond(404, "not found\n")

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None  # a handler runs only after a handshake
        query = parse_qs(urlsplit(ws.request.path).query)
        user = self._users.pop(ws)
        session = query.get("session", [None])[0]
        refusal = self.over_limit(user)
        if refusal is not None:
            await ws.close(int(CloseCode.TRY_AGAIN_LATER), refusal)
            return
        conn, client = self.conn_id(query)
        link = WebsocketsLink(self, ws, conn, user, session, client)
        heartbeat = self.opened(link)
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    await ws.close(1003, "binary messages are not accepted")
                    break
                if message == PONG:
                    self.pong(link)
        except ConnectionClosed:
            pass
        finally:
            code = _close_code(ws)
            reaped = code == CloseCode.KEEPALIVE_TIMEOUT and ws.protocol.close_rcvd is None
            # websockets runs the handler's cleanup close_timeout after the verdict
            self.closed(link, code, heartbeat, reaped_after=self.close_timeout if reaped else None)


def _close_code(ws: ServerConnection) -> int:
    """The code the story cares about: what was received, else what the server sent."""
    rcvd, sent = ws.protocol.close_rcvd, ws.protocol.close_sent
    if rcvd is not None:
        return rcvd.code
    if sent is not None and sent.code == CloseCode.KEEPALIVE_TIMEOUT:
        return int(CloseCode.KEEPALIVE_TIMEOUT)
    return int(CloseCode.ABNORMAL)


def _typed(response: Response, content_type: str) -> Response:
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = content_type
    return response


def _signature() -> inspect.Signature:
    """``LocalServer(...)``'s real parameters for ``help()`` and editors: BaseServer's, plus
    the stack choice (``__new__`` takes ``*args, **kwargs`` to hand them on unchanged)."""
    base = inspect.signature(BaseServer.__init__)
    params = [p for p in base.parameters.values() if p.name != "self"]
    stack = [
        inspect.Parameter(
            "stack", inspect.Parameter.KEYWORD_ONLY, default="websockets", annotation="str"
        ),
        inspect.Parameter(
            "ws", inspect.Parameter.KEYWORD_ONLY, default=None, annotation="str | None"
        ),
    ]
    positional = [p for p in params if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    keywords = [p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
    return base.replace(parameters=[*positional, *stack, *keywords], return_annotation="None")


LocalServer.__signature__ = _signature()
