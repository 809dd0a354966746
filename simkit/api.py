"""``simkit.run`` and ``simkit.compare``: the front door of the kit."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
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


def settle_for(strategy: Strategy, target: str | None, keepalive: float | None) -> float:
    """The default settle: :func:`default_settle`, or against a target its keepalive in
    place of the strategy's heartbeat (which the target does not run)."""
    if target is None:
        return default_settle(strategy)
    from simkit.live.target import target_settle
    from simkit.net.target import TARGET_KEEPALIVE, check_keepalive

    return target_settle(
        strategy, check_keepalive(TARGET_KEEPALIVE if keepalive is None else keepalive)
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
    target: str | None = None,
    auth: Callable[[str], Mapping[str, str]] | None = None,
    target_keepalive: float | None = None,
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

    ``target="ws://HOST:PORT/PATH"`` (with ``runtime="live"``) plays the tabs against your
    own server instead, at scale 1, through the fault proxy (README "Test your own
    server"): ``{user}`` in the URL is the id a tab claims (else ``?user=`` is appended),
    ``auth(user)`` returns extra handshake headers, ``target_keepalive`` is how long your
    server takes to close a silent socket (ping interval + timeout; default 40 s, uvicorn's).
    What the kit cannot see without your server's help is NaN, and
    ``summary["unknown_metrics"]`` says why.

    ``stack="fastapi"`` (with ``runtime="live"``) serves the run with FastAPI on uvicorn,
    the post-mortem's own stack, instead of the ``websockets`` server; ``ws`` picks
    uvicorn's WebSocket implementation (``websockets-sansio``, its default, ``websockets``
    or ``wsproto``). In the virtual runtime the same arguments choose the transport
    profile measured on that implementation (:mod:`simkit.model.transport`: when a
    handler's cleanup runs after a close). ``summary["stack"]`` and ``summary["ws"]``
    record them.
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
    if target is not None and runtime != "live":
        raise ConfigError(
            f"target= plays real sockets against your server: use runtime='live', not {runtime!r}"
        )
    if target is None and (auth is not None or target_keepalive is not None):
        raise ConfigError("auth= and target_keepalive= only apply with target=")
    if runtime == "virtual" and (stack, ws) != (None, None):
        strat = as_deployed(strat, stack, ws)
    settle = settle_for(strat, target, target_keepalive) if settle is None else settle
    if not (settle >= 0 and math.isfinite(settle)):
        raise ConfigError(f"settle must be >= 0 seconds, got {settle!r}")

    chosen = make_runtime(
        runtime,
        sc,
        strat,
        tabs=tabs,
        seed=seed,
        scale=scale,
        target=target,
        auth=auth,
        target_keepalive=target_keepalive,
        stack=stack,
        ws=ws,
        nodes=sc.nodes if nodes is None else nodes,
        balancer=balancer,
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
    if (stack, ws) != (None, None):
        info.update(_stack_info(chosen))
    timeseries, summary = summarise(played.census, played.server, info)
    summary.update(played.extra)
    for column in summary.get("unknown_metrics", {}):
        if column in timeseries.columns:  # a runtime that cannot know a metric says so
            timeseries[column] = math.nan
    return Result(sc.name, strat.name, timeseries, summary, trace_frame(played.env.trace))


def as_deployed(strategy: Strategy, stack: str | None, ws: str | None) -> Strategy:
    """``strategy`` as its handler behaves on ``stack``/``ws`` in virtual time: the
    post-mortem's handler (``close-delete-register``) on an implementation whose
    ``close()`` waits for the handshake (uvicorn's legacy one) is ``close-await-register``."""
    from simkit.model.registry import CloseAwaitRegister, CloseDeleteRegister
    from simkit.model.transport import transport_profile

    profile = transport_profile("websockets" if stack is None else stack, ws)
    if profile.close_awaits and strategy.registry is CloseDeleteRegister:
        return strategy.replace(registry=CloseAwaitRegister)
    return strategy


def _stack_info(chosen: Runtime) -> dict[str, str]:
    """The server stack and WebSocket implementation a run used (live: its server;
    virtual: its transport profile)."""
    profile = getattr(chosen, "profile", None)
    if profile is not None:
        stack, _, ws = profile.name.partition("/")
        return {"stack": stack, "ws": ws or stack}
    return {"stack": getattr(chosen, "stack", ""), "ws": getattr(chosen, "ws", "")}


def make_runtime(
    name: str,
    scenario: Scenario,
    strategy: Strategy,
    *,
    tabs: int,
    seed: int = 0,
    scale: float | None = None,
    target: str | None = None,
    auth: Callable[[str], Mapping[str, str]] | None = None,
    target_keepalive: float | None = None,
    stack: str | None = None,
    ws: str | None = None,
    nodes: int = 1,
    balancer: str | None = None,
) -> Runtime:
    """The adapter for runtime ``name`` (one of :data:`RUNTIMES`); with ``target``, the
    live runtime's tabs against that server (:class:`~simkit.live.target.TargetRuntime`);
    with ``nodes`` > 1 (or a cross-node strategy), a cluster of server nodes behind
    ``balancer`` (live: :func:`~simkit.live.nodes.live_cluster`, sharing a real Redis)."""
    chosen = _single_runtime(
        name, scenario, strategy, tabs=tabs, seed=seed, scale=scale, target=target, auth=auth,
        target_keepalive=target_keepalive, stack=stack, ws=ws,
    )  # fmt: skip
    chosen.cluster = cluster_spec(nodes, balancer, strategy, chosen.name)
    if chosen.cluster is not None and chosen.name == "live":
        from simkit.live.nodes import live_cluster

        return live_cluster(chosen, scenario, strategy, chosen.cluster, seed=seed)
    return chosen


def _single_runtime(
    name: str,
    scenario: Scenario,
    strategy: Strategy,
    *,
    tabs: int,
    seed: int,
    scale: float | None,
    target: str | None,
    auth: Callable[[str], Mapping[str, str]] | None,
    target_keepalive: float | None,
    stack: str | None,
    ws: str | None,
) -> Runtime:
    if (stack, ws) != (None, None) and (name == "browser" or target is not None):
        raise ConfigError(
            "stack= and ws= choose the kit's own server (live) or its transport profile "
            f"(virtual), not runtime={name!r}" + (" with target=" if target else "")
        )
    if target is not None and name == "live":
        from simkit.live.target import TargetRuntime
        from simkit.net.target import TARGET_KEEPALIVE

        keepalive = TARGET_KEEPALIVE if target_keepalive is None else target_keepalive
        return TargetRuntime(
            scenario, strategy, target, auth=auth, keepalive=keepalive, seed=seed, scale=scale
        )
    if name == "virtual":
        from simkit.virtual.runtime import VirtualRuntime

        if scale not in (None, 1.0):
            raise ConfigError(f"scale only applies to the live and browser runtimes, got {scale!r}")
        if (stack, ws) == (None, None):
            return VirtualRuntime(scenario, strategy)
        from simkit.model.transport import transport_profile

        profile = transport_profile("websockets" if stack is None else stack, ws)
        return VirtualRuntime(scenario, strategy, profile=profile)
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
        target, keepalive = kwargs.get("target"), kwargs.get("target_keepalive")
        kwargs["settle"] = max(settle_for(s, target, keepalive) for s in chosen)
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
