"""Parameter studies: one virtual run per combination of scenario, strategy, knobs and seed,
played on a Dask cluster, summarised with a 95 % confidence interval over the seeds.

A design question ("how do stale sockets move with the heartbeat interval, on which network,
and how sure are we?") is hundreds to thousands of independent runs. Each run is a pure
function of its arguments, so it can go to any worker of any cluster and come back with the
very numbers :func:`simkit.run` gives for the same arguments; the frame is assembled in the
order of the combinations, never in the order the runs finish, so a sweep gives the same
frame in this process, on a laptop's :class:`distributed.LocalCluster` or on a cluster of
many machines.

Knobs are addressed by name (:data:`KNOBS`): the strategy's heartbeat, backoff and connect
guard, the scenario's network and push rate, the run's size. One seed says little (the
spread between seeds is often larger than the effect being looked for), so every number of
the aggregate comes with its interval.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import itertools
import logging
import math
import os
import threading
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from simkit.api import default_settle, run
from simkit.model.client import BACKOFF_PRESETS, Backoff
from simkit.model.errors import ConfigError, choice
from simkit.model.latency import Latency
from simkit.model.liveness import Liveness, liveness
from simkit.model.strategy import Strategy
from simkit.model.strategy import strategy as strategy_of
from simkit.scenarios import Scenario, check_size
from simkit.scenarios import scenario as scenario_of

__all__ = [
    "KNOBS",
    "SCHEDULERS",
    "Spec",
    "Sweep",
    "SweepWarning",
    "apply_knobs",
    "plan",
    "play_one",
    "sweep",
]

# name -> what it sets; the order is the order `python -m simkit list` shows them in.
KNOBS: dict[str, str] = {
    "heartbeat": "strategy: heartbeat interval and timeout, both this many seconds (None: off)",
    "heartbeat_interval": "strategy: seconds between pings (timeout kept, or equal if none)",
    "heartbeat_timeout": "strategy: seconds an unanswered ping may wait (interval kept, or "
    "equal if none)",
    "heartbeat_kind": "strategy: who answers the pings: protocol (the browser) or app (the page)",
    "liveness": "strategy: a liveness preset by name (websockets, socketio, off, app, ...)",
    "backoff": "strategy: reconnect backoff kind (immediate, exponential, full-jitter, rfc6455)",
    "backoff_base": "strategy: the backoff's base delay, seconds",
    "backoff_factor": "strategy: the backoff's growth factor (>= 1)",
    "backoff_max": "strategy: the backoff's longest delay, seconds",
    "backoff_first_max": "strategy: rfc6455's longest first delay, seconds",
    "backoff_randomization": "strategy: exponential backoff's +- share, in [0, 1]",
    "guard_wait": "strategy: seconds a connect() waits for one already in flight",
    "registry": "strategy: registry policy by name (naive, kick-old, kick-old-safe, ...)",
    "identity": "strategy: identity policy (fresh-per-load, per-tab, shared)",
    "unload": "strategy: unload handler (none, beforeunload, pagehide)",
    "visibility": "strategy: keep or disconnect-when-hidden",
    "guard": "strategy: connect guard (none, single-flight)",
    "latency": "scenario: one-way network delay, seconds (jitter kept)",
    "jitter": "scenario: uniform extra delay up to this many seconds (latency kept)",
    "push_rate": "scenario: pushes per second per tab",
    "idle_timeout": "scenario: a proxy cuts sockets idle this many seconds (None: no proxy)",
    "tabs": "run: number of tabs",
    "duration": "run: workload seconds",
}
_HEARTBEAT = ("liveness", "heartbeat", "heartbeat_interval", "heartbeat_timeout", "heartbeat_kind")
_BACKOFF_FIELDS = {
    "backoff_base": "base",
    "backoff_factor": "factor",
    "backoff_max": "max_delay",
    "backoff_first_max": "first_max",
    "backoff_randomization": "randomization",
}
_CLIENT = ("guard_wait", "identity", "unload", "visibility", "guard")
_SCENARIO = ("latency", "jitter", "push_rate", "idle_timeout")
SCHEDULERS = ("synchronous", "tcp://host:port")
# The summary's own record of what ran: the frame has them as its first columns already.
_INFO = ("scenario", "strategy", "runtime", "seed", "scale")
_SIZE = ("tabs", "duration", "settle")


class SweepWarning(UserWarning):
    """Some runs of a sweep failed; the others completed (see :attr:`Sweep.failures`)."""


# --- knobs ----------------------------------------------------------------------------------


def apply_knobs(
    scenario: Scenario, strategy: Strategy, params: Mapping[str, Any]
) -> tuple[Scenario, Strategy]:
    """``scenario`` and ``strategy`` with the knobs in ``params`` set (see :data:`KNOBS`;
    ``tabs`` and ``duration`` are the run's and are left to the caller).

    Every value is checked here, before a cluster is asked to do anything, so a bad value
    is the kit's usual :class:`ConfigError` naming it, not a failed run.
    """
    unknown = [k for k in params if k not in KNOBS]
    if unknown:
        raise choice("grid key", unknown[0], list(KNOBS))
    try:
        return _scenario_with(scenario, params), _strategy_with(strategy, params)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:  # e.g. a dataclass refusing a string
        shown = {k: v for k, v in params.items() if k not in _SIZE}
        raise ConfigError(f"grid values {shown} are not allowed: {error}") from error


def _strategy_with(strat: Strategy, params: Mapping[str, Any]) -> Strategy:
    changes: dict[str, Any] = {}
    if "registry" in params:
        changes["registry"] = params["registry"]
    if any(k in params for k in _HEARTBEAT):
        changes["liveness"] = _liveness_with(strat.liveness, params)
    client = {k: params[k] for k in _CLIENT if k in params}
    if "guard_wait" in client:
        client["guard_wait"] = _seconds("guard_wait", client["guard_wait"])
    backoff = strat.client.backoff
    if "backoff" in params:
        kind = params["backoff"]
        if isinstance(kind, Backoff):
            backoff = kind
        elif kind in BACKOFF_PRESETS:
            backoff = BACKOFF_PRESETS[kind]
        else:
            raise choice("backoff", kind, list(BACKOFF_PRESETS))
    numbers = {f: _number(k, params[k]) for k, f in _BACKOFF_FIELDS.items() if k in params}
    if numbers:
        backoff = dataclasses.replace(backoff, **numbers)  # type: ignore[arg-type]
    if backoff is not strat.client.backoff:
        client["backoff"] = backoff
    changes.update(client)
    return strat.replace(**changes) if changes else strat


def _liveness_with(rule: Liveness, params: Mapping[str, Any]) -> Liveness:
    if "liveness" in params:
        if not isinstance(params["liveness"], str):
            raise ConfigError(f"liveness must be a preset name, got {params['liveness']!r}")
        rule = liveness(params["liveness"])
    interval, timeout = rule.interval, rule.timeout
    if "heartbeat" in params:
        if "heartbeat_interval" in params or "heartbeat_timeout" in params:
            raise ConfigError(
                "grid key heartbeat sets both interval and timeout; give it alone, or "
                "heartbeat_interval and/or heartbeat_timeout instead"
            )
        if params["heartbeat"] is None:
            interval = timeout = None
        else:
            interval = timeout = _seconds("heartbeat", params["heartbeat"])
    new_interval = params.get("heartbeat_interval")
    new_timeout = params.get("heartbeat_timeout")
    if new_interval is not None:
        interval = _seconds("heartbeat_interval", new_interval)
    if new_timeout is not None:
        timeout = _seconds("heartbeat_timeout", new_timeout)
    # A strategy without a heartbeat has no half to keep: the missing half equals the given.
    if interval is None and timeout is not None:
        interval = timeout
    if timeout is None and interval is not None:
        timeout = interval
    kind = params.get("heartbeat_kind", rule.kind)
    if kind not in ("protocol", "app"):
        raise choice("heartbeat_kind", kind, ["protocol", "app"])
    if (interval, timeout, kind) == (rule.interval, rule.timeout, rule.kind):
        return rule
    name = "off" if interval is None else f"{kind} {interval:g}s/{timeout:g}s"
    also = rule.also if rule.also is not None and rule.also.kind != kind else None
    return Liveness(name, interval, timeout, kind, f"swept: {name}", also)  # type: ignore[arg-type]


def _scenario_with(sc: Scenario, params: Mapping[str, Any]) -> Scenario:
    changes: dict[str, Any] = {}
    if "latency" in params or "jitter" in params:
        base = _seconds("latency", params.get("latency", sc.latency.base), zero=True)
        jitter = _seconds("jitter", params.get("jitter", sc.latency.jitter), zero=True)
        changes["latency"] = Latency(base, jitter)
    if "push_rate" in params:
        changes["push_rate"] = _seconds("push_rate", params["push_rate"], zero=True)
    if "idle_timeout" in params:
        value = params["idle_timeout"]
        changes["idle_timeout"] = None if value is None else _seconds("idle_timeout", value)
    return sc.with_(**changes) if changes else sc


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"grid key {key} takes finite numbers, got {value!r}")
    return float(value)


def _seconds(key: str, value: Any, *, zero: bool = False) -> float:
    number = _number(key, value)
    if number < 0 or (number == 0 and not zero):
        bound = ">= 0" if zero else "> 0"
        raise ConfigError(f"grid key {key} takes numbers {bound}, got {value!r}")
    return number


# --- one run, wherever it plays -------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """One run of a sweep: what :func:`play_one` plays, and what the frame records of it."""

    index: int
    scenario: Scenario
    strategy: Strategy
    seed: int
    tabs: int
    duration: float
    settle: float
    params: dict[str, Any] = field(default_factory=dict)

    def label(self) -> str:
        """The run's arguments as a person would type them (a failure is reported so)."""
        knobs = "".join(f", {k}={v!r}" for k, v in self.params.items() if k not in _SIZE)
        return (
            f"scenario={self.scenario.name!r}, strategy={self.strategy.name!r}, "
            f"seed={self.seed}, tabs={self.tabs}, duration={self.duration:g}{knobs}"
        )


def play_one(spec: Spec) -> dict[str, Any]:
    """Play one run (on a worker, or here) and return its summary, or its error.

    Errors come back as values, not exceptions, so one bad run never costs the others and
    its traceback is shown where the sweep was started."""
    try:
        result = run(
            spec.scenario,
            spec.strategy,
            tabs=spec.tabs,
            duration=spec.duration,
            seed=spec.seed,
            settle=spec.settle,
            progress=False,
        )
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
    return {"summary": result.summary}


# --- the sweep ------------------------------------------------------------------------------


@dataclass
class Sweep:
    """What :func:`sweep` returns.

    ``runs``: one row per run that completed (``scenario``, ``strategy``, ``seed``, one
    column per grid key, then every summary number). ``summary``: one row per combination
    (index: scenario, strategy, grid keys), columns ``(metric, stat)`` with ``stat`` one of
    ``mean``, ``sd``, ``n`` (seeds with a value), ``ci95`` (half-width of the 95 % interval
    of the mean, Student's t), ``low`` and ``high``. ``failures``: one row per run that
    failed, with its arguments and error.
    """

    runs: pd.DataFrame
    summary: pd.DataFrame
    failures: pd.DataFrame
    keys: list[str]

    def tidy(self) -> pd.DataFrame:
        """``summary`` in long form, one row per combination and metric (``summary.csv``)."""
        frame = self.summary.stack(level=0, future_stack=True)
        frame.index = frame.index.set_names("metric", level=-1)
        return frame.reset_index()[[*self.summary.index.names, "metric", *STATS]]

    def metric(self, name: str) -> pd.DataFrame:
        """One metric's statistics, one row per combination (``mean``, ``ci95``, ...)."""
        metrics = list(self.summary.columns.get_level_values(0).unique())
        if name not in metrics:
            raise choice("metric", name, metrics)
        return pd.DataFrame(self.summary[name])

    def plot(self, metric: str, against: str | None = None, **options: Any) -> Any:
        """``metric`` (mean and 95 % band over seeds) against grid key ``against`` (default:
        the first), one line per strategy, one panel per scenario; see
        :func:`simkit.plots.against`."""
        from simkit.plots import against as plot_against

        return plot_against(self.summary, metric, self._key(against), **options)

    def tradeoff(self, x: str, y: str, *, label: str | None = None, **options: Any) -> Any:
        """Mean ``y`` against mean ``x`` per combination, points joined in the order of grid
        key ``label`` (default: the first), the Pareto front (lower is better on both)
        marked; see :func:`simkit.plots.tradeoff`."""
        from simkit.plots import tradeoff

        return tradeoff(self.summary, x, y, self._key(label), **options)

    def _key(self, key: str | None) -> str:
        if key is None:
            if not self.keys:
                raise ConfigError("this sweep has no grid key to plot against")
            return self.keys[0]
        if key not in self.keys:
            raise choice("grid key", key, self.keys)
        return key


STATS = ("mean", "sd", "n", "ci95", "low", "high")


def sweep(
    scenarios: str | Scenario | Iterable[str | Scenario],
    strategies: str | Strategy | Iterable[str | Strategy],
    grid: Mapping[str, Sequence[Any]] | None = None,
    seeds: int | Iterable[int] = 5,
    tabs: int | None = None,
    duration: float | None = None,
    *,
    settle: float | None = None,
    client: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool | None = None,
) -> Sweep:
    """Play every combination of ``scenarios`` x ``strategies`` x ``grid`` x ``seeds`` as
    one virtual run each, on Dask, and summarise.

    ``grid`` maps knob names (:data:`KNOBS`) to the values to try; ``seeds`` is a number of
    seeds (``5``: seeds 0-4) or the seeds themselves. ``tabs`` and ``duration`` default to
    each scenario's. Every run settles equally long (``settle``, default the longest any of
    its strategies needs, as :func:`simkit.compare` does), so means cover the same time
    span; a row gives exactly what ``simkit.run`` gives with the same arguments and that
    ``settle``.

    Where the runs play: by default on this machine's :class:`distributed.LocalCluster`
    (``workers`` processes, default one per core, bound to 127.0.0.1), started by the first
    sweep that needs it and kept for the next ones: a study is several sweeps, and each
    would otherwise pay the cluster's start and stop (about a second, a tenth of a
    40-run sweep here). It shuts down after :data:`KEEP_IDLE` seconds without a sweep, at
    exit, or on :func:`close_default_cluster`; a sweep asking for another ``workers``
    replaces it. Or on an existing cluster given as ``client=`` (a
    ``distributed.Client``, left open) or ``scheduler="tcp://host:8786"``; or, with
    ``scheduler="synchronous"``, one after another in this process (no Dask; a debugger
    works). The result is the same frame whichever is used.

    A run that fails does not stop the others: it is listed in ``Sweep.failures`` with its
    arguments and error, and a :class:`SweepWarning` names it. ``progress`` shows a bar
    (``tqdm.auto``; default: when the sweep plays more than 2 million tab-seconds).
    """
    specs, keys = plan(scenarios, strategies, grid, seeds, tabs, duration, settle)
    if progress is None:
        progress = sum(s.tabs * s.duration for s in specs) > 2_000_000
    outcomes = _execute(specs, client=client, scheduler=scheduler, workers=workers, bar=progress)
    return _assemble(specs, outcomes, keys)


def _as_list(value: Any, kind: str) -> list[Any]:
    if isinstance(value, str | Scenario | Strategy):
        return [value]
    items = list(value)
    if not items:
        raise ConfigError(f"sweep needs at least one {kind}")
    return items


def plan(
    scenarios: Any,
    strategies: Any,
    grid: Mapping[str, Sequence[Any]] | None,
    seeds: int | Iterable[int],
    tabs: int | None,
    duration: float | None,
    settle: float | None,
) -> tuple[list[Spec], list[str]]:
    """Every run's :class:`Spec` (checked, in the frame's order) and the grid keys: what
    :func:`sweep` will play, without playing it (``len(plan(...)[0])`` counts the runs)."""
    scs = [scenario_of(s) for s in _as_list(scenarios, "scenario")]
    strats = [strategy_of(s) for s in _as_list(strategies, "strategy")]
    for kind, names in (
        ("scenario", [s.name for s in scs]),
        ("strategy", [s.name for s in strats]),
    ):
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(f"{kind} names must differ within a sweep; {twice} appear twice")
    grid = dict(grid or {})
    for key, values in grid.items():
        if key not in KNOBS:
            raise choice("grid key", key, list(KNOBS))
        if isinstance(values, str) or not isinstance(values, Iterable):
            raise ConfigError(f"grid[{key!r}] must be a list of values, got {values!r}")
        grid[key] = list(values)
        if not grid[key]:
            raise ConfigError(f"grid[{key!r}] is empty; give at least one value")
    for key, given in (("tabs", tabs), ("duration", duration)):
        if key in grid and given is not None:
            raise ConfigError(f"{key} is both a grid key and an argument; give it once")
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ConfigError(f"seeds must be a number >= 1 or a list of seeds, got {seeds!r}")
        seed_list = list(range(seeds))
    else:
        seed_list = list(seeds)  # type: ignore[arg-type]  # a bool is refused just below
        bad = [s for s in seed_list if not isinstance(s, int) or isinstance(s, bool)]
        if bad or not seed_list or len(set(seed_list)) != len(seed_list):
            raise ConfigError(f"seeds must be distinct whole numbers, got {seed_list!r}")
    keys = list(grid)
    combos = [dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())]
    planned: list[tuple[Scenario, Strategy, int, int, float, dict[str, Any]]] = []
    for sc, strat, params in itertools.product(scs, strats, combos):
        run_sc, run_strat = apply_knobs(sc, strat, params)
        n = params.get("tabs", sc.tabs if tabs is None else tabs)
        length = params.get("duration", sc.duration if duration is None else duration)
        check_size(n, length)
        for seed in seed_list:
            planned.append((run_sc, run_strat, seed, n, float(length), params))
    if settle is None:
        settle = max(default_settle(strat) for _, strat, *_ in planned)
    elif not (settle >= 0 and math.isfinite(settle)):
        raise ConfigError(f"settle must be >= 0 seconds, got {settle!r}")
    specs = [
        Spec(i, sc, strat, seed, n, length, float(settle), params)
        for i, (sc, strat, seed, n, length, params) in enumerate(planned)
    ]
    return specs, keys


