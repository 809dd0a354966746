"""The helpers every benchmark shares, and the entry points' arguments."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import benchmarks
from benchmarks import common, processes, run, soak


def test_spread_is_min_median_max_and_refuses_nothing() -> None:
    assert common.spread([3.0, 1.0, 2.0, 10.0]) == {"min": 1.0, "median": 2.5, "max": 10.0}
    with pytest.raises(ValueError, match="at least one value"):
        common.spread([])


def test_results_sit_next_to_the_benchmarks_package_not_simkit() -> None:
    package = Path(benchmarks.__file__).resolve().parent
    assert package / "results" == common.RESULTS
    assert run.LATEST.name == "latest.json" and run.QUICK.name == "quick.json"
    assert run.LATEST.parent == run.QUICK.parent == soak.SOAK.parent == common.RESULTS
    assert (common.ROOT / "pyproject.toml").is_file()  # helper processes start here


def test_write_json_creates_the_folder(tmp_path) -> None:
    out = common.write_json({"a": [1, 2]}, tmp_path / "new" / "r.json")
    assert json.loads(out.read_text()) == {"a": [1, 2]}


def test_memory_readers_read_this_process() -> None:
    rss = common.rss_kib()
    assert rss > 1_000  # an interpreter with pytest loaded holds more than 1 MB
    assert common.peak_rss_mb() * 1024 >= rss
    assert common.proc_status_kib("NoSuchField") is None
    assert common.open_fds() >= 3


def test_a_fresh_process_runs_only_benchmarks_functions() -> None:
    with pytest.raises(ValueError, match="got 'os:system'"):
        processes.python_command("os:system", "true")
    out = processes.run_once("benchmarks.processes:say", {"x": 1})
    assert out == {"x": 1}


def test_a_quick_run_never_overwrites_the_full_figures(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setattr(run, "QUICK", tmp_path / "quick.json")
    monkeypatch.setattr(run, "LATEST", tmp_path / "latest.json")
    report = {"agreement": {"agree": True}, "live": {"problems": []}, "bench_wall_s": 1.0}
    quick = []
    monkeypatch.setattr(run, "run_bench", lambda **kw: quick.append(kw["quick"]) or report)
    monkeypatch.setattr(run, "table", lambda report: "the table")
    assert run.main(["--quick"]) == 0
    assert (tmp_path / "quick.json").exists() and not (tmp_path / "latest.json").exists()
    assert run.main([]) == 0
    assert json.loads((tmp_path / "latest.json").read_text()) == report
    assert run.main(["--out", str(tmp_path / "x.json")]) == 0
    assert (tmp_path / "x.json").exists() and quick == [True, False, False]
    report["live"]["problems"] = ["churn raw: 1 server connects for 2 connections"]
    assert run.main(["--quick"]) == 1  # figures that cannot be trusted fail the run
    assert "the table" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--minutes", "-1"], "--minutes must be >= 0, got -1.0"),
        (["--tabs", "0", "--minutes", "0"], "tabs must be a whole number >= 1, got 0"),
    ],
)
def test_soak_refuses_bad_arguments_with_exit_2(argv, message, tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", *argv, "--out", str(tmp_path / "s.json")],
        cwd=common.ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert not (tmp_path / "s.json").exists()
