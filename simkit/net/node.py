"""One server node of several: its core (the share of the run's ``Cluster`` a node's server
serves) and :class:`NodeProcess`, one node as its own OS process.

A node of the live runtime's cluster (``simkit.live.nodes``) is a ``LocalServer`` in the
run's process whose core is a :class:`NodeCore`; ``python -m simkit serve --redis URL
--node K --nodes N`` runs node K as a process of its own (:class:`NodeProcess`), so a
crash can be a real process's death, which a SIGKILL gives.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from simkit.actors.cluster import Cluster, ClusterSpec
from simkit.model.cluster import cluster_policy
from simkit.model.errors import ConfigError
from simkit.model.strategy import Strategy
from simkit.net.redis import RedisStore
from simkit.net.server import LocalServer
from simkit.net.service import Service
from simkit.runtime.census import Census
from simkit.runtime.interfaces import ServerEnd

if TYPE_CHECKING:  # redis is imported when a node starts
    from redis.asyncio.client import PubSub


class NodeCore:
    """What one node's LocalServer calls: the shared Cluster actor, told which node."""

    def __init__(self, cluster: Cluster, index: int) -> None:
        self.cluster = cluster
        self.index = index
        self.env = cluster.env
        self.registry = cluster.registry

    def on_open(self, link: ServerEnd) -> None:
        self.cluster.on_open(link, self.index)

    def on_close(self, link: ServerEnd, code: int) -> None:
        self.cluster.on_close(link, code)

    def restart(self) -> None:
        """The node's process died: the Cluster already counted it (crash_node)."""


class NodeProcess(Service):
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
        self._pubsub: PubSub | None = None

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
        self.store = RedisStore(env, self.policy, self.redis)
        self.store.hosted = self.node
        await self.store.check()
        self.cluster = ClusterSpec(self.nodes).build(env, self.store)
        self.local.core = NodeCore(self.cluster, self.node)
        import redis.asyncio as aioredis

        self._pubsub = pubsub = aioredis.Redis.from_url(self.redis.url).pubsub()
        await pubsub.subscribe(f"simkit:node:{self.node}")
        self._listener = loop.create_task(self._listen(pubsub))
        await self.local.start()

    async def _listen(self, pubsub: PubSub) -> None:
        """Another node's process asks this one to act (a kick of a socket held here)."""
        import json

        from simkit.net.redis import REMOTE_CALLS

        async for message in pubsub.listen():
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
