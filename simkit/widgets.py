"""Notebooks that answer as you move a slider, and live runs you can watch.

:func:`explore` puts a scenario's knobs on ipywidgets controls: every change re-runs the
virtual run (about 0.1 s at 100 tabs) and redraws its plot, so a question such as "what
does a 10 s heartbeat do to stale sockets here?" is answered by moving a slider.

:func:`live_plot` draws a live run's counts as they are sampled
(``simkit.run(..., runtime="live", on_sample=plot)``), instead of a blank cell for the
whole run. The run calls it on its own thread, every sample (every 50 ms at the default
scale); it only records the row there and a drawing thread redraws as fast as it can,
so drawing never slows the run's clock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, Unpack

import ipywidgets as w

from simkit import plots
from simkit.api import run
from simkit.model.client import BACKOFF_PRESETS
from simkit.model.errors import ConfigError
from simkit.model.strategy import STRATEGIES
from simkit.model.strategy import strategy as strategy_of
from simkit.results import Result
from simkit.scenarios import Scenario
from simkit.scenarios import scenario as scenario_of
from simkit.study.knobs import apply_knobs

if TYPE_CHECKING:  # matplotlib and IPython are imported when a figure is drawn
    from IPython.display import DisplayHandle, Image
    from matplotlib.figure import Figure

    from simkit.plots import Style

__all__ = ["Explorer", "LivePlot", "explore", "live_plot"]

PRESET = "preset"  # a control left at "preset" keeps the strategy's own value
SHOWN = ("mean_open_sockets", "mean_stale", "mean_unroutable", "delivery_ratio", "connects")


# ipywidgets ships no annotations: its VBox is ``Any`` to mypy, which strict mode will not
# let a class extend; the one exception to subclassing Any in the package.
class Explorer(w.VBox):  # type: ignore[misc]
    """The controls, the plot and the numbers of one scenario; see :func:`explore`.

    ``controls`` maps each knob to its widget; ``knobs()`` is what they say now (as
    ``simkit.sweep`` grid keys); ``result`` is the last run. Set a control's ``value`` from
    code and the run and the plot follow, as they do when a person moves it.
    """

    def __init__(
        self,
        scenario: str | Scenario = "reload-storm",
        strategy: str = "postmortem-safe",
        *,
        tabs: int = 100,
        duration: float = 120.0,
        seed: int = 0,
        metrics: Sequence[str] = ("open_sockets", "live_tabs", "stale", "unroutable"),
    ) -> None:
        self.scenario = scenario_of(scenario)
        if strategy not in STRATEGIES:
            strategy_of(strategy)  # raises the usual ConfigError naming the presets
        self.duration = duration
        self.metrics = tuple(metrics)
        self.result: Result | None = None
        self.figure: Figure | None = None
        self.runs = 0
        sc = self.scenario
        slow = {"continuous_update": False}  # re-run on release, not on every pixel
        # (ipywidgets' controls are untyped: Any to mypy, whatever this said)
        self.controls: dict[str, Any] = {
            "strategy": w.Dropdown(
                options=list(STRATEGIES), value=strategy, description="strategy"
            ),
            "heartbeat": w.SelectionSlider(
                options=[(PRESET, PRESET), ("off", None)]
                + [(f"{s} s", float(s)) for s in (5, 10, 15, 20, 30, 45, 60)],
                value=PRESET,
                description="heartbeat",
                **slow,
            ),
            "backoff": w.Dropdown(
                options=[PRESET, *BACKOFF_PRESETS], value=PRESET, description="backoff"
            ),
            "guard_wait": w.SelectionSlider(
                options=[(PRESET, PRESET)]
                + [(f"{s:g} s", float(s)) for s in (0, 0.5, 1, 2, 3, 5, 10)],
                value=PRESET,
                description="guard wait",
                **slow,
            ),
            "latency": w.FloatSlider(
                value=sc.latency.base,
                min=0.0,
                max=0.5,
                step=0.01,
                description="latency (s)",
                **slow,
            ),
            "jitter": w.FloatSlider(
                value=sc.latency.jitter,
                min=0.0,
                max=1.0,
                step=0.01,
                description="jitter (s)",
                **slow,
            ),
            "push_rate": w.FloatSlider(
                value=sc.push_rate, min=0.0, max=0.5, step=0.01, description="pushes/tab/s", **slow
            ),
            "tabs": w.IntSlider(value=tabs, min=10, max=1000, step=10, description="tabs", **slow),
            "seed": w.IntSlider(value=seed, min=0, max=19, description="seed", **slow),
        }
        self.output = w.Output()
        self.numbers = w.HTML()
        for control in self.controls.values():
            control.observe(self._changed, names="value")
        left = list(self.controls.values())[:5]
        right = list(self.controls.values())[5:]
        super().__init__([w.HBox([w.VBox(left), w.VBox(right)]), self.numbers, self.output])
        self.update()

    def knobs(self) -> dict[str, float | str | None]:
        """The controls' values as ``simkit.sweep`` grid keys (a knob at ``preset`` is left
        out, so the strategy keeps its own)."""
        values = {name: control.value for name, control in self.controls.items()}
        knobs = {
            k: values[k]
            for k in ("heartbeat", "backoff", "guard_wait", "latency", "jitter", "push_rate")
            if values[k] != PRESET
        }
        return knobs

    def update(self) -> Result:
        """Run with what the controls say now, redraw the plot and the numbers."""
        values = {name: control.value for name, control in self.controls.items()}
        sc, strat = apply_knobs(self.scenario, strategy_of(values["strategy"]), self.knobs())
        result = run(
            sc,
            strat,
            tabs=values["tabs"],
            duration=self.duration,
            seed=values["seed"],
            progress=False,
        )
        self.result, self.runs = result, self.runs + 1
        s = result.summary
        self.numbers.value = " &nbsp; ".join(f"<b>{k}</b> {s[k]:.3g}" for k in SHOWN) + (
            f" &nbsp; <b>invariants_hold</b> {s['invariants_hold']}"
        )
        self._draw(result)
        return result

    def _changed(self, change: Mapping[str, object]) -> None:
        self.update()

    def _draw(self, result: Result) -> None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(8, 3.2))
        result.plot(self.metrics, ax=fig.subplots())
        self.figure = fig
        if _in_ipython():  # outside a kernel there is no output area to draw into
            with self.output:
                self.output.clear_output(wait=True)
                _display(fig)


class ExploreOptions(TypedDict, total=False):
    """:func:`explore`'s options: :class:`Explorer`'s keywords (its defaults apply)."""

    tabs: int
    duration: float
    seed: int
    metrics: Sequence[str]


def explore(
    scenario: str | Scenario = "reload-storm",
    strategy: str = "postmortem-safe",
    **options: Unpack[ExploreOptions],
) -> Explorer:
    """Controls for the strategy and the knobs of ``scenario`` (heartbeat, backoff, connect
    guard, latency, jitter, push rate, tabs, seed); every change re-runs the virtual run and
    redraws its plot. Display it as a cell's last expression. ``options``: ``tabs``,
    ``duration``, ``seed``, ``metrics`` (what the plot draws)."""
    return Explorer(scenario, strategy, **options)


class Handle(Protocol):
    """What :class:`LivePlot`'s ``display`` returns: where the next figure goes."""

    def update(self, fig: Figure) -> None: ...


