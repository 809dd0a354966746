"""``simkit.run`` and ``simkit.compare``: the front door of the kit."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from simkit.actors.cluster import cluster_spec
from simkit.actors.play import Runtime, play
from simkit.model.errors import ConfigError, choice
from simkit.model.liveness import CLOSE_TIMEOUT
from simkit.model.strategy import Strategy
from simkit.model.strategy import strategy as strategy_of
from simkit.results import Comparison, Result, summarise, trace_frame
from simkit.scenarios import Scenario, check_size
from simkit.scenarios import scenario as scenario_of

RUNTIMES = ("virtual", "live", "browser")
__all__ = ["CLOSE_TIMEOUT", "RUNTIMES", "compare", "default_settle", "make_runtime", "run"]


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
    on_sample: Callable[[dict[str, float]], None] | None = None,
    nodes: int | None = None,
    balancer: str | None = None,
    scale: float | None = None,
    stack: str | None = None,
    ws: str | None = None,
) -> Result:
    """Run one scenario under one strategy and measure the ground truth.

    In the ``virtual`` runtime the result is a pure function of the arguments: the same seed
    gives the same numbers, bit for bit, in any process. ``settle`` (default: long enough
    for every timeout) runs on after ``duration`` with no new workload, so the final row
    shows what the strategy leaves behind. ``progress`` shows a bar (default: only for runs
    of more than 2 million tab-seconds). ``on_sample(row)`` is called with each new row of
    the time series as it is sampled (a dict, column -> value), in every runtime: a live
    plot (:func:`simkit.widgets.live_plot`) draws the counts as they happen. In the live
    and browser runtimes it runs on the run's own thread; keep it quick.

    ``runtime="live"`` plays the same actors over real WebSockets: a :class:`LocalServer`
    on 127.0.0.1 behind a fault proxy, with every duration multiplied by ``scale`` (default
    0.05: a 300 s scenario takes 15 s). Live numbers vary from run to run; compare them on
    invariants and tolerances, not exactly.

    ``nodes=N`` plays N server nodes behind a load balancer (``balancer``: round-robin,
    random, sticky or least-connections) that share the registry as the strategy's
    cross-node policy says (``local`` for a one-node design); default: the scenario's
    (1 for all but the multi-node ones). One node and a one-node design is the same run
    as before nodes existed, bit for bit.

    ``stack="fastapi"`` (with ``runtime="live"``) serves the run with FastAPI on uvicorn,
    the post-mortem's own stack, instead of the ``websockets`` server; ``ws`` picks
    uvicorn's WebSocket implementation (``websockets-sansio``, its default, ``websockets``
    or ``wsproto``). ``summary["stack"]`` and ``summary["ws"]`` record them.
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

    chosen = make_runtime(runtime, sc, strat, tabs=tabs, seed=seed, scale=scale, stack=stack, ws=ws)
    chosen.cluster = cluster_spec(
        sc.nodes if nodes is None else nodes, balancer, strat, chosen.name
    )
    bar, tick = _progress(progress, tabs * duration, duration + settle, chosen.name == "virtual")
    try:
        played = chosen.execute(
            lambda: play(
                sc,
                strat,
                chosen,
                tabs=tabs,
                duration=duration,
                settle=settle,
                seed=seed,
                trace=trace,
                progress=tick,
                on_sample=on_sample,
            )
        )
    finally:
        if bar is not None:
            bar.close()
    info = {
        "scenario": sc.name,
        "strategy": strat.name,
        "runtime": chosen.name,
        "seed": seed,
        "tabs": tabs,
        "duration": float(duration),
        "settle": float(settle),
        "scale": float(chosen.scale),
    }
    if stack is not None:
        info["stack"], info["ws"] = getattr(chosen, "stack", stack), getattr(chosen, "ws", ws)
    timeseries, summary = summarise(played.census, played.server, info)
    summary.update(played.extra)
    return Result(sc.name, strat.name, timeseries, summary, trace_frame(played.env.trace))


def make_runtime(
    name: str,
    scenario: Scenario,
    strategy: Strategy,
    *,
    tabs: int,
    seed: int = 0,
    scale: float | None = None,
    stack: str | None = None,
    ws: str | None = None,
) -> Runtime:
    """The adapter for runtime ``name`` (one of :data:`RUNTIMES`)."""
    if (stack, ws) != (None, None) and name != "live":
        raise ConfigError(
            "stack= and ws= choose the live runtime's own server: use runtime='live', "
            f"not runtime={name!r}"
        )
    if name == "virtual":
        from simkit.virtual.runtime import VirtualRuntime

        if scale not in (None, 1.0):
            raise ConfigError(f"scale only applies to the live and browser runtimes, got {scale!r}")
        return VirtualRuntime(scenario, strategy)
    if name == "live":
        from simkit.live.runtime import LiveRuntime

        return LiveRuntime(scenario, strategy, scale=scale, seed=seed, stack=stack, ws=ws)
    if name == "browser":
        from simkit.browser.runtime import BrowserRuntime

        return BrowserRuntime(scenario, strategy, tabs=tabs, scale=scale, seed=seed)
    raise choice("runtime", name, list(RUNTIMES))


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


def _progress(wanted: bool | None, size: float, end: float, virtual: bool) -> tuple[Any, Any]:
    if wanted is None:
        wanted = size > 2_000_000
    if not (wanted and virtual):  # a real-time run's bar would tick from another thread
        return None, None
    from tqdm.auto import tqdm

    bar = tqdm(total=round(end), unit="sim-s", leave=False)

    def tick(t: float) -> None:
        if t - bar.n >= 1:
            bar.update(int(t - bar.n))

    return bar, tick
