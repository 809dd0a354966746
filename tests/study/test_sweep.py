"""simkit.study: each row of simkit.sweep is exactly simkit.run's numbers, the frame is the
same on any cluster, a failing run is reported with its arguments while the rest complete, knobs are
addressed by name, the aggregate's intervals are right, the study plots and the CLI."""

from __future__ import annotations

import importlib
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

import simkit
from simkit import cli
from simkit.model.errors import ConfigError
from simkit.model.latency import Latency
from simkit.plots import pareto_front
from simkit.scenarios import SCENARIOS, reload_storm
from simkit.study import (
    KNOBS,
    STATS,
    Sweep,
    SweepWarning,
    apply_knobs,
    close_default_cluster,
    local_cluster,
    t975,
)

matplotlib.use("Agg")

SMALL = {"tabs": 30, "duration": 40}


@pytest.fixture(autouse=True)
def no_default_cluster_left():
    """A test that starts the kept default cluster shuts it down: the rest of the session
    must not share its cores with two idle workers."""
    yield
    close_default_cluster()


def small(**changes):
    args = {
        "scenarios": ["reload-storm", "flaky-network"],
        "strategies": ["before", "postmortem-safe"],
        "grid": {"heartbeat": [10, 30]},
        "seeds": 2,
        "scheduler": "synchronous",
        "progress": False,
        **SMALL,
    }
    args.update(changes)
    return simkit.sweep(**args)


def test_every_row_is_exactly_what_run_gives():
    study = small()
    assert isinstance(study, Sweep)
    assert len(study.runs) == 2 * 2 * 2 * 2
    assert list(study.runs.columns[:4]) == ["scenario", "strategy", "seed", "heartbeat"]
    settle = study.runs["settle"].iloc[0]
    assert (study.runs["settle"] == settle).all()  # one time span for every run
    for _, row in study.runs.iterrows():
        sc, strat = apply_knobs(
            SCENARIOS[row.scenario], simkit.STRATEGIES[row.strategy], {"heartbeat": row.heartbeat}
        )
        summary = simkit.run(sc, strat, seed=int(row.seed), settle=settle, **SMALL).summary
        for key, value in summary.items():
            if key in ("scenario", "strategy", "runtime", "scale"):
                continue
            got = row[key]
            if isinstance(value, float) and math.isnan(value):
                assert math.isnan(got), key
            else:
                assert got == value, (key, row.scenario, row.strategy, row.seed)
    # and the knob mattered: a heartbeat on the naive design reaps stale sockets sooner
    stale = study.summary[("mean_stale", "mean")]
    assert stale.loc[("flaky-network", "before", 10)] < stale.loc[("flaky-network", "before", 30)]


def test_same_frame_in_process_and_on_an_in_process_dask_cluster():
    from distributed import Client, LocalCluster

    expected = small(seeds=[3, 1])
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        got = small(seeds=[3, 1], scheduler=None, client=client)
        assert client.status == "running"  # a client given is left open
    pd.testing.assert_frame_equal(got.runs, expected.runs)
    pd.testing.assert_frame_equal(got.summary, expected.summary)
    assert list(got.runs["seed"][:2]) == [3, 1]  # the order asked for, not finishing order


@pytest.mark.slow
def test_same_frame_in_process_one_worker_and_two_workers(capfd):
    expected = small()
    one = small(scheduler=None, workers=1)
    two = small(scheduler=None, workers=2)
    out, err = capfd.readouterr()
    assert "distributed." not in err + out  # workers stay quiet: notebooks compare stderr
    pd.testing.assert_frame_equal(one.runs, expected.runs)
    pd.testing.assert_frame_equal(two.runs, expected.runs)
    pd.testing.assert_frame_equal(two.summary, expected.summary)


def _profiling() -> bool:
    import dask

    return bool(dask.config.get("distributed.worker.profile.enabled"))


