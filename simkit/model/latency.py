"""Network latency as data: what a scenario says about the wire."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Latency:
    """One-way delay: ``base`` plus a uniform jitter in [0, ``jitter``] seconds.

    The jitter is what reorders an old socket's close and a new socket's handshake, which
    is what makes the cleanup race happen at all.
    """

    base: float = 0.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if not (self.base >= 0 and self.jitter >= 0):
            raise ValueError(
                f"latency must be >= 0 s, got base={self.base!r}, jitter={self.jitter!r}"
            )

    def draw(self, rng: random.Random) -> float:
        if self.jitter:
            return self.base + rng.random() * self.jitter
        return self.base
