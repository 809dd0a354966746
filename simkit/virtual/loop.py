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
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import heapq
import itertools
import os
import re
import sys
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

from simkit.model.errors import ConfigError, SimulationStalled

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
_Callback = Callable[..., object]
_Context = contextvars.Context | None
_INF = float("inf")
_NO_IO = "the virtual runtime has no real I/O (no sockets, subprocesses, threads or signals)"
_copy_context = contextvars.copy_context
_new = object.__new__
_Handle, _TimerHandle = asyncio.Handle, asyncio.TimerHandle


# Stall detection. A legitimate run does a burst of work at one instant and moves on; a stall
# never moves on. Measured (the largest number of loop steps run at one virtual instant,
# seed 0): over every scenario x preset (SCENARIOS x STRATEGIES) at its default size, at its
# own latency and again at zero latency (where replies come in the instant they are
# provoked), 1,641 (``reference``, 1,000 tabs; zero-latency ``background-tabs`` 721, every
# other scenario under 400); ``reference`` at 10,000 tabs x 60 s, 13,212; at 100,000 tabs
# x 10 s, 132,501. The busiest instant is the run's last, where every tab's script ends:
# about 1.3-1.6 steps per tab. The only run that stalled was ``server-restart`` under
# ``before`` at zero latency, the case this detector exists for. So the limit is 200,000
# steps (120x the default sizes' busiest instant, 15x at 10,000 tabs), raised to 20 steps
# per task for bigger runs (15x); a stall spins at roughly 0.3-1 million steps per wall
# second, so it is reported within about a second (several for 100,000 tabs and more).
STALL_STEPS = 200_000
STALL_STEPS_PER_TASK = 20
_STALL_SAMPLES = 64  # iterations watched after the limit, to see what keeps running
_STALL_SAMPLE_ITEMS = 20_000  # ... or fewer, once this many due callbacks were looked at


class _Message:
    """Marks a heap entry ``(when, seq, MESSAGE, callback, args)`` made by :meth:`post_at`."""

    __slots__ = ("_scheduled",)
    _cancelled = False


MESSAGE = _Message()
WAKE = _Message()  # heap entry ``(when, seq, WAKE, actor, generation)``: a sleeping actor's alarm


class VirtualDeadlock(RuntimeError):
    """Nothing is ready and no timer is pending, yet tasks are still waiting: they never wake."""

    pending: list[str]  # sorted names of the tasks still waiting


