"""The ``live`` runtime: the run core over real sockets, on a real clock.

A :class:`~simkit.net.server.LocalServer` on 127.0.0.1 serves the run's server actor
(``stack="fastapi"``: FastAPI on uvicorn, with ``ws`` its WebSocket implementation),
behind a :class:`~simkit.net.proxy.FaultProxy` that plays the scenario's latency, idle
timeout and silent links; each tab's socket is a real ``websockets`` client
(:class:`~simkit.net.network.LiveNetwork`). Every duration is multiplied by ``scale``
(0.05: a 300 s scenario takes 15 s). The run plays on a fresh event loop in a worker
thread (:func:`simkit.runtime.threads.in_thread`), so a notebook cell can call it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar, cast

from simkit.actors.play import Runtime
from simkit.model.errors import ClientFailed, ConfigError, RunFailed
from simkit.model.liveness import CLOSE_TIMEOUT
from simkit.model.strategy import Strategy
from simkit.net.common import BaseServer, check_stack
from simkit.net.network import LiveNetwork
from simkit.net.proxy import FaultProxy, Toxics
from simkit.net.server import LocalServer
from simkit.runtime.census import Census
from simkit.runtime.threads import in_thread

if TYPE_CHECKING:
    from simkit.scenarios import Scenario

T = TypeVar("T")

LIVE_SCALE = 0.05  # a live run plays 20 scenario seconds per wall second by default


def check_scale(scale: float) -> float:
    if isinstance(scale, bool) or not isinstance(scale, int | float):
        raise ConfigError(f"scale must be a positive number, got {scale!r}")
    if not (scale > 0 and math.isfinite(scale)):
        raise ConfigError(f"scale must be a positive number, got {scale!r}")
    return float(scale)


class LiveRuntime(Runtime):
    """Real sockets through a fault proxy to a real local server."""

    name = "live"

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
        self.scenario = scenario
        self.strategy = strategy
        self.scale = check_scale(self.default_scale if scale is None else scale)
        self.seed = seed
        self.close_timeout = close_timeout
        self.local: BaseServer | None = None
        self.proxy: FaultProxy | None = None
        self.networks: list[LiveNetwork] = []

    default_scale = LIVE_SCALE

    @property
    def server(self) -> BaseServer:
        """The run's LocalServer (once :meth:`start` has run)."""
        if self.local is None:
            raise RunFailed(f"the {self.name} runtime has not started")
        return self.local

    @property
    def faults(self) -> FaultProxy:
        """The run's FaultProxy (once :meth:`start` has run)."""
        if self.proxy is None:
            raise RunFailed(f"the {self.name} runtime has not started")
        return self.proxy

    def execute(self, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
        return in_thread(main, name=f"simkit-{self.name}")

    def clients(self) -> dict[int, Any]:
        """Where the server looks up the run's client end of a connection by its link id."""
        return {}

    async def start(self) -> None:
        sc, scale = self.scenario, self.scale
        self.local = LocalServer(
            self.strategy,
            scale=scale,
            close_timeout=self.close_timeout,
            own_core=False,
            clients=self.clients(),
            stack=self.stack,
            ws=self.ws,
        )
        await self.local.start()
        toxics = Toxics(latency=sc.latency.base * scale, jitter=sc.latency.jitter * scale)
        idle = None if sc.idle_timeout is None else sc.idle_timeout * scale
        self.proxy = FaultProxy(self.local.port, defaults=toxics, idle_timeout=idle, seed=self.seed)
        await self.proxy.__aenter__()

    def network(self, loop: asyncio.AbstractEventLoop, census: Census) -> LiveNetwork:
        assert self.local is not None and self.proxy is not None, "start() first"
        # LiveNetwork is typed for LocalServer; any BaseServer (FastAPI too) has what it uses
        net = LiveNetwork(
            loop,
            census,
            cast(LocalServer, self.local),
            self.proxy,
            scale=self.scale,
            close_timeout=self.close_timeout,
        )
        self.networks.append(net)
        return net

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
        for net in self.networks:
            await net.aclose()
        if self.proxy is not None:
            with contextlib.suppress(Exception):
                await self.proxy.close()
        if self.local is not None:
            await self.local.stop()
