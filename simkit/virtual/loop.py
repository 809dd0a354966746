"""A deterministic asyncio event loop driven by a virtual clock, for fast reproducible simulations.

Actors are plain asyncio code (sleep, Event, Queue, wait_for, timeout, cancellation).  On
:class:`VirtualLoop`:

* **Autojump**: time never passes on its own; when nothing is ready, the clock jumps straight to
  the earliest timer (trio's ``MockClock(autojump_threshold=0)``).  An idle hour costs no wall
  time, and no wall clock is ever read.
* **Determinism**: timers are keyed ``(when, sequence)``, so equal deadlines fire in scheduling
  order.  asyncio's heap compares deadlines only, so its ties come out in heap-layout order, which
  shifts with unrelated scheduling: "the same seed gave a different run".
* **No lost errors**: an exception nobody handles stops the run and is raised as
  :class:`UnhandledError` (SimPy's rule) instead of being logged and forgotten.
* **No silent hang**: autojump means a run that keeps re-scheduling work at one instant (a
  retry with no delay that always fails at once) would spin forever with the clock stuck.
  After ``stall_steps`` steps at one virtual instant the loop raises
  :class:`~simkit.model.errors.SimulationStalled`, naming what keeps waking.

This module is the loop and :func:`run`; beside it, :mod:`~simkit.virtual.stall` words a
stall, :mod:`~simkit.virtual.actor` is the lean task the loop steps itself,
:mod:`~simkit.virtual.heap` says what its timer heap holds, and
:mod:`~simkit.virtual.compat` holds (and checks at import) every asyncio internal they use.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import sys
import weakref
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Generator, Sequence
from typing import Any, NoReturn, TypeVar, TypeVarTuple, cast

from simkit.model.errors import ConfigError, RunFailed, SimulationStalled
from simkit.virtual import compat
from simkit.virtual.actor import Actor, Sleep
from simkit.virtual.heap import MESSAGE, WAKE, wake
from simkit.virtual.stall import STALL_STEPS, STALL_STEPS_PER_TASK, StallWatch

__all__ = [
    "STALL_STEPS",
    "STALL_STEPS_PER_TASK",
    "SimulationStalled",
    "UnhandledError",
    "VirtualDeadlock",
    "VirtualLoop",
    "run",
]

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")
_Callback = Callable[..., object]
_Context = contextvars.Context | None
# An error's context for the exception handler: asyncio's own ``dict[str, Any]`` (its keys
# are documented, its values anything: the exception, a handle, a task, a message).
_ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]
_INF = float("inf")
_NO_IO = "the virtual runtime has no real I/O (no sockets, subprocesses, threads or signals)"
_new_handle, _new_timer = compat.new_handle, compat.new_timer
_Handle, _TimerHandle = asyncio.Handle, asyncio.TimerHandle


class VirtualDeadlock(RunFailed):
    """Nothing is ready and no timer is pending, yet tasks are still waiting: they never wake."""

    pending: list[str]  # sorted names of the tasks still waiting


class UnhandledError(RunFailed):
    """Errors reached the default exception handler; ``contexts`` holds every recorded context."""

    def __init__(self, contexts: list[dict[str, Any]]) -> None:
        cause = contexts[0].get("exception")
        message = str(contexts[0].get("message", "unhandled error"))
        message += f": {cause!r}" if cause is not None else ""
        message += f" (and {len(contexts) - 1} more)" if len(contexts) > 1 else ""
        super().__init__(message)
        self.contexts = contexts


class VirtualLoop(asyncio.AbstractEventLoop):
    """Single-threaded asyncio loop whose clock only moves when everything is waiting.

    One iteration runs exactly the handles that were ready when it started (those scheduled
    meanwhile wait for the next iteration), as asyncio does, so code behaves as on a real loop.
    """

    def __init__(
        self,
        start: float = 0.0,
        *,
        debug: bool = False,
        stall_steps: int | None = STALL_STEPS,
        context: str = "",
        actors: bool = False,
    ) -> None:
        start = float(start)
        if not -_INF < start < _INF:
            raise ValueError(f"start must be a finite number of virtual seconds, got {start!r}")
        if stall_steps is not None and (
            not isinstance(stall_steps, int) or isinstance(stall_steps, bool) or stall_steps < 1
        ):
            raise ConfigError(
                f"stall_steps must be a whole number >= 1 (or None: never check), "
                f"got {stall_steps!r}"
            )
        # Steps at one virtual instant before the run counts as stalled (see STALL_STEPS);
        # ``context`` (e.g. "scenario 'x', strategy 'y'") starts the stall's message.
        self.stall_steps = stall_steps
        self.context = context
        # ``actors``: create_task() makes an Actor (a lean task the loop steps itself)
        # instead of an asyncio.Task; ``_actor`` is the one stepping now, if any.
        self.actors = actors
        self._actor: Actor | None = None
        self._stall_watch: StallWatch | None = None
        self._now = start
        # Handles and actors (compat.HANDLE_SLOTS are read in place), and the heap's entries
        # (simkit.virtual.heap): shapes the type system cannot follow (three tuple shapes
        # told apart by identity in the hot loop, where a cast would cost a call per step,
        # and handle slots typeshed does not declare), so their items are Any here.
        self._ready: deque[Any] = deque()
        self._timers: list[tuple[Any, ...]] = []
        self._seq = itertools.count().__next__
        self._cancelled_timers = 0
        self._task_names = itertools.count(1).__next__
        # asyncio.all_tasks() is a set ordered by id(); this remembers creation order instead.
        self._task_order: weakref.WeakKeyDictionary[asyncio.Task[object], int] = (
            weakref.WeakKeyDictionary()
        )
        # Actors are listed here instead, in creation order, until they finish (a weak entry
        # here and one in asyncio's weak set of tasks cost 400 bytes per actor).
        self._actors: dict[Actor, None] = {}
        self._actors_made = 0  # for the stall limit: a finished actor's gather still counts
        self._asyncgens: weakref.WeakKeyDictionary[AsyncGenerator[object, None], None] = (
            weakref.WeakKeyDictionary()
        )
        self._running = self._stopping = self._closed = False
        self._debug = debug
        self._exception_handler: _ExceptionHandler | None = None
        self.unhandled: list[dict[str, Any]] = []  # error contexts recorded, not yet raised
        self.steps = 0  # handles run
        self.jumps = 0  # times the clock jumped forward to a timer

    def __repr__(self) -> str:
        return f"<VirtualLoop t={self._now!r} running={self._running} closed={self._closed}>"

    # -- clock and scheduling ----------------------------------------------------------------
    def time(self) -> float:
        """Virtual now: the deadline of the last timer the clock jumped to (never a wall clock)."""
        return self._now

    def call_soon(
        self, callback: Callable[[*_Ts], object], *args: *_Ts, context: _Context = None
    ) -> asyncio.Handle:
        if self._closed:
            raise RuntimeError("Event loop is closed")
        if self._debug:
            handle = _Handle(callback, args, self, context)
        else:  # Handle.__init__ without its frame and its get_debug() call: a hot path
            handle = _new_handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    # No other threads can exist in a simulation; asyncio's signature, no locking needed.
    call_soon_threadsafe = call_soon

    def call_at(
        self, when: float, callback: Callable[[*_Ts], object], *args: *_Ts, context: _Context = None
    ) -> asyncio.TimerHandle:
        """Schedule at ``when`` exactly (no rounding); ties fire in scheduling order."""
        if self._closed:
            raise RuntimeError("Event loop is closed")
        when = float(when)
        if not -_INF < when < _INF:  # NaN would corrupt the heap, inf would jump the clock to inf
            raise ValueError(f"timer deadline must be a finite virtual time, got {when!r}")
        timer = self._timer(when, callback, args, context)
        heapq.heappush(self._timers, (when, self._seq(), timer))
        return timer

    def post_at(self, when: float, callback: Callable[[*_Ts], object], *args: *_Ts) -> None:
        """Run ``callback(*args)`` at virtual time ``when``, in (when, sequence) order with
        every timer. For the network's messages: nothing cancels a message in flight, so it
        needs no handle, no context and no cancel state (a third of a big run's steps). An
        error it raises goes to the exception handler as a callback's would."""
        if self._closed:
            raise RuntimeError("Event loop is closed")
        if not -_INF < when < _INF:
            raise ValueError(f"message time must be a finite virtual time, got {when!r}")
        heapq.heappush(self._timers, (when, self._seq(), MESSAGE, callback, args))

    def sleep(self, delay: float) -> Awaitable[None]:
        """``await loop.sleep(d)`` does what ``await asyncio.sleep(d)`` does, in the same
        event order: for ``d > 0`` a future that a message completes ``d`` virtual seconds
        from now, without a coroutine, a timer handle and its cancel (tabs sleep millions of
        times in a big run); cancelling the awaiting task cancels the future, and the message
        then finds it done and does nothing. ``d <= 0`` is ``asyncio.sleep`` itself: one
        bare yield."""
        if not delay > 0:
            return asyncio.sleep(delay)
        if delay == _INF:
            raise ValueError(f"delay must be a finite number of virtual seconds, got {delay!r}")
        if self.actors:
            return Sleep(self, self._now + delay)
        future: asyncio.Future[None] = asyncio.Future(loop=self)
        heapq.heappush(self._timers, (self._now + delay, self._seq(), MESSAGE, wake, (future,)))
        return future

    def alone_now(self) -> bool:
        """Is nothing else due at this instant (no ready handle, no timer or message for
        now)? Then whatever the current callback would schedule for now runs next, with
        nothing in between: the network settles such a reply in place."""
        timers = self._timers
        return not self._ready and not (timers and timers[0][0] <= self._now)

    def _timer(
        self, when: float, callback: _Callback, args: Sequence[object], context: _Context
    ) -> asyncio.TimerHandle:
        if self._debug:
            timer: Any = _TimerHandle(when, callback, args, self, context)  # _scheduled: a slot
            # typeshed does not declare
            timer._scheduled = True
            return cast(asyncio.TimerHandle, timer)
        # TimerHandle.__init__ without its two frames and get_debug(): a hot path
        return _new_timer(when, callback, args, self, context)

    def call_later(
        self,
        delay: float,
        callback: Callable[[*_Ts], object],
        *args: *_Ts,
        context: _Context = None,
    ) -> asyncio.TimerHandle:
        """Negative delays mean "now" (as in asyncio); NaN and inf raise ``ValueError``."""
        # The hot path of asyncio.sleep(): call_at's body is inlined rather than called.
        if not -_INF < delay < _INF:
            raise ValueError(f"delay must be a finite number of virtual seconds, got {delay!r}")
        if self._closed:
            raise RuntimeError("Event loop is closed")
        when = float(self._now + delay) if delay > 0 else self._now
        timer = self._timer(when, callback, args, context)
        heapq.heappush(self._timers, (when, self._seq(), timer))
        return timer

    def _timer_handle_cancelled(self, handle: Any) -> None:  # a TimerHandle: its _scheduled
        # slot is not in typeshed
        # Called by TimerHandle.cancel(); the entry stays in the heap and is skipped when popped.
        if handle._scheduled:
            self._cancelled_timers += 1

    def create_future(self) -> asyncio.Future[Any]:  # asyncio's signature: any result
        return asyncio.Future(loop=self)

    def create_task(
        self,
        coro: Generator[Any, None, _T] | Coroutine[Any, Any, _T],  # asyncio's: any coroutine
        *,
        name: str | None = None,
        context: _Context = None,
    ) -> asyncio.Task[_T]:  # an Actor when ``actors``: it quacks as a Task
        """Like asyncio's, but default names count per loop, so they repeat from run to run.

        Every task takes a number, named or not: "Task-3" is the loop's third task on every
        Python (up to 3.12 ``asyncio.create_task(coro, name=...)`` makes an unnamed task here
        and names it after; from 3.13 it passes the name in)."""
        self._check_closed()
        number = self._task_names()
        if name is None:
            name = f"Task-{number}"
        if self.actors:
            actor = Actor(coro, self, name, context)
            self._actors[actor] = None
            self._actors_made += 1
            return cast("asyncio.Task[_T]", actor)  # not a Task, but it does what one does
        task = asyncio.Task(coro, loop=self, name=name, context=context)
        self._task_order[task] = self._seq()
        return task

    def all_tasks(self) -> list[asyncio.Task[object] | Actor]:
        """The tasks and actors not done yet, in creation order (``asyncio.all_tasks()``
        does not list actors)."""
        order = self._task_order
        tasks = sorted(asyncio.all_tasks(self), key=lambda t: order.get(t, -1))
        return [*tasks, *(actor for actor in self._actors if not actor.done())]

    # -- running -----------------------------------------------------------------------------
    def run_forever(self) -> None:
        """Run until :meth:`stop`; raise :class:`VirtualDeadlock` if everything waits forever.

        Does not refuse to start inside another running loop (unlike asyncio), so a Jupyter cell
        can run a simulation synchronously; the outer loop is restored on the way out.
        """
        self._check_closed()
        if self._running:
            raise RuntimeError("This event loop is already running")
        outer_loop = compat.get_running_loop()
        outer_hooks = sys.get_asyncgen_hooks()
        self._running = True
        compat.set_running_loop(self)
        sys.set_asyncgen_hooks(firstiter=self._asyncgen_firstiter, finalizer=self._asyncgen_final)
        try:
            self._run()
        finally:
            self._running = self._stopping = False
            compat.set_running_loop(outer_loop)
            sys.set_asyncgen_hooks(*outer_hooks)

    def _run(self) -> None:
        """One iteration runs what was ready when it began: first the handles queued by
        ``call_soon``, then every timer and message already due, in (when, sequence) order.
        Anything scheduled meanwhile waits for the next iteration, as in asyncio. Due heap
        entries run straight off the heap (no detour through the ready queue): ``cutoff``,
        the sequence number at the start, tells what was already there."""
        ready, timers = self._ready, self._timers
        popleft, heappop, heappush, seq = ready.popleft, heapq.heappop, heapq.heappush, self._seq
        failed = self._failed
        # Stall detection costs one add and one compare per iteration (not per step), and
        # a store per jump: ``instant`` counts the steps run since the clock last moved.
        instant = 0
        limit = stall = _INF if self.stall_steps is None else self.stall_steps
        inline_limit = 1_000  # steps per outer iteration before it looks at the heap again
        while True:
            if not ready:
                if self._stopping:
                    return
                if self._cancelled_timers * 2 > len(timers) > 100:
                    self._purge_cancelled_timers()
                while timers and timers[0][2]._cancelled:
                    heappop(timers)[2]._scheduled = False
                    self._cancelled_timers -= 1
                if not timers:
                    raise self._deadlock()
                if timers[0][0] > self._now:  # autojump: nothing else can happen before it
                    self._now = timers[0][0]
                    self.jumps += 1
                    instant, limit = 0, stall
            now = self._now
            cutoff = seq()
            steps = counted = 0  # counted: steps already in ``instant`` (see the jump below)
            later = None  # entries for a past time, scheduled during this iteration
            try:  # (finally: even a KeyboardInterrupt leaves the heap and the count whole)
                for _ in range(len(ready)):
                    handle = popleft()
                    if handle._cancelled:
                        continue
                    steps += 1
                    # Handle._run's body, inlined (one frame fewer per step; the slots are
                    # compat.HANDLE_SLOTS); errors go to the exception handler with the
                    # context asyncio gives them.
                    try:
                        handle._context.run(handle._callback, *handle._args)
                    except (SystemExit, KeyboardInterrupt):
                        raise
                    except BaseException as exc:
                        failed(handle._callback, handle._args, exc, handle)
                while timers:
                    entry = timers[0]
                    if entry[0] > now:
                        # The next iteration would find nothing ready and jump the clock to
                        # this entry: do so here and go on (its preamble costs as much as a
                        # step), unless something needs the outer loop: a handle made ready,
                        # entries set aside, a stop, cancelled timers (never a jump target;
                        # purged there), or a long run of steps.
                        if (
                            ready
                            or later
                            or self._stopping
                            or self._cancelled_timers
                            or steps > inline_limit
                        ):
                            break
                        now = self._now = entry[0]
                        self.jumps += 1
                        cutoff = seq()
                        instant, limit, counted = 0, stall, steps
                        continue
                    if entry[1] > cutoff:
                        if entry[0] == now:
                            break  # the rest of what is due was scheduled during this iteration
                        later = later or []
                        later.append(heappop(timers))
                        continue
                    heappop(timers)
                    handle = entry[2]
                    if handle is WAKE:  # a sleeping actor's alarm: it steps next iteration,
                        actor = entry[3]  # where an asyncio task's wake-up handle would go,
                        if actor._generation != entry[4]:
                            continue  # (cancelled since)
                        actor._sleeping = False
                        if ready or (timers and timers[0][0] <= now and timers[0][1] < cutoff):
                            ready.append(actor)
                            continue
                        # ... unless nothing else would run before it there (nothing is ready,
                        # nothing left in this iteration): then it steps now, in the same
                        # order, and an iteration of this loop is saved.
                        steps += 1
                        try:
                            actor._context.run(actor._step)
                        except (SystemExit, KeyboardInterrupt):
                            raise
                        except BaseException as exc:
                            failed(actor._step, (), exc, None)
                        continue
                    if handle is MESSAGE:  # from post_at(): no handle, no context
                        steps += 1
                        try:
                            entry[3](*entry[4])
                        except (SystemExit, KeyboardInterrupt):
                            raise
                        except BaseException as exc:
                            failed(entry[3], entry[4], exc, None)
                        continue
                    handle._scheduled = False
                    if handle._cancelled:
                        self._cancelled_timers -= 1
                        continue
                    steps += 1
                    try:
                        handle._context.run(handle._callback, *handle._args)
                    except (SystemExit, KeyboardInterrupt):
                        raise
                    except BaseException as exc:
                        failed(handle._callback, handle._args, exc, handle)
            finally:
                if later:
                    for entry in later:
                        heappush(timers, entry)
                self.steps += steps
            instant += steps - counted
            if instant > limit:  # the clock has not moved for a long while: look closer
                limit = self._check_stall(instant)
            if self._stopping:
                return

    def _check_stall(self, instant: int) -> float:
        """``instant`` steps ran at this virtual instant, more than the limit: allow more if
        the run is big (see STALL_STEPS_PER_TASK), else watch what runs for a while (every
        iteration: a snapshot of what is due now) and then raise SimulationStalled. Returns
        the step count at which to call again. Off the hot path: a legitimate run never
        gets here (or once per very crowded instant of a huge run)."""
        stall = self.stall_steps
        assert stall is not None
        watch = self._stall_watch
        if watch is None or watch.now != self._now:
            tasks = len(self._task_order) + self._actors_made
            allowed = max(stall, STALL_STEPS_PER_TASK * tasks)
            if instant <= allowed:
                return allowed
            watch = self._stall_watch = StallWatch(self._now, allowed)
        if not watch.sample(self._ready, self._timers, self._now):
            return instant
        self._stall_watch = None
        raise watch.error(self.context, instant)

    def _failed(
        self, callback: _Callback, args: Sequence[object], exc: BaseException, handle: Any
    ) -> None:  # handle: a Handle or None; its _source_traceback is not in typeshed
        source = compat.format_callback_source(callback, args)
        context: dict[str, Any] = {"message": f"Exception in callback {source}", "exception": exc}
        if handle is not None:
            context["handle"] = handle
            if handle._source_traceback:
                context["source_traceback"] = handle._source_traceback
        self.call_exception_handler(context)

    def _purge_cancelled_timers(self) -> None:
        # In place: _run() holds a reference.  Keys are unique, so the pop order cannot depend
        # on the heap's layout.  (_scheduled only matters to cancel(), which these already had.)
        self._timers[:] = [entry for entry in self._timers if not entry[2]._cancelled]
        heapq.heapify(self._timers)
        self._cancelled_timers = 0

    def _deadlock(self) -> VirtualDeadlock:
        names = sorted(task.get_name() for task in self.all_tasks())
        shown = ", ".join(names[:20]) + (f", ... ({len(names) - 20} more)" if names[20:] else "")
        error = VirtualDeadlock(
            f"virtual deadlock at t={self._now!r}: nothing is ready and no timer is pending, "
            f"but {len(names)} task(s) are still waiting: {shown or '-'}"
        )
        error.pending = names
        return error

    def run_until_complete(
        self,
        future: Generator[Any, None, _T] | Awaitable[_T],  # asyncio's signature
    ) -> _T:
        """Run until ``future`` (a future or coroutine) is done; return its result.

        Raises :class:`UnhandledError` if an error reached the default exception handler (also
        errors recorded while the loop was idle), :class:`VirtualDeadlock` if nothing can wake.
        """
        self._check_closed()
        new_task = not asyncio.isfuture(future)
        # (a bare generator, which the signature admits, is refused by ensure_future)
        future = asyncio.ensure_future(cast(Awaitable[_T], future), loop=self)
        future.add_done_callback(self._stop_when_done)
        try:
            self.run_forever()
            if self.unhandled:
                contexts, self.unhandled = self.unhandled, []
                raise UnhandledError(contexts) from contexts[0].get("exception")
        except BaseException:
            if new_task and future.done() and not future.cancelled():
                future.exception()  # mark retrieved: the error being raised is the one to report
            raise
        finally:
            future.remove_done_callback(self._stop_when_done)
        if not future.done():
            raise RuntimeError("Event loop stopped before Future completed.")
        return future.result()

    def _stop_when_done(self, _future: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopping = True

    def is_running(self) -> bool:
        return self._running

    def is_closed(self) -> bool:
        return self._closed

    def _check_closed(self) -> None:
        if self._closed:
            raise RuntimeError("Event loop is closed")

    def close(self) -> None:
        if self._running:
            raise RuntimeError("Cannot close a running event loop")
        self._closed = True
        self._ready.clear()
        self._timers.clear()
        self._cancelled_timers = 0

    def _asyncgen_firstiter(self, agen: AsyncGenerator[object, None]) -> None:
        self._asyncgens[agen] = None  # weak, and insertion-ordered (a WeakSet is id-ordered)

    def _asyncgen_final(self, agen: AsyncGenerator[object, None]) -> None:
        self._asyncgens.pop(agen, None)
        if not self._closed:
            self.call_soon(self.create_task, agen.aclose())

    async def shutdown_asyncgens(self) -> None:
        agens = list(self._asyncgens)
        self._asyncgens.clear()
        if not agens:
            return
        results = await asyncio.gather(*(ag.aclose() for ag in agens), return_exceptions=True)
        for agen, result in zip(agens, results, strict=True):
            if isinstance(result, Exception):
                message = f"an error occurred during closing of asynchronous generator {agen!r}"
                self.call_exception_handler({"message": message, "exception": result})

    async def shutdown_default_executor(self, timeout: float | None = None) -> None:
        """Nothing to do: there is no executor (``run_in_executor`` is not supported)."""

    # -- errors and debug --------------------------------------------------------------------
    def get_exception_handler(self) -> _ExceptionHandler | None:
        return self._exception_handler

    def set_exception_handler(self, handler: _ExceptionHandler | None) -> None:
        if handler is not None and not callable(handler):
            raise TypeError(f"A callable object or None is expected, got {handler!r}")
        self._exception_handler = handler

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        """Record ``context`` and stop the run, so the error is raised rather than lost.

        Never raises: it is also reached from ``Task.__del__`` ("Task exception was never
        retrieved"), possibly at garbage collection after the loop stopped.
        """
        self.unhandled.append(context)
        if self._running:
            self._stopping = True

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        if self._exception_handler is None:
            self.default_exception_handler(context)
            return
        try:
            self._exception_handler(self, context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            message = "Unhandled error in exception handler"
            self.default_exception_handler(
                {"message": message, "exception": exc, "context": context}
            )

    def get_debug(self) -> bool:
        return self._debug

    def set_debug(self, enabled: bool) -> None:
        self._debug = enabled


def _no_io(name: str) -> Callable[..., NoReturn]:
    def method(self: VirtualLoop, *args: object, **kwargs: object) -> NoReturn:
        raise NotImplementedError(f"VirtualLoop.{name}(): {_NO_IO}")

    method.__name__ = method.__qualname__ = name
    return method


# Everything AbstractEventLoop leaves abstract beyond the above is I/O (sockets, pipes, executors,
# signals...): replace its bare NotImplementedError with one that says why.
for _name, _attr in vars(asyncio.AbstractEventLoop).items():
    if callable(_attr) and _name not in vars(VirtualLoop) and "task_factory" not in _name:
        setattr(VirtualLoop, _name, _no_io(_name))


def run(
    main: Coroutine[object, None, _T],  # any coroutine (the loop sends None)
    *,
    start: float = 0.0,
    context: str = "",
    stall_steps: int | None = STALL_STEPS,
    actors: bool = False,
) -> _T:
    """Run ``main`` on a fresh :class:`VirtualLoop` and return its result, like ``asyncio.run``.

    Leftover tasks are then cancelled (in creation order, for determinism) and awaited, async
    generators are closed and the loop is closed.  Callable from inside a running loop (Jupyter).
    A run whose clock stops advancing raises :class:`SimulationStalled` after ``stall_steps``
    steps at one instant (``None``: never); its message starts with ``context`` (e.g.
    "scenario 'server-restart', strategy 'before'"). ``actors``: tasks are actors
    (:class:`~simkit.virtual.actor.Actor`), stepped by the loop itself (what the virtual
    runtime plays on).
    """
    if not asyncio.iscoroutine(main):
        raise ValueError(f"a coroutine was expected, got {main!r}")
    try:
        # (typeshed marks AbstractEventLoop's I/O methods abstract: _no_io fills them in above)
        loop = VirtualLoop(  # type: ignore[abstract]
            start=start, stall_steps=stall_steps, context=context, actors=actors
        )
    except BaseException:
        main.close()  # never to run: no "coroutine was never awaited" warning on top
        raise
    stalled = False
    try:
        return loop.run_until_complete(main)
    except SimulationStalled:
        stalled = True
        raise
    finally:
        try:
            leftovers = loop.all_tasks()
            for task in leftovers:
                task.cancel()
            if leftovers:  # gather() of nothing would bind to whatever loop is current
                loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            for task in leftovers:
                if not task.cancelled() and task.exception() is not None:
                    message = "unhandled exception during virtual run() shutdown"
                    error = {"message": message, "exception": task.exception(), "task": task}
                    loop.call_exception_handler(error)
            loop.run_until_complete(loop.shutdown_asyncgens())
        except SimulationStalled:
            # Cancelling did not end the storm either (a task that ignores cancellation, or
            # cleanup that waits for a time the stuck clock never reaches): the first stall
            # is the one to report; a stall in the clean-up of a finished run is news.
            if not stalled:
                raise
        finally:
            loop.close()
