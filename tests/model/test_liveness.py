import math

import pytest

from simkit.model import LIVENESS, ConfigError, Liveness, liveness


def drive_silent(rule: Liveness, silent_from: float, horizon: float = 1000.0) -> float | None:
    """Answer every ping until ``silent_from``, then nothing; return when it is declared dead."""
    beat = rule.start(0.0)
    while (due := beat.deadline()) is not None and due <= horizon:
        verdict = beat.on_timer(due)
        if verdict == "dead":
            return due
        if verdict == "ping" and due < silent_from:
            beat.on_pong(due)
    return None


@pytest.mark.parametrize("name", ["websockets", "socketio", "signalr", "phoenix"])
@pytest.mark.parametrize("silent_from", [0.0, 3.3, 17.0, 41.5, 100.0])
def test_a_silent_peer_is_found_within_timeout_and_interval_plus_timeout(
    name: str, silent_from: float
) -> None:
    rule = LIVENESS[name]
    dead_at = drive_silent(rule, silent_from)
    assert dead_at is not None
    delay = dead_at - silent_from
    assert rule.timeout <= delay <= rule.worst_detection + 1e-9


def test_websockets_preset_reaps_at_the_next_ping_after_an_unanswered_one() -> None:
    # ping at 20 answered, ping at 40 unanswered -> dead at 60
    assert drive_silent(LIVENESS["websockets"], silent_from=30.0) == 60.0


def test_off_never_finds_anything() -> None:
    assert drive_silent(LIVENESS["off"], silent_from=0.0) is None
    assert math.isinf(LIVENESS["off"].worst_detection)


def test_an_answering_peer_is_never_declared_dead_and_traffic_is_counted() -> None:
    beat = LIVENESS["websockets"].start(0.0)
    for _ in range(30):
        due = beat.deadline()
        assert beat.on_timer(due) == "ping"
        beat.on_pong(due + 0.05)
    assert beat.pings == 30 and beat.pongs == 30
    assert beat.deadline() == 620.0


@pytest.mark.parametrize("name", ["websockets", "socketio", "signalr", "phoenix"])
@pytest.mark.parametrize("opened", [0.0, 0.1, 1234.567891])
def test_answered_in_bulk_is_the_timer_answered_at_each_deadline(name: str, opened: float):
    """Float for float: the bulk form adds the interval as on_timer does, ping by ping."""
    rule = LIVENESS[name]
    until = opened + 50 * rule.interval  # lands exactly on a deadline only by luck
    one, bulk = rule.start(opened), rule.start(opened)
    times = []
    while one.deadline() < until:
        due = one.deadline()
        assert one.on_timer(due) == "ping"
        one.on_pong(due)
        times.append(due)
    assert bulk.answered(until) == times
    assert (bulk.next_ping, bulk.pings, bulk.pongs) == (one.next_ping, one.pings, one.pongs)
    # ``inclusive`` takes a ping due exactly at ``until`` too; nothing is left before it
    at = bulk.deadline()
    assert bulk.answered(at) == [] and bulk.answered(at, inclusive=True) == [at]


def test_answered_in_bulk_stops_while_a_ping_is_outstanding() -> None:
    beat = LIVENESS["websockets"].start(0.0)
    assert beat.on_timer(20.0) == "ping"  # not answered
    assert beat.answered(1000.0) == []
    assert beat.on_timer(40.0) == "dead"


def test_presets_match_upstream_defaults() -> None:
    assert (LIVENESS["websockets"].interval, LIVENESS["websockets"].timeout) == (20.0, 20.0)
    assert (LIVENESS["socketio"].interval, LIVENESS["socketio"].timeout) == (25.0, 20.0)
    assert (LIVENESS["signalr"].interval, LIVENESS["signalr"].timeout) == (15.0, 30.0)
    assert (LIVENESS["phoenix"].interval, LIVENESS["phoenix"].timeout) == (30.0, 60.0)


def test_scaling_and_bad_values() -> None:
    assert LIVENESS["websockets"].scaled(0.1).worst_detection == pytest.approx(4.0)
    with pytest.raises(ConfigError, match=r"interval must be a positive number of seconds"):
        Liveness("x", -1.0, 5.0)
    with pytest.raises(ConfigError, match=r"both be set or both be None"):
        Liveness("x", 5.0, None)
    with pytest.raises(ConfigError, match=r"unknown liveness preset 'fast'; choose one of"):
        liveness("fast")
