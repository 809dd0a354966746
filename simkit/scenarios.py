"""Scenarios: what the tabs do and when, over which network, at which size.

Each scenario is data plus one short *script*: a coroutine that plays one tab's life with
the tab's own random stream (``tab.work_rng``) and the story's verbs. Read a script as you
would read SimPy process: "wait a little, load, stay a while, reload...". Scripts stop
starting new actions at ``duration``; the run then settles so every timeout can pass.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from simkit.actors.cluster import Cluster
from simkit.model.errors import ConfigError, choice
from simkit.model.latency import Latency
from simkit.model.strategy import Strategy, make_strategy

if TYPE_CHECKING:
    from simkit.actors.env import Env
    from simkit.runtime.interfaces import TabActor as Tab

# A script plays one tab's life through the verbs of a TabActor (the model's Tab, or a real
# page in the browser runtime): the same script on every runtime.
Script = Callable[["Tab", "Scenario"], Coroutine[object, None, None]]
Control = Callable[["Env", "Scenario"], Coroutine[object, None, None]]


@dataclass(frozen=True)
class Scenario:
    """A workload and its conditions. ``people`` maps tab index -> person (several tabs of
    one person share an identity under the ``shared`` policy)."""

    name: str
    summary: str
    script: Script
    tabs: int = 200
    duration: float = 300.0
    latency: Latency = field(default_factory=lambda: Latency(0.02, 0.05))
    push_rate: float = 0.05  # pushes per second per tab, addressed to people
    tabs_per_person: tuple[int, int] = (1, 1)
    idle_timeout: float | None = None  # a proxy that cuts idle sockets
    control: Control | None = None  # server-side events (restart)
    strategy: Strategy | None = None  # a scenario that carries its own design
    step: float = 1.0
    nodes: int = 1  # server nodes unless simkit.run(nodes=...) says otherwise

    def people(self, tabs: int, rng: random.Random) -> list[str]:
        low, high = self.tabs_per_person
        people: list[str] = []
        person = 0
        while len(people) < tabs:
            people.extend([f"u{person}"] * rng.randint(low, high))
            person += 1
        return people[:tabs]

    def with_(self, **changes: object) -> Scenario:
        """A copy with some fields changed (e.g. ``latency=Latency(0.01, 0.5)``)."""
        return replace(self, **changes)  # type: ignore[arg-type]  # any fields, as the caller names them


def _expo(rng: random.Random, mean: float) -> float:
    return rng.expovariate(1.0 / mean)


async def _arrive(tab: Tab, within: float = 5.0) -> None:
    await tab.sleep(tab.work_rng.uniform(0.0, within))
    tab.load()


async def _every(tab: Tab, sc: Scenario, mean: float) -> AsyncIterator[None]:
    """Yield about every ``mean`` seconds (exponential gaps) until the workload ends: the
    rhythm of every script below."""
    while True:
        await tab.sleep(_expo(tab.work_rng, mean))
        if tab.now >= sc.duration:
            return
        yield


async def _for_a_while(tab: Tab, sc: Scenario, mean: float) -> None:
    """Wait about ``mean`` seconds, but not past the end of the workload, so every spell
    (an outage, a hidden tab, a freeze) is over when the run settles."""
    await tab.sleep(min(_expo(tab.work_rng, mean), sc.duration - tab.now))


# --- scripts ------------------------------------------------------------------------------


async def reload_storm(tab: Tab, sc: Scenario) -> None:
    """Users reload often; now and then a phone reloads after its old socket died silently."""
    rng = tab.work_rng
    await _arrive(tab)
    async for _ in _every(tab, sc, 20.0):
        await tab.reload(rng.uniform(0.05, 0.5), vanish=rng.random() < 0.1)


async def flaky_network(tab: Tab, sc: Scenario) -> None:
    """Mobile users: the network drops silently for a while, then comes back; half of them
    then pull to refresh (a reload while the old socket may still look open to the server)."""
    rng = tab.work_rng
    await _arrive(tab)
    async for _ in _every(tab, sc, 60.0):
        tab.lose_network()
        await _for_a_while(tab, sc, 30.0)
        tab.regain_network()
        if rng.random() < 0.5:
            await tab.reload(rng.uniform(0.5, 2.0))


async def strict_mode(tab: Tab, sc: Scenario) -> None:
    """React StrictMode in development: every load connects, cleans up, connects again."""
    rng = tab.work_rng
    await tab.sleep(rng.uniform(0.0, 5.0))
    tab.load(strict_mode=True)
    async for _ in _every(tab, sc, 30.0):
        await tab.reload(rng.uniform(0.05, 0.5), strict_mode=True)


async def multi_tab(tab: Tab, sc: Scenario) -> None:
    """People with two or three tabs of the app open, reloading them independently."""
    rng = tab.work_rng
    await _arrive(tab)
    async for _ in _every(tab, sc, 40.0):
        await tab.reload(rng.uniform(0.05, 0.5))


async def hidden_tabs(tab: Tab, sc: Scenario) -> None:
    """Visibility churn: tabs go to the background and come back."""
    await _arrive(tab)
    async for _ in _every(tab, sc, 30.0):
        tab.hide()
        await _for_a_while(tab, sc, 20.0)
        tab.show()


async def steady(tab: Tab, sc: Scenario) -> None:
    """Tabs open and stay: the server's events are the story (restart, idle proxy)."""
    rng = tab.work_rng
    await _arrive(tab)
    async for _ in _every(tab, sc, 120.0):
        await tab.reload(rng.uniform(0.05, 0.5))


