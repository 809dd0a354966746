"""A sweep: every run of its plan played where asked, its frame assembled in the plan's
order (never in the order the runs finish) and summarised over the seeds.

Each run is a pure function of its arguments, so it can go to any worker of any cluster and
come back with the very numbers :func:`simkit.run` gives for the same arguments; the frame
is the same in this process, on a laptop's :class:`distributed.LocalCluster` or on a
cluster of many machines. A sweep always ends: a run that fails, a worker that dies, a
cluster left without workers for :data:`~simkit.study.cluster.NO_WORKERS_TIMEOUT` seconds,
each becomes a row of :attr:`Sweep.failures` with the run's arguments and the error.
"""

from __future__ import annotations

import contextlib
import math
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

import pandas as pd

from simkit.api import run
from simkit.model.errors import ConfigError, choice
from simkit.model.strategy import Strategy
from simkit.scenarios import Scenario
from simkit.study import cluster
from simkit.study.cluster import NoWorkers, WorkerWatch, connect, default_client
from simkit.study.planning import SIZE, Spec, plan
from simkit.study.stats import aggregate, tidy

if TYPE_CHECKING:  # matplotlib is imported when a plot is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure

__all__ = ["SCHEDULERS", "Sweep", "SweepWarning", "play_one", "sweep"]

SCHEDULERS = ("synchronous", "tcp://host:port")
# The summary's own record of what ran: the frame has them as its first columns already.
_INFO = ("scenario", "strategy", "runtime", "seed", "scale")


class SweepWarning(UserWarning):
    """Some runs of a sweep failed; the others completed (see :attr:`Sweep.failures`)."""


# --- one run, wherever it plays -------------------------------------------------------------


class Outcome(TypedDict, total=False):
    """What one run sends back: its summary, or its error and traceback."""

    summary: dict[str, Any]  # Result.summary
    error: str
    traceback: str


def play_one(spec: Spec) -> Outcome:
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
        return _failed(error)
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
        return tidy(self.summary)

    def metric(self, name: str) -> pd.DataFrame:
        """One metric's statistics, one row per combination (``mean``, ``ci95``, ...)."""
        metrics = list(self.summary.columns.get_level_values(0).unique())
        if name not in metrics:
            raise choice("metric", name, metrics)
        return pd.DataFrame(self.summary[name])

    def plot(
        self,
        metric: str,
        against: str | None = None,
        *,
        title: str | None = None,
        axes: Axes | list[Axes] | tuple[Axes, ...] | None = None,
    ) -> Figure | SubFigure:
        """``metric`` (mean and 95 % band over seeds) against grid key ``against`` (default:
        the first), one line per strategy, one panel per scenario; see
        :func:`simkit.plots.against`."""
        from simkit.plots import against as plot_against

        return plot_against(self.summary, metric, self._key(against), title=title, axes=axes)

    def tradeoff(
        self,
        x: str,
        y: str,
        *,
        label: str | None = None,
        title: str | None = None,
        axes: Axes | list[Axes] | tuple[Axes, ...] | None = None,
    ) -> Figure | SubFigure:
        """Mean ``y`` against mean ``x`` per combination, points joined in the order of grid
        key ``label`` (default: the first), the Pareto front (lower is better on both)
        marked; see :func:`simkit.plots.tradeoff`."""
        from simkit.plots import tradeoff

        return tradeoff(self.summary, x, y, self._key(label), title=title, axes=axes)

    def _key(self, key: str | None) -> str:
        if key is None:
            if not self.keys:
                raise ConfigError("this sweep has no grid key to plot against")
            return self.keys[0]
        if key not in self.keys:
            raise choice("grid key", key, self.keys)
        return key


