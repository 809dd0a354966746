"""``simkit.run`` and ``simkit.compare``: the front door of the kit."""

from __future__ import annotations

import gc
import math
from collections.abc import Iterable
from typing import Any

from simkit.actors.play import play
from simkit.model.errors import ConfigError, choice
from simkit.model.strategy import Strategy
from simkit.model.strategy import strategy as strategy_of
from simkit.results import Comparison, Result, summarise, trace_frame
from simkit.scenarios import Scenario, check_size
from simkit.scenarios import scenario as scenario_of
from simkit.virtual import loop as virtual_loop
from simkit.virtual.network import MemoryNetwork

RUNTIMES = ("virtual", "live", "browser")
LIVE_SCALE = 0.05  # a live run plays 20 scenario seconds per wall second by default
CLOSE_TIMEOUT = 10.0  # websockets' default: how long a closing server waits for the peer


def default_settle(strategy: Strategy) -> float:
    """Long enough after the workload for every timeout to pass: the heartbeat's worst
    detection, the close timeout, the longest reconnect delay, the connect guard."""
    worst = strategy.liveness.worst_detection
    backoff = strategy.client.backoff
    return (
        (0.0 if math.isinf(worst) else worst)
        + CLOSE_TIMEOUT
        + max(backoff.max_delay, backoff.first_max)
        + strategy.client.guard_wait
        + 10.0
    )


def run(
    scenario: str | Scenario = "reload-storm",
    strategy: str | Strategy | None = None,
    *,
    tabs: int | None = None,
    duration: float | None = None,
    seed: int = 0,
    runtime: str = "virtual",
    settle: float | None = None,
    trace: bool = False,
    progress: bool | None = None,
    scale: float | None = None,
) -> Result:
    """Run one scenario under one strategy and measure the ground truth.

    In the ``virtual`` runtime the result is a pure function of the arguments: the same seed
    gives the same numbers, bit for bit, in any process. ``settle`` (default: long enough
    for every timeout) runs on after ``duration`` with no new workload, so the final row
    shows what the strategy leaves behind. ``progress`` shows a bar (default: only for runs
    of more than 2 million tab-seconds).

    ``runtime="live"`` plays the same actors over real WebSockets: a :class:`LocalServer`
    on 127.0.0.1 behind a fault proxy, with every duration multiplied by ``scale`` (default
    0.05: a 300 s scenario takes 15 s). Live numbers vary from run to run; compare them on
    invariants and tolerances, not exactly.
    """
    sc = scenario_of(scenario)
    if strategy is None:
        if sc.strategy is None:
            raise ConfigError(
                f"scenario {sc.name!r} needs a strategy; pass strategy= one of the presets "
                "(python -m simkit list) or a Strategy"
            )
        strategy = sc.strategy
    strat = strategy_of(strategy)
    tabs = sc.tabs if tabs is None else tabs
    duration = sc.duration if duration is None else duration
    check_size(tabs, duration)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"seed must be a whole number, got {seed!r}")
    if runtime not in RUNTIMES:
        raise choice("runtime", runtime, list(RUNTIMES))
    settle = default_settle(strat) if settle is None else settle
    if not (settle >= 0 and math.isfinite(settle)):
        raise ConfigError(f"settle must be >= 0 seconds, got {settle!r}")

    def make_network(loop: Any, census: Any) -> MemoryNetwork:
        return MemoryNetwork(
            loop,
            census,
            strat.liveness,
            sc.latency,
            close_timeout=CLOSE_TIMEOUT,
            idle_timeout=sc.idle_timeout,
        )

    if runtime == "browser":
        from simkit.browser.runtime import run_browser

        return run_browser(sc, strat, tabs, duration, settle, seed, scale, trace)
    if runtime == "live":
        scale = LIVE_SCALE if scale is None else scale
        if not (scale > 0 and math.isfinite(scale)):
            raise ConfigError(f"scale must be a positive number, got {scale!r}")
        census, server, env = _run_live(sc, strat, tabs, duration, settle, seed, scale, trace)
        return _result(sc, strat, runtime, seed, tabs, duration, settle, scale, census, server, env)
    if scale not in (None, 1.0):
        raise ConfigError(f"scale only applies to the live runtime, got scale={scale!r}")
    bar, tick = _progress(progress, tabs * duration, duration + settle)
    # A run allocates millions of short-lived objects but frees almost nothing cyclic: with
    # the default thresholds the collector keeps rescanning every live tab (42 % of the time
    # at 10,000 tabs). Park what exists, collect rarely, restore afterwards.
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    try:
        census, server, env = virtual_loop.run(
            play(
                sc,
                strat,
                tabs=tabs,
                duration=duration,
                settle=settle,
                seed=seed,
                make_network=make_network,
                trace=trace,
                progress=tick,
            )
        )
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
        if bar is not None:
            bar.close()
    return _result(sc, strat, runtime, seed, tabs, duration, settle, 1.0, census, server, env)


