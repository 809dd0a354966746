"""What every real server of the kit shares, whatever its WebSocket stack.

The kit has two real servers: :class:`~simkit.net.server.LocalServer` on ``websockets``'
asyncio API and :class:`~simkit.net.fastapi_stack.FastAPIServer` (FastAPI on uvicorn, the
post-mortem's own stack). They must answer bad input the same way and tell the run's Server
actor the same facts, so everything that is not transport lives here, once: request
validation (:func:`check_user_id`, signed identity), the connection limits (1013), per-user
counting, the event log, the ``/stats`` counts, the application-level heartbeat, pushes and
the bookkeeping of a connection's open and cleanup. A stack subclass supplies only how
sockets are accepted, written, closed and reset.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import parse_qs

import pandas as pd

from simkit.model.codes import CloseCode
from simkit.model.errors import ConfigError, choice
from simkit.model.liveness import Heartbeat, Liveness
from simkit.model.registry import Deliver, Resume
from simkit.model.strategy import Strategy
from simkit.model.strategy import strategy as strategy_of
from simkit.model.tokens import TokenError, TokenSigner
from simkit.runtime.interfaces import Message, TabCallbacks

if TYPE_CHECKING:
    from simkit.actors.server import Server

MAX_USER_ID = 128
MAX_MESSAGE = 2**16  # larger messages close their sender with 1009
EVENT_LOG = 100_000
OUTSIDE_IDS = 1_000_000  # ids for connections that are not one of the run's own tabs

PING, PONG = json.dumps({"t": "ping"}), json.dumps({"t": "pong"})

# Which real servers exist, and for each the WebSocket implementations it can run on (the
# first is its default). uvicorn's three: ``websockets-sansio`` (its default since 0.50),
# ``websockets`` (the legacy protocol, the default before) and ``wsproto``.
STACKS: dict[str, tuple[str, ...]] = {
    "websockets": ("websockets",),
    "fastapi": ("websockets-sansio", "websockets", "wsproto"),
}


def check_stack(stack: str, ws: str | None) -> tuple[str, str]:
    """(stack, ws) validated, ``ws`` defaulted to the stack's own default; a bad name is a
    ConfigError listing the valid ones."""
    if stack not in STACKS:
        raise choice("stack", stack, list(STACKS))
    impls = STACKS[stack]
    if ws is None:
        return stack, impls[0]
    if ws not in impls:
        raise choice(f"ws implementation for stack {stack!r}", ws, list(impls))
    return stack, ws


def check_user_id(value: str | None) -> str | None:
    """Why ``value`` is not an acceptable user id, or None if it is."""
    if value is None or value == "":
        return "missing user id (pass ?user=...)"
    if len(value) > MAX_USER_ID:
        return f"user id too long ({len(value)} > {MAX_USER_ID} characters)"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "user id contains control characters"
    return None


def encode(message: Message) -> str:
    """A server-to-page message as the page and the live network read it."""
    if message[0] == "push":
        body: dict[str, object] = {"t": "push", "id": message[1]}
        if len(message) > 2:
            body["data"] = message[2]
        return json.dumps(body)
    return json.dumps({"t": message[0], "session": message[1]})


class OwnClient(Protocol):
    """The run's own client end of a connection (one of its tabs'), as the server side
    reads it: ground truth for the census, never for the server's decisions."""

    @property
    def id(self) -> int: ...

    @property
    def silent_since(self) -> float | None: ...

    @property
    def tab(self) -> TabCallbacks: ...


