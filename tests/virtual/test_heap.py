"""simkit.virtual.heap: the markers of the timer heap's non-handle entries and the sleep's
wake-up message."""

from __future__ import annotations

import asyncio

from simkit.virtual.heap import MESSAGE, WAKE, Marker, wake


def test_markers_are_distinct_and_never_cancelled() -> None:
    assert MESSAGE is not WAKE
    assert isinstance(MESSAGE, Marker) and isinstance(WAKE, Marker)
    assert not MESSAGE._cancelled and not WAKE._cancelled  # the loop skips cancelled entries


def test_wake_ends_a_pending_sleep_and_leaves_a_cancelled_one_alone() -> None:
    loop = asyncio.new_event_loop()
    try:
        pending: asyncio.Future[None] = loop.create_future()
        wake(pending)
        assert pending.done() and pending.result() is None
        cancelled: asyncio.Future[None] = loop.create_future()
        cancelled.cancel()
        wake(cancelled)  # no InvalidStateError: the sleeper was cancelled meanwhile
        assert cancelled.cancelled()
    finally:
        loop.close()
