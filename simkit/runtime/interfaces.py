"""The contract between the actors and a runtime, written down and used as types.

A runtime decides how time passes and how bytes move; the actors (tabs, the server) must
not know which one they run on. They meet a runtime only through the objects declared here,
as trio's streams meet their transports through ``trio.abc``: a :class:`Network` that opens
connections for tabs and tells the server actor about them, and the two ends of each
connection, :class:`ClientEnd` (what a tab holds) and :class:`ServerEnd` (what the server
actor holds). The virtual runtime implements them in memory (``simkit.virtual.network``),
the real-time runtimes over real sockets (``simkit.net.network``), the browser runtime with
real Chromium pages (``simkit.browser``). Every signature that takes one of these names
the Protocol, not ``Any``, so mypy holds each implementation to the contract.

Callbacks go the other way: a network calls ``tab.on_open(end)``, ``tab.on_message(end,
message)``, ``tab.on_close(end, code)`` and ``tab.answers(end, kind)`` on the tab actor
(:class:`TabCallbacks`), and ``server.on_open(end)`` / ``server.on_close(end, code)`` on
the server actor (:class:`ServerCallbacks`).

Above the network, the run core and the scenarios meet two more roles: the
:class:`ServerActor` (what the run observes and pushes through: one node's ``Server`` or
several nodes' ``Cluster``), with a read-only :class:`RegistryView` of where pushes would
go, and the :class:`TabActor` (the verbs a scenario's script calls: the modelled ``Tab``
and the browser runtime's real page alike).

Conformance: :func:`simkit.conformance.check_network` drives the two ends of a link
directly on any network (codes both ways, abort, silence and restore, the order of the
server's messages; the other direction carries no messages here, so only its handshake
before its close), and :func:`simkit.conformance.check` plays scripted runs on any runtime.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from simkit.model.cluster import Entry
from simkit.model.connection import ClientState

Message = tuple[object, ...]  # ("push", id) | ("welcome", session) | ("push", id, data)


class Clock(Protocol):
    """Scenario time, as the run's ``Env`` tells it."""

    def now(self) -> float:
        """Seconds of scenario time since the run started."""


@runtime_checkable
class ClientEnd(Protocol):
    """A tab's end of one WebSocket.

    Drive it as a page drives ``new WebSocket(url)``: it starts ``connecting``; the network
    calls the tab's ``on_open`` when the opening handshake completes, ``on_close(code)`` when
    the socket is closed for the page (1006 when no close frame came). After ``close`` no
    message is delivered to the tab from this end (its ``on_close`` still comes, with the
    code of the closing handshake); after ``abort`` or ``on_close``, nothing at all. None
    of these methods raises on an end that is already closing or closed.
    """

    id: int  # unique in the run; the server's end of the same connection has the same id
    silent_since: float | None  # scenario time its path went silent, or None

    @property
    def client(self) -> ClientState:
        """``connecting``, ``open``, ``closing`` or ``closed``, as the page sees it: a
        :class:`~simkit.model.connection.ClientState`, which compares equal to those strings,
        moved only along that module's table."""

    def close(self, code: int) -> None:
        """The page calls ``ws.close(code)``: a closing handshake (an abort while connecting)."""

    def browser_close(self, code: int) -> None:
        """The browser closes the socket of a page that is gone (1001), as Chromium does."""

    def abort(self) -> None:
        """TCP ends with no close frame (the browser's network service died): the server
        sees 1006 when it notices."""

    def silence(self) -> None:
        """The path goes silent both ways (half-open): nobody is told."""

    def restore(self) -> None:
        """The network is back on a new path: the page sees this socket fail (1006); the
        server's end stays half-open until its heartbeat reaps it."""


@runtime_checkable
class ServerEnd(Protocol):
    """The server's end of one WebSocket, as the server actor sees it."""

    id: int
    user: str
    session: str | None

    @property
    def tab_index(self) -> int | None:
        """The run's tab on the other end (None: a client that is not one of the run's)."""

    @property
    def silent_since(self) -> float | None:
        """When the path to the client went silent (ground truth, not the server's view)."""

    def send(self, message: Message) -> None:
        """Queue a message to the client; never blocks, never raises for a dead peer."""

    def server_close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake with ``code``; the server actor's ``on_close`` runs
        when the connection's handler finishes (which may be much later)."""

    def server_dies(self) -> None:
        """The server's process died (a node killed): the socket resets with no close frame
        and no handler runs; the client sees 1006 when it notices."""


class TabCallbacks(Protocol):
    """What a network calls on the tab that owns a :class:`ClientEnd`."""

    index: int

    @property
    def net_rng(self) -> random.Random:
        """The tab's own stream for what the network draws for it (latency, jitter)."""

    @property
    def deaf_since(self) -> float | None:
        """Since when the page runs no code (frozen, in the back/forward cache), or None:
        a detection of such a page is counted against the time it went deaf."""

    def on_open(self, end: ClientEnd) -> None: ...

    def on_message(self, end: ClientEnd, message: Message) -> None: ...

    def on_close(self, end: ClientEnd, code: int) -> None: ...

    def answers(self, end: ClientEnd, kind: str) -> bool:
        """Would this page answer a heartbeat of ``kind`` ("protocol" or "app") now?"""


class ServerCallbacks(Protocol):
    """What a network calls on the server actor."""

    def on_open(self, end: ServerEnd) -> None: ...

    def on_close(self, end: ServerEnd, code: int) -> None: ...

    def restart(self) -> None: ...


