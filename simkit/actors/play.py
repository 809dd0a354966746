"""One run, whatever the runtime: build the actors, let the scripts play, observe, settle.

This is the kit's run core, written once. A runtime is an adapter (:class:`Runtime`) that
provides only what differs between runtimes: the event loop it plays on and how time passes
(:meth:`Runtime.execute`), how bytes move (:meth:`Runtime.network`, a
:class:`~simkit.runtime.interfaces.Network`), what it starts and stops around a run (a
real server, a proxy, a browser) and, for the browser, what a tab is. Everything else (the
census, the server actor, the workload, the observer, the push source, settling, and the
rule that a failed script fails the run) is here, the same for every runtime: as SimPy's
``RealtimeEnvironment`` is a thin subclass of the same core, ``simkit.virtual``,
``simkit.live`` and ``simkit.browser`` are thin adapters around :func:`play`.

The workload (one script task per tab, plus the scenario's server-side control), the push
source and the observer are the actors besides tabs and server. The push source and the
observer are timer chains rather than tasks: they wake on a fixed rhythm and never wait for
anything else, so a callback is all they need, and it costs one loop step per wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, TypeVar

from simkit.actors.cluster import ClusterSpec
from simkit.actors.env import Env
from simkit.actors.server import Server
from simkit.actors.tab import Tab
from simkit.model.client import Storage
from simkit.model.errors import ScriptFailed
from simkit.model.strategy import Strategy
from simkit.runtime.census import Census
from simkit.runtime.interfaces import Network, ServerActor, SharedStore, TabActor

if TYPE_CHECKING:
    from simkit.scenarios import Scenario

T = TypeVar("T")

# A row sampled later than one step of wall time is late, but never for less than this
# many seconds: on a shared machine the OS alone pauses a process for tens of milliseconds.
LATE_FLOOR = 0.1


class Runtime(ABC):
    """What one runtime adds to the run core. Subclass it, override what differs.

    The core calls, in this order: :meth:`execute` (with the coroutine of the whole run),
    then inside it :meth:`start`, :meth:`census`, :meth:`network`, :meth:`server_actor`,
    :meth:`prepare`, :meth:`tab` for each tab, and after the run :meth:`check` and
    :meth:`summary`; :meth:`stop` always runs, even when the run fails or is cancelled.
    """

    name: ClassVar[str]
    scale: float = 1.0  # loop seconds per scenario second
    # Several server nodes (set by simkit.api.make_runtime when nodes > 1 or the strategy is
    # a cross-node design): the server actor is then a Cluster. None: one node, a Server.
    cluster: ClusterSpec | None = None

    @abstractmethod
    def execute(self, main: Callable[[], Coroutine[object, None, T]]) -> T:
        """Run ``main()`` to completion on this runtime's event loop; return its result."""

    async def start(self) -> None:  # noqa: B027 (an optional hook)
        """Bring up what the run plays against (a server, a proxy, a browser)."""

    def census(self, one_per_user: bool) -> Census:
        """The ground truth of the run (a runtime that learns facts late may refine it)."""
        return Census(one_per_user=one_per_user)

    @abstractmethod
    def network(self, loop: asyncio.AbstractEventLoop, census: Census) -> Network:
        """How this runtime's tabs reach the server."""

    def server_actor(self, env: Env) -> ServerActor:
        """The server-side actor the run observes and pushes through. The kit's own servers
        play :class:`Server` (the strategy's registry); a runtime playing against a server
        that is not the kit's (``simkit.live.target``) returns one that only mirrors what it
        can see of that server. With :attr:`cluster` set it is a :class:`Cluster` of nodes
        sharing :meth:`cluster_store`."""
        if self.cluster is not None:
            return self.cluster.build(env, self.cluster_store(env))
        return Server(env)

    def cluster_store(self, env: Env) -> SharedStore | None:
        """The store several nodes share (None: a virtual store on the run's clock; the live
        runtime returns a real Redis)."""
        return None

    async def prepare(self, env: Env, people: list[str]) -> None:  # noqa: B027 (an optional hook)
        """Last set-up once the actors exist and before the clock starts (e.g. one browser
        context per person)."""

    def tab(self, env: Env, index: int, person: str, storage: Storage) -> TabActor:
        """The actor that plays tab ``index`` (the scenario's script calls its verbs)."""
        return Tab(env, index, person, storage)

    def check(self) -> None:  # noqa: B027 (an optional hook)
        """Raise if something outside the actors failed during the run (a client task),
        so that a run that is not to be trusted never returns numbers."""

    def summary(self) -> dict[str, object]:
        """What this runtime adds to the run's summary."""
        return {}

    def losses(self) -> list[str]:
        """What this run lost that its numbers depend on, one sentence each (the browser
        died, the target went away, the store's process exited): called once the workload
        and settling are over, before :meth:`stop`. Nothing lost: an empty list. The run
        still returns its numbers, marked invalid (``summary["run_valid"]``) with these
        sentences among ``summary["invalid_reasons"]``."""
        return []

    def unknown_columns(self) -> tuple[str, ...]:
        """Time-series columns this runtime cannot know right now (a foreign server without
        the stats protocol has no registry to read): sampled rows carry NaN there, never
        a guess."""
        return ()

    async def stop(self) -> None:  # noqa: B027 (an optional hook)
        """Stop what :meth:`start` started; called even when the run failed."""


