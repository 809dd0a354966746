"""The grading harness: a correct design passes, a broken one fails the right check with the
number that broke it, and bad input is refused with the valid choices."""

import math

import pytest

import simkit
from simkit.grading import Grade, grade, measures, peak_attempt_rate
from simkit.model import KickOld, KickOldSafe

SMALL = {"tabs": 30, "duration": 90}


def rows(g: Grade, scenario: str, check: str):
    t = g.table
    found = t[(t["scenario"] == scenario) & (t["check"] == check)]
    assert len(found) == 1, (scenario, check, t)
    return found.iloc[0]


def test_a_correct_preset_passes_every_invariant() -> None:
    g = grade("postmortem-safe", **SMALL)
    assert list(g.table.columns) == ["scenario", "check", "measured", "limit", "passed"]
    assert g.passed
    assert set(g.table["scenario"]) == {"reload-storm", "strict-mode", "flaky-network"}
    per_scenario = g.table.groupby("scenario").size()
    assert (per_scenario >= 4).all() and per_scenario.nunique() == 1
    assert (g.table.loc[g.table["check"] != "final open_sockets", "measured"] == 0).all()
    assert "PASS" in str(g)


def test_kick_old_fails_unroutable_on_reload_storm_with_the_number() -> None:
    g = grade("kick-old", scenarios=["reload-storm"], **SMALL)
    assert not g.passed
    row = rows(g, "reload-storm", "final unroutable")
    assert not row["passed"]
    assert row["measured"] > 0
    assert row["limit"] == "== 0"
    # The other invariants still hold: the blind delete breaks exactly this one.
    assert rows(g, "reload-storm", "final stale")["passed"]
    assert rows(g, "reload-storm", "final dangling")["passed"]
    assert list(g.failures["check"]) == ["final unroutable"]
    text = str(g)
    assert f"FAIL (1 of {len(g.table)} checks failed)" in text
    assert f"{int(row['measured'])}" in text
    assert repr(g) == text


def test_the_grade_is_the_measured_run() -> None:
    g = grade(simkit.STRATEGIES["before"], scenarios=["reload-storm"], **SMALL)
    r = simkit.run("reload-storm", "before", seed=0, progress=False, **SMALL)
    assert rows(g, "reload-storm", "final stale")["measured"] == r.summary["final_stale"]
    assert (
        rows(g, "reload-storm", "final unroutable")["measured"] == (r.summary["final_unroutable"])
    )
    assert not g.passed
    assert g.results["reload-storm"].summary == r.summary


def test_a_registry_class_of_your_own_is_graded_on_the_safe_client() -> None:
    class CompareAndDelete(KickOld):
        name = "mine"

        def disconnect(self, conn, user, now):
            if self.map.get(user) == conn:
                del self.map[user]
            return []

    mine = grade(CompareAndDelete, scenarios=["reload-storm"], **SMALL)
    safe = grade(KickOldSafe, scenarios=["reload-storm"], **SMALL)
    assert mine.name == "mine"
    assert mine.passed
    assert mine.table["measured"].tolist() == safe.table["measured"].tolist()


def test_limits_add_checks_that_can_fail() -> None:
    g = grade(
        "postmortem-safe",
        scenarios=["server-restart"],
        tabs=60,
        duration=60,
        max_peak_connect_rate=1,
        max_peak_attempt_rate=1000,
        min_delivery_ratio=0.5,
    )
    rate = rows(g, "server-restart", "peak_connect_rate")
    assert rate["limit"] == "<= 1"
    assert rate["measured"] > 1 and not rate["passed"]
    assert rate["measured"] == g.results["server-restart"].summary["peak_connect_rate"]
    attempts = rows(g, "server-restart", "peak_attempt_rate")
    assert attempts["passed"] and attempts["measured"] >= rate["measured"]
    ratio = rows(g, "server-restart", "delivery_ratio")
    assert ratio["passed"] and 0.5 <= ratio["measured"] <= 1
    assert list(g.failures["check"]) == ["peak_connect_rate"]
    assert not g.passed


def test_the_herd_shows_in_the_attempt_rate() -> None:
    base = simkit.STRATEGIES["postmortem-safe"]

    def restart(backoff: str) -> simkit.Result:
        strategy = base.replace(backoff=backoff)
        return simkit.run(
            "server-restart", strategy, tabs=60, duration=60, trace=True, progress=False
        )

    herd, calm = restart("immediate"), restart("rfc6455")
    # Retrying at once against a dead server: attempts far outnumber accepted connections.
    assert peak_attempt_rate(herd) > 5 * herd.summary["peak_connect_rate"]
    assert peak_attempt_rate(herd) > 5 * peak_attempt_rate(calm)
    untraced = simkit.run("server-restart", base, tabs=5, duration=10, progress=False)
    with pytest.raises(simkit.ConfigError, match="trace=True"):
        peak_attempt_rate(untraced)


def test_same_arguments_same_grade() -> None:
    a = grade("kick-old", scenarios=["reload-storm"], seed=3, **SMALL)
    b = grade("kick-old", scenarios=["reload-storm"], seed=3, **SMALL)
    assert a.table.equals(b.table)


def test_bad_scenario_names_the_valid_choices() -> None:
    with pytest.raises(simkit.ConfigError) as info:
        grade("postmortem-safe", scenarios=["reload-storm", "relaod-storm"])
    message = str(info.value)
    assert "'relaod-storm'" in message
    for name in simkit.SCENARIOS:
        assert name in message


def test_bad_strategy_names_strategies_and_registries() -> None:
    with pytest.raises(simkit.ConfigError) as info:
        grade("kick-older")
    message = str(info.value)
    for name in ("postmortem-safe", "multi-heartbeat", "kick-old-safe", "naive"):
        assert name in message


def test_bad_limits_are_refused() -> None:
    with pytest.raises(simkit.ConfigError, match="max_peak_attempt_rate"):
        grade("postmortem-safe", max_peek_attempt_rate=3)
    with pytest.raises(simkit.ConfigError, match="number"):
        grade("postmortem-safe", min_delivery_ratio="high")
    with pytest.raises(simkit.ConfigError, match="number"):
        grade("postmortem-safe", min_delivery_ratio=math.nan)
    with pytest.raises(simkit.ConfigError, match="at least one scenario"):
        grade("postmortem-safe", scenarios=[])


def test_a_registry_instance_is_refused() -> None:
    with pytest.raises(simkit.ConfigError, match="class"):
        grade(KickOldSafe())
    with pytest.raises(simkit.ConfigError):
        grade(42)


def test_the_invariant_checks_are_the_runs_invariants() -> None:
    for name in ("before", "postmortem", "postmortem-safe", "kick-old"):
        g = grade(name, scenarios=["reload-storm", "strict-mode"], **SMALL)
        for scenario, rows in g.table.groupby("scenario"):
            holds = g.results[scenario].summary["invariants_hold"]
            assert bool(rows["passed"].all()) == holds, (name, scenario)


def test_every_measure_is_a_number_of_the_summary() -> None:
    r = simkit.run("reload-storm", "postmortem-safe", tabs=5, duration=10, progress=False)
    names = measures()
    assert {"peak_attempt_rate", "peak_connect_rate", "delivery_ratio", "connects"} <= set(names)
    assert "tabs" not in names and "invariants_hold" not in names
    assert set(names) - {"peak_attempt_rate"} <= set(r.summary)