class Network(Protocol):
    """How connections are made and where the server actor hears of them.

    The run core calls :meth:`attach` once the server actor exists, before any tab runs.
    ``open_links`` maps connection id -> server end for every connection whose server side
    is open (the server actor sends through it). ``connect`` takes the tab actor (a
    :class:`TabCallbacks`: its callbacks, and its own random stream for what the network
    draws, e.g. latency).
    """

    @property
    def server(self) -> ServerActor:
        """The run's server side, once :meth:`attach` has bound it."""

    def attach(self, clock: Clock, server: ServerActor) -> None:
        """Bind the run's clock (scenario time) and server side, once, before any tab runs."""

    @property
    def open_links(self) -> Mapping[int, ServerEnd]: ...

    def connect(self, tab: TabCallbacks, user: str, session: str | None) -> ClientEnd:
        """Open a WebSocket for ``tab`` claiming ``user`` (and a resume ``session``)."""

    def restart_server(self, downtime: float) -> None:
        """The server process dies (every socket drops, the registry is lost) and refuses
        connections for ``downtime`` scenario seconds."""

    def finish(self) -> None:
        """The run's last instant: settle whatever the network kept implicit (e.g. the
        virtual runtime's coasting heartbeats)."""


class RegistryView(Protocol):
    """What the census and the observer may read of a registry: where a push to a user
    would go. Never changes it (a registry changes only through its own policy's events)."""

    def route(self, user: str) -> tuple[int, ...]:
        """The connections a push to ``user`` goes to now."""

    def entries(self) -> list[tuple[str, int]]:
        """Every ``(user, connection)`` the registry would route to."""

    def routes_to(self, user: str, conn: int) -> bool:
        """Would a push to ``user`` reach connection ``conn``?"""

    def audit(self, is_open: Callable[[int], bool]) -> tuple[int, int]:
        """``(entries, dangling)``: how many entries, and how many point at a connection
        that ``is_open`` says is closed."""


class ServerActor(ServerCallbacks, Protocol):
    """The server side a run observes and pushes through: one node (``Server``) or several
    behind a balancer (``Cluster``), or a mirror of a server the kit did not write."""

    @property
    def registry(self) -> RegistryView: ...

    @property
    def restarts(self) -> int:
        """How many times the server process restarted during the run."""

    @property
    def pending(self) -> Mapping[int, int]:
        """Buffered push -> how many resume buffers hold it."""

    def push(self, person: str, push: int) -> None:
        """Push ``push`` to ``person``; its fate is counted in the census."""

    def waiting_on(self, conn: int) -> list[int]:
        """The connections whose handlers are blocked awaiting ``conn``'s close (on a
        server whose ``close()`` waits for the closing handshake), in the order they began
        waiting."""

    def close_returned(self, conn: int, user: str) -> None:
        """Connection ``conn``'s handler (serving ``user``) returns from awaiting a close:
        the registry policy decides what it does next, and the server carries it out."""

    def on_sample(self, t: float) -> None:
        """The observer took the sample at ``t`` (a cluster records its per-node numbers)."""

    def summary(self) -> dict[str, object]:
        """What this server side adds to the run's summary."""


class TabActor(Protocol):
    """The verbs a scenario's script calls on a tab: what a user or the browser does.

    ``simkit.actors.tab.Tab`` plays them on the model; ``simkit.browser.tab.BrowserTab`` on
    a real Chromium page. Verbs return at once; only ``reload`` and ``sleep`` are awaited.
    (The network's callbacks, :class:`TabCallbacks`, are not part of it: a real page's
    JavaScript answers its own socket.)
    """

    index: int
    person: str
    work_rng: random.Random  # the script's own random stream

    @property
    def now(self) -> float:
        """Scenario time in seconds."""

    def sleep(self, seconds: float) -> Awaitable[None]: ...

    def load(self, *, strict_mode: bool = False) -> None: ...

    async def reload(
        self, downtime: float, *, vanish: bool = False, strict_mode: bool = False
    ) -> None: ...

    def unload(self, *, vanish: bool = False, page_close: bool = False) -> None:
        """The page goes away with no new load (``vanish``: its path died silently first)."""

    def close(self) -> None: ...

    def crash(self) -> None: ...

    def process_dies(self) -> None: ...

    def hide(self) -> None: ...

    def show(self) -> None: ...

    def freeze(self) -> None: ...

    def resume(self) -> None: ...

    def enter_bfcache(self) -> None: ...

    def restore(self) -> None: ...

    def evict(self) -> None: ...

    def duplicate(self, index: int) -> TabActor: ...

    def lose_network(self) -> None: ...

    def regain_network(self) -> None: ...


class SharedStore(Protocol):
    """What several nodes share (their registry entries, pub/sub between them): the
    virtual runtime's ``VirtualStore`` on the run's clock, or a real Redis
    (``simkit.net.redis.RedisStore``). Commands are asynchronous: ``done`` is called on the
    node with the result, or with ``FAILED`` when the store could not be reached."""

    @property
    def ops(self) -> int:
        """Commands run so far."""

    on_expired: Callable[[str], None]  # the cluster is told when a user's entry expires

    def submit(
        self, node: int, op: str, args: tuple[object, ...], done: Callable[[Any], None]
    ) -> None:
        """Run command ``op`` (open, close, get, refresh) for ``node``. (``done`` takes
        the result of ``op``, whose type depends on ``op``: a Callable cannot say which, so
        its argument is ``Any`` and each caller's callback names the type its op gives.)"""

    def relay(self, src: int, dst: int, fn: Callable[..., None], *args: object) -> bool:
        """Publish to node ``dst`` (pub/sub); False when the message is lost at once."""

    def entries(self) -> Mapping[str, Entry]:
        """What the store holds now (read by the census, not counted as commands)."""

    def down_for(self, seconds: float) -> None:
        """The store stops answering for ``seconds`` scenario seconds."""
