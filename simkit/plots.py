"""The course's plots and the rules they all keep.

Every figure in the course follows the same rules, so that a room reads one plot the way it
read the last one:

- **One colour per strategy**, everywhere: :func:`colour` gives each preset a fixed colour
  and any other name a colour chosen from its letters (the same name, the same colour, in
  every plot and on every machine). A metric is never told apart by colour: by line style
  and marker (:func:`metric_style`) or by panel.
- **No line hidden under another**: markers are staggered along each line, and a line that
  coincides with one drawn before says so in the legend (:func:`draw_lines`).
- **No legend over data**: legends sit outside the axes, to the right (:func:`legend`).
- **Timelines show their first event**: a zoom (``xlim``) is widened to include it.
- **One unit per axis**: :func:`unit` names what each metric counts; a plot refuses to put
  two units on one axis.
- **Labels in words** (:func:`label`: ``mean_stale`` -> "mean stale sockets") and fonts of
  at least :data:`MIN_FONT` points at the figure's size.

A race is a question of order between a few connections, which a time series sampled once a
second cannot show; the trace (``simkit.run(..., trace=True)``) has every event at its
exact time, so :func:`timeline` draws one lane per connection and one marker per event.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable, Sequence
from typing import TYPE_CHECKING, TypedDict

import pandas as pd

from simkit.model.errors import ConfigError

if TYPE_CHECKING:  # matplotlib is imported where a plot is drawn, not with this module
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure
    from matplotlib.legend import Legend
    from matplotlib.lines import Line2D
    from matplotlib.typing import LineStyleType
    from numpy.typing import ArrayLike

    class Style(TypedDict, total=False):
        """Keyword arguments of one drawn line, as ``Axes.plot`` takes them."""

        color: str
        ls: LineStyleType
        marker: str
        lw: float
        ms: float
        markevery: tuple[int, int]


MIN_FONT = 10.0
"""Points: the smallest text any plot of the course draws (readable on a projected slide)."""
FONT = {"tick": 10.0, "label": 11.0, "title": 12.0, "legend": 10.0, "note": 10.0}

# One colour per strategy for the whole course. The presets (and the registry policies the
# lessons compare by name) have fixed colours: the broken designs in reds and oranges, the
# fixes in greens and blues, so a slide reads at a glance. Grey and black are kept for
# references (live tabs, the end of the workload, a Pareto front).
PALETTE: dict[str, str] = {
    "before": "#d62728",
    "postmortem": "#ff7f0e",
    "seed": "#8c564b",
    "seed-uvicorn-defaults": "#bcbd22",
    "postmortem-safe": "#2ca02c",
    "multi-heartbeat": "#17becf",
    "resume": "#1f77b4",
    "local": "#9467bd",
    "broadcast": "#e377c2",
    "shared-kick-old": "#a6611a",
    "shared-kick-old-safe": "#018571",
    "presence-ttl": "#5e3c99",
    "kick-old": "#b2182b",
    "kick-old-safe": "#1b7837",
}
# For any other name (a variant a lesson builds, a learner's own registry): picked from the
# name's hash, so it never depends on which other strategies share the plot.
EXTRA_COLOURS: tuple[str, ...] = (
    "#393b79",
    "#637939",
    "#8c6d31",
    "#843c39",
    "#7b4173",
    "#3182bd",
    "#e6550d",
    "#31a354",
    "#756bb1",
    "#636363",
    "#9c9ede",
    "#cedb9c",
)
REFERENCE_COLOUR = "#555555"

# What each metric of a time series and each summary key is, in words, and what it counts.
# A name not listed is spelled out from its parts (``peak_x`` -> "peak x").
METRIC_WORDS: dict[str, str] = {
    "open_sockets": "open sockets",
    "live_tabs": "live tabs",
    "connected_tabs": "connected tabs",
    "registry_entries": "registry entries",
    "stale": "stale sockets",
    "dangling": "dangling entries",
    "unroutable": "unroutable tabs",
    "duplicates": "users with duplicate sockets",
    "connects": "connections accepted so far",
    "dead_node_entries": "entries held for dead nodes",
    "delivery_ratio": "share of pushes delivered",
    "peak_connect_rate": "peak connection rate",
    "detection_delay_mean": "mean detection delay",
    "detection_delay_max": "longest detection delay",
    "heartbeat_pings": "heartbeat pings",
    "heartbeat_pongs": "heartbeat pongs",
    "kicked_live_tabs": "live tabs kicked",
    "pushes_lost": "pushes lost",
    "pushes_sent": "pushes sent",
    "pushes_delivered": "pushes delivered",
    "pushes_no_route": "pushes with no route",
    "invariants_hold": "invariants hold",
    "jitter": "one-way latency jitter",
    "tabs": "tabs",
    "seed": "seed",
    "t": "time",
    "time": "time",
}
UNITS: dict[str, str] = {
    "delivery_ratio": "share",
    "peak_connect_rate": "connections per second",
    "detection_delay_mean": "s",
    "detection_delay_max": "s",
    "detection_delay_mean_app": "s",
    "detection_delay_mean_protocol": "s",
    "jitter": "s",
    "t": "s",
    "time": "s",
    "invariants_hold": "yes or no",
}
PREFIXES = {"mean_": "mean", "peak_": "peak", "final_": "final"}

# Metrics on one axis are told apart by line style and marker, never by colour.
METRIC_STYLES: tuple[tuple[LineStyleType, str], ...] = (
    ("-", "o"),
    ("--", "s"),
    (":", "^"),
    ("-.", "D"),
    ((0, (5, 1, 1, 1, 1, 1)), "v"),
    ((0, (1, 1)), "P"),
)


def colour(strategy: str) -> str:
    """The colour of ``strategy`` in every plot of the course: fixed for the presets (and
    the registry policies the lessons name), and for any other name one chosen from the
    name itself, so it is the same in every plot, run and machine."""
    name = str(strategy)
    if name in PALETTE:
        return PALETTE[name]
    digest = hashlib.sha256(name.encode()).digest()
    return EXTRA_COLOURS[int.from_bytes(digest[:4], "big") % len(EXTRA_COLOURS)]


def unit(name: str) -> str:
    """What a metric or summary key counts: ``"count"`` unless :data:`UNITS` says otherwise
    (``delivery_ratio`` is a share, delays are seconds, a connect rate is per second)."""
    for prefix in PREFIXES:
        if name.startswith(prefix) and name[len(prefix) :] in METRIC_WORDS:
            name = name[len(prefix) :]
            break
    if name in UNITS:
        return UNITS[name]
    if name.startswith("detection_delay") or name.endswith("_interval"):
        return "s"
    return "count"


def label(name: str, *, with_unit: bool = True) -> str:
    """``name`` (a metric, a summary key or a grid key) in words for an axis or legend:
    ``mean_stale`` -> "mean stale sockets", ``detection_delay_mean`` -> "mean detection
    delay (s)". A name already in words (with a space) is returned as it is."""
    text = str(name)
    if " " in text or not text:
        return text
    words = None
    if text in METRIC_WORDS:
        words = METRIC_WORDS[text]
    else:
        for prefix, word in PREFIXES.items():
            rest = text[len(prefix) :]
            if text.startswith(prefix) and rest:
                words = f"{word} {METRIC_WORDS.get(rest, rest.replace('_', ' '))}"
                break
    if words is None:
        words = text.replace("_", " ").replace(".", " ")
        if text.startswith("node") and text.endswith("_open"):
            words = f"open sockets on node {text[4:-5]}"
    what = unit(text)
    return f"{words} ({what})" if with_unit and what not in ("count", "yes or no") else words


