"""The contract between the actors and a runtime, written down.

A runtime decides how time passes and how bytes move; the actors (tabs, the server) must
not know which one they run on. They meet a runtime only through the objects declared here,
as trio's streams meet their transports through ``trio.abc``: a :class:`Network` that opens
connections for tabs and tells the server actor about them, and the two ends of each
connection, :class:`ClientEnd` (what a tab holds) and :class:`ServerEnd` (what the server
actor holds). The virtual runtime implements them in memory (``simkit.virtual.network``),
the live runtime over real sockets (``simkit.live``), the browser runtime with real
Chromium pages (``simkit.browser``). ``tests/test_conformance.py`` holds every
implementation to the same behaviour (close codes both ways, who closed, a silent link, a
reset, a server restart, order in each direction, the census's view of each).

Callbacks go the other way: a network calls ``tab.on_open(end)``, ``tab.on_message(end,
message)``, ``tab.on_close(end, code)`` and ``tab.answers(end, kind)`` on the tab actor
(:class:`TabCallbacks`), and ``server.on_open(end)`` / ``server.on_close(end, code)`` on
the server actor (:class:`ServerCallbacks`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from simkit.model.connection import ClientState

Message = tuple[object, ...]  # ("push", id) | ("welcome", session) | ("push", id, data)


@runtime_checkable
class ClientEnd(Protocol):
    """A tab's end of one WebSocket.

    Drive it as a page drives ``new WebSocket(url)``: it starts ``connecting``; the network
    calls the tab's ``on_open`` when the opening handshake completes, ``on_close(code)`` when
    the socket is closed for the page (1006 when no close frame came). After ``close``,
    ``abort`` or ``on_close``, nothing more is delivered to the tab from this end.
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


class TabCallbacks(Protocol):
    """What a network calls on the tab that owns a :class:`ClientEnd`."""

    index: int

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

    ``server`` (a :class:`ServerCallbacks`, the server actor) is set by the run core once
    the server actor exists, before any tab runs. ``open_links`` maps connection id ->
    server end for every connection whose server side is open (the server actor sends
    through it). ``connect`` takes the tab actor (a :class:`TabCallbacks`; a network may use
    more of it, e.g. the virtual network draws latency from the tab's own random stream).
    """

    server: Any

    @property
    def open_links(self) -> Mapping[int, ServerEnd]: ...

    def connect(self, tab: Any, user: str, session: str | None) -> ClientEnd:
        """Open a WebSocket for ``tab`` claiming ``user`` (and a resume ``session``)."""

    def restart_server(self, downtime: float) -> None:
        """The server process dies (every socket drops, the registry is lost) and refuses
        connections for ``downtime`` scenario seconds."""

    def finish(self) -> None:
        """The run's last instant: settle whatever the network kept implicit (e.g. the
        virtual runtime's coasting heartbeats)."""
