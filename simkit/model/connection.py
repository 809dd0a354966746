"""The states of one WebSocket connection, at both ends, as one transition table (h11 style).

Each end of a connection keeps its own state, because each learns of a change at its own
time (a close frame takes one trip to arrive). The **client** end is the socket as the page
sees it (``WebSocket.readyState``): ``connecting`` until the 101 arrives, ``open``,
``closing`` once the page sent its close frame, ``closed`` once the page saw the close (or
dropped the socket). The **server** end is the server's handler: ``none`` before the
handshake reaches it, ``open`` while registered traffic may flow, ``closing`` from the
first close frame (its own or the page's) until the closing handshake ends, ``closed`` when
its cleanup runs.

:data:`TRANSITIONS` is the only place a move is allowed: the networks of every runtime
change a state through :func:`client_step` or :func:`server_step` (:func:`step` takes the
side as an argument), which raise :class:`~simkit.model.errors.
IllegalConnectionTransition` naming the side, state and event (and leaves the state as it
was) for anything else. Events that a network is *told* in any state (a close that arrives
after the socket is gone, say) are filtered by the network before they become events: the
table says what can happen, not what may be ignored. :func:`diagram` prints the table.

The states are :class:`~enum.StrEnum` members whose values are the names the kit always
used, so ``link.client == "open"`` keeps working for code written against strings.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, TypeAlias

from simkit.model.errors import IllegalConnectionTransition, choice

Side = Literal["client", "server"]
SIDES: tuple[Side, ...] = ("client", "server")


class ClientState(StrEnum):
    """The page's socket (``readyState``)."""

    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class ServerState(StrEnum):
    """The server's end of the same connection."""

    NONE = "none"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


# Events. Client: ``open`` (the 101 arrived), ``close`` (the page sends its close frame),
# ``abort`` (the page drops the socket: TCP ends without a close frame), ``closed`` (the page
# sees the socket close: an echo, the server's close, a reset, a refusal). Server: ``accept``
# (the handshake reached the server), ``close`` (the server sends its close frame),
# ``peer_close`` (the page's close frame arrives first), ``closed`` (the closing handshake
# ended, or TCP ended: an abort, a give-up, an idle cut, the process died).
CLIENT_TRANSITIONS: dict[ClientState, dict[str, ClientState]] = {
    ClientState.CONNECTING: {
        "open": ClientState.OPEN,
        "abort": ClientState.CLOSED,
        "closed": ClientState.CLOSED,
    },
    ClientState.OPEN: {
        "close": ClientState.CLOSING,
        "abort": ClientState.CLOSED,
        "closed": ClientState.CLOSED,
    },
    ClientState.CLOSING: {"abort": ClientState.CLOSED, "closed": ClientState.CLOSED},
    ClientState.CLOSED: {},
}
SERVER_TRANSITIONS: dict[ServerState, dict[str, ServerState]] = {
    ServerState.NONE: {"accept": ServerState.OPEN},
    ServerState.OPEN: {
        "close": ServerState.CLOSING,
        "peer_close": ServerState.CLOSING,
        "closed": ServerState.CLOSED,
    },
    ServerState.CLOSING: {"closed": ServerState.CLOSED},
    ServerState.CLOSED: {},
}
# The one table: side -> state -> event -> next state (its two halves above, one per side).
Table: TypeAlias = (
    dict[ClientState, dict[str, ClientState]] | dict[ServerState, dict[str, ServerState]]
)
TRANSITIONS: dict[Side, Table] = {
    "client": CLIENT_TRANSITIONS,
    "server": SERVER_TRANSITIONS,
}


def client_step(state: ClientState, event: str) -> ClientState:
    """The client end's state after ``event``; raises IllegalConnectionTransition (the
    caller's state is unchanged) if the table does not allow it."""
    try:
        return CLIENT_TRANSITIONS[state][event]
    except KeyError:
        raise IllegalConnectionTransition("client", str(state), event) from None


def server_step(state: ServerState, event: str) -> ServerState:
    """The server end's state after ``event``; raises IllegalConnectionTransition (the
    caller's state is unchanged) if the table does not allow it."""
    try:
        return SERVER_TRANSITIONS[state][event]
    except KeyError:
        raise IllegalConnectionTransition("server", str(state), event) from None


def step(side: Side, state: str, event: str) -> ClientState | ServerState:
    """The state of ``side``'s end after ``event`` (see :func:`client_step`); ``state`` may
    be a member or its plain string value. The networks call the side's own function."""
    try:
        if side == "client":
            return client_step(ClientState(state), event)
        if side == "server":
            return server_step(ServerState(state), event)
    except ValueError:  # a string that names no state of this side
        raise IllegalConnectionTransition(side, str(state), event) from None
    raise choice("connection side", side, SIDES)


def events(side: Side) -> tuple[str, ...]:
    """Every event the table knows for ``side``, in the table's order."""
    seen: dict[str, None] = {}
    for row in TRANSITIONS[side].values():
        seen.update(dict.fromkeys(row))
    return tuple(seen)


def diagram() -> str:
    """The table as Graphviz-free text, one ``side: state --event--> state`` per line."""
    return "\n".join(
        f"{side}: {src.value:>10} --{event}--> {dst.value}"
        for side, table in TRANSITIONS.items()
        for src, row in table.items()
        for event, dst in row.items()
    )
