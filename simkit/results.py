"""What a run returns: a time series, a summary, and plots of both."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from simkit.model.errors import ConfigError, choice
from simkit.runtime.census import COLUMNS, Census
from simkit.runtime.interfaces import ServerActor

if TYPE_CHECKING:  # matplotlib is imported where a plot is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure

    from simkit.actors.env import TraceRow

METRICS = (
    "open_sockets",
    "live_tabs",
    "registry_entries",
    "stale",
    "dangling",
    "unroutable",
    "duplicates",
)
TABLE_COLUMNS = (
    "mean_open_sockets",
    "peak_stale",
    "mean_stale",
    "mean_unroutable",
    "peak_duplicates",
    "final_stale",
    "final_dangling",
    "final_unroutable",
    "delivery_ratio",
    "pushes_lost",
    "kicked_live_tabs",
    "connects",
    "peak_connect_rate",
    "detection_delay_mean",
    "invariants_hold",
)


@dataclass
class Result:
    """One run. ``timeseries`` has one row per sampling step; ``summary`` is a flat dict."""

    scenario: str
    strategy: str
    timeseries: pd.DataFrame
    # Any: the values differ by key (counts, means, flags, reasons, per-node dicts, some
    # keys per runtime), and readers do arithmetic on the numbers they know by name.
    summary: dict[str, Any]
    trace: pd.DataFrame | None = field(default=None, repr=False)

    def plot(
        self,
        metrics: tuple[str, ...] = ("open_sockets", "live_tabs", "stale", "unroutable"),
        ax: Axes | None = None,
    ) -> Figure | SubFigure:
        """Connection counts over time on one axis, in the strategy's course colour, one
        line style per metric (:func:`simkit.plots.counts`); returns the matplotlib Figure."""
        from simkit.plots import counts

        return counts(
            self.timeseries,
            metrics,
            strategy=self.strategy,
            title=f"scenario {self.scenario}, strategy {self.strategy}",
            duration=self.summary.get("duration"),
            ax=ax,
        )

    def check(self, *checks: str) -> Result:
        """Assert ``checks`` on this run (``"invariants"``, ``"valid"``, or ``"METRIC OP
        NUMBER"`` such as ``"final_unroutable==0"``, ``"delivery_ratio>=0.99"``; see
        :mod:`simkit.checks`). A failure raises an AssertionError naming each failed
        metric, its value and the limit, so a pytest test gates on it directly; a bad
        check is a ConfigError. Returns the result, to chain."""
        from simkit.checks import assert_checks

        assert_checks(checks, {self.strategy: self.summary})
        return self

    @property
    def valid(self) -> bool:
        """The run can be trusted (``summary["run_valid"]``; the reasons are in
        ``summary["invalid_reasons"]``)."""
        return bool(self.summary.get("run_valid", True))

    def plot_timeline(
        self,
        conns: list[int] | tuple[int, ...],
        *,
        labels: Sequence[str] | None = None,
        shade: tuple[float, float] | None = None,
        shade_label: str = "",
        xlim: tuple[float, float] | None = None,
        title: str | None = None,
        ax: Axes | None = None,
    ) -> Figure | SubFigure:
        """The traced events of ``conns`` on a timeline, one lane per connection (needs a
        run made with ``trace=True``); the options are :func:`simkit.plots.timeline`'s."""
        from simkit.plots import timeline

        if self.trace is None:
            raise ConfigError("plot_timeline needs a run made with trace=True")
        return timeline(
            self.trace,
            conns,
            labels=labels,
            shade=shade,
            shade_label=shade_label,
            xlim=xlim,
            title=title,
            ax=ax,
        )


class Table(pd.DataFrame):
    """``Comparison.table``: one row per strategy with the default columns
    (:data:`TABLE_COLUMNS`), and callable to choose others: ``c.table(columns=[...])``.

    It stays a DataFrame (``c.table.round(3)``, ``c.table["delivery_ratio"]`` work as they
    always did) so that asking for other columns needs no second name to learn.
    """

    _metadata: ClassVar[list[str]] = ["_comparison"]
    _comparison: Comparison

    @property
    def _constructor(self) -> type[pd.DataFrame]:
        # What pandas builds from a table (a slice, a rounded copy) is a plain DataFrame.
        return pd.DataFrame

    def __call__(self, columns: list[str] | tuple[str, ...] | None = None) -> pd.DataFrame:
        """The summary numbers in ``columns`` (any keys of ``Result.summary``; default
        :data:`TABLE_COLUMNS`), one row per strategy, in the order given."""
        return self._comparison.summaries(columns)