async def background_tabs(tab: Tab, sc: Scenario) -> None:
    """Tabs left in the background: the browser freezes some; users navigate away from
    others, which wait in the back/forward cache, and come back later."""
    rng = tab.work_rng
    await _arrive(tab)
    async for _ in _every(tab, sc, 40.0):
        if rng.random() < 0.5:
            tab.freeze()
            await _for_a_while(tab, sc, 60.0)
            tab.resume()
        else:
            tab.enter_bfcache()
            await _for_a_while(tab, sc, 60.0)
            tab.restore()


async def restart_midway(env: Env, sc: Scenario) -> None:
    """The server process dies at half time and is back 5 s later."""
    await env.sleep(sc.duration / 2)
    env.network.restart_server(5.0)


async def reference(tab: Tab, sc: Scenario) -> None:
    """The benchmark model (see the README): tab i is user i; opens at U(0,5) s; stays
    Exp(mean 60 s); then reloads, closing cleanly with probability 0.7 and otherwise
    vanishing (its server socket stays half-open); the reload takes U(1,3) s."""
    rng = tab.work_rng
    await _arrive(tab)
    # _every's loop written out: the benchmark's script goes through no async generator
    # (its __anext__ and asend cost calls every reload); the same draws in the same order.
    sleep, duration = tab.sleep, sc.duration
    while True:
        await sleep(_expo(rng, 60.0))
        if tab.now >= duration:
            return
        await tab.reload(rng.uniform(1.0, 3.0), vanish=rng.random() >= 0.7)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "reload-storm",
            "frequent reloads over a jittery network; 10 % after a silent drop",
            reload_storm,
            latency=Latency(0.01, 0.4),
        ),
        Scenario(
            "flaky-network",
            "mobile tabs whose network silently drops for a while (half-open sockets)",
            flaky_network,
        ),
        Scenario("strict-mode", "React StrictMode: every load mounts twice", strict_mode),
        Scenario(
            "multi-tab",
            "people with 2-3 tabs sharing one identity",
            multi_tab,
            tabs_per_person=(2, 3),
        ),
        Scenario("hidden-tabs", "tabs hidden and shown again (visibility churn)", hidden_tabs),
        Scenario(
            "background-tabs",
            "tabs frozen by the browser or parked in the back/forward cache, then back",
            background_tabs,
        ),
        Scenario(
            "server-restart",
            "every connection drops at once at half time: the reconnect herd",
            steady,
            control=restart_midway,
        ),
        Scenario(
            "proxy-idle",
            "a proxy cuts sockets idle for 30 s (as nginx's proxy_read_timeout does at 60 s)",
            steady,
            idle_timeout=30.0,
        ),
        Scenario(
            "reference",
            "the benchmark model: reloads, 30 % vanish half-open, 20 s heartbeat reaps",
            reference,
            tabs=1000,
            duration=3600.0,
            latency=Latency(0.0, 0.0),
            push_rate=0.0,
            strategy=make_strategy(
                "reference",
                registry="kick-old-safe",
                liveness="websockets",
                identity="per-tab",
                summary="per-tab identity, kick-old-safe, websockets 20 s/20 s",
            ),
        ),
    )
}


