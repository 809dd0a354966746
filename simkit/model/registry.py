"""Registry policies: the server's map from user to connection(s), as sans-I/O objects.

Drive a policy like this: when a handshake completes call :meth:`Registry.connect`; when a
connection's handler finishes (the socket is closed, for whatever reason) call
:meth:`Registry.disconnect` with the user that handler was serving; to push to a user call
:meth:`Registry.push`; when :meth:`Registry.deadline` is due call :meth:`Registry.expire`.
Each returns a list of actions (close this connection, deliver to that one, ...). The
policy never does I/O and never reads a clock: the caller carries out the actions and passes
``now`` in. That is what lets the same object run in virtual time, over real sockets, and
under hypothesis, which throws arbitrary event orders at it.

Connections are plain ``int`` ids handed out by the caller in increasing order; users are
strings. Every container here is a ``dict`` (insertion-ordered), never a ``set``, so that the
order of actions does not depend on hashing and runs are reproducible.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar

from simkit.model.codes import CloseCode

# --- events in ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """A completed handshake: connection ``conn`` claims ``user``, maybe resuming ``session``."""

    conn: int
    user: str
    session: str | None = None


# --- actions out --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Close:
    """Close connection ``conn`` (an existing one) with ``code``."""

    conn: int
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Refuse:
    """Refuse the connection that just arrived: close it at once, it was never registered."""

    conn: int
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Deliver:
    """Send push ``push`` down connection ``conn``."""

    conn: int
    push: int


@dataclass(frozen=True, slots=True)
class NoRoute:
    """The registry knows no connection for ``user``: push ``push`` goes nowhere."""

    user: str
    push: int


@dataclass(frozen=True, slots=True)
class Buffered:
    """Push ``push`` is held for a detached session of ``user`` (resume policy)."""

    user: str
    push: int


@dataclass(frozen=True, slots=True)
class Dropped:
    """Push ``push`` could not even be buffered (the session's buffer is full)."""

    user: str
    push: int
    reason: str


@dataclass(frozen=True, slots=True)
class Welcome:
    """Tell ``conn`` its session token; ``replay`` are buffered pushes to send first."""

    conn: int
    session: str
    resumed: bool
    replay: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Expired:
    """A detached session (or any entry kept for a time) of ``user`` reached the end of its
    grace period: the census re-counts the user's entries (``expire`` is no connection's
    event, so nothing else tells it), and the pushes buffered for it (``lost``) are lost."""

    user: str
    session: str
    lost: tuple[int, ...]


Action = Close | Refuse | Deliver | NoRoute | Buffered | Dropped | Welcome | Expired


# --- policies -----------------------------------------------------------------------------

_NOBODY_WAITS: Mapping[int, int] = MappingProxyType({})


class Registry:
    """Base class of every registry policy; subclass it to score a design of your own.

    A subclass sets ``name``, ``summary`` (one line for ``python -m simkit list``) and
    ``one_per_user`` (whether the design means one connection per user: the ``duplicates``
    metric counts users with more than one open socket only then), and implements
    ``connect``, ``disconnect``, ``route`` and ``entries``.
    """

    name: ClassVar[str] = "custom"
    summary: ClassVar[str] = ""
    # A class's default, which a view standing for several policies sets per instance.
    one_per_user: bool = True

    def connect(self, hello: Hello, now: float) -> list[Action]:
        raise NotImplementedError

    def disconnect(self, conn: int, user: str, now: float) -> list[Action]:
        raise NotImplementedError

    def route(self, user: str) -> tuple[int, ...]:
        """The connections a push to ``user`` goes down right now: the user's pairs of
        :meth:`entries` (the census re-counts a changed user's entries through this)."""
        raise NotImplementedError

    def entries(self) -> list[tuple[str, int]]:
        """Every (user, connection) pair the registry would route to, in a stable order."""
        raise NotImplementedError

    def routes_to(self, user: str, conn: int) -> bool:
        """Does a push to ``user`` go down ``conn``? (Override for speed; the observer asks
        this for every connected tab on every sample.)"""
        return conn in self.route(user)

    def audit(self, is_open: Callable[[int], bool]) -> tuple[int, int]:
        """(entries, dangling): how many entries there are, and how many point at a
        connection for which ``is_open`` is false. (Override for speed.)"""
        entries = self.entries()
        return len(entries), sum(1 for _, conn in entries if not is_open(conn))

    def push(self, user: str, push: int, now: float) -> list[Action]:
        conns = self.route(user)
        if not conns:
            return [NoRoute(user, push)]
        return [Deliver(conn, push) for conn in conns]

    def deadline(self) -> float | None:
        """When :meth:`expire` must next be called, or None when nothing is pending."""
        return None

    def expire(self, now: float) -> list[Action]:
        return []

    def awaiting(self) -> Mapping[int, int]:
        """Handlers blocked in ``await old.close()``: waiting connection -> the connection
        whose close it awaits, in the order they began waiting (read-only).

        A policy whose :class:`Close` actions a handler awaits (a server whose ``close()``
        waits for the closing handshake) reports them here; once a connection's close has
        returned, the caller calls :meth:`resumed` for each connection that waited on it.
        The default: no handler ever waits."""
        return _NOBODY_WAITS

    def resumed(self, conn: int, user: str, now: float) -> list[Action]:
        """Connection ``conn``'s handler (serving ``user``) returns from awaiting a close it
        was listed for in :meth:`awaiting`. The default: nothing to do."""
        return []


class _OneEntry(Registry):
    """Shared plumbing of the one-connection-per-user policies: ``dict[user, conn]``."""

    def __init__(self) -> None:
        self.map: dict[str, int] = {}

    def route(self, user: str) -> tuple[int, ...]:
        conn = self.map.get(user)
        return () if conn is None else (conn,)

    def entries(self) -> list[tuple[str, int]]:
        return list(self.map.items())

    def routes_to(self, user: str, conn: int) -> bool:
        return self.map.get(user) == conn

    def audit(self, is_open: Callable[[int], bool]) -> tuple[int, int]:
        conns = self.map.values()
        return len(conns), sum(1 for conn in conns if not is_open(conn))

    def _forget_blindly(self, user: str) -> None:
        # `del registry[user_id]`: the handler knows only its user, not whether the entry
        # still points at its own connection. (pop, not del: a KeyError would only crash
        # the handler, the entry would be gone all the same.)
        self.map.pop(user, None)

    def _forget_if_mine(self, conn: int, user: str) -> None:
        if self.map.get(user) == conn:
            del self.map[user]


class Naive(_OneEntry):
    """``registry[user] = conn`` on connect, ``del registry[user]`` on disconnect.

    The original state of the post-mortem's server. The old connection of a reloading tab is
    never closed by the server, so until its close arrives (or forever, if it never does)
    there are two sockets for one user and only the newest is reachable; and when the old
    socket's close arrives after the new page registered, the blind delete removes the *new*
    entry: a live tab that no push can reach.
    """

    name = "naive"
    summary = "registry[user] = conn; never closes the old one; del registry[user] on disconnect"

    def connect(self, hello: Hello, now: float) -> list[Action]:
        self.map[hello.user] = hello.conn
        return []

    def disconnect(self, conn: int, user: str, now: float) -> list[Action]:
        self._forget_blindly(user)
        return []


class KickOld(_OneEntry):
    """Close the user's existing connection, then register the new one; blind delete.

    The post-mortem's fixes 4 and 5 as shipped. Kicking ends the duplicates, but the kicked
    connection's handler finishes *after* the new one registered and its
    ``del registry[user]`` removes the new entry. It also trusts the user id the client
    sends, so anyone who knows an id can kick its owner off; two tabs of one user kick
    each other.
    """

    name = "kick-old"
    summary = "close the user's old connection, then register; unconditional del on disconnect"

    def connect(self, hello: Hello, now: float) -> list[Action]:
        old = self.map.get(hello.user)
        self.map[hello.user] = hello.conn
        if old is None or old == hello.conn:
            return []
        return [Close(old, CloseCode.REPLACED, "replaced by a newer connection")]

    def disconnect(self, conn: int, user: str, now: float) -> list[Action]:
        self._forget_blindly(user)
        return []


class KickOldSafe(KickOld):
    """kick-old with compare-and-delete: a handler removes the entry only if it is its own.

    The fix a large push gateway shipped for exactly this race. What remains is kick-old's
    trust in the client's id (two tabs of one user still fight) and the need for a
    heartbeat to reap connections whose close never arrives.
    """

    name = "kick-old-safe"
    summary = "kick-old + compare-and-delete: remove the entry only if it is still this connection"

    def disconnect(self, conn: int, user: str, now: float) -> list[Action]:
        self._forget_if_mine(conn, user)
        return []


class CloseDeleteRegister(_OneEntry):
    """The post-mortem's handler as written: close the old socket, delete, then register.

    ``if user_id in conns: try: await old.close() finally: del conns[user_id]``, then
    ``conns[user_id] = websocket``; on ``WebSocketDisconnect`` (and on any other exception)
    ``if user_id in conns: del conns[user_id]``, blind. It closes with 1000 (Starlette's
    default), not kick-old's 4000. As a pure policy the close returns at once, which is
    what uvicorn's ``websockets-sansio`` and ``wsproto`` implementations do: the old
    handler's blind delete then always removes the new entry. On the FastAPI server this
    registry's ``map`` is the handler's own ``conns`` dict, written by the handler itself.
    """

    name = "close-delete-register"
    summary = (
        "the post-mortem's handler: close the old socket (1000), del, register; "
        "blind del on disconnect"
    )

    def connect(self, hello: Hello, now: float) -> list[Action]:
        old = self.map.get(hello.user)
        actions: list[Action] = []
        if old is not None and old != hello.conn:
            actions.append(Close(old, CloseCode.NORMAL, ""))
            del self.map[hello.user]
        self.map[hello.user] = hello.conn
        return actions

    def disconnect(self, conn: int, user: str, now: float) -> list[Action]:
        self._forget_blindly(user)
        return []


class CloseAwaitRegister(_OneEntry):
    """The post-mortem's handler where ``await old.close()`` waits for the closing handshake
    (uvicorn's legacy ``websockets`` implementation), with its exception path.

    The new connection's handler closes the old one and is blocked in ``close()`` until the
    old connection is closed: meanwhile the new socket is open and not registered (a
    half-open old socket blocks it for the close timeouts). When ``close()`` returns the
    caller calls :meth:`resumed`: ``finally: del conns[user_id]``, then
    ``conns[user_id] = websocket``. The old handler's ``WebSocketDisconnect`` branch
    (:meth:`disconnect`) deletes blindly. Both wake when the old connection ends, in either
    order: if the old handler runs first, the new handler's ``del`` raises ``KeyError`` and
    its ``except Exception`` closes the NEW socket (1000): the self-kill; if the new handler
    runs first, the old one deletes the new entry: the strand. Measured: the old page's own
    close in flight gives the first order, the server's close the second
    (``simkit/calibration_fastapi.json``). ``blocked`` maps each waiting connection to the
    one it waits on (what :meth:`awaiting` reports); :func:`simkit.model.explore.
    counterexample` finds both flaws.
    """

    name = "close-await-register"
    summary = (
        "the post-mortem's handler where close() waits for the handshake (uvicorn legacy): "
        "registration blocked meanwhile; self-kill or strand after"
    )

    def __init__(self) -> None:
        super().__init__()
        self.blocked: dict[int, int] = {}  # new connection -> the old one its close awaits

    def connect(self, hello: Hello, now: float) -> list[Action]:
        old = self.map.get(hello.user)
        if old is None or old == hello.conn:
            self.map[hello.user] = hello.conn
            return []
        self.blocked[hello.conn] = old
        return [Close(old, CloseCode.NORMAL, "")]

    def awaiting(self) -> Mapping[int, int]:
        return MappingProxyType(self.blocked)

    def resumed(self, conn: int, user: str, now: float) -> list[Action]:
        """Connection ``conn``'s handler returns from ``await old.close()``."""
        if self.blocked.pop(conn, None) is None:
            return []
        if user not in self.map:  # `del conns[user_id]` raises KeyError: except Exception
            return [Close(conn, CloseCode.NORMAL, "")]
        del self.map[user]
        self.map[user] = conn
        return []

    def disconnect(self, conn: int, user: str, now: float) -> list[Action]:
        if self.blocked.pop(conn, None) is not None:
            return []  # its handler is still inside close(): it never registered
        self._forget_blindly(user)
        return []


class RejectNew(_OneEntry):
    """First connection wins; a second one for the same user is refused.

    Common when a team wants "one session per user" without kicking. It fails when the
    first connection is half-open (a phone that lost its network): the owner's new
    connections are refused until the heartbeat reaps the dead one, so the user is locked
    out for up to interval + timeout.
    """

    name = "reject-new"
    summary = "first connection wins; a second one for the user is refused until the first ends"

    def connect(self, hello: Hello, now: float) -> list[Action]:
        owner = self.map.get(hello.user)
        if owner is not None and owner != hello.conn:
            return [Refuse(hello.conn, CloseCode.REFUSED, "user already connected")]
        self.map[hello.user] = hello.conn
        return []

    def disconnect(self, conn: int, user: str, now: float) -> list[Action]:
        self._forget_if_mine(conn, user)
        return []


class Multi(Registry):
    """user -> every open connection of that user; a push goes to all of them.

    What multi-tab products need (presence is "count > 0"). Nothing is kicked, so stale
    sockets of reloaded or vanished tabs stay in the set, receive pushes and count as
    present until their close arrives or the heartbeat reaps them: it needs a heartbeat.
    """

    name = "multi"
    summary = "user -> set of connections; pushes go to all; presence by count"
    one_per_user = False

    def __init__(self) -> None:
        self.map: dict[str, dict[int, None]] = {}

    def connect(self, hello: Hello, now: float) -> list[Action]:
        self.map.setdefault(hello.user, {})[hello.conn] = None
        return []

    def disconnect(self, conn: int, user: str, now: float) -> list[Action]:
        conns = self.map.get(user)
        if conns is not None:
            conns.pop(conn, None)
            if not conns:
                del self.map[user]
        return []

    def route(self, user: str) -> tuple[int, ...]:
        return tuple(self.map.get(user, ()))

    def entries(self) -> list[tuple[str, int]]:
        return [(user, conn) for user, conns in self.map.items() for conn in conns]

    def routes_to(self, user: str, conn: int) -> bool:
        return conn in self.map.get(user, ())


@dataclass(slots=True)
class Session:
    """One resumable session (one tab): attached to a connection, or detached since a time."""

    token: str
    user: str
    conn: int | None
    detached_at: float = 0.0
    buffer: list[int] = field(default_factory=list)
    overflowed: bool = False


def counter_tokens(prefix: str = "s") -> Callable[[], str]:
    """Deterministic session tokens for the virtual runtime ("s1", "s2", ...).

    Real servers must use unguessable tokens (``secrets.token_urlsafe``); pass one as
    ``mint`` to :class:`Resume`.
    """
    n = 0

    def mint() -> str:
        nonlocal n
        n += 1
        return f"{prefix}{n}"

    return mint


class Resume(Registry):
    """Resumable sessions: a tab keeps a token across reconnects and gets missed pushes.

    Modelled on Socket.IO's connection state recovery: every connection gets (or presents)
    a session token; a push to the user goes to each of the user's sessions; when a
    session's connection ends, the session is kept for ``grace`` seconds and pushes are
    buffered (at most ``buffer`` of them). A reconnect that presents the token in time gets
    the buffered pushes replayed. It fails, and is counted, when the grace has passed or the
    buffer overflowed; then the tab starts a new session and the buffered pushes are lost.
    Reloading tabs that never come back keep their session until the grace ends, so the
    server pays memory for every vanished tab for ``grace`` seconds.
    """

    name = "resume"
    summary = "sessions survive reconnects for a grace period; missed pushes are replayed"
    one_per_user = False

    def __init__(
        self, grace: float = 120.0, buffer: int = 100, mint: Callable[[], str] | None = None
    ) -> None:
        if grace < 0:
            raise ValueError(f"grace must be >= 0 seconds, got {grace!r}")
        if buffer < 0:
            raise ValueError(f"buffer must be >= 0 pushes, got {buffer!r}")
        self.grace = grace
        self.buffer = buffer
        self.mint = mint or counter_tokens()
        self.sessions: dict[str, Session] = {}
        self.by_user: dict[str, dict[str, None]] = {}
        self.by_conn: dict[int, str] = {}
        self._expiries: list[tuple[float, int, str]] = []
        self._seq = 0
        self.resumes = 0
        self.resume_failures = 0

    def connect(self, hello: Hello, now: float) -> list[Action]:
        actions: list[Action] = []
        old = self.sessions.get(hello.session) if hello.session else None
        if old is not None and old.user == hello.user and self._resumable(old, now):
            if old.conn is not None and old.conn != hello.conn:
                # The same tab's previous socket is still attached (its close is in flight).
                self.by_conn.pop(old.conn, None)
                actions.append(Close(old.conn, CloseCode.REPLACED, "session resumed elsewhere"))
            # Single use: the presented token is retired and a fresh one issued, so a token
            # copied off the wire is worthless once its owner has reconnected.
            del self.sessions[old.token]
            del self.by_user[old.user][old.token]
            old.token = self.mint()
            self.sessions[old.token] = old
            self.by_user[old.user][old.token] = None
            old.conn = hello.conn
            self.by_conn[hello.conn] = old.token
            replay, old.buffer = tuple(old.buffer), []
            self.resumes += 1
            actions.append(Welcome(hello.conn, old.token, True, replay))
            return actions
        if hello.session is not None:
            self.resume_failures += 1
            if old is not None and old.user == hello.user:
                actions.extend(self._drop(old))
        token = self.mint()
        self.sessions[token] = Session(token, hello.user, hello.conn)
        self.by_user.setdefault(hello.user, {})[token] = None
        self.by_conn[hello.conn] = token
        actions.append(Welcome(hello.conn, token, False))
        return actions

    def _resumable(self, session: Session, now: float) -> bool:
        if session.overflowed:
            return False
        return session.conn is not None or now - session.detached_at <= self.grace

    def disconnect(self, conn: int, user: str, now: float) -> list[Action]:
        token = self.by_conn.pop(conn, None)
        if token is None:
            return []
        session = self.sessions[token]
        session.conn = None
        session.detached_at = now
        self._seq += 1
        heapq.heappush(self._expiries, (now + self.grace, self._seq, token))
        return []

    def route(self, user: str) -> tuple[int, ...]:
        tokens = self.by_user.get(user, ())
        return tuple(conn for token in tokens if (conn := self.sessions[token].conn) is not None)

    def entries(self) -> list[tuple[str, int]]:
        return [(s.user, s.conn) for s in self.sessions.values() if s.conn is not None]

    def routes_to(self, user: str, conn: int) -> bool:
        token = self.by_conn.get(conn)
        return token is not None and self.sessions[token].user == user

    def push(self, user: str, push: int, now: float) -> list[Action]:
        tokens = self.by_user.get(user)
        if not tokens:
            return [NoRoute(user, push)]
        actions: list[Action] = []
        for token in tokens:
            session = self.sessions[token]
            if session.conn is not None:
                actions.append(Deliver(session.conn, push))
            elif len(session.buffer) < self.buffer and not session.overflowed:
                session.buffer.append(push)
                actions.append(Buffered(user, push))
            else:
                session.overflowed = True
                actions.append(Dropped(user, push, "resume buffer full"))
        return actions

    def deadline(self) -> float | None:
        return self._expiries[0][0] if self._expiries else None

    def expire(self, now: float) -> list[Action]:
        actions: list[Action] = []
        while self._expiries and self._expiries[0][0] <= now:
            when, _, token = heapq.heappop(self._expiries)
            session = self.sessions.get(token)
            if session is None or session.conn is not None:
                continue  # resumed (or already dropped) since this expiry was set
            if session.detached_at + self.grace != when:
                continue  # detached again later: a newer expiry entry governs
            actions.extend(self._drop(session))
        return actions

    def _drop(self, session: Session) -> list[Action]:
        del self.sessions[session.token]
        tokens = self.by_user[session.user]
        del tokens[session.token]
        if not tokens:
            del self.by_user[session.user]
        actions: list[Action] = [Expired(session.user, session.token, tuple(session.buffer))]
        if session.conn is not None:
            self.by_conn.pop(session.conn, None)
            actions.append(Close(session.conn, CloseCode.REPLACED, "session could not resume"))
        return actions


REGISTRIES: dict[str, type[Registry]] = {
    cls.name: cls
    for cls in (
        Naive,
        KickOld,
        KickOldSafe,
        CloseDeleteRegister,
        CloseAwaitRegister,
        RejectNew,
        Multi,
        Resume,
    )
}
