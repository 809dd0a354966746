"""What an actor may touch: the clock, the network, the census and its own random streams."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVarTuple

from simkit.calibration import TIMING, BrowserTiming
from simkit.model.strategy import Strategy
from simkit.runtime.census import Census
from simkit.runtime.interfaces import Network, ServerActor

Ts = TypeVarTuple("Ts")

TraceRow = tuple[float, int | None, str | None, str, int | None, str]
"""One traced connection event: ``time, conn, user, event, code, reason``."""


class Post(Protocol):
    """``loop.call_at`` without its handle: the VirtualLoop's ``post_at``, else ``call_at``."""

    def __call__(self, when: float, fn: Callable[[*Ts], object], /, *args: *Ts) -> object: ...


@dataclass
class Env:
    """One run's shared context. ``scale`` turns scenario seconds into loop seconds (1 in
    virtual time; e.g. 0.05 live, so a minute of scenario takes three seconds)."""

    loop: asyncio.AbstractEventLoop
    strategy: Strategy
    census: Census
    network: Network
    seed: int
    duration: float
    scale: float = 1.0
    timing: BrowserTiming = TIMING  # the browser's own closes, from real Chromium
    trace: list[TraceRow] | None = None
    start: float = field(default=0.0)
    # The run's server side (set by the run core once it exists, before any script runs):
    # what a scenario's server-side control acts on.
    server: ServerActor = field(init=False, repr=False)

    def now(self) -> float:
        """Scenario time in seconds since the run started."""
        return (self.loop.time() - self.start) / self.scale

    def call_later(
        self, delay: float, fn: Callable[[*Ts], object], *args: *Ts
    ) -> asyncio.TimerHandle:
        return self.loop.call_at(self.loop.time() + delay * self.scale, fn, *args)

    def after(self, delay: float, fn: Callable[[*Ts], object], *args: *Ts) -> None:
        """``call_later`` for what nobody cancels (a browser's close, a guard's check): on
        the VirtualLoop a handle-free message, in the same order a timer would have had."""
        self._post(self.loop.time() + delay * self.scale, fn, *args)

    def sleep(self, delay: float) -> Awaitable[None]:
        """``await env.sleep(seconds)``: a plain function, not a coroutine (one frame fewer
        per wait; tabs wait millions of times in a big run), returning the VirtualLoop's
        handle-free sleep on virtual time and asyncio's sleep elsewhere."""
        return self.sleeper(delay)

    def __post_init__(self) -> None:
        sleep: Callable[[float], Awaitable[None]] = getattr(self.loop, "sleep", asyncio.sleep)
        scale = self.scale
        # What sleep() calls; actors that wait often (tabs) call it directly: a frame less.
        self.sleeper = sleep if scale == 1.0 else lambda delay: sleep(delay * scale)
        self._post: Post = getattr(self.loop, "post_at", self.loop.call_at)

    def rng(self, *key: object) -> random.Random:
        """An independent random stream for ``key``: adding a tab or an event elsewhere never
        shifts it. (A str seed goes through SHA-512, so it is the same in every process.)"""
        return random.Random(":".join(map(str, (self.seed, *key))))

    def log(
        self,
        event: str,
        conn: int | None = None,
        user: str | None = None,
        code: int | None = None,
        reason: str = "",
    ) -> None:
        """Record one connection event for ``Result.trace`` (a ``time, conn, user, event,
        code, reason`` row), as fields, not a formatted string, so the trace can be filtered
        by code or user without parsing. Callers on hot paths test ``env.trace is not None``
        first, so a run without ``trace=True`` pays nothing, not even the call."""
        if self.trace is not None:
            self.trace.append((self.now(), conn, user, event, code, reason))