def scenario(value: str | Scenario) -> Scenario:
    if isinstance(value, Scenario):
        return value
    if isinstance(value, str) and value in SCENARIOS:
        return SCENARIOS[value]
    raise choice("scenario", value, list(SCENARIOS))


def check_size(tabs: object, duration: object) -> None:
    if not isinstance(tabs, int) or isinstance(tabs, bool) or tabs < 1:
        raise ConfigError(f"tabs must be a whole number >= 1, got {tabs!r}")
    if not isinstance(duration, int | float) or not duration > 0 or duration == float("inf"):
        raise ConfigError(f"duration must be a positive number of seconds, got {duration!r}")


# --- several server nodes (simkit.actors.cluster) -----------------------------------------
# Each control falls back to the one-node equivalent when the run has a single Server.


async def reload_across_nodes(tab: Tab, sc: Scenario) -> None:
    """Frequent reloads; behind a round-robin balancer the new page's socket lands on
    another node than the old one, so the kick and the cleanup cross nodes."""
    rng = tab.work_rng
    await _arrive(tab)
    async for _ in _every(tab, sc, 20.0):
        await tab.reload(rng.uniform(0.05, 0.5), vanish=rng.random() < 0.05)


async def churn_with_background(tab: Tab, sc: Scenario) -> None:
    """Reloads, and background tabs the browser freezes; a third of those are closed while
    frozen, so if their node died meanwhile nobody ever cleans up their entry."""
    rng = tab.work_rng
    await _arrive(tab)
    async for _ in _every(tab, sc, 40.0):
        if rng.random() < 0.6:
            await tab.reload(rng.uniform(0.05, 0.5))
            continue
        tab.freeze()
        await _for_a_while(tab, sc, 40.0)
        if rng.random() < 0.33:
            tab.close()
            return
        tab.resume()


async def crash_a_node(env: Env, sc: Scenario) -> None:
    """Node 0 is killed at 40 % of the workload (SIGKILL: no handler runs) and is back
    30 s later."""
    await env.sleep(sc.duration * 0.4)
    server = env.server
    if isinstance(server, Cluster):
        server.crash_node(0, 30.0)
    else:
        env.network.restart_server(30.0)


async def deploy_one_by_one(env: Env, sc: Scenario) -> None:
    """A rolling deploy from a quarter of the workload on: each node in turn leaves the
    balancer, closes its sockets (4003), exits 5 s later and is back 10 s after that."""
    await env.sleep(sc.duration / 4)
    server = env.server
    if not isinstance(server, Cluster):
        env.network.restart_server(10.0)
        return
    for index in range(len(server.nodes)):
        server.drain_node(index, 5.0, 10.0)
        await env.sleep(min(30.0, sc.duration / (2 * len(server.nodes))))


async def store_blip(env: Env, sc: Scenario) -> None:
    """The shared store is unreachable for 5 s at half time (Redis failing over)."""
    await env.sleep(sc.duration / 2)
    if isinstance(env.server, Cluster):
        env.server.store.down_for(5.0)


for _scenario in (
    Scenario(
        "multi-node-reload",
        "3 nodes, round-robin: a reload's new socket lands on another node than the old one",
        reload_across_nodes,
        latency=Latency(0.01, 0.2),
        nodes=3,
    ),
    Scenario(
        "node-crash",
        "3 nodes; node 0 is killed at 40 % (sockets reset, no cleanup) and back 30 s later",
        churn_with_background,
        control=crash_a_node,
        nodes=3,
    ),
    Scenario(
        "rolling-deploy",
        "3 nodes drained and restarted one at a time: the reconnect herd moves around",
        reload_across_nodes,
        control=deploy_one_by_one,
        nodes=3,
    ),
    Scenario(
        "redis-blip",
        "3 nodes; the shared store is unreachable for 5 s at half time",
        reload_across_nodes,
        control=store_blip,
        nodes=3,
    ),
):
    SCENARIOS[_scenario.name] = _scenario
