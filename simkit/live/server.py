"""``LocalServer``: a real WebSocket server on 127.0.0.1 that applies a strategy.

It is the live runtime's server end and also a thing to poke at by hand: ``GET /`` serves a
page that behaves like the post-mortem's client, ``GET /stats`` answers JSON counts, and
``/ws?user=ID[&session=TOKEN]`` is the WebSocket. The registry policy is the pure model's;
liveness is websockets' own keepalive (``ping_interval``/``ping_timeout``), scaled with the
run. Every connection's handler ends in a ``finally`` that tells the registry, exactly where
the post-mortem's cleanup ran.

Use it in a notebook cell as ``async with LocalServer("postmortem-safe") as server:``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import deque
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import pandas as pd
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from simkit.live.page import PAGE
from simkit.model.codes import CloseCode
from simkit.model.registry import Deliver, Resume
from simkit.model.strategy import Strategy
from simkit.model.strategy import strategy as strategy_of
from simkit.model.tokens import TokenError, TokenSigner

MAX_USER_ID = 128
EVENT_LOG = 100_000
OUTSIDE_IDS = 1_000_000  # ids for connections that are not one of the run's own tabs

_quiet = logging.getLogger("simkit.live.websockets")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


def check_user_id(value: str | None) -> str | None:
    """Why ``value`` is not an acceptable user id, or None if it is."""
    if value is None or value == "":
        return "missing user id (pass ?user=...)"
    if len(value) > MAX_USER_ID:
        return f"user id too long ({len(value)} > {MAX_USER_ID} characters)"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "user id contains control characters"
    return None


class ServerLink:
    """The server's end of one live connection, with the interface the Server actor uses."""

    __slots__ = (
        "client",
        "closing",
        "id",
        "owner",
        "pending",
        "session",
        "tab_index",
        "user",
        "ws",
    )

    def __init__(
        self,
        owner: LocalServer,
        ws: ServerConnection,
        conn: int,
        user: str,
        session: str | None,
        client: Any,
    ) -> None:
        self.owner, self.ws, self.id, self.user, self.session = owner, ws, conn, user, session
        self.client = client  # the run's own client-side link, when it is one of ours
        self.tab_index = client.tab.index if client is not None else None
        self.closing = False
        self.pending = 0  # sends waiting for the client to read

    @property
    def silent_since(self) -> float | None:
        return self.client.silent_since if self.client is not None else None

    def send(self, message: tuple) -> None:
        if message[0] == "push":
            body = {"t": "push", "id": message[1]}
            if len(message) > 2:
                body["data"] = message[2]
            text = json.dumps(body)
        else:
            text = json.dumps({"t": message[0], "session": message[1]})
        if self.closing:
            return
        if self.pending >= self.owner.max_queue:
            # A client that never reads would make the server hold every push for it:
            # memory without bound. Cut it loose. Not with a close frame: it would queue
            # behind the unread data and wait forever; reset the TCP connection instead.
            self.owner.slow_clients += 1
            self.closing = True
            self.ws.transport.abort()
            return
        self.owner.spawn(self._send(text))

    async def _send(self, text: str) -> None:
        self.pending += 1
        try:
            await self.ws.send(text)
        except ConnectionClosed:
            pass
        finally:
            self.pending -= 1

    def server_close(self, code: int, reason: str = "") -> None:
        if not self.closing:
            self.closing = True
            self.owner.spawn(self.ws.close(code, reason))


