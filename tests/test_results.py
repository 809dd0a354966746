"""What a run hands back to a notebook: the comparison table with chosen columns, the typed
event trace, and the race timeline drawn from it."""

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import pytest

import simkit
from simkit.actors.env import Env
from simkit.results import TABLE_COLUMNS, TRACE_COLUMNS

matplotlib.use("Agg")  # no display needed; set before any figure is made

pytestmark = pytest.mark.timeout(120)

KICK_OLD = simkit.make_strategy("kick-old", registry="kick-old", identity="shared")
SMALL = {"tabs": 20, "duration": 60, "seed": 0, "progress": False}


@pytest.fixture(scope="module")
def comparison() -> simkit.Comparison:
    return simkit.compare("reload-storm", ["before", "postmortem-safe"], tabs=10, duration=30,
                          seed=0, progress=False)  # fmt: skip


@pytest.fixture(scope="module")
def race_run() -> simkit.Result:
    """notebook 02's run: kick-old on a jittery reload-storm, where cleanups race."""
    return simkit.run("reload-storm", KICK_OLD, trace=True, **SMALL)


def test_table_defaults_to_the_usual_columns(comparison) -> None:
    table = comparison.table
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert list(table.index) == ["before", "postmortem-safe"]
    assert table.index.name == "strategy"
    called = comparison.table()
    assert called.equals(pd.DataFrame(table))
    summary = comparison.results["before"].summary
    assert table.loc["before", "connects"] == summary["connects"]


def test_table_columns_are_chosen_in_order(comparison) -> None:
    table = comparison.table(columns=["delivery_ratio", "mean_stale", "pushes_no_route"])
    assert list(table.columns) == ["delivery_ratio", "mean_stale", "pushes_no_route"]
    for name, result in comparison.results.items():
        assert table.loc[name, "pushes_no_route"] == result.summary["pushes_no_route"]
    # What pandas derives from the table is a plain DataFrame, not a callable one.
    assert type(comparison.table.round(2)) is pd.DataFrame


def test_a_bad_table_column_names_itself_and_the_valid_ones(comparison) -> None:
    with pytest.raises(simkit.ConfigError, match=r"'mean_stail'.*mean_stale.*delivery_ratio"):
        comparison.table(columns=["mean_stale", "mean_stail"])
    with pytest.raises(simkit.ConfigError, match="list of names"):
        comparison.table(columns="mean_stale")


def test_the_trace_has_typed_columns(race_run) -> None:
    trace = race_run.trace
    assert tuple(trace.columns) == TRACE_COLUMNS
    dtypes = trace.dtypes.astype(str).to_dict()
    assert dtypes == {
        "time": "float64",
        "conn": "Int64",
        "user": "string",
        "event": "category",
        "code": "Int64",
        "reason": "string",
    }
    assert trace["time"].is_monotonic_increasing
    opens = trace[trace.event == "server-open"]
    assert opens.code.isna().all() and (opens.reason == "").all()
    assert opens.user.str.fullmatch(r"u\d+").all()


def test_the_cleanup_race_reads_off_the_typed_trace(race_run) -> None:
    tr = race_run.trace
    kicks = tr[tr.event == "server-close"]
    assert (kicks.code == 4000).all() and kicks.reason.str.contains("replaced").all()
    late = tr[(tr.event == "server-cleanup") & tr.conn.isin(kicks.conn) & (tr.code == 1001)]
    assert len(late) > 0
    old = late.iloc[0]
    kick = kicks[kicks.conn == old.conn].iloc[0]
    assert kick.user == old.user and kick.time < old.time  # kicked, then cleaned up late
    # The successor registered at the kick, for the same user, before the late cleanup.
    new = tr[(tr.event == "server-open") & (tr.time == kick.time) & (tr.user == old.user)]
    assert len(new) == 1 and new.conn.iloc[0] != old.conn