@dataclass
class Comparison:
    """Several strategies on one scenario: ``table`` has one row per strategy."""

    scenario: str
    results: dict[str, Result]

    @property
    def table(self) -> Table:
        """The default comparison table; ``c.table(columns=[...])`` picks other summary
        numbers (a bad name raises ConfigError listing the valid ones)."""
        table = Table(self.summaries())
        table._comparison = self
        return table

    def check(self, *checks: str) -> Comparison:
        """Assert ``checks`` on every strategy's run (as :meth:`Result.check`); the
        AssertionError names the strategy, metric, value and limit of each failure."""
        from simkit.checks import assert_checks

        assert_checks(checks, {name: r.summary for name, r in self.results.items()})
        return self

    def summaries(self, columns: list[str] | tuple[str, ...] | None = None) -> pd.DataFrame:
        """A plain DataFrame of summary numbers, one row per strategy (what ``table``
        shows, with ``columns`` instead of the defaults)."""
        if isinstance(columns, str):
            raise ConfigError(f"columns must be a list of names, got the string {columns!r}")
        chosen = list(TABLE_COLUMNS if columns is None else columns)
        summaries = [r.summary for r in self.results.values()]
        valid = [k for k in summaries[0] if all(k in s for s in summaries[1:])] if summaries else []
        for column in chosen:
            if column not in valid:
                raise choice("table column", column, valid)
        rows = {name: {c: r.summary[c] for c in chosen} for name, r in self.results.items()}
        frame = pd.DataFrame.from_dict(rows, orient="index", columns=chosen)
        frame.index.name = "strategy"
        return frame

    def plot(
        self, metrics: tuple[str, ...] = ("open_sockets", "stale", "unroutable", "duplicates")
    ) -> Figure:
        """One panel per metric, one line per strategy (its course colour), shared time
        axis (:func:`simkit.plots.panels`)."""
        from simkit.plots import panels

        first = next(iter(self.results.values()))
        return panels(
            {name: r.timeseries for name, r in self.results.items()},
            metrics,
            title=f"scenario {self.scenario}",
            duration=first.summary.get("duration"),
        )