class UnhandledError(RuntimeError):
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
        # ``actors``: create_task() makes an _Actor (a lean task the loop steps itself)
        # instead of an asyncio.Task; ``_actor`` is the one stepping now, if any.
        self.actors = actors
        self._actor: _Actor | None = None
        self._stall_watch: _StallWatch | None = None
        self._now = start
        self._ready: deque[asyncio.Handle] = deque()
        self._timers: list[tuple[float, int, asyncio.TimerHandle]] = []
        self._seq = itertools.count().__next__
        self._cancelled_timers = 0
        self._task_names = itertools.count(1).__next__
        # asyncio.all_tasks() is a set ordered by id(); this remembers creation order instead.
        self._task_order: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        # Actors are listed here instead, in creation order, until they finish (a weak entry
        # here and one in asyncio's weak set of tasks cost 400 bytes per actor).
        self._actors: dict[_Actor, None] = {}
        self._actors_made = 0  # for the stall limit: a finished actor's gather still counts
        self._asyncgens: weakref.WeakKeyDictionary[Any, None] = weakref.WeakKeyDictionary()
        self._running = self._stopping = self._closed = False
        self._debug = debug
        self._exception_handler: Callable[[Any, dict[str, Any]], object] | None = None
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
        self, callback: _Callback, *args: Any, context: _Context = None
    ) -> asyncio.Handle:
        if self._closed:
            raise RuntimeError("Event loop is closed")
        if self._debug:
            handle = _Handle(callback, args, self, context)
        else:  # Handle.__init__ without its frame and its get_debug() call: a hot path
            handle = _new(_Handle)
            handle._callback, handle._args, handle._loop = callback, args, self
            handle._context = _copy_context() if context is None else context
            handle._cancelled, handle._repr, handle._source_traceback = False, None, None
        self._ready.append(handle)
        return handle

    # No other threads can exist in a simulation; asyncio's signature, no locking needed.
    call_soon_threadsafe = call_soon

    def call_at(
        self, when: float, callback: _Callback, *args: Any, context: _Context = None
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

    def post_at(self, when: float, callback: _Callback, *args: Any) -> None:
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
            return _Sleep(self, self._now + delay)
        future = asyncio.Future(loop=self)
        heapq.heappush(self._timers, (self._now + delay, self._seq(), MESSAGE, _wake, (future,)))
        return future

    def alone_now(self) -> bool:
        """Is nothing else due at this instant (no ready handle, no timer or message for
        now)? Then whatever the current callback would schedule for now runs next, with
        nothing in between: the network settles such a reply in place."""
        timers = self._timers
        return not self._ready and not (timers and timers[0][0] <= self._now)

    def _timer(
        self, when: float, callback: _Callback, args: tuple, context: _Context
    ) -> asyncio.TimerHandle:
        if self._debug:
            timer = _TimerHandle(when, callback, args, self, context)
        else:  # TimerHandle.__init__ without its two frames and get_debug(): a hot path
            timer = _new(_TimerHandle)
            timer._callback, timer._args, timer._loop, timer._when = callback, args, self, when
            timer._context = _copy_context() if context is None else context
            timer._cancelled, timer._repr, timer._source_traceback = False, None, None
        timer._scheduled = True
        return timer

    def call_later(
        self, delay: float, callback: _Callback, *args: Any, context: _Context = None
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

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        # Called by TimerHandle.cancel(); the entry stays in the heap and is skipped when popped.
        if handle._scheduled:
            self._cancelled_timers += 1

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)

    def create_task(
        self, coro: Coroutine[Any, Any, _T], *, name: str | None = None, context: _Context = None
    ) -> asyncio.Task[_T]:  # an _Actor when ``actors``: it quacks as a Task
        """Like asyncio's, but default names count per loop, so they repeat from run to run."""
        self._check_closed()
        if name is None:
            name = f"Task-{self._task_names()}"
        if self.actors:
            actor = _Actor(coro, self, name, context)
            self._actors[actor] = None
            self._actors_made += 1
            return actor  # type: ignore[return-value]
        task = asyncio.Task(coro, loop=self, name=name, context=context)
        self._task_order[task] = self._seq()
        return task

    def all_tasks(self) -> list[asyncio.Future[Any]]:
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
        outer_loop = asyncio.events._get_running_loop()
        outer_hooks = sys.get_asyncgen_hooks()
        self._running = True
        asyncio.events._set_running_loop(self)
        sys.set_asyncgen_hooks(firstiter=self._asyncgen_firstiter, finalizer=self._asyncgen_final)
        try:
            self._run()
        finally:
            self._running = self._stopping = False
            asyncio.events._set_running_loop(outer_loop)
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
                    # Handle._run's body, inlined (one frame fewer per step); errors go to the
                    # exception handler with the context asyncio gives them.
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
            watch = self._stall_watch = _StallWatch(self._now, allowed)
        watch.sample(self._ready, self._timers, self._now)
        if watch.samples < _STALL_SAMPLES and watch.items < _STALL_SAMPLE_ITEMS:
            return instant
        self._stall_watch = None
        raise self._stalled(instant, watch)

    def _stalled(self, instant: int, watch: _StallWatch) -> SimulationStalled:
        culprits = watch.culprits()
        prefix = f"{self.context}: " if self.context else ""
        message = (
            f"{prefix}the simulation stalled at virtual time t={self._now!r} s: "
            f"{instant:,} loop steps ran without the clock advancing (limit: "
            f"{watch.limit:,} steps at one instant); what keeps re-scheduling itself "
            f"at that instant: {culprits}"
        )
        return SimulationStalled(message, now=self._now, steps=instant, culprits=culprits)

    def _failed(self, callback: _Callback, args: tuple, exc: BaseException, handle: Any) -> None:
        source = asyncio.format_helpers._format_callback_source(callback, args)
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

    def run_until_complete(self, future: asyncio.Future[_T] | Coroutine[Any, Any, _T]) -> _T:
        """Run until ``future`` (a future or coroutine) is done; return its result.

        Raises :class:`UnhandledError` if an error reached the default exception handler (also
        errors recorded while the loop was idle), :class:`VirtualDeadlock` if nothing can wake.
        """
        self._check_closed()
        new_task = not asyncio.isfuture(future)
        future = asyncio.ensure_future(future, loop=self)
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

    def _stop_when_done(self, _future: asyncio.Future[Any]) -> None:
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

    def _asyncgen_firstiter(self, agen: Any) -> None:
        self._asyncgens[agen] = None  # weak, and insertion-ordered (a WeakSet is id-ordered)

    def _asyncgen_final(self, agen: Any) -> None:
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
    def get_exception_handler(self) -> Any:
        return self._exception_handler

    def set_exception_handler(self, handler: Any) -> None:
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


class _StallWatch:
    """What keeps running at a stuck instant: before each watched iteration, a snapshot of
    what is due now (ready handles and due heap entries), grouped by what wakes (a task's
    innermost frame, a callback's qualified name) and who (task names, callback owners)."""

    def __init__(self, now: float, limit: int) -> None:
        self.now, self.limit, self.samples, self.items = now, limit, 0, 0
        # (kind, what) -> {member key: member label}; dicts keep first-seen order.
        self.groups: dict[tuple[str, str], dict[Any, str | None]] = {}
        self.hits: dict[tuple[str, str], int] = {}
        self.seen: list[Any] = []  # members are keyed by id(): keep them alive meanwhile

    def sample(self, ready: deque[asyncio.Handle], timers: list[tuple], now: float) -> None:
        self.samples += 1
        groups, hits = self.groups, self.hits
        for callback, args in itertools.islice(_due(ready, timers, now), _STALL_SAMPLE_ITEMS):
            self.items += 1
            for kind, what, member, label in _describe(callback, args):
                members = groups.setdefault((kind, what), {})
                if id(member) not in members:
                    members[id(member)] = label
                    self.seen.append(member)
                hits[kind, what] = hits.get((kind, what), 0) + 1

    def culprits(self, shown: int = 5) -> str:
        """One sentence, e.g. "10 tasks ('tab 0'..'tab 9') keep waking in Tab.connect
        (simkit/actors/tab.py:297)". What came back most often per member comes first: the
        actors that keep re-scheduling (the same tabs, again and again) before the one-off
        messages they make on the way (a new link each time)."""
        hits, order = self.hits, {key: i for i, key in enumerate(self.groups)}
        ranked = sorted(
            self.groups.items(),
            key=lambda kv: (-hits[kv[0]] / len(kv[1]), -hits[kv[0]], order[kv[0]]),
        )
        parts = []
        for (kind, what), members in ranked[:shown]:
            count = len(members)
            labels = [label for label in members.values() if label is not None]
            if kind == "<task>":
                noun, verb = ("task", "keeps") if count == 1 else ("tasks", "keep")
                parts.append(f"{count} {noun} ({_names(labels)}) {verb} waking in {what}")
            elif id(None) in members:
                parts.append(f"callback {what} keeps running")
            else:
                owners = f" ({_names(labels)})" if labels else ""
                noun = "object" if count == 1 else "objects"
                parts.append(f"callback {what} keeps running for {count} {kind} {noun}{owners}")
        if len(ranked) > shown:
            parts.append(f"and {len(ranked) - shown} more")
        return "; ".join(parts) if parts else "nothing identifiable (no handle is due)"


def _due(ready: deque[asyncio.Handle], timers: list[tuple], now: float) -> Iterator[tuple]:
    """``(callback, args)`` of every live ready handle, then of every heap entry due at
    ``now`` (a walk of the heap that skips each subtree whose root is later)."""
    for handle in ready:
        if not handle._cancelled:
            yield handle._callback, handle._args
    stack, size = [0], len(timers)
    while stack:
        i = stack.pop()
        if i >= size or timers[i][0] > now:
            continue
        entry = timers[i]
        if entry[2] is WAKE:
            if entry[3]._generation == entry[4]:
                yield entry[3]._step, ()
        elif entry[2] is MESSAGE:
            yield entry[3], entry[4]
        elif not entry[2]._cancelled:
            yield entry[2]._callback, entry[2]._args
        stack += (2 * i + 2, 2 * i + 1)


def _describe(callback: Any, args: tuple) -> list[tuple[str, str, Any, str | None]]:
    """``(kind, what, member, member label)`` for what ``callback(*args)`` wakes (kind:
    "<task>", "<callback>" with no owner, else the owner's class name): the
    task(s) it steps or whose future it completes, else the callback itself and its owner."""
    tasks = _tasks_woken(callback, args)
    if tasks:
        return [("<task>", _where_task(task), task, task.get_name()) for task in tasks]
    owner = getattr(callback, "__self__", None)
    what = _where_callable(callback)
    if owner is None or isinstance(owner, type(sys)):
        return [("<callback>", what, None, None)]
    return [(type(owner).__name__, what, owner, _owner_label(owner))]


def _tasks_woken(callback: Any, args: tuple) -> list[asyncio.Task[Any]]:
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task | _Actor):
        return [owner]  # a task's step or wake-up
    if args and asyncio.isfuture(args[0]):  # completes a future (a sleep): who waits on it?
        waiters = getattr(args[0], "_callbacks", None) or ()
        found = [getattr(cb, "__self__", None) for cb, *_ in waiters]
        return [task for task in found if isinstance(task, asyncio.Task | _Actor)]
    return []


_ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep


def _where_task(task: asyncio.Task[Any]) -> str:
    """The task's innermost frame outside asyncio: where its own code waits."""
    coro: Any = task.get_coro()
    found = None
    for _ in range(1000):  # a bound, in case of a cycle
        if coro is None:
            break
        code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
        if code is _SLEEP_CODE:
            break  # an actor's sleep: where it waits is the frame that awaits it
        if code is not None and not code.co_filename.startswith(_ASYNCIO_DIR):
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
            found = (code, code.co_firstlineno if frame is None else frame.f_lineno)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    if found is None:
        return "an asyncio internal"
    code, line = found
    return f"{getattr(code, 'co_qualname', code.co_name)} ({_short(code.co_filename)}:{line})"


def _where_callable(callback: Any) -> str:
    while isinstance(callback, functools.partial):
        callback = callback.func
    func = getattr(callback, "__func__", callback)
    name = getattr(func, "__qualname__", None) or repr(func)
    code = getattr(func, "__code__", None)
    if code is None:
        return name
    return f"{name} ({_short(code.co_filename)}:{code.co_firstlineno})"


@functools.lru_cache(maxsize=256)
def _short(filename: str) -> str:
    """``filename`` as imported: from its top package's parent (``simkit/actors/tab.py``),
    else relative to the working directory or an import root, else as it is."""
    parts = filename.split(os.sep)
    top = len(parts) - 1  # parts[:top] is a directory; climb while it is a package
    while top > 1 and os.path.isfile(os.sep.join([*parts[:top], "__init__.py"])):
        top -= 1
    if top < len(parts) - 1:
        return "/".join(parts[top:])
    for root in (os.getcwd(), *sys.path):
        root = root.rstrip(os.sep)
        if root and filename.startswith(root + os.sep):
            return filename[len(root) + 1 :].replace(os.sep, "/")
    return filename