def metric_style(n: int) -> Style:
    """Line style and marker of the ``n``-th metric drawn on one axis."""
    style, marker = METRIC_STYLES[n % len(METRIC_STYLES)]
    return {"ls": style, "marker": marker}


def style_axes(ax: Axes, *, xlabel: str | None = None, ylabel: str | None = None) -> None:
    """Axis labels in words and tick labels at the course's readable size."""
    if xlabel is not None:
        ax.set_xlabel(label(xlabel), fontsize=FONT["label"])
    if ylabel is not None:
        ax.set_ylabel(label(ylabel), fontsize=FONT["label"])
    ax.tick_params(labelsize=FONT["tick"])
    ax.title.set_fontsize(FONT["title"])


def legend(
    ax: Axes,
    handles: Sequence[Artist] | None = None,
    labels: Sequence[str] | None = None,
    *,
    title: str | None = None,
) -> Legend:
    """The legend of ``ax``, outside the axes on the right, where it can cover no data;
    a long entry is wrapped onto several lines so the plot keeps its width."""
    import textwrap

    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    elif labels is None:
        raise ConfigError("legend: handles were given without labels; give both or neither")
    labels = [textwrap.fill(str(text), WRAP) for text in labels]
    made = ax.legend(
        handles,
        labels,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0.0,
        fontsize=FONT["legend"],
        title=title,
        title_fontsize=FONT["legend"],
    )
    return made


WRAP = 30  # characters per line of a legend entry