def test_no_trace_means_no_recording(monkeypatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("Env.log called in a run without trace=True")

    monkeypatch.setattr(Env, "log", refuse)
    r = simkit.run("reload-storm", KICK_OLD, tabs=5, duration=20, seed=0, progress=False)
    assert r.trace is None and r.summary["connects"] > 5


def test_the_trace_is_deterministic(race_run) -> None:
    again = simkit.run("reload-storm", KICK_OLD, trace=True, **SMALL)
    pd.testing.assert_frame_equal(race_run.trace, again.trace)


def test_the_timeline_draws_lanes_with_a_legend(race_run) -> None:
    tr = race_run.trace
    old, new = 3, 7  # notebook 02's race in this run
    fig = race_run.plot_timeline(
        [old, new], labels=["old page", "new page"], shade=(2.0, 3.0), shade_label="unroutable",
        xlim=(1.0, 3.0),
    )  # fmt: skip
    try:
        assert isinstance(fig, matplotlib.figure.Figure)
        ax = fig.axes[0]
        names = [t.get_text() for t in ax.get_legend().get_texts()]
        events = set(tr.loc[tr.conn.isin([old, new]), "event"].astype(str))
        for event in events:
            assert any(name.startswith(f"{event}:") for name in names), (event, names)
        assert "unroutable" in names
        assert [t.get_text() for t in ax.get_yticklabels()] == ["old page", "new page"]
        # the zoom is widened on the left to show the first event of the two connections
        first = float(tr.loc[tr.conn.isin([old, new]), "time"].min())
        low, high = ax.get_xlim()
        assert low < first < 1.0 and high == 3.0
        codes = {t.get_text() for t in ax.texts}
        assert {"4000", "1001"} <= codes
    finally:
        plt.close(fig)


def test_the_timeline_refuses_what_it_cannot_draw(race_run) -> None:
    with pytest.raises(simkit.ConfigError, match=r"\[99999\] are not in the trace"):
        race_run.plot_timeline([3, 99999])
    with pytest.raises(simkit.ConfigError, match="labels"):
        race_run.plot_timeline([3, 7], labels=["only one"])
    untraced = simkit.run("reload-storm", KICK_OLD, tabs=2, duration=5, progress=False)
    with pytest.raises(simkit.ConfigError, match="trace=True"):
        untraced.plot_timeline([1])


def test_comparison_plot_keeps_coinciding_strategies_apart_and_marks_live_tabs() -> None:
    """A room must tell overlapping strategies apart (``before`` and ``postmortem`` draw the
    same open sockets) and see what a correct strategy converges to."""
    import matplotlib.pyplot as plt

    c = simkit.compare("reload-storm", ["before", "postmortem", "postmortem-safe"], tabs=20,
                       duration=60)  # fmt: skip
    fig = c.plot()
    try:
        top = fig.axes[0]
        labels = [line.get_label() for line in top.get_lines()]
        assert labels[:4] == ["live tabs", "before", "postmortem", "postmortem-safe"]
        styles = [(line.get_linestyle(), line.get_linewidth()) for line in top.get_lines()[1:4]]
        assert len(set(styles)) == 3, styles
        legend = [t.get_text() for t in top.get_legend().get_texts()]
        assert {"live tabs", "workload ends", "before", "postmortem"} <= set(legend)
    finally:
        plt.close(fig)


def test_means_cover_the_workload_so_settle_time_does_not_move_them() -> None:
    """The same strategy, scenario and seed gives the same mean whatever the settle (compare
    settles as long as its slowest strategy needs): notebooks 01 and 04 quote one number."""
    short = simkit.run("reload-storm", "before", settle=10, **SMALL)
    long = simkit.run("reload-storm", "before", settle=80, **SMALL)
    ts = long.timeseries
    assert ts["t"].max() > SMALL["duration"] + 60  # the long run really settled longer
    for metric in ("open_sockets", "stale", "unroutable", "live_tabs"):
        assert short.summary[f"mean_{metric}"] == long.summary[f"mean_{metric}"]
        expected = ts.loc[ts["t"] <= SMALL["duration"], metric].mean()
        assert long.summary[f"mean_{metric}"] == round(float(expected), 6)
    # the mean differs from one taken over the whole run, settle included
    assert long.summary["mean_stale"] != round(float(ts["stale"].mean()), 6)
    # finals are after settling: the long settle reaps what the short one cannot
    assert long.summary["final_open_sockets"] <= short.summary["final_open_sockets"]


def test_notebooks_01_and_04_compare_the_same_run_to_the_same_mean() -> None:
    """01 compares before/postmortem/postmortem-safe, 04 compares other strategies with a
    different settle; `before` on the same scenario and seed must show one mean stale."""
    kw = {"tabs": 100, "duration": 120, "seed": 0, "progress": False}
    in_01 = simkit.compare("reload-storm", ["before", "postmortem", "postmortem-safe"], **kw)
    alone = simkit.run("reload-storm", "before", **kw)
    assert in_01.results["before"].summary["settle"] != alone.summary["settle"]
    assert in_01.results["before"].summary["mean_stale"] == alone.summary["mean_stale"]