def sweep(
    scenarios: str | Scenario | Iterable[str | Scenario],
    strategies: str | Strategy | Iterable[str | Strategy],
    grid: Mapping[str, Sequence[Any]] | None = None,
    seeds: int | Iterable[int] = 5,
    tabs: int | None = None,
    duration: float | None = None,
    *,
    settle: float | None = None,
    client: Any = None,  # a distributed.Client (Dask ships no annotations)
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool | None = None,
    no_workers_timeout: float | None = None,
) -> Sweep:
    """Play every combination of ``scenarios`` x ``strategies`` x ``grid`` x ``seeds`` as
    one virtual run each, on Dask, and summarise.

    ``grid`` maps knob names (:data:`~simkit.study.knobs.KNOBS`) to the values to try;
    ``seeds`` is a number of seeds (``5``: seeds 0-4) or the seeds themselves. ``tabs``
    and ``duration`` default to each scenario's. Every run settles equally long
    (``settle``, default the longest any of its strategies needs, as
    :func:`simkit.compare` does), so means cover the same time span; a row gives exactly
    what ``simkit.run`` gives with the same arguments and that ``settle``.

    Where the runs play: by default on this machine's :class:`distributed.LocalCluster`
    (``workers`` processes, default one per core, bound to 127.0.0.1), started by the first
    sweep that needs it and kept for the next ones: a study is several sweeps, and each
    would otherwise pay the cluster's start and stop (about a second, a tenth of a
    40-run sweep here). It shuts down after :data:`~simkit.study.cluster.KEEP_IDLE`
    seconds without a sweep, at exit, or on :func:`~simkit.study.close_default_cluster`; a
    sweep asking for another ``workers`` replaces it. From a script, call it under
    ``if __name__ == "__main__":`` (its workers re-run the script's top level; without the
    guard it is a :class:`ConfigError` saying so). Or on an existing cluster given as
    ``client=`` (a ``distributed.Client``, left open) or ``scheduler="tcp://host:8786"``
    (nothing answering there is a :class:`~simkit.study.cluster.SchedulerUnreachable`
    within seconds); or, with ``scheduler="synchronous"``, one after another in this
    process (no Dask; a debugger works). The result is the same frame whichever is used.

    A run that fails does not stop the others: it is listed in ``Sweep.failures`` with its
    arguments and error, and a :class:`SweepWarning` names it. A cluster with no live
    worker for ``no_workers_timeout`` seconds (default
    :data:`~simkit.study.cluster.NO_WORKERS_TIMEOUT`, 60) ends the sweep: the runs not yet
    played are failures too. ``progress`` shows a bar (``tqdm.auto``; default: when the
    sweep plays more than 2 million tab-seconds).
    """
    specs, keys = plan(scenarios, strategies, grid, seeds, tabs, duration, settle)
    if no_workers_timeout is None:
        no_workers_timeout = cluster.NO_WORKERS_TIMEOUT
    if (
        isinstance(no_workers_timeout, bool)
        or not isinstance(no_workers_timeout, int | float)
        or not (0 < no_workers_timeout < math.inf)
    ):
        raise ConfigError(
            f"no_workers_timeout must be a number of seconds > 0, got {no_workers_timeout!r}"
        )
    if progress is None:
        progress = sum(s.tabs * s.duration for s in specs) > 2_000_000
    outcomes = _execute(
        specs,
        client=client,
        scheduler=scheduler,
        workers=workers,
        bar=progress,
        no_workers=float(no_workers_timeout),
    )
    return _assemble(specs, outcomes, keys)


def _execute(
    specs: list[Spec],
    *,
    client: Any,  # a distributed.Client, or None
    scheduler: str | None,
    workers: int | None,
    bar: bool,
    no_workers: float,
) -> list[Outcome]:
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
    if scheduler == "synchronous":
        with _bar(len(specs), bar) as tick:
            outcomes = []
            for spec in specs:
                outcomes.append(play_one(spec))
                tick()
            return outcomes
    if client is not None:
        with _bar(len(specs), bar) as tick:
            return _on_dask(client, specs, tick, no_workers)
    if scheduler is not None:
        with connect(scheduler) as remote, _bar(len(specs), bar) as tick:
            return _on_dask(remote, specs, tick, no_workers)
    with default_client(workers) as local, _bar(len(specs), bar) as tick:
        return _on_dask(local, specs, tick, no_workers)


def _on_dask(
    client: Any, specs: list[Spec], tick: Callable[[], None], no_workers: float
) -> list[Outcome]:  # client: a distributed.Client (Dask ships no annotations)
    """Each spec's outcome, played on ``client``'s cluster. Whatever goes wrong (a run, a
    worker, the scheduler, the cluster left without workers for ``no_workers`` seconds)
    becomes the outcome of the runs it cost, so the sweep always ends with a frame."""
    from distributed import as_completed

    outcomes: list[Outcome] = [{} for _ in specs]
    futures: list[Any] = []  # Dask futures (unannotated)
    try:
        futures = client.map(play_one, specs, pure=False)
        position = {future.key: i for i, future in enumerate(futures)}
        done = as_completed(futures)
        watch = WorkerWatch(client, no_workers)
        while not done.is_empty():
            batch = done.next_batch(block=False)
            if not batch:
                watch.check()
                with done.thread_condition:
                    done.thread_condition.wait(timeout=0.1)
                continue
            watch.result_came()
            for future in batch:
                try:
                    outcomes[position[future.key]] = future.result()
                except Exception as error:  # the worker died, or the task could not be sent
                    outcomes[position[future.key]] = _failed(error)
                tick()
    except (NoWorkers, OSError, TimeoutError) as error:  # the cluster, not one run
        for i, outcome in enumerate(outcomes):
            if not outcome:
                outcomes[i] = _failed(error)
    finally:
        if futures:
            with contextlib.suppress(Exception):  # a scheduler gone has nothing to cancel
                client.cancel(futures)
    return outcomes


def _failed(error: BaseException) -> Outcome:
    return {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}


@contextlib.contextmanager
def _bar(total: int, wanted: bool) -> Iterator[Callable[[], None]]:
    """A progress bar's tick, shown once the runs can start (not before a cluster is
    reached: a scheduler that cannot be reached is one line, not a bar and a line)."""
    if not wanted:
        yield lambda: None
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, unit="run", desc="sweep") as bar:
        yield lambda: bar.update(1)


def _assemble(specs: list[Spec], outcomes: list[Outcome], keys: list[str]) -> Sweep:
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
        rest = "the rest completed" if len(failed) < len(specs) else "none completed"
        warnings.warn(
            f"{len(failed)} of {len(specs)} runs failed, {rest} "
            f"(Sweep.failures lists them): {shown}{more}",
            SweepWarning,
            stacklevel=3,
        )
    return Sweep(runs, aggregate(runs, keys, SIZE), failures, keys)