def _execute(
    specs: list[Spec], *, client: Any, scheduler: str | None, workers: int | None, bar: bool
) -> list[dict[str, Any]]:
    """Each spec's outcome, in the specs' order, wherever they played."""
    if client is not None and scheduler is not None:
        raise ConfigError("give client= or scheduler=, not both")
    if workers is not None and (client is not None or scheduler is not None):
        raise ConfigError("workers= sizes the default LocalCluster; not with client/scheduler")
    if scheduler is not None and scheduler != "synchronous" and "://" not in scheduler:
        raise choice("scheduler", scheduler, list(SCHEDULERS))
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)):
        raise ConfigError(f"workers must be a whole number >= 1, got {workers!r}")
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be a whole number >= 1, got {workers!r}")
    tick, close = _bar(len(specs), bar)
    try:
        if scheduler == "synchronous":
            outcomes = []
            for spec in specs:
                outcomes.append(play_one(spec))
                tick()
            return outcomes
        if client is not None:
            return _on_dask(client, specs, tick)
        from distributed import Client

        if scheduler is not None:
            with Client(scheduler) as remote:
                return _on_dask(remote, specs, tick)
        with _default_client(workers) as local:
            return _on_dask(local, specs, tick)
    finally:
        close()


# --- the default cluster, kept between sweeps -----------------------------------------------

