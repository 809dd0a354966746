"""What every real-time runtime shares: real sockets through the fault proxy, a real clock.

The live runtime (``websockets`` clients against the kit's own server), the target runtime
(the same clients against your server), several nodes, and the browser runtime (Chromium
pages against the kit's server) differ in who answers and who dials; they share how a run
plays in real time. :class:`RealtimeRuntime` holds that part once: the run on a loop of
its own in a worker thread, durations multiplied by ``scale``, the scenario's network
conditions played by one :class:`~simkit.net.proxy.FaultProxy` per server, the rule that a
failed client task fails the run, and a stop that closes clients, proxies and servers in
that order on every path. :class:`KitServerRuntime` adds the kit's own
:class:`~simkit.net.server.LocalServer` (either stack) behind one proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from simkit.actors.play import Runtime
from simkit.model.errors import ClientFailed, ConfigError, RunFailed
from simkit.model.liveness import CLOSE_TIMEOUT
from simkit.model.strategy import Strategy
from simkit.net.common import BaseServer, check_stack
from simkit.net.network import ClientNetwork
from simkit.net.proxy import FaultProxy, Toxics
from simkit.net.server import LocalServer
from simkit.runtime.threads import in_thread

if TYPE_CHECKING:
    from simkit.scenarios import Scenario

T = TypeVar("T")
N = TypeVar("N", bound=ClientNetwork)


def check_scale(scale: object) -> float:
    """A positive, finite number of wall seconds per scenario second."""
    if isinstance(scale, bool) or not isinstance(scale, int | float):
        raise ConfigError(f"scale must be a positive number, got {scale!r}")
    if not (scale > 0 and math.isfinite(scale)):
        raise ConfigError(f"scale must be a positive number, got {scale!r}")
    return float(scale)


class RealtimeRuntime(Runtime):
    """Real sockets on a real clock: the base of every runtime but the virtual one.

    A subclass starts what answers (:meth:`start`, opening a proxy in front of each server
    with :meth:`open_proxy`), makes its network (kept with :meth:`keep`, so :meth:`check`
    and :meth:`stop` see it), and stops what it started in :meth:`stop_servers`."""

    default_scale: ClassVar[float] = 1.0

    def __init__(
        self,
        scenario: Scenario,
        strategy: Strategy,
        *,
        scale: float | None = None,
        seed: int = 0,
        close_timeout: float = CLOSE_TIMEOUT,
    ) -> None:
        self.scenario = scenario
        self.strategy = strategy
        self.scale = check_scale(self.default_scale if scale is None else scale)
        self.seed = seed
        self.close_timeout = close_timeout
        self.proxies: list[FaultProxy] = []
        self.networks: list[ClientNetwork] = []

    def execute(self, main: Callable[[], Coroutine[object, None, T]]) -> T:
        return in_thread(main, name=f"simkit-{self.name}")

    async def open_proxy(self, port: int, host: str = "127.0.0.1") -> FaultProxy:
        """A fault proxy in front of the server at ``host:port``, playing the scenario's
        latency, jitter and idle timeout at this run's scale (each proxy its own seed)."""
        sc, scale = self.scenario, self.scale
        proxy = FaultProxy(
            port,
            upstream_host=host,
            defaults=Toxics(latency=sc.latency.base * scale, jitter=sc.latency.jitter * scale),
            idle_timeout=None if sc.idle_timeout is None else sc.idle_timeout * scale,
            seed=self.seed + len(self.proxies),
        )
        self.proxies.append(proxy)
        await proxy.__aenter__()
        return proxy

    @property
    def faults(self) -> FaultProxy:
        """The run's (first) fault proxy, once :meth:`start` has run."""
        if not self.proxies:
            raise RunFailed(f"the {self.name} runtime has not started")
        return self.proxies[0]

    def keep(self, network: N) -> N:
        """Remember a network this runtime made, so its client tasks are checked and closed."""
        self.networks.append(network)
        return network

    def check(self) -> None:
        for net in self.networks:
            if net.errors:  # a client task failed: the run is not to be trusted
                raise ClientFailed(
                    f"{self.name} run failed: a client task raised {net.errors[0]!r}",
                    scenario=self.scenario.name,
                    strategy=self.strategy.name,
                    task="client",
                    cause=net.errors[0],
                ) from net.errors[0]

    async def stop(self) -> None:
        """Clients first (their sockets closed now, not at garbage collection), then the
        proxies, then the servers; each step runs even if an earlier one failed."""
        try:
            for net in self.networks:
                await net.aclose()
        finally:
            try:
                for proxy in self.proxies:
                    with contextlib.suppress(Exception):
                        await proxy.close()
            finally:
                await self.stop_servers()

    async def stop_servers(self) -> None:
        """Stop what answered the run (the kit's servers, Redis); a target is not ours."""

    async def settle_tasks(self, timeout: float = 1.0) -> None:
        """Give the tasks a close left behind (the proxy's pumps) a bounded moment to end
        before the loop does."""
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)


class KitServerRuntime(RealtimeRuntime):
    """A real-time run against the kit's own server: one :class:`LocalServer` on
    127.0.0.1 (``stack``: ``websockets`` or ``fastapi``, ``ws`` uvicorn's implementation)
    behind one fault proxy."""

    def __init__(
        self,
        scenario: Scenario,
        strategy: Strategy,
        *,
        scale: float | None = None,
        seed: int = 0,
        close_timeout: float = CLOSE_TIMEOUT,
        stack: str | None = None,
        ws: str | None = None,
    ) -> None:
        self.stack, self.ws = check_stack("websockets" if stack is None else stack, ws)
        super().__init__(scenario, strategy, scale=scale, seed=seed, close_timeout=close_timeout)
        self.local: BaseServer | None = None

    @property
    def server(self) -> BaseServer:
        """The run's LocalServer (once :meth:`start` has run)."""
        if self.local is None:
            raise RunFailed(f"the {self.name} runtime has not started")
        return self.local

    def clients(self) -> dict[int, Any]:  # see BaseServer's clients
        """Where the server looks up the run's client end of a connection by its link id."""
        return {}

    async def start(self) -> None:
        self.local = LocalServer(
            self.strategy,
            scale=self.scale,
            close_timeout=self.close_timeout,
            own_core=False,
            clients=self.clients(),
            stack=self.stack,
            ws=self.ws,
        )
        await self.local.start()
        await self.open_proxy(self.local.port)

    async def stop_servers(self) -> None:
        if self.local is not None:
            await self.local.stop()
