"""What the virtual loop's timer heap holds, shared by the loop, its actors and the stall watch.

Every entry starts ``(when, sequence)``: unique keys, so equal deadlines pop in scheduling
order whatever the heap's layout. Three kinds follow:

* ``(when, seq, timer)``: an ``asyncio.TimerHandle`` (``call_at``, ``call_later``);
* ``(when, seq, MESSAGE, callback, args)``: ``callback(*args)``, made by ``post_at`` (the
  network's messages and the sleeps' wake-ups): no handle, no context, never cancelled;
* ``(when, seq, WAKE, actor, generation)``: a sleeping actor's alarm; the actor steps then,
  unless it was cancelled since (its generation moved on).
"""

from __future__ import annotations

import asyncio

__all__ = ["MESSAGE", "WAKE", "Marker", "wake"]


class Marker:
    """The third item of a heap entry that is not a timer handle: :data:`MESSAGE` or
    :data:`WAKE`. Looks enough like a live timer handle to the loop's checks for cancelled
    ones (never cancelled)."""

    __slots__ = ("_scheduled",)
    _cancelled = False


MESSAGE = Marker()
WAKE = Marker()


def wake(future: asyncio.Future[None]) -> None:
    """The message that ends a sleep on a future: done, unless cancelled meanwhile."""
    if not future.done():
        future.set_result(None)