def _owner_label(owner: Any) -> str | None:
    """A readable name for a callback's object: its ``name``, else "Class <index or id>"."""
    try:
        name = getattr(owner, "name", None)
        if isinstance(name, str) and name:
            return name
        for attr in ("index", "id"):
            value = getattr(owner, attr, None)
            if isinstance(value, int) and not isinstance(value, bool):
                return f"{type(owner).__name__} {value}"
    except Exception:  # a property that fails: the owner just goes unnamed
        pass
    return None


def _names(labels: list[str]) -> str:
    """'a', 'b' for a few names, 'tab 0'..'tab 39' (natural order) for many."""

    def natural(label: str) -> list[Any]:
        return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", label)]

    ordered = sorted(set(labels), key=natural)
    if len(ordered) <= 4:
        return ", ".join(map(repr, ordered))
    return f"{ordered[0]!r}..{ordered[-1]!r}"


class _Sleep:
    """What ``VirtualLoop.sleep`` returns on a loop with ``actors``: awaited by an actor, it
    is yielded to the actor itself, which files its own alarm (no future, no handle, no
    callback); awaited by anything else (an asyncio task), it is an ordinary future."""

    __slots__ = ("loop", "when")

    def __init__(self, loop: VirtualLoop, when: float) -> None:
        self.loop, self.when = loop, when

    def __await__(self) -> Iterator[Any]:
        loop = self.loop
        if loop._actor is None:  # not an actor's own await: the future way
            future = asyncio.Future(loop=loop)
            heapq.heappush(loop._timers, (self.when, loop._seq(), MESSAGE, _wake, (future,)))
            return (yield from future)
        yield self  # to _Actor._step