class LivePlot:
    """A figure that follows a running run: pass it as ``on_sample``.

    Each call records one row (cheap, on the run's thread); a drawing thread redraws the
    figure whenever new rows have come, coalescing those that arrive while it draws. Use it
    as a context manager so the last rows are drawn and the thread stops when the run ends::

        with simkit.widgets.live_plot() as plot:
            r = simkit.run("reload-storm", "before", runtime="live", on_sample=plot)

    Several runs in a row (``simkit.compare(..., on_sample=plot)``) are drawn side by side
    in time, one line style each, named by ``runs``: a row whose time is not after the
    previous row's starts the next run.

    ``display`` shows a figure and returns a handle with ``update(fig)`` (default:
    IPython's ``display(..., display_id=True)``; outside IPython nothing is shown and the
    rows are still recorded).
    """

    def __init__(
        self,
        metrics: Sequence[str] = ("open_sockets", "live_tabs", "stale", "unroutable"),
        *,
        title: str = "live run",
        runs: Sequence[str] = (),
        display: Callable[[Figure], Handle] | None = None,
    ) -> None:
        if isinstance(metrics, str) or not metrics:
            raise ConfigError(f"metrics must be a list of column names, got {metrics!r}")
        self.metrics = tuple(metrics)
        plots.check_units(self.metrics)  # one axis, one unit: refused now, not mid-run
        self.title = title
        self.names = list(runs)
        self.rows: list[dict[str, float]] = []
        self.draws = 0
        self._drawn = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._show = display if display is not None else _display_handle
        self._handle: Handle | None = None
        self._thread: threading.Thread | None = None

    def __call__(self, row: dict[str, float]) -> None:
        missing = [m for m in self.metrics if m not in row]
        if missing:
            raise ConfigError(f"unknown metric {missing[0]!r}; choose from: {', '.join(row)}")
        self.rows.append(row)
        self._wake.set()

    def __enter__(self) -> LivePlot:
        self._handle = self._show(self.figure())
        self._thread = threading.Thread(target=self._loop, name="simkit-live-plot", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.redraw()

    def figure(self) -> Figure:
        """The counts recorded so far, one line per metric."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(8, 3.2))
        ax = fig.subplots()
        rows = list(self.rows)
        segments: list[list[dict[str, float]]] = []
        for row in rows:
            if not segments or row["t"] <= segments[-1][-1]["t"]:
                segments.append([])
            segments[-1].append(row)
        lines: list[tuple[str, list[float], list[float], Style]] = []
        for n, segment in enumerate(segments):
            t = [row["t"] for row in segment]
            name = self.names[n] if n < len(self.names) else f"run {n + 1}"
            # a run (a strategy) is a colour, as in every plot of the course; a metric is a
            # line style and marker, never a colour
            for m, metric in enumerate(self.metrics):
                words = plots.label(metric)
                text = words if len(segments) == 1 else f"{name}: {words}"
                values = [row[metric] for row in segment]
                style: Style = {"color": plots.colour(name), **plots.metric_style(m)}
                lines.append((text, t, values, style))
        plots.draw_lines(ax, lines)
        plots.style_axes(ax, xlabel="t")
        ax.set_ylabel(plots.check_units(self.metrics), fontsize=plots.FONT["label"])
        now = f", t = {rows[-1]['t']:g} s" if rows else ""
        ax.set_title(f"{self.title}: {len(rows)} samples{now}", fontsize=plots.FONT["title"])
        if rows:
            plots.legend(ax)
        fig.tight_layout()
        return fig

    def redraw(self) -> None:
        """Draw what has been recorded (if anything came since the last draw)."""
        with self._lock:
            if len(self.rows) == self._drawn and self.draws:
                return
            self._drawn = len(self.rows)
            fig = self.figure()
            if self._handle is not None:
                self._handle.update(fig)
            self.draws += 1

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if not self._stop.is_set():
                self.redraw()


def live_plot(
    metrics: Sequence[str] = ("open_sockets", "live_tabs", "stale", "unroutable"),
    *,
    title: str = "live run",
    runs: Sequence[str] = (),
) -> LivePlot:
    """A figure in the notebook that a live run redraws as it samples; see :class:`LivePlot`
    (``runs`` names successive runs, e.g. a comparison's strategies)."""
    return LivePlot(metrics, title=title, runs=runs)


def _in_ipython() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def _png(fig: Figure) -> Image:
    """The figure as an image, so that it shows whatever matplotlib backend the notebook
    has set up (a bare Figure needs the inline backend's formatter)."""
    import io

    from IPython.display import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return Image(data=buffer.getvalue(), format="png")


def _display(fig: Figure) -> None:
    if _in_ipython():
        from IPython.display import display

        display(_png(fig))


class _NoHandle:
    def update(self, fig: Figure) -> None:
        """Nothing to show outside a notebook."""


def _display_handle(fig: Figure) -> Handle:
    if not _in_ipython():
        return _NoHandle()
    from IPython.display import display

    # (unannotated in IPython; with display_id=True, in a kernel, it is a DisplayHandle)
    return _ImageHandle(display(_png(fig), display_id=True))


class _ImageHandle:
    """IPython's display handle, fed images instead of figures."""

    def __init__(self, handle: DisplayHandle) -> None:
        self.handle = handle

    def update(self, fig: Figure) -> None:
        self.handle.update(_png(fig))
