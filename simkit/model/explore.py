"""A tiny world to hold a registry policy against the truth, and a search for the shortest
event sequence that breaks it.

:class:`World` is the server side of a few connections as a pure state machine: it knows
which connections are really open, which are closing, which went silent, and what the
registry believes. Its events are the ones that reorder in production: a connection opens,
a client starts closing, a handler finishes (the close "arrives"), a network goes silent, the
heartbeat reaps a silent peer. :func:`counterexample` tries every order of those events,
breadth first, so the sequence it returns is a shortest one: teaching material for the
cleanup race. The hypothesis tests drive the same World with random orders.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from simkit.model.codes import CloseCode, describe
from simkit.model.errors import IllegalTransition, choice
from simkit.model.registry import Action, Close, Hello, Refuse, Registry

INVARIANTS: dict[str, str] = {
    "dangling": "a registry entry points at a connection that is already closed",
    "unroutable": "an open connection (not closing, not silent) is not routed to",
    "duplicates": "a user has two open connections where the policy means one",
    # a handler that awaits the old socket's close (registry close-await-register):
    "self-kill": "the server closed a user's newest connection, replaced by nothing",
    "blocked": "an open connection waits unregistered for an old connection's close",
}
UNSETTLED = ("blocked",)  # checked while a close is in flight: that is when it happens


@dataclass(slots=True)
class Conn:
    user: str
    state: str = "open"  # open -> closing -> closed; silent is a flag of an open conn
    silent: bool = False


@dataclass
class World:
    """The ground truth of a handful of connections plus one registry policy."""

    registry: Registry
    conns: dict[int, Conn] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    now: float = 0.0
    self_killed: list[int] = field(default_factory=list)

    # -- events ----------------------------------------------------------------------------

    def connect(self, user: str) -> int:
        conn = len(self.conns) + 1
        self.conns[conn] = Conn(user)
        self.log.append(f"c{conn} opens for user {user}")
        self._apply(self.registry.connect(Hello(conn, user), self._tick()))
        return conn

    def client_close(self, conn: int) -> None:
        """The page starts closing (reload: 1001); the server has not processed it yet."""
        self._expect(conn, "open", "client_close")
        self.conns[conn].state = "closing"
        self.log.append(f"c{conn}'s tab starts closing it")

    def finish(self, conn: int) -> None:
        """The connection's handler finishes: its cleanup runs now."""
        self._expect(conn, "closing", "finish")
        record = self.conns[conn]
        record.state = "closed"
        self.log.append(f"c{conn}'s handler finishes and cleans up for user {record.user}")
        self._apply(self.registry.disconnect(conn, record.user, self._tick()))

    def go_silent(self, conn: int) -> None:
        """The network dies without a word: nothing will ever arrive from this peer."""
        self._expect(conn, "open", "go_silent")
        if self.conns[conn].silent:
            raise IllegalTransition("connection", "open+silent", "go_silent")
        self.conns[conn].silent = True
        self.log.append(f"c{conn}'s network silently dies")

    def reap(self, conn: int) -> None:
        """The heartbeat declares a silent peer dead: the server starts closing it."""
        self._expect(conn, "open", "reap")
        if not self.conns[conn].silent:
            raise IllegalTransition("connection", "open", "reap")
        self.conns[conn].state = "closing"
        self.log.append(f"heartbeat reaps c{conn}")

    def resume(self, conn: int) -> None:
        """A handler blocked in ``await old.close()`` returns (``Registry.awaiting``)."""
        self.log.append(f"c{conn}'s handler returns from closing the old connection")
        user = self.conns[conn].user
        self._apply(self.registry.resumed(conn, user, self._tick()))

    def _expect(self, conn: int, state: str, event: str) -> None:
        record = self.conns.get(conn)
        if record is None:
            raise IllegalTransition("connection", "unknown", event)
        if record.state != state:
            raise IllegalTransition("connection", record.state, event)

    def _tick(self) -> float:
        self.now += 1.0
        return self.now

    def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Close | Refuse):
                record = self.conns.get(action.conn)
                if record is not None and record.state == "open":
                    newest = max(c for c, r in self.conns.items() if r.user == record.user)
                    if action.conn == newest and isinstance(action, Close):
                        self.self_killed.append(action.conn)
                    record.state = "closing"
                    verb = "refuses" if isinstance(action, Refuse) else "closes"
                    self.log.append(
                        f"server {verb} c{action.conn} ({describe(action.code)} {int(action.code)})"
                    )

    # -- truth -----------------------------------------------------------------------------

    def violations(self) -> dict[str, list[str]]:
        """Each broken invariant, with the facts that break it (empty dict: all hold)."""
        found: dict[str, list[str]] = {}
        for user, conn in self.registry.entries():
            if self.conns[conn].state == "closed":
                found.setdefault("dangling", []).append(f"user {user} -> closed c{conn}")
        open_by_user: dict[str, list[int]] = {}
        for conn, record in self.conns.items():
            if record.state == "open" and not record.silent:
                open_by_user.setdefault(record.user, []).append(conn)
                if conn not in self.registry.route(record.user):
                    found.setdefault("unroutable", []).append(
                        f"open c{conn} of user {record.user} is not routed to"
                    )
        for conn in self.self_killed:
            found.setdefault("self-kill", []).append(
                f"c{conn}, the newest connection of user {self.conns[conn].user}, was closed "
                "by the server"
            )
        for conn, old in self.registry.awaiting().items():
            record = self.conns[conn]
            if record.state == "open" and not record.silent:
                found.setdefault("blocked", []).append(
                    f"open c{conn} of user {record.user} is not registered: its handler "
                    f"waits for c{old}'s close"
                )
        if self.registry.one_per_user:
            for user, conns in open_by_user.items():
                if len(conns) > 1:
                    found.setdefault("duplicates", []).append(
                        f"user {user} has {len(conns)} open connections"
                    )
        return found

    def moves(self, users: tuple[str, ...], max_conns: int) -> Iterator[tuple[str, object]]:
        """Every event allowed now, in a fixed order (so the search is deterministic)."""
        if len(self.conns) < max_conns:
            for user in users:
                yield ("connect", user)
        for conn, record in self.conns.items():
            if record.state == "open":
                yield ("client_close", conn)
                if record.silent:
                    yield ("reap", conn)
                else:
                    yield ("go_silent", conn)
            elif record.state == "closing":
                yield ("finish", conn)
        for conn, old in self.registry.awaiting().items():
            if self.conns[old].state != "open":  # its close has begun: it may return any time
                yield ("resume", conn)

    def do(self, move: tuple[str, object]) -> None:
        getattr(self, move[0])(move[1])