def _result(sc, strat, runtime, seed, tabs, duration, settle, scale, census, server, env):
    info = {
        "scenario": sc.name,
        "strategy": strat.name,
        "runtime": runtime,
        "seed": seed,
        "tabs": tabs,
        "duration": float(duration),
        "settle": float(settle),
        "scale": float(scale),
    }
    timeseries, summary = summarise(census, server, info)
    return Result(sc.name, strat.name, timeseries, summary, trace_frame(env.trace))


def _run_live(sc, strat, tabs, duration, settle, seed, scale, trace):
    """Start a LocalServer and a FaultProxy, play the scenario over real sockets, stop both.

    It runs on its own event loop in a worker thread, so it can be called from a notebook
    cell (whose loop is already running) as well as from a script.
    """
    from simkit.live.network import LiveNetwork
    from simkit.live.proxy import FaultProxy, Toxics
    from simkit.live.server import LocalServer

    async def main():
        local = LocalServer(strat, scale=scale, close_timeout=CLOSE_TIMEOUT, own_core=False)
        await local.start()
        toxics = Toxics(latency=sc.latency.base * scale, jitter=sc.latency.jitter * scale)
        idle = None if sc.idle_timeout is None else sc.idle_timeout * scale
        proxy = FaultProxy(local.port, defaults=toxics, idle_timeout=idle, seed=seed)
        await proxy.__aenter__()
        networks = []

        def make_network(loop, census):
            net = LiveNetwork(loop, census, local, proxy, scale=scale, close_timeout=CLOSE_TIMEOUT)
            networks.append(net)
            return net

        try:
            played = await play(
                sc,
                strat,
                tabs=tabs,
                duration=duration,
                settle=settle,
                seed=seed,
                make_network=make_network,
                scale=scale,
                trace=trace,
            )
            for net in networks:
                if net.errors:  # a client task failed: the run is not to be trusted
                    raise RuntimeError(f"live run failed: {net.errors[0]!r}") from net.errors[0]
            return played
        finally:
            for net in networks:
                await net.aclose()
            await proxy.close()
            await local.stop()

    return _in_thread(main)


def _in_thread(main):
    import asyncio
    import threading

    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(main())
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error

    worker = threading.Thread(target=target, name="simkit-live", daemon=True)
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def compare(
    scenario: str | Scenario = "reload-storm",
    strategies: Iterable[str | Strategy] = ("before", "postmortem", "postmortem-safe"),
    **kwargs: Any,
) -> Comparison:
    """Run the same scenario (same seed, same workload) under each strategy."""
    sc = scenario_of(scenario)
    chosen = [strategy_of(item) for item in strategies]
    if kwargs.get("settle") is None and chosen:
        # One time axis for all: settle as long as the slowest strategy needs.
        kwargs["settle"] = max(default_settle(s) for s in chosen)
    results: dict[str, Result] = {}
    for item in chosen:
        result = run(sc, item, **kwargs)
        results[result.strategy] = result
    if not results:
        raise ConfigError("compare needs at least one strategy")
    return Comparison(sc.name, results)


def _progress(wanted: bool | None, size: float, end: float) -> tuple[Any, Any]:
    if wanted is None:
        wanted = size > 2_000_000
    if not wanted:
        return None, None
    from tqdm.auto import tqdm

    bar = tqdm(total=round(end), unit="sim-s", leave=False)

    def tick(t: float) -> None:
        if t - bar.n >= 1:
            bar.update(int(t - bar.n))

    return bar, tick