@pytest.mark.slow
def test_the_default_cluster_is_kept_between_sweeps_and_shut_down_when_idle(monkeypatch):
    cluster_module = importlib.import_module("simkit.study.cluster")
    first = small(scheduler=None, workers=1, seeds=1)
    kept = cluster_module._default
    assert kept is not None and kept.alive() and kept.timer is not None  # idle timer armed
    # its workers skip Dask's statistical profiler (measured: 5-6 % of each run's CPU)
    assert list(kept.client.run(_profiling).values()) == [False]
    again = small(scheduler=None, workers=1, seeds=1)
    assert cluster_module._default is kept  # the same cluster, not a new one
    pd.testing.assert_frame_equal(again.runs, first.runs)
    small(scheduler=None, workers=2, seeds=1)  # another size replaces it
    replaced = cluster_module._default
    assert replaced is not kept and replaced.workers == 2 and not kept.alive()
    monkeypatch.setattr(simkit.study, "KEEP_IDLE", 0.2)  # the documented name, as written
    small(scheduler=None, workers=2, seeds=1)
    deadline = time.monotonic() + 10
    while cluster_module._default is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cluster_module._default is None and not replaced.alive()  # idle: shut down
    small(scheduler=None, workers=1, seeds=1)  # the next sweep starts one again
    close_default_cluster()
    assert cluster_module._default is None


@pytest.mark.slow
def test_scheduler_address_reaches_an_existing_cluster():
    with local_cluster(1) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        got = small(scheduler=cluster.scheduler_address, seeds=1)
    pd.testing.assert_frame_equal(got.runs, small(seeds=1).runs)


async def fails_on_fast_pushes(tab, sc):
    """reload-storm, except that a push rate of 0.5 breaks every tab's script."""
    if sc.push_rate == 0.5:
        raise RuntimeError("this script breaks on purpose")
    await reload_storm(tab, sc)


FRAGILE = SCENARIOS["reload-storm"].with_(name="fragile", script=fails_on_fast_pushes)


@pytest.mark.parametrize("where", ["synchronous", "dask"])
def test_a_failing_run_is_reported_with_its_arguments_and_the_rest_complete(where):
    args = {
        "scenarios": FRAGILE,
        "strategies": "postmortem-safe",
        "grid": {"push_rate": [0.05, 0.5]},
        "seeds": 2,
        "progress": False,
        **SMALL,
    }
    if where == "synchronous":
        with pytest.warns(SweepWarning, match=r"2 of 4 runs failed") as caught:
            study = simkit.sweep(**args, scheduler="synchronous")
    else:
        from distributed import Client, LocalCluster

        with (
            LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster,
            Client(cluster) as client,
            pytest.warns(SweepWarning, match=r"2 of 4 runs failed") as caught,
        ):
            study = simkit.sweep(**args, client=client)
    assert "push_rate=0.5" in str(caught[0].message)
    assert list(study.runs["push_rate"]) == [0.05, 0.05]
    assert list(study.failures["push_rate"]) == [0.5, 0.5]
    assert list(study.failures["seed"]) == [0, 1]
    assert study.failures["error"].str.contains("this script breaks on purpose").all()
    assert study.failures["arguments"].iloc[0] == (
        "scenario='fragile', strategy='postmortem-safe', seed=0, tabs=30, duration=40, "
        "push_rate=0.5"
    )
    assert study.summary.index.tolist() == [("fragile", "postmortem-safe", 0.05)]


