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
real process's death, :class:`~simkit.net.node.NodeProcess` (``python -m simkit serve
--redis URL --node K``) runs one node as its own OS process, which a SIGKILL kills.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import ChainMap
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from simkit.actors.cluster import Cluster, ClusterSpec, Node
from simkit.live.runtime import LIVE_SCALE
from simkit.model.cluster import cluster_policy
from simkit.model.liveness import CLOSE_TIMEOUT
from simkit.model.strategy import Strategy
from simkit.net.network import ConnectOptions, LiveLink, LiveNetwork
from simkit.net.node import NodeCore
from simkit.net.realtime import RealtimeRuntime
from simkit.net.redis import RedisServer, RedisStore
from simkit.net.server import LocalServer
from simkit.runtime.census import Census
from simkit.runtime.interfaces import Clock, ServerActor, ServerEnd

if TYPE_CHECKING:
    from simkit.actors.env import Env
    from simkit.scenarios import Scenario


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
    def open_links(self) -> Mapping[int, ServerEnd]:
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

    def dial(self, link: LiveLink) -> tuple[str, ConnectOptions]:
        _, options = super().dial(link)
        assert self.cluster is not None
        index = self.cluster.pick(link.user)
        port = self.runtime.proxies[0 if index is None else index].port
        query: dict[str, str | int] = {"user": link.user, "link": link.id}
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
        self.shared_clients: dict[int, Any] = {}  # see BaseServer's clients

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

    def cluster_store(self, env: Env) -> RedisStore | None:
        if self.redis is None:
            return None  # nothing shared: the nodes need no store (a virtual one idles)
        self.store = RedisStore(env, self.policy, self.redis)
        return self.store

    async def prepare(self, env: Env, people: list[str]) -> None:
        if self.store is not None:
            await self.store.check()

    def network(self, loop: asyncio.AbstractEventLoop, census: Census) -> LiveNetwork:
        return self.keep(ClusterNetwork(self, loop, census))

    def kill_node(self, node: Node, downtime: float) -> None:
        """A real crash of the node's server: every socket aborted (the clients get a TCP
        reset), the port closed (new connections refused), no handler's cleanup, its memory
        gone; it listens again on the same port ``downtime`` scenario seconds later."""
        self.networks[-1].spawn(self.locals[node.index].restart(downtime * self.scale))

    def summary(self) -> dict[str, object]:
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
