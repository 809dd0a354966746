"""The live half of ``make bench`` measures what it says it measures.

No speed targets here (they live in ``make bench``): these tests check the counts behind
the figures (every connection made was served and cleaned up, every held connection is
counted by the server itself) and that the helper processes never outlive the bench.
"""

import json
import os
import time
from pathlib import Path

import pytest

from benchmarks import live as live_bench
from benchmarks.processes import Child
from benchmarks.run import run_bench, table

pytestmark = pytest.mark.live

TINY_CHURN = (40, 8, 2)  # connections per run, concurrency, rounds
TINY_CAPACITY = (150, 1)  # connections held, rounds


def children() -> set[int]:
    """Processes whose parent is this one (from /proc: no extra dependency)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid() and fields[0] != "Z":
                found.add(int(entry.name))
    return found


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture(scope="module")
def report(monkeypatch_module):
    monkeypatch_module.setattr(live_bench, "CHURN_QUICK", TINY_CHURN)
    monkeypatch_module.setattr(live_bench, "CAPACITY_QUICK", TINY_CAPACITY)
    before = children()
    out = run_bench(
        sizes=((20, 60.0),),
        repeats=1,
        agreement_size=(20, 60.0, 3),
        scale=None,
        quick=True,
        live=True,
        log=lambda line: None,
    )
    out["children_left"] = sorted(children() - before)
    return out


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.mark.parametrize("engine", live_bench.ENGINES)
def test_churn_serves_and_cleans_up_every_connection_it_counts(engine) -> None:
    run = live_bench.churn_once(engine, 30, 6)
    assert run["conns"] == run["server_connects"] == run["pushes_received"] == 30
    assert run["open_after"] == run["registry_after"] == 0
    if engine != "raw":
        assert run["census_open_after"] == 0
        assert run["events_logged"] == 60  # an open and a cleanup per connection
        assert run["samples"] >= 1  # the observer sampled the census while it ran
    assert run["conns_per_s"] == pytest.approx(30 / run["seconds"])
    assert run["cpu_s"] > 0 and run["cpu_us_per_conn"] == pytest.approx(run["cpu_s"] / 30 * 1e6)


def test_live_section_is_in_the_report_json_and_the_table(report) -> None:
    live = json.loads(json.dumps(report))["live"]
    assert live["problems"] == []
    churn = live["churn"]
    assert [len(churn[e]["runs"]) for e in live_bench.ENGINES] == [TINY_CHURN[2]] * 3
    assert len(churn["ratio_simkit_over_raw"]["per_pair"]) == TINY_CHURN[2]
    text = table(report)
    assert "live churn" in text and "simkit/raw" in text and "B/conn" in text


@pytest.mark.parametrize("kind", live_bench.SERVERS)
def test_capacity_holds_every_connection_by_the_servers_own_count(report, kind) -> None:
    n = TINY_CAPACITY[0]
    run = report["live"]["capacity"][kind]["runs"][0]
    assert run["opened"] == n and run["failed"] == 0
    assert run["server_count"] == run["server_counts_held"]["registry"] == n
    if kind == "simkit":
        assert run["server_counts_held"]["census_open"] == n
    # every warm-up and held connection went through the server, and all were closed
    assert run["server_counts_held"]["connects"] == n + live_bench.CAPACITY_WARMUP
    assert run["server_count_after_close"] == run["registry_after_close"] == 0
    assert run["server_rss_held_kib"] > run["server_rss_before_kib"]
    assert gone(run["server_pid"]) and gone(run["client_pid"])


def test_no_helper_process_outlives_the_bench(report) -> None:
    assert report["children_left"] == []


def test_helpers_are_cleaned_up_when_a_measurement_fails() -> None:
    before = children()
    with pytest.raises(RuntimeError, match="unknown server"):
        live_bench.capacity("nonsense", 10, log=lambda line: None)
    assert children() - before == set()


def test_a_helper_that_does_not_answer_times_out_and_is_killed() -> None:
    # A churn child reads no commands and would run for minutes: a reply deadline ends the
    # wait, and close() kills what did not exit on its own.
    child = Child(live_bench.CHURN, 1_000_000, 1, 1)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        child.reply(timeout=0.5)
    child.close(timeout=1.0)
    assert time.monotonic() - started < 30
    assert child.proc.returncode is not None and gone(child.pid)