class ServerLink:
    """The server's end of one live connection, with the interface the Server actor uses.

    A stack subclass implements :meth:`write` (send one text frame, raising nothing when the
    socket is gone), :meth:`close_socket` (start a close handshake) and :meth:`abort` (reset
    the TCP connection).
    """

    __slots__ = (
        "beat",
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
        owner: BaseServer,
        ws: Any,  # the stack's own socket object (a subclass knows its type)
        conn: int,
        user: str,
        session: str | None,
        client: OwnClient | None,
    ) -> None:
        self.owner, self.ws, self.id, self.user, self.session = owner, ws, conn, user, session
        self.client = client  # the run's own client-side link, when it is one of ours
        self.tab_index = client.tab.index if client is not None else None
        self.closing = False
        self.pending = 0  # sends waiting for the client to read
        self.beat: Heartbeat | None = None  # the application heartbeat's, when it runs one

    @property
    def silent_since(self) -> float | None:
        return self.client.silent_since if self.client is not None else None

    def send(self, message: Message) -> None:
        text = encode(message)
        if self.closing:
            return
        if self.pending >= self.owner.max_queue or self.backlogged():
            # A client that never reads would make the server hold every push for it:
            # memory without bound. Cut it loose. Not with a close frame: it would queue
            # behind the unread data and wait forever; reset the TCP connection instead.
            self.owner.slow_clients += 1
            self.closing = True
            self.abort()
            return
        self.owner.spawn(self._send(text))

    async def _send(self, text: str) -> None:
        self.pending += 1
        try:
            await self.write(text)
        finally:
            self.pending -= 1

    def server_close(self, code: int, reason: str = "") -> None:
        if not self.closing:
            self.closing = True
            self.owner.spawn(self.close_socket(code, reason))

    def server_dies(self) -> None:
        """The server's process died: the socket resets with no close frame (the live
        runtimes kill a node's real server instead, which resets every socket at once)."""
        self.closing = True
        self.abort()

    def backlogged(self) -> bool:
        """Has the stack buffered more for this peer than ``max_queue`` full messages?
        (For stacks whose sends return before the data left, so ``pending`` stays low.)"""
        return False

    async def write(self, text: str) -> None:
        raise NotImplementedError

    async def close_socket(self, code: int, reason: str) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError


