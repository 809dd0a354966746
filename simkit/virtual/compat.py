"""Every CPython asyncio internal the virtual loop relies on, named, explained and checked.

The virtual loop (:mod:`simkit.virtual.loop`), its lean actor task (:mod:`.actor`) and its
stall diagnosis (:mod:`.stall`) use a few parts of asyncio that are not public API, for
speed or because an event loop written outside asyncio has no other way in. Each is in
:data:`INTERNALS` with why it is used and what public behaviour it stands for, and
:func:`check` verifies at import that every one exists with the shape the loop expects: a
Python whose asyncio changed fails at ``import simkit.virtual.loop`` with one
:class:`~simkit.model.errors.UnsupportedPython` naming the version and the missing piece,
instead of a run that goes subtly wrong. The other modules take these internals only from
here, except the fields they read and write in place on hot paths, where a call per step
would cost time: the handles' slots (:data:`HANDLE_SLOTS`, :data:`TIMER_SLOTS`, in the
loop's run and the stall watch) and a future's ``_asyncio_future_blocking`` flag (in the
actor's step); those are named and checked here too. One more, :func:`task_of`, only words
the stall diagnosis and is not checked.

Tested on every Python that ``requires-python`` admits (``make test-python-X.Y``).
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from simkit.model.errors import UnsupportedPython

__all__ = [
    "HANDLE_SLOTS",
    "INTERNALS",
    "TIMER_SLOTS",
    "Handle",
    "Internal",
    "TimerHandle",
    "check",
    "enter_task",
    "format_callback_source",
    "future_loop",
    "get_running_loop",
    "leave_task",
    "new_handle",
    "new_timer",
    "set_running_loop",
    "task_of",
    "waiting_callbacks",
]

# The slots of asyncio.Handle that the loop writes when it makes a handle without
# Handle.__init__ (see new_handle) and reads in place on its hot path (VirtualLoop._run runs
# ``handle._context.run(handle._callback, *handle._args)`` unless ``handle._cancelled``, the
# body of Handle._run without its frame, as a step of every run does). The public behaviour
# they stand for: Handle.cancel() and cancelled() read and write ``_cancelled``.
HANDLE_SLOTS: Final = (
    "_callback",
    "_args",
    "_cancelled",
    "_loop",
    "_source_traceback",
    "_repr",
    "_context",
)
# TimerHandle's own slots, written the same way: ``_when`` is what when() returns,
# ``_scheduled`` tells TimerHandle.cancel() to notify the loop (the hook below).
TIMER_SLOTS: Final = ("_when", "_scheduled")


@dataclass(frozen=True)
class Internal:
    """One asyncio internal: where it is (a dotted path from the ``asyncio`` package), why the
    loop uses it, and what public behaviour it stands for."""

    path: str
    why: str
    relies_on: str


INTERNALS: Final = (
    Internal(
        "events.Handle",
        "handles are made without Handle.__init__ (its frame and get_debug() call) and run "
        "in place: a hot path",
        f"a pure-Python class with the slots {', '.join(HANDLE_SLOTS)}",
    ),
    Internal(
        "events.TimerHandle",
        "timer handles are made the same way; cancel() calls the loop's "
        "_timer_handle_cancelled(), which keeps the count of cancelled timers in the heap",
        f"a Handle subclass with the slots {', '.join(TIMER_SLOTS)} whose cancel() calls "
        "loop._timer_handle_cancelled",
    ),
    Internal(
        "events._get_running_loop",
        "run_forever() remembers the loop running outside (a Jupyter kernel's) to restore it",
        "asyncio.get_running_loop() inside a run is the virtual loop",
    ),
    Internal(
        "events._set_running_loop",
        "run_forever() makes the virtual loop the running one, even inside a running loop",
        "asyncio.get_running_loop() inside a run is the virtual loop",
    ),
    Internal(
        "tasks._enter_task",
        "an actor (a task the loop steps itself) says it is the task now running",
        "asyncio.current_task() inside an actor is the actor",
    ),
    Internal(
        "tasks._leave_task",
        "an actor says it stopped running",
        "asyncio.current_task() outside any task is None",
    ),
    Internal(
        "futures._get_loop",
        "an actor refuses to await a future of another loop, as an asyncio.Task does",
        "the loop a future belongs to",
    ),
    Internal(
        "format_helpers._format_callback_source",
        "an error raised by a callback is reported as asyncio's own Handle._run reports it",
        "'Exception in callback f(args) at file:line' in the exception handler's context",
    ),
    Internal(
        "Future._asyncio_future_blocking",
        "an actor tells a future it awaits (yielded by its __await__) from a bad bare yield",
        "asyncio.isfuture() and the await protocol of futures",
    ),
    Internal(
        "Future._callbacks",
        "the stall diagnosis names the tasks waiting on a future that keeps being completed",
        "a list of (callback, context) pairs: add_done_callback()'s callbacks, in order",
    ),
)


_MISSING: Final = object()


def _find(namespace: object, path: str) -> Any:  # an internal found by name: typed where bound
    """``namespace.a.b`` for ``path`` "a.b", or ``_MISSING`` where a piece is missing. A
    ``Future.`` path is looked up on a pending future with one done-callback (the C future
    keeps its fields on the instance, the pure-Python one too)."""
    found = namespace
    names = path.split(".")
    if names[0] == "Future":
        found, names = _probe_future(namespace), names[1:]
    for name in names:
        found = getattr(found, name, _MISSING)
        if found is _MISSING:
            break
    return found


def _probe_future(namespace: object) -> object:
    """A pending ``namespace.Future`` with :func:`_probe_callback` added, or ``_MISSING``."""
    try:
        future = getattr(namespace, "Future")(loop=_ProbeLoop())  # noqa: B009 (any namespace)
        future.add_done_callback(_probe_callback)
    except Exception:
        return _MISSING
    return future


class _ProbeLoop:
    """Just enough of a loop for a Future to be made and given a callback off any loop."""

    def get_debug(self) -> bool:
        return False


def _probe_callback(future: object) -> None:
    """Given to a probe future by :func:`check`; never called."""


def _slots(cls: type) -> set[str]:
    return {slot for klass in cls.__mro__ for slot in getattr(klass, "__slots__", ())}


def _shape_problem(namespace: object, internal: Internal, found: Any) -> str | None:  # found:
    # whatever asyncio holds under that name, probed by shape
    """What is wrong with ``found`` (present) for ``internal``, or None."""
    path = internal.path
    if path == "events.Handle":
        missing = set(HANDLE_SLOTS) - _slots(found) if isinstance(found, type) else HANDLE_SLOTS
        return f"no slot(s) {', '.join(sorted(missing))}" if missing else None
    if path == "events.TimerHandle":
        handle = _find(namespace, "events.Handle")
        if not (isinstance(found, type) and isinstance(handle, type) and issubclass(found, handle)):
            return "not a subclass of events.Handle"
        missing = set(TIMER_SLOTS) - _slots(found)
        if missing:
            return f"no slot(s) {', '.join(sorted(missing))}"
        code = getattr(getattr(found, "cancel", None), "__code__", None)
        if code is None or "_timer_handle_cancelled" not in code.co_names:
            return "its cancel() does not call loop._timer_handle_cancelled()"
        return None
    if path == "Future._callbacks":
        try:
            first = found[0][0]
        except Exception:
            first = None
        return None if first is _probe_callback else f"not (callback, context) pairs: {found!r}"
    if path == "Future._asyncio_future_blocking":
        return None if found is False else f"{found!r} on a pending future, not False"
    return None if callable(found) else "not callable"


def check(namespace: object = asyncio, version: str | None = None) -> None:
    """Raise :class:`UnsupportedPython` naming ``version`` (this Python's by default) and
    every internal in :data:`INTERNALS` that ``namespace`` (the ``asyncio`` package, or a
    stand-in in tests) lacks or has in another shape; return None when all are there."""
    version = version or sys.version.split()[0]
    problems = []
    for internal in INTERNALS:
        found = _find(namespace, internal.path)
        problem = "missing" if found is _MISSING else _shape_problem(namespace, internal, found)
        if problem is not None:
            problems.append(
                f"asyncio.{internal.path} ({problem}; used because {internal.why}; "
                f"expected: {internal.relies_on})"
            )
    if problems:
        raise UnsupportedPython(
            f"simkit's virtual loop does not support Python {version}: its asyncio "
            f"changed where the loop relies on internals: {'; '.join(problems)}. "
            f"simkit.virtual.compat lists them; the Pythons tested are those "
            f"requires-python admits."
        )


check()

# The internals, under names that say what they do (the same objects: no extra frame).
# Looked up by the paths check() verified; typeshed declares only some of them.
Handle: Final[type[asyncio.Handle]] = _find(asyncio, "events.Handle")
TimerHandle: Final[type[asyncio.TimerHandle]] = _find(asyncio, "events.TimerHandle")
get_running_loop: Final[Callable[[], asyncio.AbstractEventLoop | None]] = _find(
    asyncio, "events._get_running_loop"
)
set_running_loop: Final[Callable[[asyncio.AbstractEventLoop | None], None]] = _find(
    asyncio, "events._set_running_loop"
)
enter_task: Final[Callable[[asyncio.AbstractEventLoop, object], None]] = _find(
    asyncio, "tasks._enter_task"
)
leave_task: Final[Callable[[asyncio.AbstractEventLoop, object], None]] = _find(
    asyncio, "tasks._leave_task"
)
future_loop: Final[Callable[[object], asyncio.AbstractEventLoop]] = _find(
    asyncio, "futures._get_loop"
)
format_callback_source: Final[Callable[[object, Iterable[object]], str]] = _find(
    asyncio, "format_helpers._format_callback_source"
)
_new = object.__new__
_copy_context = contextvars.copy_context


def new_handle(
    callback: Callable[..., object],
    args: Sequence[object],
    loop: asyncio.AbstractEventLoop,
    context: contextvars.Context | None,
) -> asyncio.Handle:
    """``asyncio.Handle(callback, args, loop, context)`` without ``Handle.__init__``: no
    frame of its own and no ``loop.get_debug()`` call (a loop in debug mode calls the
    constructor instead, for its source traceback)."""
    handle: Any = _new(Handle)  # its slots are set one by one; typeshed declares few of them
    handle._callback, handle._args, handle._loop = callback, args, loop
    handle._context = _copy_context() if context is None else context
    handle._cancelled, handle._repr, handle._source_traceback = False, None, None
    made: asyncio.Handle = handle
    return made


def new_timer(
    when: float,
    callback: Callable[..., object],
    args: Sequence[object],
    loop: asyncio.AbstractEventLoop,
    context: contextvars.Context | None,
) -> asyncio.TimerHandle:
    """``asyncio.TimerHandle(when, ...)`` the same way, marked scheduled."""
    timer: Any = _new(TimerHandle)  # as above
    timer._callback, timer._args, timer._loop, timer._when = callback, args, loop, when
    timer._context = _copy_context() if context is None else context
    timer._cancelled, timer._repr, timer._source_traceback = False, None, None
    timer._scheduled = True
    made: asyncio.TimerHandle = timer
    return made


def waiting_callbacks(future: object) -> list[Callable[..., object]]:
    """The done-callbacks of a pending ``asyncio.Future`` (what waits on it), in order; []
    for anything else."""
    pairs = getattr(future, "_callbacks", None) or ()
    return [pair[0] for pair in pairs]


def task_of(callback: object) -> object:
    """The object a callback is bound to (``__self__``), or None: for a task's step and
    wake-up callbacks, the task. Not checked by :func:`check`: only the stall diagnosis
    reads it, to name the tasks that keep waking, and it falls back to naming the callback."""
    return getattr(callback, "__self__", None)