KEEP_IDLE = 300.0
"""Seconds the default cluster stays up after a sweep, waiting for the next one (as
joblib's reusable executor keeps its workers)."""

_DEFAULT_LOCK = threading.Lock()
_default: _Kept | None = None


@dataclass
class _Kept:
    """The default cluster, its client and the timer that shuts it down when idle."""

    cluster: Any
    client: Any
    workers: int
    timer: threading.Timer | None = None
    busy: int = 0

    def alive(self) -> bool:
        from distributed.core import Status

        return self.client.status == "running" and self.cluster.status == Status.running

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        with contextlib.suppress(Exception):
            self.client.close()
        with contextlib.suppress(Exception):
            self.cluster.close()


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


@contextlib.contextmanager
def _default_client(workers: int | None) -> Iterator[Any]:
    """The default cluster's client for one sweep: the kept cluster if it has ``workers``
    workers and is up, else a new one (the old one closed). Its idle timer restarts when
    the sweep ends, even on error."""
    global _default
    wanted = workers or _cores()
    with _DEFAULT_LOCK:
        kept = _default
        if kept is not None and (kept.workers != wanted or not kept.alive()):
            kept.close()
            kept = _default = None
        if kept is None:
            from distributed import Client

            cluster = local_cluster(wanted)
            try:
                client = Client(cluster)
            except BaseException:
                cluster.close()
                raise
            kept = _default = _Kept(cluster, client, wanted)
        if kept.timer is not None:
            kept.timer.cancel()
            kept.timer = None
        kept.busy += 1
    try:
        yield kept.client
    finally:
        with _DEFAULT_LOCK:
            kept.busy -= 1
            if kept is _default and kept.busy == 0:
                kept.timer = threading.Timer(KEEP_IDLE, _close_if_idle, (kept,))
                kept.timer.daemon = True
                kept.timer.start()


