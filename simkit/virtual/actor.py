"""The lean task the virtual loop steps itself: :class:`Actor`, and the :class:`Sleep` it
awaits.

An ``asyncio.Task`` sleeping costs a future, a timer handle, a wake-up handle and their
callbacks; a tab sleeps twice per reload. An actor does the same things a task does, in the
same event order, for what a simulation's coroutines do, but its sleep is one heap entry
(:data:`~simkit.virtual.heap.WAKE`) and the loop steps the actor straight from the ready
queue. ``VirtualLoop(actors=True)`` (the virtual runtime's) makes its tasks actors.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
from collections.abc import Callable, Coroutine, Generator
from types import FrameType
from typing import TYPE_CHECKING, Any

from simkit.virtual.compat import enter_task, future_loop, leave_task
from simkit.virtual.heap import MESSAGE, WAKE, wake

if TYPE_CHECKING:
    from simkit.virtual.loop import VirtualLoop

__all__ = ["SLEEP_CODE", "Actor", "Sleep"]

_copy_context = contextvars.copy_context


class Sleep:
    """What ``VirtualLoop.sleep`` returns on a loop with ``actors``: awaited by an actor, it
    is yielded to the actor itself, which files its own alarm (no future, no handle, no
    callback); awaited by anything else (an asyncio task), it is an ordinary future."""

    __slots__ = ("loop", "when")

    def __init__(self, loop: VirtualLoop, when: float) -> None:
        self.loop, self.when = loop, when

    def __await__(self) -> Generator[Any, None, None]:  # what it yields is the loop's affair
        loop = self.loop
        if loop._actor is None:  # not an actor's own await: the future way
            future: asyncio.Future[None] = asyncio.Future(loop=loop)
            heapq.heappush(loop._timers, (self.when, loop._seq(), MESSAGE, wake, (future,)))
            return (yield from future)
        yield self  # to Actor._step


SLEEP_CODE = Sleep.__await__.__code__


class Actor(asyncio.Future[object]):
    """A task the VirtualLoop steps itself (``VirtualLoop(actors=True)``, as the virtual
    runtime makes it). It behaves as an ``asyncio.Task`` does for what a simulation's
    coroutines do (sleep, await futures, tasks and gathers, bare yields, be cancelled, fail,
    ``asyncio.current_task()``), in the same event order, but a sleep costs no future, no
    wake-up handle and no callback: the actor files a heap entry that, when due, puts the
    actor itself on the ready queue (where the task's wake-up handle would have gone), and
    the loop steps it from there. A tab sleeps twice per reload; this was a fifth of a big
    run (and the message, future, set_result and handle a wake cost).

    It looks enough like a Handle to sit on the ready queue (``_callback``, ``_args``,
    ``_context``, ``_cancelled``)."""

    # Slots: a Future subclass's instance dict grew to ~700 bytes with these (one per tab).
    __slots__ = (
        "_cancel_message",
        "_cancels",
        "_context",
        "_coro",
        "_generation",
        "_must_cancel",
        "_name",
        "_sleeping",
        "_vloop",
        "_waiter",
    )
    _cancelled = False  # as a Handle: never skipped (a cancelled actor steps to raise)
    _args = ()

    @property
    def _callback(self) -> Callable[..., None]:  # as a Handle (a property: no ref cycle)
        return self._step

    def __init__(
        self,
        coro: Coroutine[Any, Any, object] | Generator[Any, None, object],  # as asyncio.Task's
        loop: VirtualLoop,
        name: str,
        context: contextvars.Context | None,
    ) -> None:
        super().__init__(loop=loop)
        if not asyncio.iscoroutine(coro):
            raise TypeError(f"a coroutine was expected, got {coro!r}")
        self._coro = coro
        self._name = name
        self._vloop = loop
        self._context = _copy_context() if context is None else context
        self._waiter: asyncio.Future[object] | None = None
        self._generation = 0  # bumped by cancel(): an alarm filed before is ignored
        self._sleeping = False
        self._must_cancel = False
        self._cancel_message: object = None  # what cancel(msg) was given, as asyncio keeps it
        self._cancels = 0
        loop.call_soon(self._step, context=self._context)

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled() else "finished" if self.done() else "pending"
        return f"<Actor {self._name!r} {state}>"

    # -- what a Task offers --------------------------------------------------------------
    def get_name(self) -> str:
        return self._name

    def set_name(self, value: object) -> None:
        self._name = str(value)

    def get_coro(self) -> Coroutine[Any, Any, object] | Generator[Any, None, object]:
        return self._coro

    def get_context(self) -> contextvars.Context:
        return self._context

    def get_stack(self, *, limit: int | None = None) -> list[FrameType]:
        frame = getattr(self._coro, "cr_frame", None)
        return [] if frame is None else [frame]

    def cancelling(self) -> int:
        return self._cancels

    def uncancel(self) -> int:
        if self._cancels > 0:
            self._cancels -= 1
        return self._cancels

    def cancel(self, msg: object = None) -> bool:
        if self.done():
            return False
        self._cancels += 1
        if self._waiter is not None and self._waiter.cancel(msg=msg):
            return True  # its wake-up raises CancelledError into the coroutine
        if self._sleeping:  # as a cancelled sleep future would: wake now, with the error
            self._sleeping = False
            self._generation += 1
            self._vloop.call_soon(self._step, asyncio.CancelledError(msg), context=self._context)
            return True
        self._must_cancel = True
        self._cancel_message = msg
        return True

    # -- stepping --------------------------------------------------------------------------
    def _step(self, exc: BaseException | None = None) -> None:
        if self.done():
            return
        if self._must_cancel:
            if not isinstance(exc, asyncio.CancelledError):
                exc = asyncio.CancelledError(self._cancel_message)
            self._must_cancel = False
        loop = self._vloop
        self._waiter = None
        loop._actor = self
        enter_task(loop, self)
        try:
            result = self._coro.send(None) if exc is None else self._coro.throw(exc)
        except StopIteration as stop:
            if self._must_cancel:
                self._must_cancel = False
                super().cancel(msg=self._cancel_message)
            else:
                super().set_result(stop.value)
        except asyncio.CancelledError as error:
            super().cancel(msg=error.args[0] if error.args else None)
        except (KeyboardInterrupt, SystemExit) as error:
            super().set_exception(error)
            raise
        except BaseException as error:
            # Without this frame in its traceback (as a C task's): the frame holds the actor,
            # a cycle that would keep a failed actor alive past its last reference, and its
            # "exception was never retrieved" would come at some later collection, not now.
            # (From Python 3.13 the coroutine's frame also keeps this one as its f_back:
            # hence the ``del self`` below.)
            trace = error.__traceback__
            error.__traceback__ = None if trace is None else trace.tb_next
            super().set_exception(error)
            del error, trace
        else:
            if result.__class__ is Sleep:
                self._sleeping = True
                heapq.heappush(
                    loop._timers, (result.when, loop._seq(), WAKE, self, self._generation)
                )
            elif result is None:  # a bare yield (asyncio.sleep(0))
                loop.call_soon(self._step, context=self._context)
            elif getattr(result, "_asyncio_future_blocking", None) is not None:
                self._await_future(result)
            else:
                bad = RuntimeError(f"actor {self._name!r} got a bad yield: {result!r}")
                loop.call_soon(self._step, bad, context=self._context)
        finally:
            leave_task(loop, self)
            loop._actor = None
            if self.done():
                loop._actors.pop(self, None)
            del self  # a frame kept by a failed coroutine's traceback keeps no actor alive

    def _await_future(self, future: asyncio.Future[object]) -> None:
        loop = self._vloop
        if future_loop(future) is not loop:
            error = RuntimeError(f"actor {self._name!r} awaits {future!r} of another loop")
            loop.call_soon(self._step, error, context=self._context)
            return
        if not future._asyncio_future_blocking:
            error = RuntimeError(f"yield was used instead of yield from in {self._name!r}")
            loop.call_soon(self._step, error, context=self._context)
            return
        if future is self:
            error = RuntimeError(f"actor {self._name!r} cannot await itself")
            loop.call_soon(self._step, error, context=self._context)
            return
        future._asyncio_future_blocking = False
        future.add_done_callback(self._wakeup, context=self._context)
        self._waiter = future
        if self._must_cancel and future.cancel(msg=self._cancel_message):
            self._must_cancel = False

    def _wakeup(self, future: asyncio.Future[object]) -> None:
        try:
            future.result()
        except BaseException as error:
            self._step(error)
        else:
            self._step()
