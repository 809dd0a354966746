"""Run a coroutine on an event loop of its own, from any caller.

A notebook cell already runs inside an event loop, and ``asyncio.run`` refuses to start a
second one in the same thread. The live and browser runtimes therefore play on a fresh
loop in a worker thread and hand back its result (or re-raise its exception) in the
caller's thread.

An interrupt reaches the caller's thread, not the worker (Python runs signal handlers in
the main thread; a Jupyter interrupt is a SIGINT to the kernel). A kernel survives it, so
the run must not: :func:`in_thread` cancels the worker's coroutine, whose ``finally``
clauses stop the servers, proxies, Redis and Chromium, waits for that (bounded), and only
then re-raises the KeyboardInterrupt. Before, a live run went on playing in its thread after
the interrupt, its ports still listening 14 s later.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

CANCEL_WAIT = 30.0
"""At most this many seconds for a cancelled run to stop what it started (a server's close
timeout, Chromium's exit) before the interrupt is re-raised anyway."""

POLL = 0.1
"""The caller waits in slices of this many seconds, so an interrupt that does not wake a
blocked wait (``_thread.interrupt_main()`` sends no signal) is still seen promptly. It
waits on an Event, not on ``Thread.join``: a join interrupted by KeyboardInterrupt marks
the thread stopped while it still runs (CPython 3.11's ``_wait_for_tstate_lock``), after
which ``is_alive()`` lies."""


@dataclass
class _Run(Generic[T]):
    """What the worker thread leaves for the caller's: its loop and task (to cancel them),
    then its value or its error."""

    loop: asyncio.AbstractEventLoop | None = None
    task: asyncio.Task[object] | None = None
    value: list[T] = field(default_factory=list)  # [the value], once main() returned
    error: BaseException | None = None


def in_thread(
    main: Callable[[], Coroutine[object, None, T]],  # any coroutine (asyncio sends None)
    name: str = "simkit-live",
) -> T:
    """``asyncio.run(main())`` in a worker thread; its outcome, in this one. An exception
    raised in this thread while it waits (KeyboardInterrupt) cancels the run first: its
    cleanup has run (or :data:`CANCEL_WAIT` passed) when the exception propagates."""
    run: _Run[T] = _Run()
    started, done = threading.Event(), threading.Event()

    async def guarded() -> T:
        run.loop = asyncio.get_running_loop()
        run.task = asyncio.current_task()
        started.set()
        return await main()

    def target() -> None:
        try:
            run.value.append(asyncio.run(guarded()))
        except BaseException as error:  # re-raised in the caller's thread
            run.error = error
        finally:
            started.set()
            done.set()

    worker = threading.Thread(target=target, name=name, daemon=True)
    worker.start()
    try:
        while not done.wait(POLL):
            pass
    except BaseException:
        _cancel(started, done, run)
        raise
    worker.join()
    if run.error is not None:
        raise run.error
    return run.value[0]


def _cancel(started: threading.Event, done: threading.Event, run: _Run[T]) -> None:
    """Cancel the worker's run and wait (at most :data:`CANCEL_WAIT` s) for it to end. A
    second interrupt while waiting gives up waiting (the worker is a daemon thread)."""
    deadline = time.monotonic() + CANCEL_WAIT
    try:
        started.wait(CANCEL_WAIT)
        loop, task = run.loop, run.task
        if loop is not None and task is not None:
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # the loop already closed: the run is over
                return
        while not done.wait(POLL) and time.monotonic() < deadline:
            pass
    except BaseException:  # a second Ctrl-C: stop waiting, raise the first
        return
