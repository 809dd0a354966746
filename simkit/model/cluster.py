"""Several server nodes: the shared store's semantics and the cross-node registry policies.

Sans-I/O like :mod:`simkit.model.registry`: no clock, no sockets. :class:`Store` is what a
Redis holding the registry does, one atomic command at a time (``SET`` returning the old
value, ``DEL``, a compare-and-delete script, ``EXPIRE``); the virtual runtime applies these
commands to a :class:`Store` after the store's latency, the live runtime sends the same
commands to a real Redis. :class:`ClusterPolicy` says what a node does with the store (and
with its own in-memory registry) when a socket opens or closes, when a push arrives and
when its heartbeat ticks. The policies are the choices teams actually make:

- ``local``: each node its own dict, nothing shared. A push reaches a user only if it
  happens to enter at the node that holds her socket: the naive first attempt.
- ``broadcast``: each node its own dict, every push published to every node (Socket.IO's
  Redis adapter). Pushes arrive; kicks do not cross nodes, so a reload that lands on
  another node leaves the old socket registered there.
- ``shared-kick-old``: one ``user -> (node, conn)`` map in the store; a new socket replaces
  the entry and the old one is kicked over pub/sub, on whatever node it is; cleanup is a
  blind ``DEL user``: the post-mortem's race, now across nodes.
- ``shared-kick-old-safe``: the same with compare-and-delete done atomically in the store
  (a Lua script), so a late cleanup never removes a newer entry.
- ``presence-ttl``: compare-and-delete plus a TTL on every entry, refreshed by each node's
  heartbeat (Centrifugo's presence): the entries of a node that died without cleaning up
  expire, and a store that lost writes (a blip) is filled in again by the next refresh.

:func:`counterexample` finds the shortest event order that breaks a policy, as
:func:`simkit.model.explore.counterexample` does for a single node.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from simkit.model.errors import choice

# --- the store ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """Where a user's socket lives: on ``node``, connection ``conn``; ``expires`` is the
    store time the entry vanishes (None: never)."""

    node: int
    conn: int
    expires: float | None = None


class Store:
    """The shared store's contents, ``user -> Entry``, one atomic command per method.

    Expired entries are gone for every command (Redis's lazy expiry); :meth:`expire`
    removes them for good and says whose they were (Redis's active expiry, which the
    census needs to hear of)."""

    def __init__(self) -> None:
        self.data: dict[str, Entry] = {}
        self.ops = 0

    def _live(self, user: str, now: float) -> Entry | None:
        entry = self.data.get(user)
        if entry is not None and entry.expires is not None and entry.expires <= now:
            del self.data[user]
            return None
        return entry

    def get(self, user: str, now: float) -> Entry | None:
        """``GET user``."""
        self.ops += 1
        return self._live(user, now)

    def set(self, user: str, entry: Entry, now: float) -> Entry | None:
        """``SET user entry GET``: write, and return what was there."""
        self.ops += 1
        old = self._live(user, now)
        self.data[user] = entry
        return old

    def delete(self, user: str, now: float) -> bool:
        """``DEL user``: blind, whoever's entry it is."""
        self.ops += 1
        return self.data.pop(user, None) is not None

    def delete_if(self, user: str, node: int, conn: int, now: float) -> bool:
        """Compare-and-delete (a Lua script, atomic in the store): only if it is this conn's."""
        self.ops += 1
        entry = self._live(user, now)
        if entry is not None and entry.node == node and entry.conn == conn:
            del self.data[user]
            return True
        return False

    def refresh(self, node: int, held: list[tuple[str, int]], ttl: float, now: float) -> list[str]:
        """A node's heartbeat for the sockets it holds: extend its own entries, write back
        those that are missing (lost in a blip, or expired while the node was partitioned),
        leave alone users whose entry is another socket's. Returns the users it wrote.
        (One command per entry, pipelined: that is what it costs a Redis.)"""
        self.ops += max(1, len(held))
        written = []
        for user, conn in held:
            entry = self._live(user, now)
            if entry is None or (entry.node == node and entry.conn == conn):
                self.data[user] = Entry(node, conn, now + ttl)
                written.append(user)
        return written

    def expire(self, now: float) -> list[str]:
        """Remove every entry whose time has come; return their users."""
        gone = [u for u, e in self.data.items() if e.expires is not None and e.expires <= now]
        for user in gone:
            del self.data[user]
        return gone

    def next_expiry(self) -> float | None:
        times = [e.expires for e in self.data.values() if e.expires is not None]
        return min(times) if times else None


# --- policies -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterPolicy:
    """How nodes share (or do not share) the registry.

    ``shared``: the store's ``user -> (node, conn)`` is the registry (else each node its own
    registry of the strategy's policy); ``fanout``: pushes go to every node (else to the one
    they entered at, or, if shared, to the node the store names); ``safe_delete``: cleanup
    is compare-and-delete (else a blind ``DEL``); ``ttl``/``refresh``: entries expire unless
    their node refreshes them every ``refresh`` seconds."""

    name: str
    summary: str
    shared: bool = False
    fanout: bool = False
    safe_delete: bool = False
    ttl: float | None = None
    refresh: float | None = None
    like: str = ""  # the system that makes this choice

    def on_open(self, store: Store, node: int, conn: int, user: str, now: float) -> Entry | None:
        """The store half of a handshake (shared policies): write the entry; return the
        entry it replaced if that is another socket's (it must be kicked, on its node)."""
        expires = None if self.ttl is None else now + self.ttl
        old = store.set(user, Entry(node, conn, expires), now)
        return old if old is not None and old.conn != conn else None

    def on_close(self, store: Store, node: int, conn: int, user: str, now: float) -> bool:
        """The store half of a cleanup: compare-and-delete or blind delete."""
        if self.safe_delete:
            return store.delete_if(user, node, conn, now)
        return store.delete(user, now)


CLUSTER_POLICIES: dict[str, ClusterPolicy] = {
    p.name: p
    for p in (
        ClusterPolicy(
            "local",
            "each node its own registry; a push reaches only sockets on the node it entered at",
            like="a single-node app behind a load balancer",
        ),
        ClusterPolicy(
            "broadcast",
            "each node its own registry; every push fans out to every node (pub/sub)",
            fanout=True,
            like="Socket.IO's Redis adapter",
        ),
        ClusterPolicy(
            "shared-kick-old",
            "one user -> (node, conn) map in the store; cross-node kick; blind DEL on cleanup",
            shared=True,
        ),
        ClusterPolicy(
            "shared-kick-old-safe",
            "shared map, cross-node kick, compare-and-delete atomic in the store",
            shared=True,
            safe_delete=True,
        ),
        ClusterPolicy(
            "presence-ttl",
            "shared map with compare-and-delete; entries expire unless their node refreshes them",
            shared=True,
            safe_delete=True,
            ttl=15.0,
            refresh=5.0,
            like="Centrifugo's Redis presence",
        ),
    )
}


def cluster_policy(value: str | ClusterPolicy) -> ClusterPolicy:
    """A cross-node policy by name (a ClusterPolicy passes through)."""
    if isinstance(value, ClusterPolicy):
        return value
    if isinstance(value, str) and value in CLUSTER_POLICIES:
        return CLUSTER_POLICIES[value]
    raise choice("cross-node policy", value, list(CLUSTER_POLICIES))


# --- the shortest failure -----------------------------------------------------------------

Event = tuple[str, int]  # (kind, node or socket index); a tick's number is unused

# Abstract events over two nodes and one user: ("open", node), ("cleanup", k) for the k-th
# socket opened, ("crash", node), ("tick", 0) = time passes beyond every TTL.


@dataclass
class _World:
    store: Store
    opened: list[tuple[int, int]]  # (node, conn) in order of opening
    open: dict[int, int]  # conn -> node, sockets whose handler has not finished
    held: dict[int, int]  # conn -> node, sockets their node still serves (not kicked)
    dead: dict[int, None]
    now: float = 0.0


def _apply(policy: ClusterPolicy, world: _World, event: Event) -> str:
    kind = event[0]
    if kind == "open":
        node = event[1]
        conn = len(world.opened) + 1
        world.opened.append((node, conn))
        world.open[conn] = world.held[conn] = node
        old = policy.on_open(world.store, node, conn, "alice", world.now)
        text = f"c{conn} opens on node {node}"
        if old is not None:
            world.held.pop(old.conn, None)
            text += f" (c{old.conn} on node {old.node} is kicked)"
        return text
    if kind == "cleanup":
        node, conn = world.opened[event[1]]
        del world.open[conn]
        world.held.pop(conn, None)
        policy.on_close(world.store, node, conn, "alice", world.now)
        return f"c{conn}'s handler on node {node} finishes and cleans up"
    if kind == "crash":
        node = event[1]
        world.dead[node] = None
        for conn in [c for c, n in world.open.items() if n == node]:
            del world.open[conn]
            world.held.pop(conn, None)
        return f"node {node} dies (its handlers never run)"
    world.now += (policy.ttl or 0.0) + 1.0
    if policy.ttl is not None:  # every node that is up refreshed its entries meanwhile
        for node in (0, 1):
            held = [("alice", c) for c, n in world.held.items() if n == node]
            if node not in world.dead and held:
                world.store.refresh(node, held, policy.ttl, world.now)
    world.store.expire(world.now)
    return "time passes (beyond any TTL)"


def _violation(world: _World, invariant: str) -> str | None:
    entry = world.store._live("alice", world.now)
    if invariant == "unroutable":
        # the newest socket is open, on a node that is up, and no push finds it
        newest = world.opened[-1][1] if world.opened else None
        if newest in world.open and (entry is None or entry.conn != newest):
            return f"open c{newest} of user alice is not routed to"
    elif invariant == "dead-node-entry" and entry is not None and entry.node in world.dead:
        return f"the store routes alice to c{entry.conn} on node {entry.node}, which is dead"
    return None


INVARIANTS = ("unroutable", "dead-node-entry")


def _events(world: _World, depth_left: int) -> Iterator[Event]:
    up = [n for n in (0, 1) if n not in world.dead]
    for node in up:
        if len(world.opened) < 3:
            yield ("open", node)
    for k, (_, conn) in enumerate(world.opened):
        if conn in world.open:
            yield ("cleanup", k)
    for node in up:
        yield ("crash", node)
    yield ("tick", 0)


def counterexample(policy: str | ClusterPolicy, invariant: str, max_steps: int = 6) -> str | None:
    """The shortest event order (two nodes, one user) that breaks ``invariant`` under
    ``policy``, as numbered steps, or None if none within ``max_steps``. ``unroutable``: the
    user's newest socket is open and the store does not route to it; ``dead-node-entry``:
    after everything settles, the store still routes to a node that died."""
    pol = cluster_policy(policy)
    if invariant not in INVARIANTS:
        raise choice("invariant", invariant, list(INVARIANTS))
    if not pol.shared:
        return None  # nothing shared, nothing to break across nodes
    queue: deque[tuple[Event, ...]] = deque([()])
    while queue:
        path = queue.popleft()
        world = _World(Store(), [], {}, {}, {})
        lines = [_apply(pol, world, event) for event in path]
        problem = _violation(world, invariant)
        if problem is not None and (invariant != "dead-node-entry" or path[-1][0] == "tick"):
            steps = "\n".join(f"  {i}. {line}" for i, line in enumerate(lines, 1))
            return f"{pol.name} breaks {invariant!r} in {len(path)} steps:\n{steps}\n  => {problem}"
        if len(path) < max_steps:
            queue.extend((*path, event) for event in _events(world, max_steps - len(path)))
    return None