class LocalServer:
    """A real local WebSocket server applying ``strategy``.

    ``scale`` multiplies the liveness and close timeouts (a live run at scale 0.05 pings every
    second instead of every 20 s). ``core`` is the Server actor that owns the registry; when
    None the server builds its own, for use by hand or from a notebook.
    """

    def __init__(
        self,
        strategy: str | Strategy = "postmortem-safe",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        scale: float = 1.0,
        close_timeout: float = 10.0,
        core: Any = None,
        clients: dict[int, Any] | None = None,
        own_core: bool = True,
        max_connections: int = 10_000,
        max_per_user: int = 16,
        max_queue: int = 64,
        secret: bytes | None = None,
        open_timeout: float = 10.0,
    ) -> None:
        self.strategy = strategy_of(strategy)
        self.host, self.port = host, port
        self.scale = scale
        self.close_timeout = close_timeout
        self.core = core
        self.own_core = own_core
        self.max_connections = max_connections
        self.max_per_user = max_per_user
        self.max_queue = max_queue
        self.signer = TokenSigner(secret) if secret is not None else None
        self.open_timeout = open_timeout
        self.per_user: dict[str, int] = {}
        self.refused: dict[str, int] = {}
        self.slow_clients = 0
        self._pushes = 0
        self.clients = clients if clients is not None else {}
        self.open_links: dict[int, ServerLink] = {}
        # The most recent events only: a server left running must not grow without bound.
        self.events: deque[tuple[float, str, int, str, str]] = deque(maxlen=EVENT_LOG)
        self._ws_server: Any = None
        self._tasks: set[asyncio.Task] = set()
        self._next_id = OUTSIDE_IDS
        self._t0 = 0.0
        self.dying = False
        self.app_rule: Any = None

    # -- life cycle ------------------------------------------------------------------------

    async def __aenter__(self) -> LocalServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if self.core is None and self.own_core:
            self.core = _standalone_core(self)
        self._unguessable_sessions()
        rules = self.strategy.liveness.rules
        protocol = next((r for r in rules if r.kind == "protocol"), None)
        self.app_rule = next((r.scaled(self.scale) for r in rules if r.kind == "app"), None)
        interval = None if protocol is None else protocol.interval * self.scale  # type: ignore[operator]
        timeout = None if protocol is None else protocol.timeout * self.scale  # type: ignore[operator]
        self._t0 = time.monotonic()
        self._ws_server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._http,
            ping_interval=interval,
            ping_timeout=timeout,
            close_timeout=self.close_timeout * self.scale,
            open_timeout=self.open_timeout,
            max_size=2**16,
            compression=None,
            logger=_quiet,
        )
        self.port = self._ws_server.sockets[0].getsockname()[1]

    def _unguessable_sessions(self) -> None:
        """Real servers hand out resume tokens nobody can guess (the virtual runtime's are
        counters, for reproducibility)."""
        registry = getattr(self.core, "registry", None)
        if isinstance(registry, Resume):
            registry.mint = lambda: secrets.token_urlsafe(18)

    def issue_token(self, user: str, ttl: float = 3600.0) -> str:
        """A signed token for ``user`` (only with ``secret=``): pass it as ``?token=``."""
        if self.signer is None:
            raise ValueError("this server was started without secret=: it issues no tokens")
        return self.signer.issue(user, time.time(), ttl)

    def push(self, user: str, data: str = "") -> list[int]:
        """Push a message (with an optional ``data`` payload) to ``user`` now; returns the
        connections it was sent down."""
        self._pushes += 1
        actions = self.core.registry.push(user, self._pushes, self.core.env.now())
        sent = []
        for action in actions:
            link = self.open_links.get(getattr(action, "conn", -1))
            if isinstance(action, Deliver) and link is not None:
                link.send(("push", action.push, data) if data else ("push", action.push))
                sent.append(action.conn)
        return sent

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
                link.ws.transport.abort()
            await asyncio.wait_for(server.wait_closed(), timeout=5)
        finally:
            for task in list(self._tasks):
                task.cancel()

    async def restart(self, downtime: float) -> None:
        """The process dies (every socket reset, no handler cleanup runs, the in-memory
        registry is lost) and comes back on the same port ``downtime`` seconds later."""
        self.dying = True
        server, self._ws_server = self._ws_server, None
        for link in list(self.open_links.values()):
            link.ws.transport.abort()
        server.close(close_connections=False)
        await server.wait_closed()
        self.core.restart()
        self.dying = False
        await asyncio.sleep(downtime)
        await self.start()

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- what a notebook reads -------------------------------------------------------------

    def registry_snapshot(self) -> dict[str, list[int]]:
        snapshot: dict[str, list[int]] = {}
        for user, conn in self.core.registry.entries():
            snapshot.setdefault(user, []).append(conn)
        return snapshot

    def counts(self) -> dict[str, int]:
        census = self.core.env.census
        return {
            "open_sockets": census.open_sockets,
            "registry_entries": len(self.core.registry.entries()),
            "duplicates": census.duplicates,
            "connects": census.connects,
        }

    async def until(self, predicate: Any, timeout: float = 5.0) -> None:
        """Wait until ``predicate(self)`` holds (a client's ``connect`` returns as soon as
        the handshake is done, a moment before the server's handler has registered it)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self):
            if loop.time() > deadline:
                raise TimeoutError(f"not reached within {timeout} s; counts: {self.counts()}")
            await asyncio.sleep(0.005)

    @property
    def log(self) -> pd.DataFrame:
        return pd.DataFrame(self.events, columns=["t", "event", "conn", "user", "detail"])

    def _event(self, event: str, conn: int, user: str, detail: str = "") -> None:
        self.events.append((round(time.monotonic() - self._t0, 6), event, conn, user, detail))

    async def _app_heartbeat(self, link: ServerLink, beat: Any) -> None:
        """The application-level heartbeat: the page itself must answer, so a frozen page
        (whose browser still answers protocol pings) is found too."""
        loop = asyncio.get_running_loop()
        census = self.core.env.census
        while not link.closing:
            due = beat.deadline()
            if due is None:
                return
            await asyncio.sleep(max(0.0, due - loop.time()))
            verdict = beat.on_timer(loop.time())
            if verdict == "ping":
                census.count_pings()
                await link._send(PING)
            elif verdict == "dead":
                deaf_since = link.client.tab.deaf_since if link.client is not None else None
                census.declared_dead(link.silent_since, self.core.env.now(), "app", deaf_since)
                link.server_close(int(CloseCode.KEEPALIVE_TIMEOUT))
                return

    # -- HTTP and WebSocket ----------------------------------------------------------------

    def _http(self, connection: ServerConnection, request: Any) -> Any:
        url = urlsplit(request.path)
        path = url.path
        if path == "/ws":
            user, problem, status = self._identify(url.query)
            if problem is not None:
                reason = problem.split(" (")[0]
                self.refused[reason] = self.refused.get(reason, 0) + 1
                return connection.respond(status, problem + "\n")
            connection.simkit_user = user  # type: ignore[attr-defined]
            return None
        if path == "/stats":
            return _typed(connection.respond(200, json.dumps(self.counts())), "application/json")
        if path == "/":
            return _typed(connection.respond(200, PAGE), "text/html; charset=utf-8")
        return connection.respond(404, "not found\n")

    def _identify(self, query: str) -> tuple[str, str | None, int]:
        """(user, problem, HTTP status): who this handshake is, or why it is refused."""
        try:
            params = parse_qs(query, errors="strict")
        except UnicodeDecodeError:
            return "", "query string is not valid UTF-8", 400
        claimed = params.get("user", [None])[0]
        if self.signer is None:
            problem = check_user_id(claimed)
            return (claimed or "", problem, 400) if problem else (claimed, None, 200)  # type: ignore[return-value]
        token = params.get("token", [None])[0]
        if token is None:
            return "", "missing token (this server requires ?token=)", 401
        try:
            user = self.signer.verify(token, time.time())
        except TokenError as error:
            return "", f"invalid token: {error}", 403
        if claimed is not None and claimed != user:
            return "", "token was issued to another user", 403
        return user, None, 200

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None  # a handler runs only after a handshake
        query = parse_qs(urlsplit(ws.request.path).query)
        user = ws.simkit_user  # type: ignore[attr-defined]
        session = query.get("session", [None])[0]
        if len(self.open_links) >= self.max_connections:
            await ws.close(int(CloseCode.TRY_AGAIN_LATER), "server full, try again later")
            return
        if self.per_user.get(user, 0) >= self.max_per_user:
            await ws.close(
                int(CloseCode.TRY_AGAIN_LATER),
                f"too many connections for this user (limit {self.max_per_user})",
            )
            return
        self.per_user[user] = self.per_user.get(user, 0) + 1
        client = None
        link_id = query.get("link", [None])[0]
        if link_id is not None and link_id.isdigit():
            client = self.clients.get(int(link_id))
        if client is not None:
            conn = client.id
        else:
            self._next_id += 1
            conn = self._next_id
        link = ServerLink(self, ws, conn, user, session, client)
        self.open_links[conn] = link
        self._event("open", conn, user)
        self.core.on_open(link)
        beat = heartbeat = None
        if self.app_rule is not None:
            beat = self.app_rule.start(asyncio.get_running_loop().time())
            heartbeat = asyncio.get_running_loop().create_task(self._app_heartbeat(link, beat))
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    await ws.close(1003, "binary messages are not accepted")
                    break
                if beat is not None and message == PONG:
                    beat.on_pong(asyncio.get_running_loop().time())
                    self.core.env.census.count_pongs()
        except ConnectionClosed:
            pass
        finally:
            if heartbeat is not None:
                heartbeat.cancel()  # a closing connection is no longer watched
            self.open_links.pop(conn, None)
            left = self.per_user[user] - 1
            if left:
                self.per_user[user] = left
            else:
                del self.per_user[user]
            code = _close_code(ws)
            self._event("cleanup", conn, user, str(code))
            if code == CloseCode.KEEPALIVE_TIMEOUT and ws.protocol.close_rcvd is None:
                census = self.core.env.census
                since = link.silent_since
                # websockets runs the handler's cleanup close_timeout after the verdict
                census.declared_dead(since, self.core.env.now() - self.close_timeout)
            if self.dying:
                self.core.env.census.server_closed(conn)
            else:
                self.core.on_close(link, code)


PING, PONG = json.dumps({"t": "ping"}), json.dumps({"t": "pong"})


def _close_code(ws: ServerConnection) -> int:
    """The code the story cares about: what was received, else what the server sent."""
    rcvd, sent = ws.protocol.close_rcvd, ws.protocol.close_sent
    if rcvd is not None:
        return rcvd.code
    if sent is not None and sent.code == CloseCode.KEEPALIVE_TIMEOUT:
        return int(CloseCode.KEEPALIVE_TIMEOUT)
    return int(CloseCode.ABNORMAL)


def _typed(response: Any, content_type: str) -> Any:
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = content_type
    return response


def _standalone_core(owner: LocalServer) -> Any:
    """A Server actor with its own census, for a LocalServer used outside simkit.run."""
    from simkit.actors.env import Env
    from simkit.actors.server import Server
    from simkit.runtime.census import Census
    from simkit.runtime.interfaces import Network

    loop = asyncio.get_running_loop()
    census = Census(one_per_user=owner.strategy.registry().one_per_user)
    # By hand there is no run: the server actor reads only ``open_links`` of its network,
    # which the LocalServer has; nobody connects through it, restarts it or finishes it.
    network = cast(Network, owner)
    env = Env(
        loop, owner.strategy, census, network, 0, float("inf"), scale=owner.scale, start=loop.time()
    )
    return Server(env)