_SLEEP_CODE = _Sleep.__await__.__code__


class _Actor(asyncio.Future):  # type: ignore[type-arg]
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
        self, coro: Coroutine[Any, Any, Any], loop: VirtualLoop, name: str, context: _Context
    ) -> None:
        super().__init__(loop=loop)
        if not asyncio.iscoroutine(coro):
            raise TypeError(f"a coroutine was expected, got {coro!r}")
        self._coro = coro
        self._name = name
        self._vloop = loop
        self._context = _copy_context() if context is None else context
        self._waiter: asyncio.Future[Any] | None = None
        self._generation = 0  # bumped by cancel(): an alarm filed before is ignored
        self._sleeping = False
        self._must_cancel = False
        self._cancel_message: str | None = None
        self._cancels = 0
        loop.call_soon(self._step, context=self._context)

    def __repr__(self) -> str:
        return f"<_Actor {self._name!r} {self._state.lower()}>"  # type: ignore[attr-defined]

    # -- what a Task offers --------------------------------------------------------------
    def get_name(self) -> str:
        return self._name

    def set_name(self, value: object) -> None:
        self._name = str(value)

    def get_coro(self) -> Coroutine[Any, Any, Any]:
        return self._coro

    def get_context(self) -> contextvars.Context:
        return self._context

    def get_stack(self, *, limit: int | None = None) -> list[Any]:
        frame = getattr(self._coro, "cr_frame", None)
        return [] if frame is None else [frame]

    def cancelling(self) -> int:
        return self._cancels

    def uncancel(self) -> int:
        if self._cancels > 0:
            self._cancels -= 1
        return self._cancels

    def cancel(self, msg: Any = None) -> bool:
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
        asyncio.tasks._enter_task(loop, self)  # type: ignore[attr-defined]
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
            error.__traceback__ = error.__traceback__.tb_next  # type: ignore[union-attr]
            super().set_exception(error)
            del error
        else:
            if result.__class__ is _Sleep:
                self._sleeping = True
                heapq.heappush(
                    loop._timers, (result.when, loop._seq(), WAKE, self, self._generation)
                )
            elif result is None:  # a bare yield (asyncio.sleep(0))
                loop.call_soon(self._step, context=self._context)
            elif getattr(result, "_asyncio_future_blocking", None) is not None:
                self._await_future(result)
            else:
                error = RuntimeError(f"actor {self._name!r} got a bad yield: {result!r}")
                loop.call_soon(self._step, error, context=self._context)
        finally:
            asyncio.tasks._leave_task(loop, self)  # type: ignore[attr-defined]
            loop._actor = None
            if self.done():
                loop._actors.pop(self, None)

    def _await_future(self, future: Any) -> None:
        loop = self._vloop
        if asyncio.futures._get_loop(future) is not loop:  # type: ignore[attr-defined]
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

    def _wakeup(self, future: asyncio.Future[Any]) -> None:
        try:
            future.result()
        except BaseException as error:
            self._step(error)
        else:
            self._step()


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _no_io(name: str) -> Callable[..., Any]:
    def method(self: VirtualLoop, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"VirtualLoop.{name}(): {_NO_IO}")

    method.__name__ = method.__qualname__ = name
    return method


# Everything AbstractEventLoop leaves abstract beyond the above is I/O (sockets, pipes, executors,
# signals...): replace its bare NotImplementedError with one that says why.
for _name, _attr in vars(asyncio.AbstractEventLoop).items():
    if callable(_attr) and _name not in vars(VirtualLoop) and "task_factory" not in _name:
        setattr(VirtualLoop, _name, _no_io(_name))


def run(
    main: Coroutine[Any, Any, _T],
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
    "scenario 'server-restart', strategy 'before'"). ``actors``: tasks are :class:`_Actor`
    s the loop steps itself (what the virtual runtime plays on).
    """
    if not asyncio.iscoroutine(main):
        raise ValueError(f"a coroutine was expected, got {main!r}")
    try:
        loop = VirtualLoop(start=start, stall_steps=stall_steps, context=context, actors=actors)
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