def _close_if_idle(kept: _Kept) -> None:
    global _default
    with _DEFAULT_LOCK:
        if kept is not _default or kept.busy:
            return
        _default = None
    kept.close()


def close_default_cluster() -> None:
    """Shut the default cluster down now (it is started again by the next sweep)."""
    global _default
    with _DEFAULT_LOCK:
        kept, _default = _default, None
    if kept is not None:
        kept.close()


atexit.register(close_default_cluster)  # does nothing unless a cluster is kept


def local_cluster(workers: int | None = None) -> Any:
    """The default cluster: ``workers`` processes (default: one per core this process may
    use), one thread each (a run holds the GIL), scheduler, workers and the scheduler's
    HTTP endpoint on 127.0.0.1 only (a free port), and quiet (workers log errors only: a
    notebook compares stderr). Its workers do not run Dask's statistical profiler (a look
    at the running task's stack every 10 ms, for the dashboard's profile page): on a run,
    pure Python that holds the GIL, it cost 5-6 % of each run's CPU time, measured.

    Use it as a context manager, or keep one open across several sweeps::

        with simkit.sweep.local_cluster() as cluster, distributed.Client(cluster) as client:
            simkit.sweep(..., client=client)
    """
    from distributed import LocalCluster

    if workers is None:
        workers = _cores()
    import dask

    # Each nanny hands the configuration it was made under to its worker process.
    with dask.config.set({"distributed.worker.profile.enabled": False}):
        return LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            # its HTTP server starts even without a dashboard: a free port, never 8787 taken
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
        )