def test_unknown_grid_key_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown grid key 'heartbeet'; choose one of: ") as e:
        small(grid={"heartbeet": [10]})
    for key in ("heartbeat", "backoff", "guard_wait", "latency", "jitter", "idle_timeout"):
        assert key in str(e.value)


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"heartbeat": [-1]}, r"heartbeat takes numbers > 0, got -1"),
        ({"heartbeat": ["fast"]}, r"heartbeat takes finite numbers, got 'fast'"),
        ({"backoff": ["slow"]}, r"unknown backoff 'slow'; choose one of: immediate"),
        ({"registry": ["nope"]}, r"unknown registry 'nope'"),
        ({"heartbeat_kind": ["tcp"]}, r"unknown heartbeat_kind 'tcp'; choose one of: protocol"),
        ({"heartbeat": [10], "heartbeat_interval": [5]}, r"heartbeat sets both"),
        ({"backoff_factor": [0.5]}, r"backoff factor must be >= 1"),
        ({"tabs": [0]}, r"tabs must be a whole number >= 1, got 0"),
        ({"jitter": [-0.1]}, r"jitter takes numbers >= 0"),
        ({"heartbeat": []}, r"grid\['heartbeat'\] is empty"),
        ({"heartbeat": 10}, r"grid\['heartbeat'\] must be a list of values, got 10"),
    ],
)
def test_bad_grid_values_are_config_errors_before_anything_runs(grid, message):
    with pytest.raises(ConfigError, match=message):
        small(grid=grid, tabs=None)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scheduler": "threads"}, r"unknown scheduler 'threads'; choose one of: synchronous"),
        ({"scheduler": "synchronous", "client": object()}, r"client= or scheduler=, not both"),
        ({"scheduler": None, "workers": 0}, r"workers must be a whole number >= 1, got 0"),
        ({"seeds": 0}, r"seeds must be a number >= 1"),
        ({"seeds": [1, 1]}, r"seeds must be distinct whole numbers"),
        ({"strategies": ["before", "before"]}, r"strategy names must differ"),
        ({"strategies": ["nonsense"]}, r"unknown strategy 'nonsense'"),
        ({"grid": {"tabs": [10]}}, r"tabs is both a grid key and an argument"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        small(**kwargs)


def test_knobs_reach_the_strategy_and_the_scenario():
    base_sc, before = SCENARIOS["reload-storm"], simkit.STRATEGIES["before"]
    sc, strat = apply_knobs(base_sc, before, {"heartbeat_interval": 7})
    assert (strat.liveness.interval, strat.liveness.timeout) == (7.0, 7.0)  # off had no half
    safe = simkit.STRATEGIES["postmortem-safe"]
    _, strat = apply_knobs(base_sc, safe, {"heartbeat_timeout": 50})
    assert (strat.liveness.interval, strat.liveness.timeout) == (20.0, 50.0)
    _, strat = apply_knobs(base_sc, safe, {"heartbeat": None})
    assert not strat.liveness.enabled
    _, strat = apply_knobs(base_sc, safe, {"liveness": "app", "heartbeat": 15})
    assert (strat.liveness.kind, strat.liveness.interval) == ("app", 15.0)
    _, strat = apply_knobs(
        base_sc, safe, {"backoff": "full-jitter", "backoff_max": 9, "guard_wait": 1}
    )
    assert (strat.client.backoff.mode, strat.client.backoff.max_delay) == ("full-jitter", 9.0)
    assert strat.client.guard_wait == 1.0 and strat.name == "postmortem-safe"
    _, strat = apply_knobs(base_sc, safe, {"registry": "multi", "identity": "per-tab"})
    assert strat.registry().name == "multi" and strat.client.identity == "per-tab"
    sc, _ = apply_knobs(base_sc, safe, {"latency": 0.1, "push_rate": 0.2, "idle_timeout": 30})
    assert sc.latency == Latency(0.1, base_sc.latency.jitter)
    assert (sc.push_rate, sc.idle_timeout) == (0.2, 30.0)
    sc, _ = apply_knobs(sc, safe, {"jitter": 0.0, "idle_timeout": None})
    assert sc.latency == Latency(0.1, 0.0) and sc.idle_timeout is None
    assert apply_knobs(base_sc, safe, {}) == (base_sc, safe)
    assert set(KNOBS) >= {"heartbeat", "backoff", "guard_wait", "latency", "tabs", "push_rate"}


def test_tabs_and_duration_can_be_grid_keys():
    study = simkit.sweep(
        "reload-storm",
        "postmortem-safe",
        grid={"tabs": [10, 20], "duration": [30]},
        seeds=1,
        scheduler="synchronous",
        progress=False,
    )
    assert list(study.runs["tabs"]) == [10, 20]
    assert study.runs["mean_live_tabs"].iloc[1] > study.runs["mean_live_tabs"].iloc[0]


def test_aggregate_mean_and_interval_over_seeds():
    study = small(seeds=4, scenarios="flaky-network", strategies="before", grid={"heartbeat": [10]})
    values = list(study.runs["mean_stale"])
    stats = study.metric("mean_stale").iloc[0]
    assert stats["mean"] == pytest.approx(statistics.fmean(values))
    assert stats["sd"] == pytest.approx(statistics.stdev(values))
    assert stats["n"] == 4
    assert stats["ci95"] == pytest.approx(3.182 * statistics.stdev(values) / 2)
    assert stats["low"] == pytest.approx(stats["mean"] - stats["ci95"])
    tidy = study.tidy()
    assert list(tidy.columns) == ["scenario", "strategy", "heartbeat", "metric", *STATS]
    assert tidy.set_index("metric").loc["mean_stale", "mean"] == pytest.approx(stats["mean"])
    # booleans average to the share of seeds where they held
    assert 0 <= study.metric("invariants_hold")["mean"].iloc[0] <= 1
    with pytest.raises(ConfigError, match=r"unknown metric 'stale'; choose one of: "):
        study.metric("stale")


def test_t975_matches_students_t():
    assert math.isnan(t975(1))
    assert t975(2) == 12.706 and t975(31) == 2.042
    assert t975(41) == pytest.approx(2.021, abs=1e-3)
    assert t975(121) == pytest.approx(1.980, abs=1e-3)
    assert t975(10_000) == pytest.approx(1.960, abs=1e-3)


def test_study_plots_draw_points_in_parameter_order_and_the_pareto_front():
    study = small(scenarios="flaky-network", grid={"heartbeat": [40, 10, 20]})
    fig = study.plot("mean_stale")
    ax = fig.axes[0]
    line = ax.get_lines()[0]
    assert list(line.get_xdata()) == [10.0, 20.0, 40.0]  # grid said 40, 10, 20
    expected = study.metric("mean_stale").xs("before", level="strategy")["mean"]
    assert list(line.get_ydata()) == [expected.loc[("flaky-network", v)] for v in (10, 20, 40)]
    assert len(ax.collections) == 2  # one 95 % band per strategy
    fig = study.tradeoff("heartbeat_pings", "mean_stale")
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert labels[:3] == ["heartbeat=10", "heartbeat=20", "heartbeat=40"]
    assert "Pareto front" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    with pytest.raises(ConfigError, match=r"unknown grid key 'backoff'; choose one of: heart"):
        study.plot("mean_stale", "backoff")


def test_pareto_front():
    points = [(1, 5), (2, 3), (3, 4), (4, 1), (2, 6), (float("nan"), 0)]
    assert pareto_front(points) == [(1, 5), (2, 3), (4, 1)]
    assert pareto_front([]) == []


def test_cli_sweep_writes_runs_summary_and_plot(tmp_path, capsys):
    out = tmp_path / "study"
    code = cli.main(
        [
            "sweep",
            "--scenarios=reload-storm",
            "--strategies=before,postmortem-safe",
            "--grid=heartbeat=10,30",
            "--grid=idle_timeout=none,45",
            "--seeds=2",
            "--tabs=20",
            "--duration=30",
            "--scheduler=synchronous",
            f"--out={out}",
        ]
    )
    assert code == 0
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 2 * 2 * 2 * 2
    assert list(runs.columns[:5]) == ["scenario", "strategy", "seed", "heartbeat", "idle_timeout"]
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["metric"]) >= {"mean_stale", "delivery_ratio"}
    assert (out / "sweep.png").stat().st_size > 10_000
    assert "16 runs, 0 failed; wrote" in capsys.readouterr().out


