"""The benchmark's SimPy yardstick plays the same model as simkit's ``reference`` scenario.

Speed targets live in ``make bench``, never here; these tests only hold the two models
against each other (and keep the bench's report code from rotting).
"""

import json

import pytest

pytest.importorskip("simpy")

from benchmarks import virtual
from benchmarks.run import run_bench, table
from simkit.api import default_settle
from simkit.scenarios import SCENARIOS

TABS, DURATION, SEEDS = 200, 1_200.0, 10


@pytest.fixture(scope="module")
def agreement():
    return virtual.agreement(TABS, DURATION, SEEDS)


def test_simpy_model_settles_as_long_as_simkit() -> None:
    strategy = SCENARIOS["reference"].strategy
    assert default_settle(strategy) == virtual.reference_model().SETTLE


@pytest.mark.parametrize("metric", virtual.METRICS)
def test_models_agree_within_three_standard_errors(agreement, metric) -> None:
    # Independent random streams, 10 seeds each: the difference of the two engines' means
    # must lie within 3 standard errors (deterministic seeds: pass or fail, never flaky).
    m = agreement["metrics"][metric]
    assert abs(m["z"]) <= virtual.Z_LIMIT, m


@pytest.mark.parametrize("metric", virtual.METRICS)
def test_same_streams_give_the_same_trajectory(agreement, metric) -> None:
    # SimPy fed simkit's per-tab streams must reproduce simkit's run: equal connects, equal
    # means (any deviation from the written model, however small, shows up here).
    m = agreement["metrics"][metric]
    assert m["same_streams_exact"], m


def test_bench_report_is_written_and_printed(tmp_path) -> None:
    report = run_bench(
        sizes=((20, 60.0),),
        repeats=2,
        agreement_size=(20, 60.0, 3),
        scale=None,
        quick=True,
        log=lambda line: None,
    )
    out = tmp_path / "latest.json"
    out.write_text(json.dumps(report))
    row = json.loads(out.read_text())["timing"][0]
    assert row["simkit"]["events"][0] > row["simkit"]["connects"][0] > 0
    assert row["simpy"]["peak_rss_mb"]["max"] > 0
    assert len(row["ratio_simkit_over_simpy"]["per_pair"]) == 2
    assert len(row["cpu_ratio_simkit_over_simpy"]["per_pair"]) == 2
    # The naive yardstick is timed alongside and plays the same trajectory.
    assert row["simpy_ticking"]["connects"] == row["simpy"]["connects"]
    assert row["simpy_ticking"]["events"][0] > row["simpy"]["events"][0]
    assert "simkit" in table(report) and "ticking" in table(report)


def test_careful_and_ticking_yardsticks_give_the_same_trajectory() -> None:
    careful = virtual.run_simpy(300, 900.0, 4)
    ticking = virtual.run_simpy_ticking(300, 900.0, 4)
    for metric in virtual.METRICS:
        assert careful[metric] == ticking[metric], metric
    assert careful["events"] < ticking["events"] / 2  # and it does less than half the work


def test_scaling_plot_is_drawn(tmp_path) -> None:
    rows = [
        {"engine": engine, "tabs": tabs, "duration": 60.0, "cpu_s": tabs / k, "peak_rss_mb": k}
        for engine, k in (("simpy", 100.0), ("simkit", 200.0))
        for tabs in (1_000, 10_000)
    ]
    out = virtual.plot_scaling(rows, tmp_path / "scale.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size < 200_000


def test_simpy_model_uses_simkits_calibrated_close_delay() -> None:
    # simkit's default comes from the Chromium calibration; a recalibration must move both.
    from simkit.calibration import TIMING

    assert TIMING.unload_close == virtual.reference_model().BROWSER_CLOSE_DELAY