def draw_lines(
    ax: Axes,
    lines: Iterable[tuple[str, ArrayLike, ArrayLike, Style]],
    *,
    markers: int = 12,
) -> list[Line2D]:
    """Draw ``(label, x, y, style)`` lines so that none hides another: each carries markers
    at places staggered from its neighbours', widths narrow from the first line to the last
    (a lower line shows around the upper), and a line equal to one drawn before it says so
    in its legend label ("b (same as a)"). Returns the Line2D objects."""
    import numpy as np

    drawn: list[tuple[str, np.ndarray, np.ndarray]] = []
    artists = []
    lines = list(lines)
    for n, (name, x, y, style) in enumerate(lines):
        xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        same = [
            other
            for other, ox, oy in drawn
            if ox.shape == xs.shape and np.array_equal(ox, xs) and np.array_equal(oy, ys)
        ]
        text = f"{name} (same as {same[0]})" if same else name
        step = max(1, len(xs) // markers)
        options: Style = {
            "lw": max(1.0, 2.6 - 0.5 * n),
            "ms": 5,
            "markevery": ((n * max(1, step // len(lines))) % step, step),
        }
        options.update(style)
        (artist,) = ax.plot(xs, ys, label=text, **options)
        artists.append(artist)
        drawn.append((name, xs, ys))
    return artists


def check_units(metrics: Sequence[str]) -> str:
    """The one unit of ``metrics``, or a ConfigError naming the mix: one axis, one unit."""
    units = {m: unit(m) for m in metrics}
    if len(set(units.values())) > 1:
        mix = ", ".join(f"{m} ({u})" for m, u in units.items())
        raise ConfigError(f"one axis, one unit: these metrics mix units: {mix}; plot them apart")
    return next(iter(units.values()), "count")


def counts(
    timeseries: pd.DataFrame,
    metrics: Sequence[str],
    *,
    strategy: str,
    title: str | None = None,
    duration: float | None = None,
    ax: Axes | None = None,
) -> Figure | SubFigure:
    """A run's ``metrics`` over time on one axis, all in the colour of ``strategy`` and told
    apart by line style and marker; ``duration`` marks the end of the workload. Returns the
    Figure (what :meth:`simkit.Result.plot` draws)."""
    import matplotlib.pyplot as plt

    what = check_units(metrics)
    missing = [m for m in metrics if m not in timeseries.columns]
    if missing:
        raise ConfigError(
            f"unknown metric(s) {missing}; choose from: {', '.join(timeseries.columns[1:])}"
        )
    fig: Figure | SubFigure
    if ax is None:
        fig, ax = plt.subplots(figsize=(9, 3.6), layout="constrained")
    else:
        fig = ax.figure
    t = timeseries["t"]
    draw_lines(
        ax,
        [
            (label(m), t, timeseries[m], {"color": colour(strategy), **metric_style(n)})
            for n, m in enumerate(metrics)
        ],
    )
    if duration is not None:
        mark_workload_end(ax, duration)
    ax.set_title(title if title is not None else f"strategy {strategy}")
    style_axes(ax, xlabel="t", ylabel=what if what != "count" else None)
    if what == "count":
        ax.set_ylabel("count", fontsize=FONT["label"])
    legend(ax, title=f"{strategy}: metric")
    layout(fig)
    return fig


def panels(
    runs: dict[str, pd.DataFrame],
    metrics: Sequence[str],
    *,
    title: str | None = None,
    duration: float | None = None,
    reference: str | None = "live_tabs",
) -> Figure:
    """One panel per metric, one line per strategy (its course colour), a shared time axis;
    ``reference`` (a metric of the first run) is drawn in grey on the ``open_sockets`` panel,
    as what a correct strategy converges to. Returns the Figure (what
    :meth:`simkit.Comparison.plot` draws)."""
    import matplotlib.pyplot as plt

    if not runs:
        raise ConfigError("panels needs at least one run")
    fig, grid = plt.subplots(
        len(metrics),
        1,
        figsize=(9, 2.2 * len(metrics) + 0.8),
        sharex=True,
        squeeze=False,
        layout="constrained",
    )
    axes = list(grid[:, 0])
    first = next(iter(runs.values()))
    for ax, metric in zip(axes, metrics, strict=True):
        if metric == "open_sockets" and reference is not None and reference in first.columns:
            ax.plot(
                first["t"],
                first[reference],
                color=REFERENCE_COLOUR,
                lw=1.0,
                ls=(0, (4, 3)),
                label=label(reference),
            )
        # a line style and marker per strategy as well as its colour: strategies often
        # coincide (``before`` and ``postmortem`` on open sockets)
        draw_lines(
            ax,
            [
                (name, ts["t"], ts[metric], {"color": colour(name), **metric_style(i)})
                for i, (name, ts) in enumerate(runs.items())
            ],
        )
        if duration is not None:
            mark_workload_end(ax, duration)
        style_axes(ax, ylabel=metric)
        ax.yaxis.label.set_wrap(True)
        legend(ax)
    axes[0].set_title(title or "", fontsize=FONT["title"])
    style_axes(axes[-1], xlabel="t")
    layout(fig)
    return fig


def layout(fig: Figure | SubFigure) -> None:
    """Fit a figure's parts (legends outside the axes included): a figure made here is laid
    out by matplotlib's constrained layout as it draws; one the caller made, which has no
    layout engine, is tightened once now."""
    if fig.get_layout_engine() is None:
        fig.figure.tight_layout()  # a SubFigure's root: the one figure tight_layout can fit


def mark_workload_end(ax: Axes, duration: float) -> None:
    """A dotted grey line where the workload ends (the run settles after it)."""
    ax.axvline(duration, color=REFERENCE_COLOUR, ls=":", lw=1, label="workload ends")


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
    ax: Axes | None = None,
) -> Figure | SubFigure:
    """One lane per connection in ``conns`` (bottom to top), one marker per traced event,
    coloured by kind and annotated with its close code; returns the Figure.

    ``shade`` = (start, end) marks a span (e.g. the time a live tab was unroutable), named
    in the legend by ``shade_label``; ``xlim`` zooms on the race, widened on the left when
    it would cut off the first event of ``conns``. A ``client-closing`` event
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
    fig: Figure | SubFigure
    if ax is None:
        fig, ax = plt.subplots(figsize=(10, 1.4 + 1.0 * len(conns)), layout="constrained")
    else:
        fig = ax.figure
    seen: dict[str, tuple[Artist, str]] = {}
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
                    fontsize=FONT["note"],
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
        # A zoom never cuts the first event off: what starts the story stays on the plot.
        first = float(trace.loc[trace["conn"].isin(conns), "time"].min())
        low, high = float(xlim[0]), float(xlim[1])
        if first < low:
            low = first - 0.05 * max(high - first, 1e-3)
        ax.set_xlim(low, high)
    ax.set_yticks(range(len(conns)), list(labels))
    ax.set_ylim(-0.6, len(conns) - 0.4)
    if title:
        ax.set_title(title)
    style_axes(ax, xlabel="time")
    ax.set_ylabel("connection", fontsize=FONT["label"])
    legend(ax, handles, names)
    layout(fig)
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
    axes: Axes | list[Axes] | tuple[Axes, ...] | None = None,
) -> Figure | SubFigure:
    """Mean ``metric`` against grid key ``param`` with its 95 % band, one line per strategy
    (its course colour; a line style per value of any other grid key), one panel per
    scenario; returns the Figure.

    Points are joined in the parameter's order (numeric values sorted, others in the order
    the grid gave them), never in the order the runs happened to come back.
    """
    import matplotlib.pyplot as plt

    _check_study(summary, metric, [param])
    scenarios = list(dict.fromkeys(summary.index.get_level_values("scenario")))
    fig: Figure | SubFigure
    if axes is None:
        fig, grid = plt.subplots(
            1,
            len(scenarios),
            figsize=(8.4 * len(scenarios), 4.0),
            squeeze=False,
            layout="constrained",
        )
        panes: list[Axes] = list(grid[0])
    else:
        panes = list(axes) if isinstance(axes, list | tuple) else [axes]
        fig = panes[0].figure
    for ax, scenario in zip(panes, scenarios, strict=True):
        part = pd.DataFrame(summary.xs(scenario, level="scenario"))
        xs, ticks = _positions(part.index.get_level_values(param))
        lines: list[tuple[str, ArrayLike, ArrayLike, Style]] = []
        for strategy, name, n, line in _lines(part, param):
            values = list(line.index.get_level_values(param))
            order = sorted(range(len(line)), key=lambda i: xs[values[i]])
            x = [xs[values[i]] for i in order]
            low = line[(metric, "low")].to_numpy()[order]
            high = line[(metric, "high")].to_numpy()[order]
            ax.fill_between(x, low, high, color=colour(strategy), alpha=0.15, lw=0)
            mean = line[(metric, "mean")].to_numpy()[order]
            lines.append((name, x, mean, {"color": colour(strategy), **metric_style(n)}))
        draw_lines(ax, lines)
        if ticks is not None:
            ax.set_xticks(range(len(ticks)), [str(t) for t in ticks])
        style_axes(ax, xlabel=param, ylabel=metric)
        ax.set_title(f"scenario {scenario}" if title is None else title)
        legend(ax, title="mean, 95 % band")
    layout(fig)
    return fig


def tradeoff(
    summary: pd.DataFrame,
    x: str,
    y: str,
    param: str,
    *,
    title: str | None = None,
    axes: Axes | list[Axes] | tuple[Axes, ...] | None = None,
) -> Figure | SubFigure:
    """Mean ``y`` against mean ``x`` (each with its 95 % interval as error bars), one line
    per strategy (its course colour) joined in the order of grid key ``param`` and labelled
    with its values, one panel per scenario; the Pareto front (no other point is lower on
    both) is ringed and joined by a dashed step. Returns the Figure.

    Lower is taken as better on both axes (stale sockets against heartbeat traffic, delay
    against pings); plot ``-metric`` columns yourself for the other way round.
    """
    import matplotlib.pyplot as plt

    _check_study(summary, x, [param])
    _check_study(summary, y, [param])
    scenarios = list(dict.fromkeys(summary.index.get_level_values("scenario")))
    fig: Figure | SubFigure
    if axes is None:
        fig, grid = plt.subplots(
            1,
            len(scenarios),
            figsize=(9 * len(scenarios), 4.6),
            squeeze=False,
            layout="constrained",
        )
        panes: list[Axes] = list(grid[0])
    else:
        panes = list(axes) if isinstance(axes, list | tuple) else [axes]
        fig = panes[0].figure
    for ax, scenario in zip(panes, scenarios, strict=True):
        part = pd.DataFrame(summary.xs(scenario, level="scenario"))
        xs, _ = _positions(part.index.get_level_values(param))
        points: list[tuple[float, float]] = []
        for strategy, name, n, line in _lines(part, param):
            values = list(line.index.get_level_values(param))
            order = sorted(range(len(line)), key=lambda i: xs[values[i]])
            rows = line.iloc[order]
            style = metric_style(n)
            ax.errorbar(
                rows[(x, "mean")],
                rows[(y, "mean")],
                xerr=rows[(x, "ci95")].fillna(0),
                yerr=rows[(y, "ci95")].fillna(0),
                color=colour(strategy),
                ls=style["ls"],
                marker=style["marker"],
                ms=5,
                lw=1.4,
                elinewidth=1.6,
                capsize=4,
                capthick=1.4,
                label=name,
                zorder=3,
            )
            for value, (_, row) in zip([values[i] for i in order], rows.iterrows(), strict=True):
                ax.annotate(
                    f"{param}={value}",
                    (row[(x, "mean")], row[(y, "mean")]),
                    xytext=(5, 5),
                    textcoords="offset points",
                    fontsize=FONT["note"],
                    color=colour(strategy),
                )
            points.extend(zip(rows[(x, "mean")], rows[(y, "mean")], strict=True))
        front = pareto_front(points)
        if front:
            fx, fy = zip(*front, strict=True)
            ax.step(fx, fy, "--", where="post", color="black", lw=1, label="Pareto front")
            ax.plot(fx, fy, "o", ms=11, mfc="none", mec="black", mew=1.2)
        style_axes(ax, xlabel=x, ylabel=y)
        words = f"{label(y, with_unit=False)} against {label(x, with_unit=False)}"
        ax.set_title(f"scenario {scenario}: {words}" if title is None else title)
        legend(ax, title=f"points labelled by {label(param)}")
    layout(fig)
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


def _positions(values: Iterable[Hashable]) -> tuple[dict[Hashable, float], list[Hashable] | None]:
    """Where each value of a parameter goes on the x axis: itself if every value is a
    number, else its place in the grid's order (and the tick labels)."""
    seen = list(dict.fromkeys(values))
    numbers = [v for v in seen if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) == len(seen):
        return {v: float(v) for v in numbers}, None
    return {v: float(i) for i, v in enumerate(seen)}, seen


def _lines(part: pd.DataFrame, param: str) -> list[tuple[str, str, int, pd.DataFrame]]:
    """One line per strategy and value of every other grid key: (strategy, label, the
    line's number among its strategy's lines, rows). A line's colour is its strategy's; its
    number picks its line style."""
    levels = [n for n in part.index.names if n != param]
    if part.index.nlevels == 1 or not levels:
        return [("", "", 0, part)]
    lines = []
    per_strategy: dict[str, int] = {}
    for key, line in part.groupby(level=levels, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        strategy = str(key[0])
        named = [strategy] + [
            f"{label(str(n))} {v}" for n, v in zip(levels[1:], key[1:], strict=True)
        ]
        n = per_strategy.get(strategy, 0)
        per_strategy[strategy] = n + 1
        lines.append((strategy, ", ".join(named), n, line))
    return lines
