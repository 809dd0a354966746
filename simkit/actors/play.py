"""One run, whatever the runtime: build the actors, let the scripts play, observe, settle.

The workload (one script task per tab, plus the scenario's server-side control), the push
source and the observer are the actors besides tabs and server. The push source and the
observer are timer chains rather than tasks: they wake on a fixed rhythm and never wait for
anything else, so a callback is all they need, and it costs one loop step per wake-up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from simkit.actors.env import Env
from simkit.actors.server import Server
from simkit.actors.tab import Tab
from simkit.model.client import Storage
from simkit.model.strategy import Strategy
from simkit.runtime.census import Census

NetworkFactory = Callable[[asyncio.AbstractEventLoop, Census], Any]


async def play(
    scenario: Any,
    strategy: Strategy,
    *,
    tabs: int,
    duration: float,
    settle: float,
    seed: int,
    make_network: NetworkFactory,
    scale: float = 1.0,
    trace: bool = False,
    progress: Callable[[float], None] | None = None,
) -> tuple[Census, Server, Env]:
    """Play ``scenario`` under ``strategy`` until ``duration + settle``; return the census."""
    loop = asyncio.get_running_loop()
    census = Census(one_per_user=strategy.registry().one_per_user)
    network = make_network(loop, census)
    env = Env(
        loop,
        strategy,
        census,
        network,
        seed,
        duration,
        scale=scale,
        trace=[] if trace else None,
        start=loop.time(),
    )
    server = Server(env)
    network.server = server
    sc = scenario.with_(duration=duration)
    people = sc.people(tabs, env.rng("people"))
    browsers: dict[str, dict[str, str]] = {}
    actors = [
        Tab(env, i, person, Storage(browsers.setdefault(person, {})))
        for i, person in enumerate(people)
    ]
    tasks = [loop.create_task(sc.script(tab, sc), name=f"tab {tab.index}") for tab in actors]
    if sc.control is not None:
        tasks.append(loop.create_task(sc.control(env, sc), name="control"))
    end = duration + settle
    _observe(env, server, sc.step, end, progress)
    if sc.push_rate > 0:
        _push_source(env, server, sorted(set(people), key=people.index), sc.push_rate * tabs)
    try:
        await env.sleep(end)
        network.finish()  # e.g. count the heartbeats that coasted (virtual runtime)
    finally:
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    # A script that failed must fail the run (SimPy's rule), never vanish in a gather.
    for task, outcome in zip(tasks, outcomes, strict=True):
        if isinstance(outcome, Exception):
            raise RuntimeError(f"scenario {sc.name!r}, {task.get_name()}: {outcome}") from outcome
    return census, server, env


def _observe(
    env: Env, server: Server, step: float, end: float, progress: Callable[[float], None] | None
) -> None:
    n = 0

    def sample() -> None:
        nonlocal n
        t = n * step
        env.census.sample(t, server.registry)
        if progress is not None:
            progress(t)
        n += 1
        if n * step <= end:
            env.loop.call_at(env.start + n * step * env.scale, sample)

    env.loop.call_soon(sample)


def _push_source(env: Env, server: Server, people: list[str], rate: float) -> None:
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
