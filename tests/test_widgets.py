"""simkit.widgets without a browser: the explorer re-runs exactly what simkit.run gives for
its controls, and a live plot records every sample and redraws while the run goes on."""

from __future__ import annotations

import threading
import time

import pytest

import simkit
from simkit.model.errors import ConfigError
from simkit.scenarios import SCENARIOS
from simkit.study.knobs import apply_knobs
from simkit.widgets import PRESET, Explorer, LivePlot, explore

SIZE = {"tabs": 30, "duration": 40.0}


def expected(scenario, strategy, knobs, tabs, seed, duration):
    sc, strat = apply_knobs(SCENARIOS[scenario], simkit.STRATEGIES[strategy], knobs)
    return simkit.run(sc, strat, tabs=tabs, duration=duration, seed=seed, progress=False)


def test_explorer_runs_what_its_controls_say_and_redraws_on_change():
    e = explore("flaky-network", "postmortem-safe", tabs=30, duration=40.0)
    assert isinstance(e, Explorer) and e.runs == 1
    first = e.result.summary
    assert first == expected("flaky-network", "postmortem-safe", {}, 30, 0, 40.0).summary
    e.controls["heartbeat"].value = 5.0
    assert e.runs == 2
    assert e.knobs()["heartbeat"] == 5.0
    want = expected("flaky-network", "postmortem-safe", {"heartbeat": 5.0}, 30, 0, 40.0)
    assert e.result.summary == want.summary
    assert e.result.summary["heartbeat_pings"] > first["heartbeat_pings"]  # faster pings
    e.controls["strategy"].value = "before"
    e.controls["seed"].value = 3
    assert e.runs == 4 and e.result.strategy == "before" and e.result.summary["seed"] == 3
    e.controls["heartbeat"].value = PRESET
    assert "heartbeat" not in e.knobs()
    assert e.result.summary == expected("flaky-network", "before", e.knobs(), 30, 3, 40.0).summary
    lines = e.figure.axes[0].get_lines()
    assert list(lines[0].get_ydata()) == list(e.result.timeseries["open_sockets"])
    assert "mean_stale" in e.numbers.value and "invariants_hold" in e.numbers.value


def test_explorer_knobs_reach_the_scenario_too():
    e = explore("reload-storm", tabs=20, duration=30.0)
    e.controls["push_rate"].value = 0.0
    assert e.result.summary["pushes_sent"] == 0
    e.controls["tabs"].value = 40
    assert e.result.summary["tabs"] == 40


def test_explorer_refuses_unknown_names():
    with pytest.raises(ConfigError, match=r"unknown strategy 'nope'; choose one of: before"):
        explore("reload-storm", "nope")
    with pytest.raises(ConfigError, match=r"unknown scenario 'nope'"):
        explore("nope")


class FakeHandle:
    """What IPython's display handle does, recorded: which figures were shown, when."""

    def __init__(self) -> None:
        self.figures: list = []
        self.threads: list[str] = []

    def update(self, fig) -> None:
        self.figures.append(fig)
        self.threads.append(threading.current_thread().name)


def test_live_plot_records_every_sample_and_redraws_off_the_run_thread():
    handle = FakeHandle()
    with LivePlot(("open_sockets", "stale"), display=lambda fig: handle) as plot:
        result = simkit.run("reload-storm", "before", seed=1, on_sample=plot, **SIZE)
        deadline = time.monotonic() + 5
        while not handle.figures and time.monotonic() < deadline:
            time.sleep(0.01)  # the drawing thread catches up
    assert plot.rows and [r["t"] for r in plot.rows] == list(result.timeseries["t"])
    assert [r["stale"] for r in plot.rows] == list(result.timeseries["stale"])
    assert "simkit-live-plot" in handle.threads  # drawn by its own thread during the run
    last = handle.figures[-1].axes[0]
    assert list(last.get_lines()[1].get_ydata()) == list(result.timeseries["stale"])
    assert f"{len(result.timeseries)} samples" in last.get_title()
    assert not plot._thread.is_alive()


def test_live_plot_refuses_unknown_metrics():
    plot = LivePlot(("open_socket",), display=lambda fig: FakeHandle())
    with pytest.raises(ConfigError, match=r"unknown metric 'open_socket'; choose from: t, open"):
        plot({"t": 0.0, "open_sockets": 1})
    with pytest.raises(ConfigError, match=r"metrics must be a list"):
        LivePlot("stale")


@pytest.mark.live
def test_a_live_run_is_drawn_while_it_runs():
    handle = FakeHandle()
    finished: list[float] = []
    with LivePlot(display=lambda fig: handle) as plot:
        result = simkit.run(
            "reload-storm", "postmortem-safe", tabs=10, duration=20, runtime="live", on_sample=plot
        )
        finished.append(len(handle.figures))
    assert len(plot.rows) == len(result.timeseries) > 20
    assert finished[0] >= 3  # redrawn several times before the run returned, not only at the end


def test_live_plot_draws_successive_runs_side_by_side():
    handle = FakeHandle()
    with LivePlot(("stale",), runs=["before", "postmortem"], display=lambda fig: handle) as plot:
        c = simkit.compare("reload-storm", ["before", "postmortem"], on_sample=plot, **SIZE)
    lines = handle.figures[-1].axes[0].get_lines()
    labels = [line.get_label() for line in lines]
    assert labels[0] == "before: stale sockets", labels
    assert labels[1].startswith("postmortem: stale sockets"), labels
    for line, name in zip(lines, ["before", "postmortem"], strict=True):
        assert line.get_color() == simkit.plots.colour(name)  # a run is its strategy's colour
        assert list(line.get_ydata()) == list(c.results[name].timeseries["stale"])