def test_cli_sweep_bad_grid_exits_2(tmp_path, capsys):
    code = cli.main(["sweep", "--grid=heartbeet=1", "--scheduler=synchronous", f"--out={tmp_path}"])
    assert code == 2
    assert "unknown grid key 'heartbeet'; choose one of: heartbeat" in capsys.readouterr().err
    assert cli.main(["sweep", "--grid=heartbeat", f"--out={tmp_path}"]) == 2
    assert "--grid takes KEY=V1,V2" in capsys.readouterr().err


def test_keep_idle_is_read_where_the_docs_name_it(monkeypatch):
    from simkit.study import cluster

    assert cluster.keep_idle() == cluster.KEEP_IDLE == 300.0
    monkeypatch.setattr(simkit.study, "KEEP_IDLE", 7)  # what a user writes
    assert cluster.keep_idle() == 7.0


def test_the_documented_names_work_as_written_in_a_fresh_python():
    """``simkit.sweep`` is the function and ``simkit.study`` the module, reached from a bare
    ``import simkit`` (no name clash, no import of the submodule first)."""
    code = (
        "import simkit, types\n"
        "assert callable(simkit.sweep) and not isinstance(simkit.sweep, types.ModuleType)\n"
        "simkit.study.close_default_cluster()\n"
        "print(simkit.study.KEEP_IDLE)\n"
        "from simkit.study import local_cluster, plan, Sweep, sweep\n"
        "assert sweep is simkit.sweep and Sweep is simkit.Sweep and callable(plan)\n"
        "import simkit.study.play\n"
        "assert callable(simkit.sweep) and simkit.study.sweep is sweep\n"
    )
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "300.0"
