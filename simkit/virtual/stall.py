"""Stall diagnosis: when the virtual clock stops advancing, say what keeps it stuck.

Autojump means a run that keeps re-scheduling work at one instant (a retry with no delay
that always fails at once) would spin forever with the clock stuck. The loop counts the
steps run at one instant; past the limit it watches what runs for a few iterations
(:class:`StallWatch`) and raises :class:`~simkit.model.errors.SimulationStalled` naming
the tasks and callbacks that keep waking, with where their code waits.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import re
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from simkit.model.errors import SimulationStalled
from simkit.virtual.actor import SLEEP_CODE, Actor
from simkit.virtual.compat import task_of, waiting_callbacks
from simkit.virtual.heap import MESSAGE, WAKE

__all__ = [
    "STALL_SAMPLES",
    "STALL_SAMPLE_ITEMS",
    "STALL_STEPS",
    "STALL_STEPS_PER_TASK",
    "StallWatch",
]


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
STALL_SAMPLES = 64  # iterations watched after the limit, to see what keeps running
STALL_SAMPLE_ITEMS = 20_000  # ... or fewer, once this many due callbacks were looked at


class StallWatch:
    """What keeps running at a stuck instant: before each watched iteration, a snapshot of
    what is due now (ready handles and due heap entries), grouped by what wakes (a task's
    innermost frame, a callback's qualified name) and who (task names, callback owners)."""

    def __init__(self, now: float, limit: int) -> None:
        self.now, self.limit, self.samples, self.items = now, limit, 0, 0
        # (kind, what) -> {member key: member label}; dicts keep first-seen order.
        self.groups: dict[tuple[str, str], dict[int, str | None]] = {}  # keyed by id()
        self.hits: dict[tuple[str, str], int] = {}
        self.seen: list[object] = []  # members are keyed by id(): keep them alive meanwhile

    def sample(self, ready: deque[Any], timers: list[tuple[Any, ...]], now: float) -> bool:
        # (the loop's own ready queue and heap, as it types them: see VirtualLoop.__init__)
        """Take one snapshot; True once enough were taken to name the culprits."""
        self.samples += 1
        groups, hits = self.groups, self.hits
        for callback, args in itertools.islice(_due(ready, timers, now), STALL_SAMPLE_ITEMS):
            self.items += 1
            for kind, what, member, label in _describe(callback, args):
                members = groups.setdefault((kind, what), {})
                if id(member) not in members:
                    members[id(member)] = label
                    self.seen.append(member)
                hits[kind, what] = hits.get((kind, what), 0) + 1
        return self.samples >= STALL_SAMPLES or self.items >= STALL_SAMPLE_ITEMS

    def error(self, context: str, instant: int) -> SimulationStalled:
        """The error to raise: ``instant`` steps ran at the stuck instant; ``context`` (e.g.
        "scenario 'x', strategy 'y'") starts its message."""
        culprits = self.culprits()
        prefix = f"{context}: " if context else ""
        message = (
            f"{prefix}the simulation stalled at virtual time t={self.now!r} s: "
            f"{instant:,} loop steps ran without the clock advancing (limit: "
            f"{self.limit:,} steps at one instant); what keeps re-scheduling itself "
            f"at that instant: {culprits}"
        )
        return SimulationStalled(message, now=self.now, steps=instant, culprits=culprits)

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


def _due(
    ready: deque[Any], timers: list[tuple[Any, ...]], now: float
) -> Iterator[tuple[Callable[..., object], Sequence[object]]]:
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


def _describe(
    callback: Callable[..., object], args: Sequence[object]
) -> list[tuple[str, str, object, str | None]]:
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


def _tasks_woken(callback: object, args: Sequence[object]) -> list[asyncio.Task[object] | Actor]:
    """The tasks or actors ``callback(*args)`` steps, or whose awaited future it completes."""
    owner = task_of(callback)
    if isinstance(owner, asyncio.Task | Actor):
        return [owner]  # a task's step or wake-up
    if args and asyncio.isfuture(args[0]):  # completes a future (a sleep): who waits on it?
        found = [task_of(waiter) for waiter in waiting_callbacks(args[0])]
        return [task for task in found if isinstance(task, asyncio.Task | Actor)]
    return []


_ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep


def _where_task(task: asyncio.Task[object] | Actor) -> str:
    """The task's innermost frame outside asyncio: where its own code waits."""
    coro: object = task.get_coro()
    found = None
    for _ in range(1000):  # a bound, in case of a cycle
        if coro is None:
            break
        code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
        if code is SLEEP_CODE:
            break  # an actor's sleep: where it waits is the frame that awaits it
        if code is not None and not code.co_filename.startswith(_ASYNCIO_DIR):
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
            found = (code, code.co_firstlineno if frame is None else frame.f_lineno)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    if found is None:
        return "an asyncio internal"
    code, line = found
    return f"{getattr(code, 'co_qualname', code.co_name)} ({_short(code.co_filename)}:{line})"


def _where_callable(callback: object) -> str:
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


def _owner_label(owner: object) -> str | None:
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

    def natural(label: str) -> list[int | str]:
        return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", label)]

    ordered = sorted(set(labels), key=natural)
    if len(ordered) <= 4:
        return ", ".join(map(repr, ordered))
    return f"{ordered[0]!r}..{ordered[-1]!r}"
