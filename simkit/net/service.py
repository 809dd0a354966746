"""Something a run starts and must stop on every path: a browser, a node process.

``async with service:`` starts it, and stops it again if the start itself fails half-way
(a browser that launched but never answered, a node that bound its port but could not
reach Redis), so a failed start leaves nothing running either.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self


class Service(ABC):
    """Start with :meth:`start`, stop with :meth:`stop` (safe on a half-started one)."""

    @abstractmethod
    async def start(self) -> None:
        """Bring it up; may fail half-way."""

    @abstractmethod
    async def stop(self) -> None:
        """Bring it down, whatever :meth:`start` got to; safe to call twice."""

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