def summarise(
    census: Census, server: ServerActor, info: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The time series and the summary of a finished run."""
    ts = pd.DataFrame({c: census.rows[c] for c in COLUMNS})
    int_columns = [c for c in COLUMNS if c != "t"]
    ts[int_columns] = ts[int_columns].astype("int64")
    summary: dict[str, Any] = dict(info)
    # Means cover the workload only (t <= duration): the settle period after it is as long
    # as the slowest strategy in a comparison needs, so averaging over it would give the
    # same run a different mean in every comparison it is part of. Peaks and finals cover
    # the whole run (finals are, by design, after settling).
    workload = ts["t"] <= float(info["duration"]) + 1e-9 if "duration" in info else None
    if workload is None or not workload.any():
        workload = pd.Series(True, index=ts.index)
    for metric in METRICS:
        column = ts[metric]
        summary[f"peak_{metric}"] = int(column.max())
        summary[f"mean_{metric}"] = round(float(column[workload].mean()), 6)
        summary[f"final_{metric}"] = int(column.iloc[-1])
    summary["final_connected_tabs"] = int(ts["connected_tabs"].iloc[-1])
    step = float(ts["t"].iloc[1] - ts["t"].iloc[0]) if len(ts) > 1 else 1.0
    # connections accepted per second, over each sampling step: the herd's height
    summary["peak_connect_rate"] = round(float(ts["connects"].diff().fillna(0).max()) / step, 6)
    p = census.pushes
    delivered = p["delivered"] + p["replayed"]
    lost = p["lost_stale"] + p["lost_frozen"] + p["no_route"] + p["expired"] + p["dropped"]
    summary.update(
        pushes_sent=p["sent"],
        pushes_delivered=delivered,
        pushes_lost=lost,
        pushes_lost_stale=p["lost_stale"],
        pushes_lost_frozen=p["lost_frozen"],
        pushes_no_route=p["no_route"],
        pushes_buffered=p["buffered"],
        pushes_replayed=p["replayed"],
        pushes_pending=len(server.pending),
        pushes_duplicated=census.duplicate_pushes,
        pushes_expired=p["expired"] + p["dropped"],
        delivery_ratio=round(delivered / p["sent"], 6) if p["sent"] else math.nan,
        kicked_live_tabs=census.kicked_live,
        tabs_opened_elsewhere=census.gave_up,
        connects=census.connects,
        refused_connects=census.refused,
        detections=len(census.detections),
        detection_delay_mean=(
            round(sum(census.detections) / len(census.detections), 6)
            if census.detections
            else math.nan
        ),
        detection_delay_max=round(max(census.detections), 6) if census.detections else math.nan,
        detections_protocol=len(census.detections_by_kind["protocol"]),
        detections_app=len(census.detections_by_kind["app"]),
        detection_delay_mean_app=_mean(census.detections_by_kind["app"]),
        detection_delay_mean_protocol=_mean(census.detections_by_kind["protocol"]),
        heartbeat_pings=census.pings,
        heartbeat_pongs=census.pongs,
        server_restarts=server.restarts,
    )
    summary["final_disconnected_tabs"] = (
        summary["final_live_tabs"] - summary["final_connected_tabs"]
    )
    summary["invariants_hold"] = bool(
        summary["final_stale"] == summary["final_dangling"] == summary["final_unroutable"] == 0
        and summary["final_open_sockets"] == summary["final_connected_tabs"]
        and summary["final_disconnected_tabs"] == 0
    )
    if census.node_rows:  # several nodes: per-node columns and the cross-node numbers
        _several_nodes(ts, summary, census, server)
    return ts, summary


def _several_nodes(
    ts: pd.DataFrame, summary: dict[str, Any], census: Census, server: ServerActor
) -> None:
    """A run on several nodes (a Cluster) adds columns ``node<i>_open`` (open sockets per
    node) and ``dead_node_entries`` (registry entries held for nodes that are down), and
    summary keys; a one-node run has none of them, so its outputs stay what they were."""
    for name, values in census.node_rows.items():
        ts[name] = pd.Series(values, dtype="int64")
    summary.update(server.summary())
    nodes = [c for c in census.node_rows if c.startswith("node")]
    summary["peak_node_open_sockets"] = int(ts[nodes].max().max())
    dead = ts["dead_node_entries"]
    summary["peak_dead_node_entries"] = int(dead.max())
    workload = ts["t"] <= float(summary.get("duration", math.inf)) + 1e-9
    summary["mean_dead_node_entries"] = round(
        float(dead[workload].mean() if workload.any() else dead.mean()), 6
    )
    summary["final_dead_node_entries"] = int(dead.iloc[-1])


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 6) if values else math.nan


TRACE_COLUMNS = ("time", "conn", "user", "event", "code", "reason")
TRACE_EVENTS = ("connect", "server-open", "server-close", "server-cleanup", "client-close")
"""What ``run(..., trace=True)`` records: the page opens a socket (``connect``), the
handshake reaches the server, which registers it (``server-open``), the server closes a
socket (``server-close``, with the registry's code and reason, e.g. 4000 "replaced"), the
socket's handler finishes and its cleanup runs (``server-cleanup``, with the close code the
server saw), the page sees its socket close (``client-close``, with the code it saw)."""


def trace_frame(trace: list[TraceRow] | None) -> pd.DataFrame | None:
    """The typed event log of a run: ``time`` (float, scenario seconds), ``conn`` (Int64),
    ``user`` (string), ``event`` (category), ``code`` (Int64, missing where the event has
    none) and ``reason`` (string, empty where there is none), from ``Env.log``'s records.

    Typed so that a notebook asks ``trace.code == 1001`` instead of splitting strings."""
    if trace is None:
        return None
    frame = pd.DataFrame.from_records(trace, columns=list(TRACE_COLUMNS))
    events = list(TRACE_EVENTS) + sorted(set(frame["event"]) - set(TRACE_EVENTS))
    return frame.astype(
        {
            "time": "float64",
            "conn": "Int64",
            "user": "string",
            "event": pd.CategoricalDtype(events),
            "code": "Int64",
            "reason": "string",
        }
    )
