"""Several live server nodes sharing a real Redis, the kit's proxies as the load balancer.

Each node is a real :class:`~simkit.net.server.LocalServer` on its own port behind its own
:class:`~simkit.net.proxy.FaultProxy`; a tab's socket goes to the node the run's load
balancer picks when the tab dials (an L4 balancer chooses at connect time too, and a
sticky one by the user in the URL). The nodes run in the run's process and share one
:class:`~simkit.actors.cluster.Cluster` actor, whose registry lives in a real Redis
(:class:`~simkit.net.redis.RedisStore`) started for the run and stopped after it.

Why in one process: the census keeps the truth of both ends of every socket as it happens;
a node in another process would report its opens and closes late (the browser runtime
shows what a late census costs), and the kit's conformance suite holds a runtime to the
census's view. A node crash is still real where it matters: the node's server aborts every
socket (the clients get a TCP reset, as from a SIGKILLed process), stops listening (new
connections to its port are refused), runs no handler's cleanup, forgets its memory, and
comes back on the same port; what it wrote to Redis stays there. Where a crash must be a
real process's death, :class:`NodeProcess` (``python -m simkit serve --redis URL --node K``)
runs one node as its own OS process, which a SIGKILL kills.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import ChainMap
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from simkit.actors.cluster import Cluster, ClusterSpec, Node
from simkit.live.runtime import LIVE_SCALE
from simkit.model.cluster import cluster_policy
from simkit.model.errors import ConfigError
from simkit.model.liveness import CLOSE_TIMEOUT
from simkit.model.strategy import Strategy
from simkit.net.network import LiveLink, LiveNetwork
from simkit.net.realtime import RealtimeRuntime
from simkit.net.redis import RedisServer, RedisStore
from simkit.net.server import LocalServer
from simkit.runtime.census import Census
from simkit.runtime.interfaces import Clock, ServerActor

if TYPE_CHECKING:
    from simkit.scenarios import Scenario


class NodeCore:
    """What one node's LocalServer calls: the shared Cluster actor, told which node."""

    def __init__(self, cluster: Cluster, index: int) -> None:
        self.cluster = cluster
        self.index = index
        self.env = cluster.env
        self.registry = cluster.registry

    def on_open(self, link: Any) -> None:
        self.cluster.on_open(link, self.index)

    def on_close(self, link: Any, code: int) -> None:
        self.cluster.on_close(link, code)

    def restart(self) -> None:
        """The node's process died: the Cluster already counted it (crash_node)."""


class ClusterNetwork(LiveNetwork):
    """Tabs dial the node the balancer picks, through that node's proxy."""

    def __init__(
        self, runtime: LiveClusterRuntime, loop: asyncio.AbstractEventLoop, census: Census
    ):
        super().__init__(
            loop,
            census,
            runtime.locals[0],
            runtime.proxies[0],
            scale=runtime.scale,
            close_timeout=runtime.close_timeout,
        )
        self.runtime = runtime
        self.cluster: Cluster | None = None

    @property
    def open_links(self) -> Any:
        return ChainMap(*(local.open_links for local in self.runtime.locals))

    @property
    def server(self) -> ServerActor:
        assert self.cluster is not None, "attach() first"
        return self.cluster

    def attach(self, clock: Clock, server: ServerActor) -> None:
        if not isinstance(server, Cluster):
            raise TypeError(f"the nodes' network serves a Cluster, not {type(server).__name__}")
        cluster = self.cluster = server
        self.env = clock
        for index, local in enumerate(self.runtime.locals):
            local.core = NodeCore(cluster, index)
        cluster.kill = self.runtime.kill_node

    def dial(self, link: LiveLink) -> tuple[str, dict[str, Any]]:
        _, options = super().dial(link)
        assert self.cluster is not None
        index = self.cluster.pick(link.user)
        port = self.runtime.proxies[0 if index is None else index].port
        query: dict[str, Any] = {"user": link.user, "link": link.id}
        if link.session:
            query["session"] = link.session
        return f"ws://127.0.0.1:{port}/ws?{urlencode(query)}", options

    def restart_server(self, downtime: float) -> None:
        """Every node's process dies at once and comes back (the store lives on)."""
        for local in self.runtime.locals:
            self.spawn(local.restart(downtime * self.scale))
        if self.cluster is not None:
            self.cluster.restart()


