"""Every public plot of the course keeps the rules a room relies on (simkit.plots' docstring):
one colour per strategy in every plot, labels in words, fonts of at least 10 pt, legends that
cover no data, timelines that show their first event, one unit per axis.

Each plot is drawn on small virtual runs and read back from matplotlib's artists, so a rule
broken by a future edit fails here, not in front of a room.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")  # no display needed; set before any figure is made

import matplotlib.pyplot as plt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection
from matplotlib.lines import Line2D
from matplotlib.text import Text

import simkit
from simkit import plots
from simkit.model.errors import ConfigError
from simkit.widgets import LivePlot

SMALL = {"tabs": 12, "duration": 30, "seed": 0, "progress": False}
STRATEGIES = ["before", "postmortem", "postmortem-safe"]
RAW_NAME = re.compile(r"\b[a-z]+_[a-z_]+\b")  # mean_stale, open_sockets: a field, not words


@pytest.fixture(scope="module")
def comparison() -> simkit.Comparison:
    return simkit.compare("reload-storm", STRATEGIES, trace=True, **SMALL)


@pytest.fixture(scope="module")
def study() -> Any:
    return simkit.sweep(
        scenarios=["reload-storm"],
        strategies=["before", "postmortem-safe"],
        grid={"heartbeat": [10, 30]},
        seeds=2,
        tabs=10,
        duration=20,
        scheduler="synchronous",
        progress=False,
    )


def live_figure(comparison: simkit.Comparison) -> Any:
    """What a live plot draws for two successive runs, fed the runs' own samples."""
    plot = LivePlot(("open_sockets", "stale"), runs=["before", "postmortem"], display=None)
    for name in ("before", "postmortem"):
        for row in comparison.results[name].timeseries.to_dict("records"):
            plot(row)
    fig = plot.figure()
    FigureCanvasAgg(fig)  # a live plot's Figure has no pyplot canvas: give it one to draw
    return fig


@pytest.fixture(scope="module")
def figures(comparison: simkit.Comparison, study: Any) -> Iterator[dict[str, Any]]:
    """Every public plot function of the course, drawn once."""
    r = comparison.results["before"]
    made = {
        "Result.plot": r.plot(),
        "Comparison.plot": comparison.plot(),
        "Result.plot_timeline": r.plot_timeline(first_two(r), xlim=(5.0, 12.0), title="race"),
        "plots.against": study.plot("mean_stale"),
        "plots.tradeoff": study.tradeoff("heartbeat_pings", "mean_stale"),
        "LivePlot.figure": live_figure(comparison),
    }
    for fig in made.values():
        fig.canvas.draw()
    yield made
    for fig in made.values():
        plt.close(fig)


def first_two(result: simkit.Result) -> list[int]:
    conns = sorted(int(c) for c in result.trace["conn"].dropna().unique())
    return conns[:2]


def texts(fig: Any) -> list[Text]:
    return [
        t
        for t in fig.findobj(Text)
        if t.get_visible() and t.get_text().strip() and t.get_figure() is not None
    ]


def test_the_palette_is_fixed_for_presets_and_deterministic_for_any_name() -> None:
    presets = [plots.colour(name) for name in simkit.STRATEGIES]
    assert len(set(presets)) == len(presets), "two presets share a colour"
    assert plots.colour("postmortem-safe") == plots.PALETTE["postmortem-safe"]
    other = plots.colour("my-own-registry")
    assert other == plots.colour("my-own-registry") and other in plots.EXTRA_COLOURS
    assert other not in presets
    names = [f"variant-{n}" for n in range(40)]
    assert len({plots.colour(n) for n in names}) > 5  # spread, not one colour for all


def test_one_strategy_has_one_colour_in_every_plot(figures: dict[str, Any]) -> None:
    """The same strategy is drawn in the same colour in a run's plot, a comparison, a
    study and a live plot, and that colour is the palette's."""
    seen: dict[str, set[str]] = {}
    for name, fig in figures.items():
        if name == "Result.plot_timeline":
            continue  # colours there are kinds of event, on one strategy's run
        for ax in fig.axes:
            for line in ax.get_lines():
                text = line.get_label()
                for strategy in STRATEGIES:
                    if text == strategy or text.startswith((f"{strategy} ", f"{strategy}:")):
                        hexed = matplotlib.colors.to_hex(line.get_color())
                        seen.setdefault(strategy, set()).add(hexed)
                        break
    # Result.plot draws every metric in its strategy's colour
    run_colours = {
        matplotlib.colors.to_hex(line.get_color())
        for line in figures["Result.plot"].axes[0].get_lines()
        if line.get_label() != "workload ends"
    }
    assert run_colours == {plots.colour("before")}
    assert set(seen) == set(STRATEGIES)
    for strategy, colours in seen.items():
        assert colours == {plots.colour(strategy)}, (strategy, colours)


