"""The server actor: carries out the registry policy's decisions and pushes to users.

It is the thin layer around the pure registry: the network tells it a handshake completed
(:meth:`Server.on_open`) or a connection's handler finished (:meth:`Server.on_close`, the
``finally`` where cleanup runs); it asks the registry, then does what the registry returned.
Every push's fate is counted against the census's ground truth.
"""

from __future__ import annotations

import asyncio

from simkit.actors.env import Env
from simkit.model.registry import (
    Action,
    Buffered,
    Close,
    Deliver,
    Dropped,
    Expired,
    Hello,
    Refuse,
    Registry,
    Welcome,
)
from simkit.runtime.census import Census, ServerSide
from simkit.runtime.interfaces import ServerEnd


def welcome(
    link: ServerEnd | None, action: Welcome, pending: dict[int, int], census: Census
) -> None:
    """Carry out a resume's welcome: the session id and the replay down ``link`` (if it is
    still open), and every replayed push taken out of the buffers that held it."""
    if link is not None:
        link.send(("welcome", action.session))
        for replayed in action.replay:
            link.send(("push", replayed))
    for replayed in action.replay:
        if pending.pop(replayed, None) is not None:
            census.count_push("replayed")


def unbuffer(pending: dict[int, int], push: int, census: Census) -> None:
    """One buffer that held ``push`` expired; when none holds it any more it is lost."""
    held = pending.get(push)
    if held is None:
        return
    if held > 1:
        pending[push] = held - 1
    else:
        del pending[push]
        census.count_push("expired")


class Server:
    def __init__(self, env: Env) -> None:
        self.env = env
        self.registry: Registry = env.strategy.registry()
        # Does the registry ever expire anything? (Only then is its deadline worth asking.)
        self._timed = type(self.registry).deadline is not Registry.deadline
        self.rng = env.rng("server")
        self.restarts = 0
        self.pending: dict[int, int] = {}  # buffered push -> how many buffers hold it
        self._expiry: asyncio.TimerHandle | None = None
        self._expiry_at: float | None = None

    def restart(self) -> None:
        """A new process: the in-memory registry is gone with the old one."""
        self.registry = self.env.strategy.registry()
        self._timed = type(self.registry).deadline is not Registry.deadline
        self.restarts += 1
        # Resume buffers lived in the old process's memory: their pushes are lost.
        self.env.census.count_push("expired", len(self.pending))
        self.pending.clear()
        if self._expiry is not None:
            self._expiry.cancel()
        self._expiry = self._expiry_at = None

    def on_sample(self, t: float) -> None:
        """One node keeps no numbers per sample beyond the census's (a Cluster does)."""

    def summary(self) -> dict[str, object]:
        """One node adds nothing to the run's summary (a Cluster adds its per-node numbers)."""
        return {}

    # -- connection events -----------------------------------------------------------------

    def on_open(self, link: ServerEnd) -> None:
        env = self.env
        now = env.now()
        if isinstance(link, ServerSide):  # the connection is its own census record
            env.census.opened(link, now)
        else:
            env.census.server_opened(link.id, link.tab_index, link.user, now)
        if env.trace is not None:
            env.log("server-open", link.id, link.user)
        actions = self.registry.connect(Hello(link.id, link.user, link.session), now)
        if actions or self._timed:  # most opens: nothing to carry out (apply's first test)
            self.apply(actions)

    def on_close(self, link: ServerEnd, code: int) -> None:
        env = self.env
        if isinstance(link, ServerSide):
            env.census.closed(link)
        else:
            env.census.server_closed(link.id)
        if env.trace is not None:
            env.log("server-cleanup", link.id, link.user, code)
        actions = self.registry.disconnect(link.id, link.user, env.now())
        if actions or self._timed:  # most closes: nothing to carry out (apply's first test)
            self.apply(actions)

    # -- a handler that awaited another connection's close ---------------------------------

    def waiting_on(self, conn: int) -> list[int]:
        return [new for new, old in self.registry.awaiting().items() if old == conn]

    def close_returned(self, conn: int, user: str) -> None:
        actions = self.registry.resumed(conn, user, self.env.now())
        self.env.census.registry_changed(user)
        self.apply(actions)

    # -- pushes ----------------------------------------------------------------------------

    def push(self, person: str, push: int) -> None:
        """Push to ``person``: the app addresses people, the registry maps ids to sockets."""
        census = self.env.census
        if not census.person_live.get(person):
            census.count_push("offline")
            return
        census.count_push("sent")
        self.apply(self.registry.push(person, push, self.env.now()), push=push)

    # -- carrying out decisions ------------------------------------------------------------

    def apply(self, actions: list[Action], push: int | None = None) -> None:
        if not actions and push is None:  # most opens and closes: nothing to carry out
            if self._timed:
                self._arm_expiry()
            return
        env = self.env
        census = env.census
        links = env.network.open_links
        reached = stale = buffered = dropped = deaf = False
        for action in actions:
            if isinstance(action, Deliver):
                link = links.get(action.conn)
                if link is not None:
                    link.send(("push", action.push))
                if (
                    link is not None
                    and link.silent_since is None
                    and census.is_receiving(action.conn)
                ):
                    reached = True
                elif census.is_deaf(action.conn):
                    deaf = True  # the socket is fine; the page runs no code
                else:
                    stale = True
            elif isinstance(action, Close | Refuse):
                link = links.get(action.conn)
                if isinstance(action, Refuse):
                    census.count_refusal()
                if link is not None:
                    census.kicked(action.conn)
                    if env.trace is not None:
                        env.log("server-close", action.conn, link.user, action.code, action.reason)
                    link.server_close(int(action.code), action.reason)
            elif isinstance(action, Welcome):
                welcome(links.get(action.conn), action, self.pending, census)
            elif isinstance(action, Buffered):
                buffered = True
            elif isinstance(action, Expired):
                for lost in action.lost:
                    unbuffer(self.pending, lost, census)
            elif isinstance(action, Dropped):
                dropped = True
        if push is not None:
            self._settle_push(push, reached, stale, buffered, dropped, deaf, actions)
        self._arm_expiry()

    def _settle_push(
        self,
        push: int,
        reached: bool,
        stale: bool,
        buffered: bool,
        dropped: bool,
        deaf: bool,
        actions: list[Action],
    ) -> None:
        """A push's fate, counted once: it reached a live tab, waits in resume buffers, or
        is lost (sent only to stale sockets, no route, or not even buffered)."""
        count = self.env.census.count_push
        if reached:
            count("delivered")
        elif buffered:
            count("buffered")
            self.pending[push] = sum(isinstance(a, Buffered) for a in actions)
        elif deaf:
            count("lost_frozen")  # the socket is fine, the page runs no code
        elif stale:
            count("lost_stale")
        elif dropped:
            count("dropped")
        else:
            count("no_route")

    def _arm_expiry(self) -> None:
        due = self.registry.deadline()
        if due is None or due == self._expiry_at:
            return
        if self._expiry is not None:
            self._expiry.cancel()
        self._expiry_at = due
        delay = max(0.0, due - self.env.now())
        self._expiry = self.env.call_later(delay, self._expire)

    def _expire(self) -> None:
        self._expiry = self._expiry_at = None
        actions = self.registry.expire(self.env.now())
        for action in actions:
            if isinstance(action, Expired):
                # a timer, not a connection's event, changed this user's entries
                self.env.census.registry_changed(action.user)
        self.apply(actions)
