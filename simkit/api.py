"""``simkit.run`` and ``simkit.compare``: the front door of the kit."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from simkit.actors.play import play
from simkit.checks import check_feasible, invalid_reasons
from simkit.model.errors import ConfigError
from simkit.model.strategy import Strategy
from simkit.model.strategy import strategy as strategy_of
from simkit.results import Comparison, Result, summarise, trace_frame
from simkit.runtimes import RUNTIMES, RuntimeSpec, as_runtime, default_settle
from simkit.scenarios import Scenario, check_size
from simkit.scenarios import scenario as scenario_of

__all__ = ["RUNTIMES", "compare", "default_settle", "run"]


def run(
    scenario: str | Scenario = "reload-storm",
    strategy: str | Strategy | None = None,
    *,
    tabs: int | None = None,
    duration: float | None = None,
    seed: int = 0,
    runtime: str | RuntimeSpec = "virtual",
    settle: float | None = None,
    trace: bool = False,
    progress: bool | None = None,
    on_sample: Callable[[dict[str, float]], None] | None = None,
    nodes: int | None = None,
    balancer: str | None = None,
    scale: float | None = None,
    target: str | None = None,
    auth: Callable[[str], Mapping[str, str]] | None = None,
    target_keepalive: float | None = None,
    stack: str | None = None,
    ws: str | None = None,
    page: str | None = None,
) -> Result:
    """Run one scenario under one strategy and measure the ground truth.

    ``runtime`` is a value (:mod:`simkit.runtimes`: ``Virtual()``, ``Live(stack="fastapi",
    ws="wsproto")``, ``Browser()``, ``Target("ws://127.0.0.1:8000/ws")``) or one of the
    shorthands ``"virtual"``, ``"live"``, ``"browser"``; the keywords ``nodes``,
    ``balancer``, ``scale``, ``target``, ``auth``, ``target_keepalive``, ``stack`` and ``ws``
    are shorthands for the same values (:func:`simkit.runtimes.as_runtime`); so is ``page``
    (your front end in the browser runtime's tabs: ``Browser(page=...)``, docs/frontend.md).

    In the ``virtual`` runtime the result is a pure function of the arguments: the same seed
    gives the same numbers, bit for bit, in any process. ``settle`` (default: long enough
    for every timeout) runs on after ``duration`` with no new workload, so the final row
    shows what the strategy leaves behind. ``progress`` shows a bar (default: only for runs
    of more than 2 million tab-seconds). ``on_sample(row)`` is called with each new row of
    the time series as it is sampled (a dict, column -> value), in every runtime: a live
    plot (:func:`simkit.widgets.live_plot`) draws the counts as they happen. In the live
    and browser runtimes it runs on the run's own thread; keep it quick.

    Live runs (``Live``, ``Browser``, ``Target``) play real sockets in real time: their
    numbers vary from run to run; compare them on invariants and tolerances, not exactly.
    Against a target, what the kit cannot see without your server's help is NaN, and
    ``summary["unknown_metrics"]`` says why.
    """
    spec = as_runtime(
        runtime, stack=stack, ws=ws, scale=scale, target=target, auth=auth,
        target_keepalive=target_keepalive, nodes=nodes, balancer=balancer, page=page,
    )  # fmt: skip
    sc = scenario_of(scenario)
    if strategy is None:
        strategy = sc.strategy or spec.default_strategy()
        if strategy is None:
            raise ConfigError(
                f"scenario {sc.name!r} needs a strategy; pass strategy= one of the presets "
                "(python -m simkit list) or a Strategy"
            )
    strat = spec.deploy(strategy_of(strategy))
    tabs = sc.tabs if tabs is None else tabs
    duration = sc.duration if duration is None else duration
    check_size(tabs, duration)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"seed must be a whole number, got {seed!r}")
    settle = spec.settle(strat) if settle is None else settle
    if not (settle >= 0 and math.isfinite(settle)):
        raise ConfigError(f"settle must be >= 0 seconds, got {settle!r}")
    check_feasible(
        spec.name, tabs=tabs, duration=float(duration), settle=float(settle),
        scale=float(getattr(spec, "scale", 1.0)), step=sc.step,
    )  # fmt: skip

    chosen = spec.build(sc, strat, tabs=tabs, seed=seed)
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
    info: dict[str, object] = {
        "scenario": sc.name,
        "strategy": strat.name,
        "runtime": chosen.name,
        "seed": seed,
        "tabs": tabs,
        "duration": float(duration),
        "settle": float(settle),
        "scale": float(chosen.scale),
    }
    info.update(spec.info())
    timeseries, summary = summarise(played.census, played.server, info)
    summary.update(played.extra)
    health = played.health
    if health.realtime:  # what the validity rests on, for a user's own checks
        summary.update(
            samples_late=health.samples_late,
            sample_lag_max=round(health.worst_lag, 6),
            errors_logged=health.errors_logged,
        )
    reasons = invalid_reasons(summary, health)
    summary["run_valid"] = not reasons
    summary["invalid_reasons"] = reasons
    for column in summary.get("unknown_metrics", {}):
        if column in timeseries.columns:  # a runtime that cannot know a metric says so
            timeseries[column] = math.nan
    return Result(sc.name, strat.name, timeseries, summary, trace_frame(played.env.trace))


def compare(
    scenario: str | Scenario = "reload-storm",
    strategies: Iterable[str | Strategy] = ("before", "postmortem", "postmortem-safe"),
    *,
    tabs: int | None = None,
    duration: float | None = None,
    seed: int = 0,
    runtime: str | RuntimeSpec = "virtual",
    settle: float | None = None,
    trace: bool = False,
    progress: bool | None = None,
    on_sample: Callable[[dict[str, float]], None] | None = None,
    nodes: int | None = None,
    balancer: str | None = None,
    scale: float | None = None,
    target: str | None = None,
    auth: Callable[[str], Mapping[str, str]] | None = None,
    target_keepalive: float | None = None,
    stack: str | None = None,
    ws: str | None = None,
    page: str | None = None,
) -> Comparison:
    """Run the same scenario (same seed, same workload) under each strategy, every run
    settling as long as the slowest strategy needs (one time axis for all). The arguments
    are :func:`run`'s."""
    spec = as_runtime(
        runtime, stack=stack, ws=ws, scale=scale, target=target, auth=auth,
        target_keepalive=target_keepalive, nodes=nodes, balancer=balancer, page=page,
    )  # fmt: skip
    sc = scenario_of(scenario)
    chosen = [strategy_of(item) for item in strategies]
    if not chosen:
        raise ConfigError("compare needs at least one strategy")
    if settle is None:
        settle = max(spec.settle(spec.deploy(s)) for s in chosen)
    results: dict[str, Result] = {}
    for item in chosen:
        result = run(
            sc, item, tabs=tabs, duration=duration, seed=seed, runtime=spec, settle=settle,
            trace=trace, progress=progress, on_sample=on_sample,
        )  # fmt: skip
        results[result.strategy] = result
    return Comparison(sc.name, results)


def _progress(
    wanted: bool | None, size: float, end: float, virtual: bool
) -> tuple[Any, Callable[[float], None] | None]:  # (a tqdm bar: tqdm ships no annotations)
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