class LiveClusterRuntime(RealtimeRuntime):
    """``runtime="live"`` with ``nodes=N``: N LocalServers, N proxies, one real Redis."""

    name = "live"
    default_scale = LIVE_SCALE

    def __init__(
        self,
        scenario: Scenario,
        strategy: Strategy,
        spec: ClusterSpec,
        *,
        scale: float | None = None,
        seed: int = 0,
        close_timeout: float = CLOSE_TIMEOUT,
    ) -> None:
        super().__init__(scenario, strategy, scale=scale, seed=seed, close_timeout=close_timeout)
        self.cluster = self.spec = spec
        self.policy = cluster_policy(strategy.cluster or "local")
        self.locals: list[LocalServer] = []
        self.redis: RedisServer | None = None
        self.store: RedisStore | None = None
        self.shared_clients: dict[int, Any] = {}

    async def start(self) -> None:
        if self.policy.shared:
            self.redis = RedisServer()
            await self.redis.start()
        for _ in range(self.spec.nodes):
            local = LocalServer(
                self.strategy,
                scale=self.scale,
                close_timeout=self.close_timeout,
                own_core=False,
                clients=self.shared_clients,
            )
            self.locals.append(local)
            await local.start()
            await self.open_proxy(local.port)  # node i's proxy: the scenario's seed + i

    def cluster_store(self, env: Any) -> Any:
        if self.redis is None:
            return None  # nothing shared: the nodes need no store (a virtual one idles)
        self.store = RedisStore(env, self.policy, self.redis)
        return self.store

    async def prepare(self, env: Any, people: list[str]) -> None:
        if self.store is not None:
            await self.store.check()

    def network(self, loop: asyncio.AbstractEventLoop, census: Census) -> LiveNetwork:
        return self.keep(ClusterNetwork(self, loop, census))

    def kill_node(self, node: Node, downtime: float) -> None:
        """A real crash of the node's server: every socket aborted (the clients get a TCP
        reset), the port closed (new connections refused), no handler's cleanup, its memory
        gone; it listens again on the same port ``downtime`` scenario seconds later."""
        self.networks[-1].spawn(self.locals[node.index].restart(downtime * self.scale))

    def summary(self) -> dict[str, Any]:
        return {"redis": self.redis is not None}

    def losses(self) -> list[str]:
        """The kit's redis-server exited during the run (a pause, as in ``redis-blip``,
        is not a loss: the process is still there)."""
        process = getattr(self.redis, "process", None)
        status = process.poll() if process is not None else None
        if status is None:
            return []
        return [
            f"the shared store (redis-server) exited during the run (exit status {status}); "
            "the nodes' registry was lost"
        ]

    async def stop_servers(self) -> None:
        if self.store is not None:
            await self.store.aclose()
        for local in self.locals:
            with contextlib.suppress(Exception):
                await local.stop()
        if self.redis is not None:
            await self.redis.stop()


class NodeProcess:
    """Node ``node`` of ``nodes`` as this OS process (``python -m simkit serve --redis URL
    --node K --nodes N``): one LocalServer whose registry is the shared Redis, through the
    same :class:`~simkit.actors.cluster.Cluster` and policy as the run's nodes; the other
    nodes are other processes (their Node slots here stay empty). A kick for a socket on
    another node is PUBLISHed on ``simkit:node:<index>``; this process listens on its own
    channel and kicks. Killing the process (SIGKILL) is a real crash: no handler's cleanup,
    its entries stay in Redis until overwritten or, under ``presence-ttl``, expired."""

    def __init__(
        self,
        strategy: str | Strategy,
        redis_url: str,
        node: int,
        nodes: int,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        scale: float = 1.0,
        stack: str = "websockets",
        ws: str | None = None,
        secret: bytes | None = None,
    ) -> None:
        from simkit.model.strategy import strategy as strategy_of
        from simkit.net.common import check_positive
        from simkit.net.redis import RedisAt

        self.strategy = strategy_of(strategy)
        self.policy = cluster_policy(self.strategy.cluster or "local")
        if not self.policy.shared:
            from simkit.model.cluster import CLUSTER_POLICIES

            shared = [name for name, p in CLUSTER_POLICIES.items() if p.shared]
            raise ConfigError(
                f"--redis needs a strategy whose registry is shared, one of {shared}; "
                f"{self.strategy.name!r} keeps each node's registry in its own memory"
            )
        ClusterSpec(nodes)  # a bad count fails here, with the allowed range
        if isinstance(node, bool) or not isinstance(node, int) or not 0 <= node < nodes:
            raise ConfigError(f"--node must be 0..{nodes - 1} (of --nodes {nodes}), got {node!r}")
        self.redis = RedisAt(redis_url)
        self.node, self.nodes = node, nodes
        self.scale = check_positive("scale", scale)
        self.local = LocalServer(
            self.strategy, host=host, port=port, stack=stack, ws=ws, scale=self.scale,
            own_core=False, secret=secret,
        )  # fmt: skip
        self.cluster: Cluster | None = None
        self.store: RedisStore | None = None
        self._listener: asyncio.Task[None] | None = None
        self._pubsub: Any = None

    async def start(self) -> None:
        from typing import cast

        from simkit.actors.env import Env
        from simkit.runtime.interfaces import Network

        loop = asyncio.get_running_loop()
        census = Census(one_per_user=self.strategy.registry().one_per_user)
        env = Env(
            loop, self.strategy, census, cast(Network, self.local), 0, float("inf"),
            scale=self.scale, start=loop.time(),
        )  # fmt: skip
        self.store = RedisStore(env, self.policy, self.redis)  # type: ignore[arg-type]
        self.store.hosted = self.node
        await self.store.check()
        self.cluster = ClusterSpec(self.nodes).build(env, self.store)
        self.local.core = NodeCore(self.cluster, self.node)
        import redis.asyncio as aioredis

        self._pubsub = aioredis.Redis.from_url(self.redis.url).pubsub()
        await self._pubsub.subscribe(f"simkit:node:{self.node}")
        self._listener = loop.create_task(self._listen())
        await self.local.start()

    async def _listen(self) -> None:
        """Another node's process asks this one to act (a kick of a socket held here)."""
        import json

        from simkit.net.redis import REMOTE_CALLS

        async for message in self._pubsub.listen():
            if message.get("type") != "message":
                continue
            with contextlib.suppress(ValueError, TypeError):
                name, args = json.loads(message["data"])
                if name in REMOTE_CALLS and self.cluster is not None:
                    getattr(self.cluster, name)(*args)

    @property
    def url(self) -> str:
        return self.local.url

    async def stop(self) -> None:
        """A clean stop (Ctrl-C, SIGTERM): sockets closed, their entries removed, port and
        Redis connections freed. A SIGKILL runs none of this: that is the crash."""
        with contextlib.suppress(Exception):
            await self.local.stop()
        await asyncio.sleep(0.05 * self.scale + 0.05)  # the cleanups' commands reach Redis
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(BaseException):
                await self._listener
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        if self.store is not None:
            await self.store.aclose()

    async def __aenter__(self) -> NodeProcess:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
