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
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

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
    def execute(self, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
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

    def summary(self) -> dict[str, Any]:
        """What this runtime adds to the run's summary."""
        return {}

    def unknown_columns(self) -> tuple[str, ...]:
        """Time-series columns this runtime cannot know right now (a foreign server without
        the stats protocol has no registry to read): sampled rows carry NaN there, never
        a guess."""
        return ()

    async def stop(self) -> None:  # noqa: B027 (an optional hook)
        """Stop what :meth:`start` started; called even when the run failed."""


@dataclass
class Played:
    """What a run leaves behind, before it is summarised into a :class:`~simkit.results.Result`."""

    census: Census
    server: ServerActor
    env: Env
    extra: dict[str, Any] = field(default_factory=dict)


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
    await runtime.start()
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
        observe(env, server, sc.step, end, progress, on_sample, runtime.unknown_columns)
        if sc.push_rate > 0:
            people_once = sorted(set(people), key=people.index)
            push_source(env, server, people_once, sc.push_rate * tabs)
        await env.sleep(end)
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
        return Played(census, server, env, runtime.summary())
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await runtime.stop()


def observe(
    env: Env,
    server: ServerActor,
    step: float,
    end: float,
    progress: Callable[[float], None] | None,
    on_sample: Callable[[dict[str, float]], None] | None = None,
    unknown: Callable[[], tuple[str, ...]] = tuple,
) -> None:
    """Sample the census every ``step`` scenario seconds from 0 to ``end`` inclusive;
    ``on_sample`` gets each new row, with NaN in the columns ``unknown()`` names."""
    n = 0

    def sample() -> None:
        nonlocal n
        t = n * step
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

    env.loop.call_soon(sample)


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
