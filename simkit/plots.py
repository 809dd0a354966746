"""Plots of a run's event trace: the race timeline that notebook 02 draws.

A race is a question of order between a few connections, which a time series sampled once a
second cannot show; the trace (``simkit.run(..., trace=True)``) has every event at its
exact time, so the timeline draws one lane per connection and one marker per event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from simkit.model.errors import ConfigError

# Every colour and marker means one kind of event; the legend says which, in these words.
EVENT_STYLE: dict[str, tuple[str, str, str]] = {
    "connect": ("tab:blue", "o", "page opens the socket"),
    "client-closing": ("tab:purple", "v", "page starts closing it"),
    "server-open": ("tab:green", "s", "server registers it"),
    "server-close": ("tab:orange", "X", "server closes it"),
    "client-close": ("tab:brown", "^", "page sees it closed"),
    "server-cleanup": ("tab:red", "D", "handler's cleanup runs"),
}
OTHER_STYLE = ("black", "*", "other event")


def timeline(
    trace: pd.DataFrame,
    conns: Sequence[int],
    *,
    labels: Sequence[str] | None = None,
    shade: tuple[float, float] | None = None,
    shade_label: str = "",
    xlim: tuple[float, float] | None = None,
    title: str | None = None,
    ax: Any = None,
) -> Any:
    """One lane per connection in ``conns`` (bottom to top), one marker per traced event,
    coloured by kind and annotated with its close code; returns the Figure.

    ``shade`` = (start, end) marks a span (e.g. the time a live tab was unroutable), named
    in the legend by ``shade_label``; ``xlim`` zooms on the race. A ``client-closing`` event
    (the page starts closing its socket), when the trace has it, is drawn like the others.
    """
    import matplotlib.pyplot as plt

    conns = [int(c) for c in conns]
    if not conns:
        raise ConfigError("timeline needs at least one connection id in conns")
    known = set(trace["conn"].dropna().astype(int))
    missing = [c for c in conns if c not in known]
    if missing:
        raise ConfigError(
            f"connection(s) {missing} are not in the trace; it has {len(known)} connections"
            + (f", ids {min(known)} to {max(known)}" if known else "")
        )
    if labels is None:
        labels = [f"c{c}" for c in conns]
    elif len(labels) != len(conns):
        raise ConfigError(f"labels must name each of the {len(conns)} conns, got {len(labels)}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(10, 1.4 + 1.0 * len(conns)))
    else:
        fig = ax.figure
    seen: dict[str, Any] = {}
    lane_handle = None
    for lane, conn in enumerate(conns):
        events = trace[trace["conn"] == conn]
        (lane_handle,) = ax.plot(
            [events["time"].min(), events["time"].max()], [lane, lane], color="grey", lw=1
        )
        rows = zip(
            events["time"].tolist(),
            events["event"].astype(str).tolist(),
            events["code"].tolist(),
            strict=True,
        )
        for k, (time, event, code) in enumerate(rows):
            colour, marker, meaning = EVENT_STYLE.get(event, OTHER_STYLE)
            (handle,) = ax.plot(time, lane, marker, color=colour, ms=7, ls="none")
            key = event if event in EVENT_STYLE else "other"
            seen.setdefault(key, (handle, f"{event}: {meaning}"))
            if code is not None and code is not pd.NA:
                # Codes alternate above and below the lane: events a few ms apart stay legible.
                ax.annotate(
                    str(int(code)),
                    (time, lane),
                    (0, 9 if k % 2 == 0 else -9),
                    textcoords="offset points",
                    ha="center",
                    va="bottom" if k % 2 == 0 else "top",
                    fontsize=7,
                    color=colour,
                )
    order = [e for e in EVENT_STYLE if e in seen] + (["other"] if "other" in seen else [])
    handles = [seen[e][0] for e in order]
    names = [seen[e][1] for e in order]
    if lane_handle is not None:
        handles.append(lane_handle)
        names.append("a connection, first to last event")
    if shade is not None:
        handles.append(ax.axvspan(*shade, color="tab:red", alpha=0.12))
        names.append(shade_label or "marked span")
    if xlim is not None:
        ax.set_xlim(*xlim)
    ax.set_yticks(range(len(conns)), list(labels))
    ax.set_ylim(-0.6, len(conns) - 0.4)
    ax.set_xlabel("time (s)")
    if title:
        ax.set_title(title)
    ax.legend(handles, names, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    fig.tight_layout()
    return fig


# --- parameter studies (``simkit.sweep``) ---------------------------------------------------
#
# These draw a sweep's aggregate (``Sweep.summary``: index scenario, strategy, grid keys;
# columns (metric, stat)), so a plot shows exactly the means and intervals the table holds.


def against(
    summary: pd.DataFrame,
    metric: str,
    param: str,
    *,
    title: str | None = None,
    axes: Any = None,
) -> Any:
    """Mean ``metric`` against grid key ``param`` with its 95 % band, one line per strategy
    (and per value of any other grid key), one panel per scenario; returns the Figure.

    Points are joined in the parameter's order (numeric values sorted, others in the order
    the grid gave them), never in the order the runs happened to come back.
    """
    import matplotlib.pyplot as plt

    _check_study(summary, metric, [param])
    scenarios = list(dict.fromkeys(summary.index.get_level_values("scenario")))
    if axes is None:
        fig, axes = plt.subplots(
            1, len(scenarios), figsize=(5.2 * len(scenarios), 3.6), squeeze=False
        )
        axes = list(axes[0])
    else:
        axes = list(axes) if isinstance(axes, list | tuple) else [axes]
        fig = axes[0].figure
    for ax, scenario in zip(axes, scenarios, strict=True):
        part = pd.DataFrame(summary.xs(scenario, level="scenario"))
        xs, ticks = _positions(part.index.get_level_values(param))
        for n, (label, line) in enumerate(_lines(part, param)):
            values = list(line.index.get_level_values(param))
            order = sorted(range(len(line)), key=lambda i: xs[values[i]])
            x = [xs[values[i]] for i in order]
            mean = line[(metric, "mean")].to_numpy()[order]
            low = line[(metric, "low")].to_numpy()[order]
            high = line[(metric, "high")].to_numpy()[order]
            colour = f"C{n % 10}"
            ax.plot(x, mean, "o-", color=colour, label=label, lw=1.4, ms=4)
            ax.fill_between(x, low, high, color=colour, alpha=0.18, lw=0)
        if ticks is not None:
            ax.set_xticks(range(len(ticks)), [str(t) for t in ticks])
        ax.set_xlabel(param)
        ax.set_ylabel(metric)
        ax.set_title(f"{scenario}" if title is None else title, fontsize="medium")
        ax.legend(fontsize="x-small", title="mean, 95 % band", title_fontsize="x-small")
    fig.tight_layout()
    return fig


def tradeoff(
    summary: pd.DataFrame,
    x: str,
    y: str,
    param: str,
    *,
    title: str | None = None,
    axes: Any = None,
) -> Any:
    """Mean ``y`` against mean ``x`` (each with its 95 % interval as error bars), one line
    per strategy joined in the order of grid key ``param`` and labelled with its values, one
    panel per scenario; the Pareto front (no other point is lower on both) is ringed and
    joined by a dashed step. Returns the Figure.

    Lower is taken as better on both axes (stale sockets against heartbeat traffic, delay
    against pings); plot ``-metric`` columns yourself for the other way round.
    """
    import matplotlib.pyplot as plt

    _check_study(summary, x, [param])
    _check_study(summary, y, [param])
    scenarios = list(dict.fromkeys(summary.index.get_level_values("scenario")))
    if axes is None:
        fig, axes = plt.subplots(1, len(scenarios), figsize=(6 * len(scenarios), 4), squeeze=False)
        axes = list(axes[0])
    else:
        axes = list(axes) if isinstance(axes, list | tuple) else [axes]
        fig = axes[0].figure
    for ax, scenario in zip(axes, scenarios, strict=True):
        part = pd.DataFrame(summary.xs(scenario, level="scenario"))
        xs, _ = _positions(part.index.get_level_values(param))
        points: list[tuple[float, float]] = []
        for n, (label, line) in enumerate(_lines(part, param)):
            values = list(line.index.get_level_values(param))
            order = sorted(range(len(line)), key=lambda i: xs[values[i]])
            rows = line.iloc[order]
            colour = f"C{n % 10}"
            ax.errorbar(
                rows[(x, "mean")],
                rows[(y, "mean")],
                xerr=rows[(x, "ci95")].fillna(0),
                yerr=rows[(y, "ci95")].fillna(0),
                fmt="o-",
                color=colour,
                ms=4,
                lw=1.2,
                capsize=2,
                label=label,
            )
            for value, (_, row) in zip([values[i] for i in order], rows.iterrows(), strict=True):
                ax.annotate(
                    f"{param}={value}",
                    (row[(x, "mean")], row[(y, "mean")]),
                    xytext=(4, 4),
                    textcoords="offset points",
                    fontsize="xx-small",
                    color=colour,
                )
            points.extend(zip(rows[(x, "mean")], rows[(y, "mean")], strict=True))
        front = pareto_front(points)
        if front:
            fx, fy = zip(*front, strict=True)
            ax.step(fx, fy, "--", where="post", color="black", lw=1, label="Pareto front")
            ax.plot(fx, fy, "o", ms=11, mfc="none", mec="black", mew=1.2)
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.set_title(f"{scenario}: {y} against {x}" if title is None else title, fontsize="medium")
        ax.legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both coordinates (lower is better), sorted by
    the first; points with a missing coordinate are left out."""
    valid = sorted({(a, b) for a, b in points if a == a and b == b})  # NaN != NaN
    front: list[tuple[float, float]] = []
    for a, b in valid:
        if not front or b < front[-1][1]:
            front.append((a, b))
    return front