@dataclass(frozen=True)
class Counterexample:
    """The shortest event sequence found that breaks ``invariant``."""

    policy: str
    invariant: str
    steps: tuple[str, ...]
    facts: tuple[str, ...]

    def __str__(self) -> str:
        lines = [f"{self.policy} breaks '{self.invariant}' in {len(self.steps)} steps:"]
        lines += [f"  {i}. {step}" for i, step in enumerate(self.steps, 1)]
        lines += [f"  => {fact}" for fact in self.facts]
        return "\n".join(lines)


def counterexample(
    registry: Callable[[], Registry],
    invariant: str = "unroutable",
    *,
    users: tuple[str, ...] = ("alice",),
    max_conns: int = 3,
    max_steps: int = 8,
) -> Counterexample | None:
    """The shortest sequence of events after which ``invariant`` is broken, or None.

    Breadth-first over every interleaving of connect / client_close / finish / go_silent /
    reap with at most ``max_conns`` connections and ``max_steps`` events. Invariants are
    checked once the events have settled, i.e. with no connection half-way closed: a close in
    flight is not yet a fault.
    """
    if invariant not in INVARIANTS:
        raise choice("invariant", invariant, list(INVARIANTS))
    queue: deque[tuple[tuple[str, object], ...]] = deque([()])
    while queue:
        path = queue.popleft()
        world = replay(registry, path)
        settled = not any(c.state == "closing" for c in world.conns.values())
        if path and (settled or invariant in UNSETTLED):
            facts = world.violations().get(invariant)
            if facts:
                name = getattr(world.registry, "name", type(world.registry).__name__)
                return Counterexample(name, invariant, tuple(world.log), tuple(facts))
        if len(path) < max_steps:
            for move in world.moves(users, max_conns):
                queue.append((*path, move))
    return None


def replay(registry: Callable[[], Registry], path: tuple[tuple[str, object], ...]) -> World:
    """A fresh World with ``path``'s events applied in order."""
    world = World(registry())
    for move in path:
        world.do(move)
    return world


__all__ = ["INVARIANTS", "CloseCode", "Counterexample", "World", "counterexample", "replay"]