def test_metrics_on_one_axis_differ_by_line_style_not_colour(figures: dict[str, Any]) -> None:
    for name in ("Result.plot", "LivePlot.figure"):
        lines = [
            line
            for line in figures[name].axes[0].get_lines()
            if line.get_label() != "workload ends"
        ]
        styles = {(line.get_linestyle(), line.get_marker()) for line in lines}
        metrics = {line.get_label().split(": ")[-1].split(" (same")[0] for line in lines}
        assert len(styles) >= len(metrics) >= 2, (name, styles, metrics)


def test_every_text_is_at_least_10_points(figures: dict[str, Any]) -> None:
    for name, fig in figures.items():
        small = [(t.get_text(), t.get_fontsize()) for t in texts(fig) if t.get_fontsize() < 10]
        assert not small, (name, small[:5])


def test_every_axis_is_labelled_in_words(figures: dict[str, Any]) -> None:
    for name, fig in figures.items():
        for ax in fig.axes:
            assert ax.get_ylabel().strip(), (name, "no y label")
            shows_x = any(t.get_visible() and t.get_text() for t in ax.get_xticklabels())
            if shows_x:
                assert ax.get_xlabel().strip(), (name, "no x label")
            for text in (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()):
                assert not RAW_NAME.search(text), (name, text)
            legend = ax.get_legend()
            if legend is not None:
                for entry in legend.get_texts():
                    assert not RAW_NAME.search(entry.get_text()), (name, entry.get_text())


def plotted_points(ax: Any) -> np.ndarray:
    """Display coordinates of every data point drawn in ``ax`` that lies inside its view."""
    pts = []
    for artist in ax.get_children():
        if isinstance(artist, Line2D) and artist.get_visible():
            xy = np.column_stack([artist.get_xdata(), artist.get_ydata()]).astype(float)
            transform = artist.get_transform()
        elif isinstance(artist, PathCollection) and artist.get_visible():
            xy = np.asarray(artist.get_offsets(), dtype=float)
            transform = artist.get_offset_transform()
        else:
            continue
        if not len(xy) or transform != ax.transData:
            continue  # axvline and the like live in axes coordinates: no data points
        (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
        inside = (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
        if inside.any():
            pts.append(transform.transform(xy[inside]))
    return np.vstack(pts) if pts else np.empty((0, 2))


def test_no_legend_covers_a_plotted_point(figures: dict[str, Any]) -> None:
    for name, fig in figures.items():
        renderer = fig.canvas.get_renderer()
        legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
        assert legends, (name, "no legend at all")
        for legend in legends:
            box = legend.get_window_extent(renderer)
            for ax in fig.axes:
                pts = plotted_points(ax)
                covered = [p for p in pts if box.x0 <= p[0] <= box.x1 and box.y0 <= p[1] <= box.y1]
                assert not covered, (name, len(covered))


def test_a_timeline_zoom_keeps_its_first_event(figures: dict[str, Any], comparison) -> None:
    r = comparison.results["before"]
    conns = first_two(r)
    first = float(r.trace.loc[r.trace["conn"].isin(conns), "time"].min())
    assert first < 5.0  # the zoom asked for (5, 12) would have cut it off
    low, high = figures["Result.plot_timeline"].axes[0].get_xlim()
    assert low < first and high == 12.0


def test_coinciding_lines_say_so_in_the_legend() -> None:
    fig, ax = plt.subplots()
    t, zero, bump = list(range(30)), [0] * 30, [0] * 15 + [1] * 15
    try:
        lines = plots.draw_lines(
            ax,
            [
                ("before", t, zero, {"color": plots.colour("before")}),
                ("postmortem", t, zero, {"color": plots.colour("postmortem")}),
                ("safe", t, bump, {"color": plots.colour("postmortem-safe")}),
            ],
        )
        assert [line.get_label() for line in lines] == [
            "before",
            "postmortem (same as before)",
            "safe",
        ]
        # markers sit at different places on the two coinciding lines
        assert lines[0].get_markevery() != lines[1].get_markevery()
    finally:
        plt.close(fig)


def test_one_axis_refuses_two_units(comparison: simkit.Comparison) -> None:
    with pytest.raises(ConfigError, match="one unit"):
        plots.check_units(["stale", "delivery_ratio"])
    with pytest.raises(ConfigError, match="one unit"):
        LivePlot(("stale", "peak_connect_rate"), display=None)
    assert plots.check_units(["stale", "unroutable", "connects"]) == "count"


def test_labels_are_words_with_their_unit() -> None:
    assert plots.label("mean_stale") == "mean stale sockets"
    assert plots.label("open_sockets") == "open sockets"
    assert plots.label("detection_delay_mean") == "mean detection delay (s)"
    assert plots.label("delivery_ratio") == "share of pushes delivered (share)"
    assert plots.label("node2_open") == "open sockets on node 2"
    assert plots.label("already in words") == "already in words"
