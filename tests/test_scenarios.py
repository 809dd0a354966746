"""The reference scenario against numbers computed by hand from its definition."""

import pytest

import simkit


@pytest.fixture(scope="module")
def reference():
    return simkit.run("reference", tabs=400, duration=3600, seed=1)


def test_connects_per_tab_hour_match_the_renewal_rate(reference) -> None:
    # A cycle is Exp(60) connected + U(1,3) reloading (mean 2 s): 62 s, so a tab connects
    # 3600 / 62 = 58.1 times an hour, plus its first connect. Tolerance: 3 %.
    s = reference.summary
    per_tab_hour = s["connects"] / s["tabs"]
    assert per_tab_hour == pytest.approx(1 + 3600 / 62, rel=0.03)


def test_mean_open_sockets_match_little_s_law(reference) -> None:
    # Live sockets: a tab is connected 60/62 of the time. Half-open sockets: 30 % of reloads
    # vanish; a vanished socket stays open until the 20 s/20 s heartbeat reaps it (20-40 s
    # after it went silent, mean 30 s) or until the reconnecting tab's kick closes it and
    # the close times out after 10 s (2 s reload + 10 s = 12 s); the kick comes first.
    # Expected open = tabs * (60/62 + 0.3 * 12/62).
    s = reference.summary
    ts = reference.timeseries
    steady = ts[(ts["t"] >= 300) & (ts["t"] < 3600)]
    expected = s["tabs"] * (60 / 62 + 0.3 * 12 / 62)
    assert steady["open_sockets"].mean() == pytest.approx(expected, rel=0.03)
    expected_stale = s["tabs"] * (0.3 * 12 / 62)
    assert steady["stale"].mean() == pytest.approx(expected_stale, rel=0.10)


def test_reference_carries_its_own_strategy(reference) -> None:
    assert reference.summary["strategy"] == "reference"
    assert reference.summary["invariants_hold"]