@dataclass
class Health:
    """Facts a run reports about itself, from which :func:`simkit.checks.invalid_reasons`
    decides whether its numbers can be trusted.

    ``samples_due`` is how many rows the time series must have (0 to ``duration + settle``
    every step), ``samples_taken`` how many it got; ``samples_late`` counts rows sampled
    more than ``late_bound`` wall seconds after their due time (the loop fell behind real
    time, so the row shows a later state than its ``t``), ``worst_lag`` is the largest
    such delay. ``errors_logged`` counts errors (mostly tracebacks of client or server
    tasks) logged on the run's thread, ``first_errors`` the first few, one line each.
    ``losses`` are the runtime's own sentences (:meth:`Runtime.losses`). ``realtime`` is
    False for the virtual runtime, whose clock never lags.
    """

    realtime: bool = False
    samples_due: int = 0
    samples_taken: int = 0
    samples_late: int = 0
    worst_lag: float = 0.0
    late_bound: float = 0.0
    errors_logged: int = 0
    first_errors: list[str] = field(default_factory=list)
    losses: list[str] = field(default_factory=list)


@dataclass
class Played:
    """What a run leaves behind, before it is summarised into a :class:`~simkit.results.Result`."""

    census: Census
    server: ServerActor
    env: Env
    extra: dict[str, object] = field(default_factory=dict)
    health: Health = field(default_factory=Health)


async def play(
    scenario: Scenario,
    strategy: Strategy,
    runtime: Runtime,
    *,
    tabs: int,
    duration: float,
    settle: float,
    seed: int,
    trace: bool = False,
    progress: Callable[[float], None] | None = None,
    on_sample: Callable[[dict[str, float]], None] | None = None,
) -> Played:
    """Play ``scenario`` under ``strategy`` on ``runtime`` until ``duration + settle``.

    ``progress(t)`` and ``on_sample(row)`` are called after every sample, on the run's loop:
    the time, and the new row of the time series (column -> value)."""
    loop = asyncio.get_running_loop()
    health = Health(realtime=runtime.name != "virtual")
    errors = _ErrorCounter(health) if health.realtime else None
    try:
        await runtime.start()
    except BaseException:  # a half-started runtime (an interrupt mid-start) is stopped too
        if errors is not None:
            errors.close()
        await runtime.stop()
        raise
    tasks: list[asyncio.Task[None]] = []
    try:
        census = runtime.census(strategy.registry().one_per_user)
        network = runtime.network(loop, census)
        env = Env(
            loop,
            strategy,
            census,
            network,
            seed,
            duration,
            scale=runtime.scale,
            trace=[] if trace else None,
            start=loop.time(),
        )
        server = runtime.server_actor(env)
        env.server = server
        network.attach(env, server)
        sc = scenario.with_(duration=duration)
        people = sc.people(tabs, env.rng("people"))
        await runtime.prepare(env, people)
        env.start = loop.time()  # the clock starts once everything is ready
        if env.start == 0.0 and env.scale == 1.0:  # virtual time: (t - 0) / 1 is t, bit for bit
            env.now = loop.time  # type: ignore[method-assign]  # a frame fewer per clock read
        browsers: dict[str, dict[str, str]] = {}
        actors = [
            runtime.tab(env, i, person, Storage(browsers.setdefault(person, {})))
            for i, person in enumerate(people)
        ]
        tasks = [loop.create_task(sc.script(tab, sc), name=f"tab {tab.index}") for tab in actors]
        if sc.control is not None:
            tasks.append(loop.create_task(sc.control(env, sc), name="control"))
        end = duration + settle
        sampled = observe(
            env, server, sc.step, end, progress, on_sample, runtime.unknown_columns, health
        )
        if sc.push_rate > 0:
            people_once = sorted(set(people), key=people.index)
            push_source(env, server, people_once, sc.push_rate * tabs)
        await env.sleep(end)
        if health.realtime and not sampled.done():
            # A loop that fell behind is still catching up on rows: let it (bounded), so the
            # series reaches duration + settle; what it cannot reach is counted as missed.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(sampled), max(2.0, end * runtime.scale))
        network.finish()  # e.g. count the heartbeats that coasted (virtual runtime)
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        # A script that failed must fail the run (SimPy's rule), never vanish in a gather.
        for task, outcome in zip(tasks, outcomes, strict=True):
            if isinstance(outcome, Exception):
                raise ScriptFailed(
                    f"scenario {sc.name!r}, strategy {strategy.name!r}, {task.get_name()}: "
                    f"{outcome}",
                    scenario=sc.name,
                    strategy=strategy.name,
                    task=task.get_name(),
                    cause=outcome,
                ) from outcome
        runtime.check()
        health.losses = runtime.losses()
        return Played(census, server, env, runtime.summary(), health)
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await runtime.stop()
            if errors is not None:
                await _leftovers()
        finally:
            if errors is not None:
                errors.close()


