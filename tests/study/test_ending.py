"""A sweep always ends, and says how: every run failing still writes failures.csv and exits
1, a cluster without workers fails the runs it never played after a bound instead of
waiting forever, and a scheduler address where nothing listens is one line and exit 2,
within seconds."""

from __future__ import annotations

import socket
import time
import warnings

import pandas as pd
import pytest

import simkit
from simkit import cli
from simkit.scenarios import SCENARIOS, reload_storm
from simkit.study import SchedulerUnreachable, SweepWarning, close_default_cluster


async def always_fails(tab, sc):
    """reload-storm, except that every tab's script breaks at once."""
    raise RuntimeError("this script breaks on purpose")
    await reload_storm(tab, sc)  # pragma: no cover


BROKEN = SCENARIOS["reload-storm"].with_(name="broken", script=always_fails)
TINY = ["--seeds=2", "--tabs=10", "--duration=10"]


@pytest.fixture(autouse=True)
def no_default_cluster_left():
    yield
    close_default_cluster()


def free_port() -> int:
    """A port nothing listens on: bound, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_every_run_failing_still_gives_a_tidy_summary():
    with pytest.warns(SweepWarning, match=r"2 of 2 runs failed, none completed"):
        study = simkit.sweep(
            BROKEN, "before", seeds=2, tabs=10, duration=10, scheduler="synchronous", progress=False
        )
    assert study.runs.empty and len(study.failures) == 2
    tidy = study.tidy()  # was KeyError: "['mean', 'sd', 'n', 'ci95', 'low', 'high'] not in index"
    assert tidy.empty
    assert list(tidy.columns) == ["scenario", "strategy", "metric", *simkit.study.STATS]


def test_cli_sweep_where_every_run_fails_writes_failures_and_exits_1(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(SCENARIOS, "broken", BROKEN)
    out = tmp_path / "study"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SweepWarning)
        code = cli.main(
            [
                *("sweep", "--scenarios=broken", "--strategies=before,postmortem-safe", *TINY),
                *("--scheduler=synchronous", f"--out={out}"),
            ]
        )
    assert code == 1
    failures = pd.read_csv(out / "failures.csv")
    assert len(failures) == 4
    assert failures["error"].str.contains("this script breaks on purpose").all()
    assert failures["arguments"].iloc[0] == (
        "scenario='broken', strategy='before', seed=0, tabs=10, duration=10"
    )
    assert (out / "runs.csv").exists() and (out / "summary.csv").exists()
    assert not (out / "sweep.png").exists()  # nothing to plot
    err = capsys.readouterr().err
    assert "run(s) failed: ScriptFailed: scenario 'broken'" in err
    assert "this script breaks on purpose" in err
    assert "Traceback" not in err


@pytest.fixture
def no_workers():
    """A scheduler on 127.0.0.1 (in this process) with no worker at all."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=0, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None
    ) as cluster:
        yield cluster


@pytest.mark.timeout(60)
def test_a_cluster_without_workers_fails_the_runs_after_the_bound(no_workers):
    from distributed import Client

    started = time.monotonic()
    with (
        Client(no_workers) as client,
        pytest.warns(SweepWarning, match=r"2 of 2 runs failed.*no live Dask worker for 1 s"),
    ):
        study = simkit.sweep(
            "reload-storm", "before", seeds=2, tabs=10, duration=10, client=client,
            progress=False, no_workers_timeout=1,
        )  # fmt: skip
    assert time.monotonic() - started < 15  # the bound, plus a check a second
    assert study.runs.empty
    assert study.failures["error"].str.startswith("NoWorkers: no live Dask worker for 1 s").all()
    assert list(study.failures["seed"]) == [0, 1]


@pytest.mark.timeout(60)
def test_cli_sweep_on_a_cluster_without_workers_writes_failures_and_exits_1(
    no_workers, tmp_path, capsys
):
    out = tmp_path / "study"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SweepWarning)
        code = cli.main(
            [
                *("sweep", "--strategies=before", *TINY),
                *(f"--scheduler={no_workers.scheduler_address}", "--no-workers-timeout=1"),
                f"--out={out}",
            ]
        )
    assert code == 1
    failures = pd.read_csv(out / "failures.csv")
    assert len(failures) == 2
    assert failures["error"].str.contains("no live Dask worker for 1 s").all()
    assert "2 run(s) failed: NoWorkers: no live Dask worker for 1 s" in capsys.readouterr().err


@pytest.mark.parametrize("value", [0, -1, float("inf"), "10", True])
def test_no_workers_timeout_must_be_seconds(value):
    with pytest.raises(simkit.ConfigError, match=r"no_workers_timeout must be a number of sec"):
        simkit.sweep("reload-storm", "before", seeds=1, tabs=10, duration=10,
                     no_workers_timeout=value)  # fmt: skip


@pytest.mark.timeout(30)
def test_a_closed_scheduler_is_one_line_and_exit_2_within_seconds(tmp_path, capfd):
    address = f"tcp://127.0.0.1:{free_port()}"
    started = time.monotonic()
    args = ["sweep", "--strategies=before", *TINY, f"--scheduler={address}", f"--out={tmp_path}"]
    code = cli.main(args)
    elapsed = time.monotonic() - started
    err = capfd.readouterr().err
    assert code == 2
    assert elapsed < 5, elapsed  # was 31 s: Dask retries for its 30 s connect timeout
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # was 58 lines and two tracebacks
    assert lines[0].startswith(f"python -m simkit: error: no Dask scheduler answers at {address}")


def test_a_closed_scheduler_is_an_error_naming_it():
    address = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(SchedulerUnreachable, match=rf"no Dask scheduler answers at {address}"):
        simkit.sweep("reload-storm", "before", seeds=1, tabs=10, duration=10, scheduler=address)
