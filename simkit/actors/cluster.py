"""Several server nodes behind a load balancer, sharing (or not) a registry in a store.

:class:`Cluster` presents the run core the same face as the one-node
:class:`~simkit.actors.server.Server` (``on_open``, ``on_close``, ``restart``, ``push``,
``registry`` for the census, ``pending``, ``restarts``), so :func:`~simkit.actors.play.play`
stays the one run core: with ``nodes=N`` it builds a Cluster instead of a Server. Inside:

- N :class:`Node` actors, each with the sockets it holds and, unless the policy shares the
  registry, its own in-memory registry of the strategy's policy;
- a load balancer (:mod:`simkit.model.balancer`) that picks a node when a handshake
  reaches the server side;
- a store (:class:`VirtualStore` here, on the run's clock, with its own latency and
  failures: down, slow, one node partitioned; the live runtime plugs in Redis) that runs
  the commands of :class:`simkit.model.cluster.Store`;
- :class:`ClusterView`, the merged registry the census samples: what a push would reach.

Every cross-node message (a kick, a forwarded push, a fan-out) goes node -> store ->
node, two store hops, as over Redis pub/sub. A push enters at a node drawn at random among
those up (the request that caused it landed there).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from simkit.actors.env import Env
from simkit.actors.server import unbuffer, welcome
from simkit.model.balancer import Balancer, balancer, check_nodes
from simkit.model.cluster import ClusterPolicy, Entry, Store, cluster_policy
from simkit.model.codes import CloseCode
from simkit.model.errors import ConfigError
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
from simkit.model.strategy import Strategy
from simkit.runtime.interfaces import ServerEnd, SharedStore


class StoreFailed(enum.Enum):
    """The type of :data:`FAILED`, a value of its own so that a reply can be told from any
    result a command has (an entry, None, True/False, a list of users)."""

    FAILED = "FAILED"

    def __repr__(self) -> str:
        return "FAILED"


FAILED: Final = StoreFailed.FAILED
"""What a store command returns when the store could not be reached (down, partitioned)."""

# A store command's result: ``open`` the entry it replaced (None if none), ``close`` whether
# it deleted, ``get`` the entry, ``refresh`` the users written.
StoreResult = Entry | bool | list[str] | None


class VirtualStore:
    """A store on the run's clock: each command reaches it after ``latency`` seconds and its
    reply takes as long again. Faults: :meth:`down_for` (unreachable), :meth:`slow_for`
    (another latency), :meth:`partition` (one node cannot reach it). A command that cannot
    reach the store fails (``FAILED``) when its reply would have come."""

    def __init__(self, env: Env, policy: ClusterPolicy, latency: float = 0.0005) -> None:
        if not latency >= 0:
            raise ConfigError(f"store latency must be >= 0 seconds, got {latency!r}")
        self.env = env
        self.policy = policy
        self.latency = latency
        self.store = Store()
        self.down_until = -1.0
        self.slow_until = -1.0
        self.slow_latency = latency
        self.cut: dict[int, float] = {}  # node -> partitioned until
        self.on_expired: Callable[[str], None] = lambda user: None

    # -- faults ----------------------------------------------------------------------------

    def down_for(self, seconds: float) -> None:
        self.down_until = self.env.now() + seconds

    def slow_for(self, seconds: float, latency: float) -> None:
        self.slow_until, self.slow_latency = self.env.now() + seconds, latency

    def partition(self, node: int, seconds: float) -> None:
        self.cut[node] = self.env.now() + seconds

    def reachable(self, node: int) -> bool:
        now = self.env.now()
        return now >= self.down_until and now >= self.cut.get(node, -1.0)

    def hop(self) -> float:
        return self.slow_latency if self.env.now() < self.slow_until else self.latency

    # -- commands --------------------------------------------------------------------------

    def submit(
        self, node: int, op: str, args: tuple[object, ...], done: Callable[[Any], None]
    ) -> None:
        """Run command ``op`` for ``node``; ``done(result)`` (or ``done(FAILED)``) on the
        node when the reply is back. (``done``'s argument is :data:`StoreResult` narrowed by
        ``op``, which a Callable cannot say: the SharedStore protocol's ``Any``.)"""
        self.env.after(self.hop(), self._arrive, node, op, args, done)

    def _arrive(
        self, node: int, op: str, args: tuple[object, ...], done: Callable[[Any], None]
    ) -> None:
        if not self.reachable(node):
            self.env.after(self.hop(), done, FAILED)
            return
        result = self.run(node, op, args)
        self.env.after(self.hop(), done, result)

    def run(self, node: int, op: str, args: tuple[Any, ...]) -> StoreResult:
        # (each command's arguments have their own shape: see Cluster's calls of submit)
        store, policy, now = self.store, self.policy, self.env.now()
        result: StoreResult
        if op == "open":
            user, conn = args
            result = policy.on_open(store, node, conn, user, now)
            self._watch(user)
        elif op == "close":
            user, conn = args
            result = policy.on_close(store, node, conn, user, now)
        elif op == "get":
            result = store.get(args[0], now)
        elif op == "refresh":
            written = store.refresh(node, args[0], policy.ttl or 0.0, now)
            for user in written:
                self._watch(user)
            result = written
        else:
            raise ValueError(f"unknown store command {op!r}")
        return result

    def relay(self, src: int, dst: int, fn: Callable[..., None], *args: object) -> bool:
        """Publish to node ``dst`` through the store (pub/sub): two hops. False if ``src``
        cannot reach the store now (the message is lost)."""
        if not self.reachable(src):
            return False
        self.env.after(2 * self.hop(), self._deliver, dst, fn, args)
        return True

    def _deliver(self, dst: int, fn: Callable[..., None], args: tuple[object, ...]) -> None:
        if self.reachable(dst):
            fn(*args)

    def _watch(self, user: str) -> None:
        entry = self.store.data.get(user)
        if entry is not None and entry.expires is not None:
            self.env.after(entry.expires - self.env.now(), self._expire, user)

    def _expire(self, user: str) -> None:
        entry = self.store.data.get(user)
        if entry is not None and entry.expires is not None and entry.expires <= self.env.now():
            del self.store.data[user]
            self.on_expired(user)

    def entries(self) -> dict[str, Entry]:
        """What the store holds now (the census's view reads it; no command is counted)."""
        return self.store.data

    @property
    def ops(self) -> int:
        return self.store.ops


class Node:
    """One server process: the sockets it holds and, unless shared, its own registry."""

    __slots__ = (
        "accepting",
        "alive",
        "expiry",
        "expiry_at",
        "held",
        "index",
        "links",
        "registry",
        "restarts",
    )

    def __init__(self, index: int, registry: Registry | None) -> None:
        self.index = index
        self.alive = True  # the process runs
        self.accepting = True  # the load balancer sends it new connections
        self.links: dict[int, ServerEnd] = {}  # conn -> server end, sockets open on this node
        self.held: dict[int, str] = {}  # conn -> user, sockets registered in the store
        self.registry = registry
        self.restarts = 0
        # the timer of the registry's next deadline (resume)
        self.expiry: asyncio.TimerHandle | None = None
        self.expiry_at: float | None = None


class ClusterView(Registry):
    """The merged registry the census samples: the truth of what a push would reach.

    Shared policies: the store's entries (an entry on a dead node is still an entry: it
    dangles). Otherwise the union of the registries of the nodes that are up (a dead
    node's memory is gone); under ``local`` a socket counts as routable only while a single
    node is up, since a push entering at any other node misses it."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        # A registry policy's class says whether it means one connection per user; the merged
        # view is one class for every policy, so it takes the run's per instance.
        self.one_per_user = cluster.env.strategy.registry().one_per_user

    def route(self, user: str) -> tuple[int, ...]:
        c = self.cluster
        if c.policy.shared:
            entry = c.store.entries().get(user)
            return () if entry is None else (entry.conn,)
        return tuple(
            conn
            for node in c.nodes
            if node.registry is not None
            for conn in node.registry.route(user)
        )

    def entries(self) -> list[tuple[str, int]]:
        c = self.cluster
        if c.policy.shared:
            return [(user, e.conn) for user, e in c.store.entries().items()]
        return [
            pair
            for node in c.nodes
            if node.registry is not None
            for pair in node.registry.entries()
        ]

    def routes_to(self, user: str, conn: int) -> bool:
        c = self.cluster
        if c.policy.shared:
            entry = c.store.entries().get(user)
            return entry is not None and entry.conn == conn
        node = c.node_of.get(conn)
        if node is None or node.registry is None or not node.registry.routes_to(user, conn):
            return False
        return c.policy.fanout or sum(n.alive for n in c.nodes) == 1


class Cluster:
    """``nodes`` server nodes with one face for the run core (see the module docstring)."""

    def __init__(
        self,
        env: Env,
        nodes: int,
        policy: ClusterPolicy,
        balancer: Balancer,
        store: SharedStore | None = None,
    ) -> None:
        self.env = env
        self.policy = policy
        self.balancer = balancer
        self.store: SharedStore = VirtualStore(env, policy) if store is None else store
        self.store.on_expired = self._expired
        self.nodes = [
            Node(i, None if policy.shared else env.strategy.registry()) for i in range(nodes)
        ]
        self.node_of: dict[int, Node] = {}
        self.registry = ClusterView(self)
        self.pending: dict[int, int] = {}  # buffered push -> how many buffers hold it
        self.restarts = 0
        self.entry_rng = env.rng("push-entry")
        # How a node's process dies (for ``downtime`` seconds): here its sockets reset; the
        # live runtime crashes the node's real server instead.
        self.kill: Callable[[Node, float], None] = self._reset_sockets
        if policy.refresh is not None:
            for node in self.nodes:
                env.call_later(policy.refresh, self._refresh, node)

    # -- the census's extra numbers --------------------------------------------------------

    def on_sample(self, t: float) -> None:
        columns = {f"node{n.index}_open": len(n.links) for n in self.nodes}
        dead = {n.index for n in self.nodes if not n.alive}
        held_dead = 0
        if self.policy.shared and dead:
            held_dead = sum(e.node in dead for e in self.store.entries().values())
        columns["dead_node_entries"] = held_dead
        self.env.census.sample_nodes(columns)

    def summary(self) -> dict[str, object]:
        counted = self.env.census.cluster
        span = self.env.now() or 1.0
        return {
            "nodes": len(self.nodes),
            "balancer": self.balancer.name,
            "cross_node_policy": self.policy.name,
            "cross_node_kicks": int(counted.get("cross_node_kicks", 0)),
            "pushes_via_other_node": int(counted.get("pushes_via_other_node", 0)),
            "store_ops": int(self.store.ops),
            "store_ops_per_second": round(self.store.ops / span, 6),
            "store_errors": int(counted.get("store_errors", 0)),
            "node_crashes": int(counted.get("node_crashes", 0)),
            "node_drains": int(counted.get("node_drains", 0)),
        }

    # -- connection events (the network calls these) ---------------------------------------

    def up(self) -> list[int]:
        return [n.index for n in self.nodes if n.alive and n.accepting]

    def pick(self, user: str) -> int | None:
        """The load balancer's choice for a new connection of ``user`` (None: no node up)."""
        up = self.up()
        if not up:
            return None
        return self.balancer.pick(user, up, {n.index: len(n.links) for n in self.nodes})

    def on_open(self, link: ServerEnd, at: int | None = None) -> None:
        """A handshake reached the server side: on node ``at`` if a balancer in front
        already chose it (the live runtime's proxies), else the balancer chooses now."""
        env = self.env
        index = self.pick(link.user) if at is None else at
        if index is None:  # no node to take it: the balancer resets the connection
            env.census.count_refusal()
            link.server_dies()
            return
        node = self.nodes[index]
        node.links[link.id] = link
        self.node_of[link.id] = node
        now = env.now()
        env.census.server_opened(link.id, link.tab_index, link.user, now)
        if env.trace is not None:
            env.log("server-open", link.id, link.user, None, f"node {node.index}")
        if node.registry is not None:
            self._apply(node, node.registry.connect(Hello(link.id, link.user, link.session), now))
            return
        node.held[link.id] = link.user
        self.store.submit(
            node.index, "open", (link.user, link.id), lambda old: self._opened(node, link, old)
        )

    def _opened(self, node: Node, link: ServerEnd, old: Entry | StoreFailed | None) -> None:
        self.env.census.registry_changed(link.user)
        if old is FAILED:
            self.env.census.count_cluster("store_errors")
            return
        if old is None:
            return
        if old.node == node.index:
            self._kick(node, old.conn)
        elif self.store.relay(node.index, old.node, self._kick_remote, old.node, old.conn):
            pass
        else:
            self.env.census.count_cluster("store_errors")

    def _kick_remote(self, index: int, conn: int) -> None:
        node = self.nodes[index]
        if node.alive and conn in node.links:
            self.env.census.count_cluster("cross_node_kicks")
        self._kick(node, conn)

    def _kick(self, node: Node, conn: int) -> None:
        if not node.alive or node.held.pop(conn, None) is None:
            return
        link = node.links.get(conn)
        if link is None:
            return
        self.env.census.kicked(conn)
        if self.env.trace is not None:
            self.env.log("server-close", conn, link.user, int(CloseCode.REPLACED), "replaced")
        link.server_close(int(CloseCode.REPLACED), "replaced by a newer connection")

    def on_close(self, link: ServerEnd, code: int) -> None:
        env = self.env
        env.census.server_closed(link.id)
        node = self.node_of.pop(link.id, None)
        if env.trace is not None:
            env.log("server-cleanup", link.id, link.user, code)
        if node is None or not node.alive:
            return  # its process is gone: no handler runs
        node.links.pop(link.id, None)
        if node.registry is not None:
            self._apply(node, node.registry.disconnect(link.id, link.user, env.now()))
            return
        node.held.pop(link.id, None)
        self.store.submit(
            node.index, "close", (link.user, link.id), lambda ok: self._closed(link, ok)
        )

    def _closed(self, link: ServerEnd, ok: bool | StoreFailed) -> None:
        self.env.census.registry_changed(link.user)
        if ok is FAILED:
            self.env.census.count_cluster("store_errors")

    def _expired(self, user: str) -> None:
        self.env.census.registry_changed(user)

    def _refresh(self, node: Node) -> None:
        if self.env.now() >= self.env.duration + 3600:  # pragma: no cover (a safety stop)
            return
        if node.alive and node.held:
            held = list(node.held.items())
            self.store.submit(
                node.index,
                "refresh",
                ([(user, conn) for conn, user in held],),
                self._refreshed,
            )
        if self.policy.refresh is not None:  # (always: only such a policy schedules this)
            self.env.call_later(self.policy.refresh, self._refresh, node)

    def _refreshed(self, written: list[str] | StoreFailed) -> None:
        if written is FAILED:
            self.env.census.count_cluster("store_errors")
            return
        for user in written:
            self.env.census.registry_changed(user)

    # -- carrying out a node's own registry's decisions (local, broadcast) -----------------

    def _apply(self, node: Node, actions: list[Action]) -> None:
        """What a node's own registry decided: kicks and refusals, and for ``resume`` the
        welcome with its replay and the expiry of detached sessions. A session lives in its
        node's memory, so a reconnect that lands on another node cannot resume it."""
        census = self.env.census
        for action in actions:
            if isinstance(action, Welcome):
                welcome(node.links.get(action.conn), action, self.pending, census)
            elif isinstance(action, Expired):
                for lost in action.lost:
                    unbuffer(self.pending, lost, census)
            elif isinstance(action, Close | Refuse):
                if isinstance(action, Refuse):
                    census.count_refusal()
                link = node.links.get(action.conn)
                if link is not None:
                    census.kicked(action.conn)
                    if self.env.trace is not None:
                        self.env.log(
                            "server-close", action.conn, link.user, int(action.code), action.reason
                        )
                    link.server_close(int(action.code), action.reason)
        self._arm_expiry(node)

    def _arm_expiry(self, node: Node) -> None:
        registry = node.registry
        due = None if registry is None else registry.deadline()
        if due is None or due == node.expiry_at:
            return
        if node.expiry is not None:
            node.expiry.cancel()
        node.expiry_at = due
        node.expiry = self.env.call_later(max(0.0, due - self.env.now()), self._expire, node)

    def _expire(self, node: Node) -> None:
        node.expiry = node.expiry_at = None
        if node.registry is not None:
            self._apply(node, node.registry.expire(self.env.now()))

    # -- pushes ----------------------------------------------------------------------------

    def waiting_on(self, conn: int) -> list[int]:
        """No node's handler awaits another connection's close: a cluster's nodes run the
        kit's own server, whose ``close()`` returns at once."""
        return []

    def close_returned(self, conn: int, user: str) -> None:
        """Never called: see :meth:`waiting_on`."""

    def push(self, person: str, push: int) -> None:
        census = self.env.census
        if not census.person_live.get(person):
            census.count_push("offline")
            return
        census.count_push("sent")
        up = [n for n in self.nodes if n.alive]
        if not up:
            census.count_push("no_route")
            return
        entry = up[self.entry_rng.randrange(len(up))]
        if self.policy.shared:
            self.store.submit(
                entry.index, "get", (person,), lambda found: self._found(entry, push, found)
            )
            return
        outcomes: list[str] = []
        buffers = 0
        for node in up if self.policy.fanout else [entry]:
            registry = node.registry
            assert registry is not None  # a policy that does not share keeps one per node
            for action in registry.push(person, push, self.env.now()):
                if isinstance(action, Deliver):
                    outcomes.append(self._deliver(node, action.conn, push, entry))
                elif isinstance(action, Buffered):
                    buffers += 1
                elif isinstance(action, Dropped):
                    outcomes.append("dropped")
            self._arm_expiry(node)
        if buffers and "delivered" not in outcomes:
            self.pending[push] = buffers
            outcomes.append("buffered")
        self._settle(outcomes)

    def _found(self, entry: Node, push: int, found: Entry | StoreFailed | None) -> None:
        census = self.env.census
        if found is FAILED:
            census.count_cluster("store_errors")
            census.count_push("no_route")
        elif found is None:
            census.count_push("no_route")
        elif found.node == entry.index:
            self._settle([self._deliver(entry, found.conn, push, entry)])
        elif not self.store.relay(entry.index, found.node, self._forwarded, found, push, entry):
            census.count_cluster("store_errors")
            census.count_push("no_route")

    def _forwarded(self, found: Entry, push: int, entry: Node) -> None:
        self._settle([self._deliver(self.nodes[found.node], found.conn, push, entry)])

    def _deliver(self, node: Node, conn: int, push: int, entry: Node) -> str:
        census = self.env.census
        link = node.links.get(conn) if node.alive else None
        if link is None:
            return "lost_stale"
        link.send(("push", push))
        if link.silent_since is None and census.is_receiving(conn):
            if node is not entry:
                census.count_cluster("pushes_via_other_node")
            return "delivered"
        return "lost_frozen" if census.is_deaf(conn) else "lost_stale"

    def _settle(self, outcomes: list[str]) -> None:
        """A push's fate, counted once, the best of its copies."""
        for outcome in ("delivered", "buffered", "lost_frozen", "lost_stale", "dropped"):
            if outcome in outcomes:
                self.env.census.count_push(outcome)
                return
        self.env.census.count_push("no_route")

    # -- nodes failing and coming back ------------------------------------------------------

    def _reset_sockets(self, node: Node, downtime: float) -> None:
        for link in list(node.links.values()):
            link.server_dies()  # the OS resets every socket; no handler runs

    def crash_node(self, index: int, downtime: float) -> None:
        """Node ``index`` dies at once (SIGKILL): its sockets reset, no cleanup runs, its
        memory is gone; the store keeps whatever it wrote. It is back after ``downtime``."""
        node = self._node(index)
        if not node.alive:
            return
        self.env.census.count_cluster("node_crashes")
        self._die(node, downtime)
        self.env.call_later(downtime, self._back, node)

    def drain_node(self, index: int, grace: float, downtime: float) -> None:
        """A deploy: node ``index`` leaves the balancer, closes its sockets (4003, the
        server restarts) so their pages reconnect elsewhere, exits after ``grace`` and
        comes back ``downtime`` later."""
        node = self._node(index)
        if not node.alive:
            return
        self.env.census.count_cluster("node_drains")
        node.accepting = False
        self.env.census.registry_replaced()
        for link in list(node.links.values()):
            link.server_close(int(CloseCode.SERVER_RESTART), "server restarting")
        self.env.call_later(grace, self._exit, node, downtime)

    def _exit(self, node: Node, downtime: float) -> None:
        if node.alive:
            self._die(node, downtime)
        self.env.call_later(downtime, self._back, node)

    def _node(self, index: int) -> Node:
        if not isinstance(index, int) or not 0 <= index < len(self.nodes):
            raise ConfigError(f"node must be 0..{len(self.nodes) - 1}, got {index!r}")
        return self.nodes[index]

    def _die(self, node: Node, downtime: float) -> None:
        self._forget(node)
        node.alive = node.accepting = False
        self.kill(node, downtime)
        for conn in node.links:
            self.node_of.pop(conn, None)
        node.links.clear()
        node.held.clear()
        node.registry = None
        self.env.census.registry_replaced()

    def _forget(self, node: Node) -> None:
        """The node's memory is gone: pushes buffered in its sessions are lost."""
        if node.expiry is not None:
            node.expiry.cancel()
        node.expiry = node.expiry_at = None
        for session in getattr(node.registry, "sessions", {}).values():
            for push in session.buffer:
                unbuffer(self.pending, push, self.env.census)

    def _back(self, node: Node) -> None:
        if node.alive:
            return
        node.alive = node.accepting = True
        node.restarts += 1
        node.registry = None if self.policy.shared else self.env.strategy.registry()
        self.env.census.registry_replaced()

    def restart(self) -> None:
        """Every node restarted at once (the network's ``restart_server``): the sockets are
        already gone; each node's memory with them. The store lives on."""
        self.restarts += 1
        for node in self.nodes:
            for conn in node.links:
                self.node_of.pop(conn, None)
            node.links.clear()
            node.held.clear()
            node.restarts += 1
            self._forget(node)
            if node.registry is not None:
                node.registry = self.env.strategy.registry()
        self.env.census.registry_replaced()


@dataclass(frozen=True)
class ClusterSpec:
    """How many nodes, which load balancer, and the virtual store's latency (one way, in
    seconds; Redis on the same rack answers in a fraction of a millisecond)."""

    nodes: int = 1
    balancer: str = "round-robin"
    store_latency: float = 0.0005

    def __post_init__(self) -> None:
        check_nodes(self.nodes)
        balancer(self.balancer)  # a bad name fails here, listing the valid ones
        if not (isinstance(self.store_latency, int | float) and self.store_latency >= 0):
            raise ConfigError(f"store_latency must be >= 0 seconds, got {self.store_latency!r}")

    def build(self, env: Env, store: SharedStore | None = None) -> Cluster:
        """The cluster actor for one run: the strategy's cross-node policy (``local`` for a
        one-node design), a fresh balancer with its own random stream, the given store or
        a virtual one."""
        policy = cluster_policy(env.strategy.cluster or "local")
        chosen = balancer(self.balancer, env.rng("balancer"))
        shared = VirtualStore(env, policy, self.store_latency) if store is None else store
        return Cluster(env, self.nodes, policy, chosen, shared)


def cluster_spec(
    nodes: int, balancer_name: str | None, strategy: Strategy, runtime: str
) -> ClusterSpec | None:
    """What ``simkit.run(nodes=..., balancer=...)`` asks for: None for one node and a
    one-node design (the run is exactly what it was before nodes existed), else a spec."""
    check_nodes(nodes)
    if balancer_name is not None:
        balancer(balancer_name)
    if nodes == 1 and strategy.cluster is None:
        return None
    if runtime == "browser":
        raise ConfigError(
            "several nodes (nodes > 1 or a cross-node strategy) are played by the virtual and "
            f"live runtimes, not {runtime!r}"
        )
    return ClusterSpec(nodes, balancer_name or "round-robin")
