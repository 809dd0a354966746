"""simkit.checks: whether a run is valid, the CI gates on its summary, the JUnit report."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

import simkit
from simkit.actors.play import Health
from simkit.checks import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_PASS,
    LIVE_TABS_PER_SCALE,
    check_feasible,
    evaluate,
    exit_status,
    invalid_reasons,
    junit_xml,
    parse_check,
    parse_checks,
)
from simkit.model.errors import ConfigError

SUMMARY = {
    "scenario": "reload-storm",
    "duration": 60.0,
    "settle": 20.0,
    "scale": 0.05,
    "tabs": 100,
    "final_unroutable": 0,
    "final_stale": 3,
    "delivery_ratio": 0.97,
    "invariants_hold": False,
    "run_valid": True,
    "invalid_reasons": [],
    "connects": 10,
    "refused_connects": 0,
}


@pytest.fixture(scope="module")
def small() -> simkit.Result:
    return simkit.run("reload-storm", "postmortem-safe", tabs=20, duration=60)


@pytest.mark.parametrize(
    ("text", "metric", "op", "limit"),
    [
        ("final_unroutable==0", "final_unroutable", "==", 0.0),
        (" delivery_ratio >= 0.99 ", "delivery_ratio", ">=", 0.99),
        ("peak_stale<5", "peak_stale", "<", 5.0),
        ("mean_stale!=1e-3", "mean_stale", "!=", 0.001),
        ("connects>0", "connects", ">", 0.0),
        ("pushes_lost<=2", "pushes_lost", "<=", 2.0),
        ("invariants", "invariants", None, None),
        ("valid", "valid", None, None),
    ],
)
def test_a_check_reads_every_operator_and_the_two_names(text, metric, op, limit) -> None:
    check = parse_check(text)
    assert (check.metric, check.op, check.limit) == (metric, op, limit)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("final_unroutable=0", "METRIC OP NUMBER"),
        ("final_unroutable==zero", "is not a number"),
        ("final_unroutable==nan", "not nan"),
        ("==0", "METRIC OP NUMBER"),
        ("invariant", "METRIC OP NUMBER"),
    ],
)
def test_a_bad_check_is_a_config_error_naming_it(text, message) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_check(text)
    assert repr(text) in str(caught.value)


def test_an_unknown_metric_fails_before_the_run_naming_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="unknown metric 'final_unrotable'") as caught:
        parse_checks(["final_unrotable==0"])
    assert "final_unroutable" in str(caught.value)
    assert parse_checks(["store_errors==0", "samples_late==0"])  # some runtimes' numbers


def test_every_number_of_a_virtual_summary_is_a_known_metric(small) -> None:
    numbers = [
        k
        for k, v in small.summary.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    parse_checks([f"{k}>=0" for k in numbers])  # none refused


def test_checks_name_the_metric_its_value_and_the_limit() -> None:
    outcomes = evaluate(
        parse_checks(["final_unroutable==0", "delivery_ratio>=0.99", "invariants"]),
        {"postmortem": SUMMARY},
    )
    assert [o.passed for o in outcomes] == [True, False, False]
    assert outcomes[1].message == "delivery_ratio = 0.97, limit delivery_ratio >= 0.99 (failed)"
    assert "invariants_hold is False" in outcomes[2].message
    assert "final_stale=3" in outcomes[2].message


def test_nan_fails_every_comparison() -> None:
    (outcome,) = evaluate([parse_check("delivery_ratio<=1")], {"s": {"delivery_ratio": math.nan}})
    assert not outcome.passed


def test_result_check_raises_an_assertion_naming_metric_value_and_limit(small) -> None:
    assert small.check("invariants", "final_unroutable==0") is small
    value = small.summary["final_open_sockets"]
    with pytest.raises(AssertionError) as caught:
        small.check("final_open_sockets<0", "final_unroutable==0")
    assert str(caught.value) == (
        f"final_open_sockets = {value!r}, limit final_open_sockets < 0 (failed)"
    )
    with pytest.raises(ConfigError):
        small.check("final_open_sockets<<0")
    with pytest.raises(ConfigError, match="at least one"):
        small.check()


def test_comparison_check_names_the_strategy_that_failed() -> None:
    c = simkit.compare("reload-storm", ["before", "postmortem-safe"], tabs=20, duration=60)
    c.check("connects>0", "valid")
    with pytest.raises(AssertionError, match=r"^before: invariants: invariants_hold is False"):
        c.check("invariants")


def test_exit_status_invalid_beats_failed_beats_pass() -> None:
    summaries = {"a": SUMMARY}
    passed = evaluate(parse_checks(["final_unroutable==0"]), summaries)
    failed = evaluate(parse_checks(["invariants"]), summaries)
    assert exit_status(passed, summaries.values()) == EXIT_PASS
    assert exit_status(failed, summaries.values()) == EXIT_FAILED
    invalid = {**SUMMARY, "run_valid": False, "invalid_reasons": ["the browser died"]}
    assert exit_status(passed, [invalid]) == EXIT_INVALID
    assert exit_status([], [SUMMARY]) == EXIT_PASS  # invariants alone do not gate


def test_junit_has_one_testcase_per_check_per_strategy_and_validity() -> None:
    invalid = {**SUMMARY, "run_valid": False, "invalid_reasons": ["Chromium exited"]}
    summaries = {"before": invalid, "postmortem-safe": SUMMARY}
    outcomes = evaluate(parse_checks(["final_unroutable==0", "delivery_ratio>=0.99"]), summaries)
    root = ET.fromstring(junit_xml(outcomes, summaries))
    cases = root.findall("testcase")
    assert root.get("tests") == "6" and len(cases) == 6
    assert root.get("failures") == "2" and root.get("errors") == "1"
    names = [(c.get("classname"), c.get("name")) for c in cases]
    assert ("reload-storm.before", "delivery_ratio>=0.99") in names
    (error,) = root.iter("error")
    assert "Chromium exited" in error.get("message", "")
    failure = next(root.iter("failure"))
    assert failure.get("message") == "delivery_ratio = 0.97, limit delivery_ratio >= 0.99 (failed)"


def test_a_virtual_run_of_a_normal_scenario_is_valid(small) -> None:
    assert small.summary["run_valid"] is True and small.valid
    assert small.summary["invalid_reasons"] == []
    assert "samples_late" not in small.summary  # virtual summaries keep their keys


def test_invalid_reasons_name_each_fact() -> None:
    assert invalid_reasons(SUMMARY, Health(realtime=True, samples_due=81, samples_taken=81)) == []
    short = Health(realtime=True, samples_due=81, samples_taken=60)
    (reason,) = invalid_reasons(SUMMARY, short)
    assert "stops short of duration + settle = 80 s: 21 of 81 rows" in reason
    late = Health(
        realtime=True, samples_due=81, samples_taken=81, samples_late=20, worst_lag=0.4,
        late_bound=0.05,
    )  # fmt: skip
    (reason,) = invalid_reasons(SUMMARY, late)
    assert "fell behind real time: 20 of 81 rows" in reason and "100 tabs at scale 0.05" in reason
    few = Health(
        realtime=True, samples_due=81, samples_taken=81, samples_late=2, worst_lag=0.2,
        late_bound=0.05,
    )  # fmt: skip
    assert invalid_reasons(SUMMARY, few) == []  # a hiccup is not a lagging loop
    logged = Health(realtime=True, errors_logged=127, first_errors=["Task exception"])
    assert "127 errors were logged" in invalid_reasons(SUMMARY, logged)[0]
    lost = Health(losses=["Chromium exited during the run (exit status -9)"])
    assert invalid_reasons(SUMMARY, lost) == lost.losses
    nothing = {**SUMMARY, "connects": 0, "refused_connects": 20}
    assert "no tab ever connected" in invalid_reasons(nothing, Health(realtime=True))[0]


@pytest.mark.parametrize(
    ("runtime", "size", "message"),
    [
        ("virtual", dict(tabs=10, duration=1e12, settle=0, scale=1), "2,000,000 samples"),
        ("virtual", dict(tabs=10**8, duration=1e5, settle=0, scale=1), "tab-seconds"),
        ("live", dict(tabs=2, duration=100, settle=10, scale=1e9), "a day"),
        ("browser", dict(tabs=2, duration=1e5, settle=0, scale=1), "a day"),
        ("live", dict(tabs=1000, duration=60, settle=0, scale=0.05), "20,000 tabs per unit"),
    ],
)
def test_absurd_sizes_are_refused_naming_the_limit(runtime, size, message) -> None:
    with pytest.raises(ConfigError, match=message):
        check_feasible(runtime, step=1.0, **size)


def test_a_live_size_near_the_measured_limit_warns_naming_it() -> None:
    with pytest.warns(UserWarning, match="keeps real time up to about 2,000") as caught:
        check_feasible("live", tabs=300, duration=60, settle=0, scale=0.05, step=1.0)
    assert "use at most 100 tabs at this scale" in str(caught[0].message)
    assert LIVE_TABS_PER_SCALE == 2_000


def test_ordinary_sizes_pass() -> None:
    check_feasible("virtual", tabs=1000, duration=3600, settle=100, scale=1, step=1.0)
    check_feasible("live", tabs=50, duration=300, settle=60, scale=0.05, step=1.0)


def test_run_refuses_an_absurd_size_before_any_work() -> None:
    with pytest.raises(ConfigError, match="limit"):
        simkit.run("reload-storm", "postmortem", duration=1e12)
    with pytest.raises(ConfigError, match="a day"):
        simkit.run("reload-storm", "postmortem", tabs=2, runtime=simkit.Live(scale=1e9))