def _on_dask(client: Any, specs: list[Spec], tick: Callable[[], None]) -> list[dict[str, Any]]:
    from distributed import as_completed

    futures = client.map(play_one, specs, pure=False)
    position = {future.key: i for i, future in enumerate(futures)}
    outcomes: list[dict[str, Any]] = [{} for _ in specs]
    try:
        for future in as_completed(futures):
            try:
                outcomes[position[future.key]] = future.result()
            except Exception as error:  # the worker died, or the task could not be sent
                outcomes[position[future.key]] = {
                    "error": f"{type(error).__name__}: {error}",
                    "traceback": traceback.format_exc(),
                }
            tick()
    finally:
        client.cancel(futures)
    return outcomes


def _bar(total: int, wanted: bool) -> tuple[Callable[[], None], Callable[[], None]]:
    if not wanted:
        return (lambda: None), (lambda: None)
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="run", desc="sweep")
    return (lambda: bar.update(1)), bar.close


def _assemble(specs: list[Spec], outcomes: list[dict[str, Any]], keys: list[str]) -> Sweep:
    rows, failed = [], []
    for spec, outcome in zip(specs, outcomes, strict=True):
        head = {"scenario": spec.scenario.name, "strategy": spec.strategy.name, "seed": spec.seed}
        head.update(spec.params)
        if "summary" in outcome:
            summary = outcome["summary"]
            rows.append(
                {**head, **{k: v for k, v in summary.items() if k not in _INFO and k not in head}}
            )
        else:
            failed.append(
                {
                    **head,
                    "tabs": spec.tabs,
                    "duration": spec.duration,
                    "error": outcome.get("error", "no outcome"),
                    "traceback": outcome.get("traceback", ""),
                    "arguments": spec.label(),
                }
            )
    runs = pd.DataFrame(rows)
    failures = pd.DataFrame(
        failed, columns=["scenario", "strategy", "seed", *keys, "error", "arguments", "traceback"]
    )
    if failed:
        shown = "; ".join(f"{f['arguments']}: {f['error']}" for f in failed[:5])
        more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
        warnings.warn(
            f"{len(failed)} of {len(specs)} runs failed, the rest completed "
            f"(Sweep.failures lists them): {shown}{more}",
            SweepWarning,
            stacklevel=3,
        )
    return Sweep(runs, aggregate(runs, keys), failures, keys)