async def _leftovers(timeout: float = 2.0) -> None:
    """Cancel what a real-time run left on its loop (handshakes still in flight when an
    overloaded run ended) and wait for it, bounded, while the run still counts errors:
    otherwise the loop's shutdown cancels them later and each prints a traceback."""
    current = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=timeout)
    await asyncio.sleep(0)  # the done callbacks of what just finished run now


class _ErrorCounter(logging.Handler):
    """Counts the errors logged on the run's thread while a real-time run plays (a client
    or server task's traceback, an exception nobody retrieved) instead of letting each
    print its traceback: the run's summary says how many and the first few, and marks the
    run invalid. Other threads' records (another run, the user's code) pass untouched."""

    LOGGERS = ("asyncio", "websockets", "uvicorn.error", "simkit")
    KEEP = 3

    def __init__(self, health: Health) -> None:
        super().__init__(level=logging.ERROR)
        self.health = health
        self.thread = threading.get_ident()
        self.addFilter(lambda record: record.thread == self.thread)
        for name in self.LOGGERS:
            logging.getLogger(name).addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.health.errors_logged += 1
        if len(self.health.first_errors) < self.KEEP:
            line = record.getMessage().splitlines()[0] if record.getMessage() else ""
            if record.exc_info and record.exc_info[1] is not None:
                line = f"{line}: {record.exc_info[1]!r}" if line else repr(record.exc_info[1])
            self.health.first_errors.append(line[:200])

    def close(self) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeHandler(self)
        super().close()


def observe(
    env: Env,
    server: ServerActor,
    step: float,
    end: float,
    progress: Callable[[float], None] | None,
    on_sample: Callable[[dict[str, float]], None] | None = None,
    unknown: Callable[[], tuple[str, ...]] = tuple,
    health: Health | None = None,
) -> asyncio.Future[None]:
    """Sample the census every ``step`` scenario seconds from 0 to ``end`` inclusive;
    ``on_sample`` gets each new row, with NaN in the columns ``unknown()`` names. The
    returned future is done once the last row is taken.

    The schedule is absolute (row ``n`` is due at ``start + n * step * scale``), so a tick
    that fires late never shifts the ones after it: a loop that fell behind catches up one
    row per loop step, and each row taken later than ``health.late_bound`` (a whole step
    of wall time, at least :data:`LATE_FLOOR`) is counted in ``health``, never silently dropped."""
    n = 0
    done: asyncio.Future[None] = env.loop.create_future()
    due_rows = 0
    while due_rows * step <= end:  # exactly the rows the schedule below takes
        due_rows += 1
    bound = max(step * env.scale, LATE_FLOOR)
    if health is not None:
        health.samples_due, health.late_bound = due_rows, bound

    def sample() -> None:
        nonlocal n
        t = n * step
        if health is not None:
            lag = env.loop.time() - (env.start + t * env.scale)
            health.samples_taken += 1
            if lag > bound:
                health.samples_late += 1
                health.worst_lag = max(health.worst_lag, lag)
        env.census.sample(t, server.registry)
        server.on_sample(t)
        if progress is not None:
            progress(t)
        if on_sample is not None:
            row = {column: values[-1] for column, values in env.census.rows.items()}
            for column in unknown():
                row[column] = math.nan
            on_sample(row)
        n += 1
        if n * step <= end:
            env.loop.call_at(env.start + n * step * env.scale, sample)
        elif not done.done():
            done.set_result(None)

    env.loop.call_soon(sample)
    return done


def push_source(env: Env, server: ServerActor, people: list[str], rate: float) -> None:
    """Pushes to people at random, a Poisson stream of ``rate`` per scenario second, until
    the workload ends."""
    rng = env.rng("pushes")
    count = 0

    def push() -> None:
        nonlocal count
        if env.now() >= env.duration:
            return
        count += 1
        server.push(people[rng.randrange(len(people))], count)
        env.call_later(rng.expovariate(rate), push)

    env.call_later(rng.expovariate(rate), push)