class BaseServer:
    """A real local server applying ``strategy``: everything but the WebSocket stack.

    ``scale`` multiplies the liveness and close timeouts (a live run at scale 0.05 pings every
    second instead of every 20 s). ``core`` is the Server actor that owns the registry; when
    None the server builds its own, for use by hand or from a notebook.
    """

    stack = "websockets"
    ws_impl = "websockets"

    def __init__(
        self,
        strategy: str | Strategy = "postmortem-safe",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        scale: float = 1.0,
        close_timeout: float = 10.0,
        core: Any = None,  # a Server actor, a node's NodeCore or a mirror: no Protocol yet
        clients: dict[int, Any] | None = None,  # link id -> the run's client end, shared with
        # (and written by) the run's network: LiveLinks, or the browser's attribution
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
        self._tasks: set[asyncio.Task[None]] = set()
        self._next_id = OUTSIDE_IDS
        self._t0 = 0.0
        self.dying = False
        self.app_rule: Liveness | None = None

    # -- life cycle (a stack implements start, stop and restart) ---------------------------

    async def __aenter__(self) -> BaseServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def restart(self, downtime: float) -> None:
        raise NotImplementedError

    def prepare(self) -> None:
        """What every start does before the stack listens: a core, unguessable resume
        tokens, the application heartbeat's rule and the log's time origin."""
        if self.core is None and self.own_core:
            self.core = _standalone_core(self)
        registry = getattr(self.core, "registry", None)
        if isinstance(registry, Resume):
            # Real servers hand out resume tokens nobody can guess (the virtual runtime's
            # are counters, for reproducibility).
            registry.mint = lambda: secrets.token_urlsafe(18)
        rules = self.strategy.liveness.rules
        self.app_rule = next((r.scaled(self.scale) for r in rules if r.kind == "app"), None)
        self._t0 = time.monotonic()

    def keepalive(self) -> tuple[float | None, float | None]:
        """(ping interval, pong timeout) of the protocol heartbeat, scaled; (None, None)
        when the strategy runs none."""
        rules = self.strategy.liveness.rules
        protocol = next((r for r in rules if r.kind == "protocol"), None)
        if protocol is None or protocol.interval is None or protocol.timeout is None:
            return None, None
        return protocol.interval * self.scale, protocol.timeout * self.scale

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

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def spawn(self, coro: Coroutine[object, None, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()

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

    def stats_json(self) -> str:
        """The body of ``GET /stats``."""
        return json.dumps(self.counts())

    async def until(self, predicate: Callable[[BaseServer], bool], timeout: float = 5.0) -> None:
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

    def elapsed(self) -> float:
        """Seconds since the server started, on the clock of its event log."""
        return time.monotonic() - self._t0

    def event(self, event: str, conn: int, user: str, detail: str = "") -> None:
        self.events.append((round(time.monotonic() - self._t0, 6), event, conn, user, detail))

    # -- requests --------------------------------------------------------------------------

    def identify(self, query: str) -> tuple[str, str | None, int]:
        """(user, problem, HTTP status): who this handshake is, or why it is refused.
        A refusal is counted by its reason."""
        user, problem, status = self._identify(query)
        if problem is not None:
            reason = problem.split(" (")[0]
            self.refused[reason] = self.refused.get(reason, 0) + 1
        return user, problem, status

    def _identify(self, query: str) -> tuple[str, str | None, int]:
        try:
            params = parse_qs(query, errors="strict")
        except UnicodeDecodeError:
            return "", "query string is not valid UTF-8", 400
        claimed = params.get("user", [None])[0]
        if self.signer is None:
            problem = check_user_id(claimed)
            if problem is not None or claimed is None:  # (no user id is itself a problem)
                return claimed or "", problem, 400
            return claimed, None, 200
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

    def over_limit(self, user: str) -> str | None:
        """Why a new connection of ``user`` is refused with 1013, or None."""
        if len(self.open_links) >= self.max_connections:
            return "server full, try again later"
        if self.per_user.get(user, 0) >= self.max_per_user:
            return f"too many connections for this user (limit {self.max_per_user})"
        return None

    def conn_id(self, query: dict[str, list[str]]) -> tuple[int, OwnClient | None]:
        """(connection id, the run's client link or None): a run's own tab passes its link
        id as ``?link=``; anyone else gets an id from a range of its own."""
        client = None
        link_id = query.get("link", [None])[0]
        if link_id is not None and link_id.isdigit():
            client = self.clients.get(int(link_id))
        if client is not None:
            return client.id, client
        self._next_id += 1
        return self._next_id, None

    # -- a connection's life on the server -------------------------------------------------

    def opened(self, link: ServerLink, *, register: bool = True) -> asyncio.Task[None] | None:
        """A handshake completed: count it, log it, tell the core (which registers it,
        unless ``register`` is False: a handler of its own does that), start the app
        heartbeat. Returns the heartbeat's task, if any."""
        user, conn = link.user, link.id
        self.per_user[user] = self.per_user.get(user, 0) + 1
        self.open_links[conn] = link
        self.event("open", conn, user)
        if register:
            self.core.on_open(link)
        else:  # the census learns of the socket; the handler's own dict is its registry
            env = self.core.env
            env.census.server_opened(conn, link.tab_index, user, env.now())
            if env.trace is not None:
                env.log("server-open", conn, user)
        if self.app_rule is None:
            return None
        loop = asyncio.get_running_loop()
        beat = self.app_rule.start(loop.time())
        link.beat = beat
        return loop.create_task(self._app_heartbeat(link, beat))

    def closed(
        self,
        link: ServerLink,
        code: int,
        heartbeat: asyncio.Task[None] | None,
        *,
        reaped_after: float | None = None,
        unregister: bool = True,
    ) -> None:
        """A connection's handler finished (its ``finally``): forget it, log the code the
        handler saw and tell the core. ``reaped_after``: the protocol keepalive declared
        the peer dead that many seconds ago (a detection, counted from the link's silence)."""
        if heartbeat is not None:
            heartbeat.cancel()  # a closing connection is no longer watched
        user, conn = link.user, link.id
        self.open_links.pop(conn, None)
        left = self.per_user[user] - 1
        if left:
            self.per_user[user] = left
        else:
            del self.per_user[user]
        self.event("cleanup", conn, user, str(code))
        census = self.core.env.census
        if reaped_after is not None:
            census.declared_dead(link.silent_since, self.core.env.now() - reaped_after)
        if self.dying or not unregister:
            census.server_closed(conn)
            env = self.core.env
            if not self.dying and env.trace is not None:
                env.log("server-cleanup", conn, user, code)
        else:
            self.core.on_close(link, code)

    def pong(self, link: ServerLink) -> None:
        """The page answered an application ping."""
        if link.beat is not None:
            link.beat.on_pong(asyncio.get_running_loop().time())
            self.core.env.census.count_pongs()

    async def _app_heartbeat(self, link: ServerLink, beat: Heartbeat) -> None:
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


def check_positive(label: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{label} must be a positive number, got {value!r}")
    return float(value)


def _standalone_core(owner: BaseServer) -> Server:
    """A Server actor with its own census, for a server used outside simkit.run."""
    from simkit.actors.env import Env
    from simkit.actors.server import Server
    from simkit.runtime.census import Census
    from simkit.runtime.interfaces import Network

    loop = asyncio.get_running_loop()
    census = Census(one_per_user=owner.strategy.registry().one_per_user)
    # By hand there is no run: the server actor reads only ``open_links`` of its network,
    # which the server has; nobody connects through it, restarts it or finishes it.
    network = cast(Network, owner)
    env = Env(
        loop, owner.strategy, census, network, 0, float("inf"), scale=owner.scale, start=loop.time()
    )
    return Server(env)