def aggregate(runs: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Mean, standard deviation, count and 95 % confidence interval of every numeric
    metric over the seeds of each combination (``scenario``, ``strategy``, grid keys)."""
    group = ["scenario", "strategy", *keys]
    columns = pd.MultiIndex.from_tuples([], names=["metric", "stat"])
    if runs.empty:
        return pd.DataFrame(columns=columns, index=pd.MultiIndex.from_tuples([], names=group))
    skip = {"seed", *group, *_SIZE}
    metrics = [
        c
        for c in runs.columns
        if c not in skip
        and (pd.api.types.is_numeric_dtype(runs[c]) or pd.api.types.is_bool_dtype(runs[c]))
    ]
    values = runs[metrics].astype("float64")
    grouped = values.groupby([runs[g] for g in group], sort=False, dropna=False)
    mean, sd, n = grouped.mean(), grouped.std(ddof=1), grouped.count()
    half = sd.div(n.pow(0.5)).mul(n.map(t975))
    parts = {"mean": mean, "sd": sd, "n": n, "ci95": half, "low": mean - half, "high": mean + half}
    frame = pd.concat(parts, axis=1, names=["stat", "metric"])
    frame = frame.swaplevel(axis=1)[[(m, s) for m in metrics for s in STATS]]
    frame.columns = frame.columns.set_names(["metric", "stat"])
    return frame


# Student's t, 97.5 % quantile, by degrees of freedom (n - 1): a 95 % two-sided interval.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t975(n: float) -> float:
    """The factor of the 95 % interval's half-width for ``n`` values (NaN below two)."""
    if not n >= 2:
        return math.nan
    df = int(n) - 1
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964  # beyond 30 degrees of freedom, Cornish-Fisher's expansion is exact to 1e-4
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
