"""The target's server side as the kit sees it from outside: a mirror of its registry, its
end of each connection, and the run's server actor that reports what the proxy and the
clients saw.

The run core (:func:`~simkit.actors.play.play`) needs a server actor and a registry to
audit. A foreign server's registry is not the kit's to read, so the census audits a
:class:`Mirror`: a read-only :class:`~simkit.model.registry.Registry` rebuilt from each
answer of the stats route (:mod:`simkit.net.target.stats`), empty when there is none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from simkit.actors.env import Env
from simkit.actors.server import Server
from simkit.model.registry import Action, Hello, Registry
from simkit.net.network import LiveLink
from simkit.net.target.stats import Entry


class Mirror(Registry):
    """A read-only copy of the target's registry from one answer of the stats route.

    The census audits it as it audits the kit's own registries (``route``, ``entries``,
    ``routes_to``); a new answer is a new Mirror, so the census re-counts everything.
    Entries whose ``simkit_conn`` is not one of the run's connections are ``foreign`` and
    left out (another client of the server, or a server that does not echo the id).

    An answer describes the moment it was asked for, and the census samples a little later:
    with ``before`` (the connections open at the server when the request went out) and
    ``is_open`` (is a connection open now), a sample counts only what the answer can speak
    for. A connection opened since is not called unroutable, and an entry whose socket closed
    since is not called dangling; the next answer covers both."""

    name = "target"
    summary = "the target's own registry, as its stats route reports it"
    one_per_user = False

    def __init__(
        self,
        pairs: Iterable[tuple[str, int]] = (),
        foreign: int = 0,
        *,
        before: frozenset[int] | None = None,
        is_open: Callable[[int], bool] | None = None,
    ) -> None:
        self.map: dict[str, tuple[int, ...]] = {}
        for user, conn in pairs:
            self.map[user] = (*self.map.get(user, ()), conn)
        self.foreign = foreign
        self.before, self.is_open = before, is_open

    def _since(self, conn: int) -> bool:
        """Did ``conn`` open after the answer was asked for (so it cannot speak for it)?"""
        return self.before is not None and conn not in self.before

    @classmethod
    def of(
        cls,
        raw: Sequence[Entry],
        known: Callable[[int], bool],
        *,
        before: frozenset[int] | None = None,
        is_open: Callable[[int], bool] | None = None,
    ) -> Mirror:
        pairs, foreign = [], 0
        for user, conn in raw:
            try:
                if not isinstance(conn, str | int | float):  # JSON's null, list or object
                    raise TypeError(conn)
                number = int(conn)
            except (TypeError, ValueError):
                foreign += 1
                continue
            if known(number):
                pairs.append((user, number))
            else:
                foreign += 1
        return cls(pairs, foreign, before=before, is_open=is_open)

    def connect(self, hello: Hello, now: float) -> list[Action]:
        return []  # the target decides; the next answer of its stats route shows what

    def disconnect(self, conn: int, user: str, now: float) -> list[Action]:
        return []

    def route(self, user: str) -> tuple[int, ...]:
        conns = self.map.get(user, ())
        is_open = self.is_open
        if is_open is None or self.before is None:
            return conns
        before = self.before  # an entry whose socket closed since the answer: left out
        return tuple(conn for conn in conns if is_open(conn) or conn not in before)

    def entries(self) -> list[tuple[str, int]]:
        return [(user, conn) for user in self.map for conn in self.route(user)]

    def routes_to(self, user: str, conn: int) -> bool:
        return conn in self.route(user) or self._since(conn)


class TargetEnd:
    """The target's end of one connection, as far as the kit knows it (a
    :class:`~simkit.runtime.interfaces.ServerEnd` that cannot send: the target pushes on
    its own)."""

    __slots__ = ("code", "id", "link", "session", "user")

    def __init__(self, link: LiveLink) -> None:
        self.link = link
        self.id, self.user, self.session = link.id, link.user, link.session
        self.code: int | None = None  # the close code its page saw, once closed

    @property
    def tab_index(self) -> int | None:
        return int(self.link.tab.index)

    @property
    def silent_since(self) -> float | None:
        return self.link.silent_since

    def send(self, message: tuple[object, ...]) -> None:
        """The kit does not push through a foreign server."""

    def server_close(self, code: int, reason: str = "") -> None:
        """The kit does not close sockets on a foreign server's behalf."""

    def server_dies(self) -> None:
        """The kit does not kill a foreign server's process."""


class TargetServer(Server):
    """The run's server actor for a target: tells the census what the proxy and the
    clients saw; its ``registry`` is the latest :class:`Mirror` of the stats route."""

    def __init__(self, env: Env) -> None:
        super().__init__(env)
        self.registry = Mirror()

    def push(self, person: str, push: int) -> None:
        """The target decides what it pushes: the kit counts what the tabs receive."""
