"""The ``live`` runtime: the run core over real sockets, on a real clock.

A :class:`~simkit.net.server.LocalServer` on 127.0.0.1 serves the run's server actor
(``stack="fastapi"``: FastAPI on uvicorn, with ``ws`` its WebSocket implementation),
behind a :class:`~simkit.net.proxy.FaultProxy` that plays the scenario's latency, idle
timeout and silent links; each tab's socket is a real ``websockets`` client
(:class:`~simkit.net.network.LiveNetwork`). Every duration is multiplied by ``scale``
(0.05: a 300 s scenario takes 15 s). What every real-time runtime shares (the worker
thread, the proxy, the failure rule, the stop order) is :mod:`simkit.net.realtime`.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from simkit.net.network import LiveNetwork
from simkit.net.realtime import KitServerRuntime
from simkit.runtime.census import Census

LIVE_SCALE = 0.05  # a live run plays 20 scenario seconds per wall second by default


class LiveRuntime(KitServerRuntime):
    """Real ``websockets`` clients through a fault proxy to a real local server."""

    name = "live"
    default_scale: ClassVar[float] = LIVE_SCALE

    def network(self, loop: asyncio.AbstractEventLoop, census: Census) -> LiveNetwork:
        return self.keep(
            LiveNetwork(
                loop,
                census,
                self.server,
                self.faults,
                scale=self.scale,
                close_timeout=self.close_timeout,
            )
        )