def _check_study(summary: pd.DataFrame, metric: str, params: list[str]) -> None:
    if not isinstance(summary.columns, pd.MultiIndex) or "scenario" not in summary.index.names:
        raise ConfigError("expected a sweep's summary (Sweep.summary), got another frame")
    metrics = list(dict.fromkeys(summary.columns.get_level_values(0)))
    if metric not in metrics:
        raise ConfigError(f"unknown metric {metric!r}; choose one of: {', '.join(metrics)}")
    keys = [str(n) for n in summary.index.names if n not in ("scenario", "strategy")]
    for param in params:
        if param not in keys:
            raise ConfigError(
                f"unknown grid key {param!r}; this sweep's are: {', '.join(keys) or 'none'}"
            )


def _positions(values: Any) -> tuple[dict[Any, float], list[Any] | None]:
    """Where each value of a parameter goes on the x axis: itself if every value is a
    number, else its place in the grid's order (and the tick labels)."""
    seen = list(dict.fromkeys(values))
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in seen):
        return {v: float(v) for v in seen}, None
    return {v: float(i) for i, v in enumerate(seen)}, seen


def _lines(part: pd.DataFrame, param: str) -> list[tuple[str, pd.DataFrame]]:
    """One line per strategy and value of every other grid key, labelled so."""
    levels = [n for n in part.index.names if n != param]
    if part.index.nlevels == 1 or not levels:
        return [("", part)]
    lines = []
    for key, line in part.groupby(level=levels, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        named = [str(key[0])] + [f"{n}={v}" for n, v in zip(levels[1:], key[1:], strict=True)]
        lines.append((", ".join(named), line))
    return lines
