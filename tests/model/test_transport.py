"""Transport profiles: each server implementation's close ordering, held to what was measured
on it (``simkit/calibration_fastapi.json``), and the virtual runtime playing it.

A profile says when a handler's cleanup runs after a page's close (1 or 3 one-way trips),
whether a server-initiated close lets the closed handler go at once or waits for the echo,
and how long a close to a half-open peer waits. The default profile is the kit's websockets
server and leaves every virtual run as it was (``tests/virtual/test_fingerprints.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import simkit
from simkit.model.errors import ConfigError
from simkit.model.latency import Latency
from simkit.model.strategy import make_strategy
from simkit.model.transport import PROFILES, transport_profile
from simkit.scenarios import Scenario

CALIBRATION = json.loads((Path(simkit.__file__).parent / "calibration_fastapi.json").read_text())[
    "implementations"
]
LATENCY = 0.05  # one way, in the scripted runs below


@pytest.mark.parametrize("ws", list(CALIBRATION))
def test_each_profile_matches_its_measurements(ws):
    profile = transport_profile("fastapi", ws)
    measured = CALIBRATION[ws]
    trips = measured["cleanup_trips"]["median"]
    assert abs(profile.cleanup_trips - trips) < 0.5, f"cleanup trips: measured {trips}"
    at_once = measured["server_close_trips"]["median"] < 0.5
    assert (profile.server_close == "at-once") == at_once, "server close() returns at once"
    if not at_once:  # trips from the server's close frame to the closed handler's cleanup
        closing = measured["server_close_trips"]["median"]
        assert abs(profile.server_close_trips - closing) < 0.5, f"server close trips: {closing}"
    blocked = measured["reload"]["half-open"]["blocked_s"]["median"]
    if not at_once:  # a close to a half-open peer waits give_up close timeouts
        assert profile.give_up == pytest.approx(blocked / 1.0, abs=0.2), f"blocked {blocked} s"


def test_the_default_profile_is_the_kits_websockets_server():
    assert transport_profile() is PROFILES["websockets"]
    assert transport_profile("fastapi") is PROFILES["fastapi/websockets-sansio"]
    assert PROFILES["websockets"].cleanup_trips == 3


def test_bad_names_are_refused_with_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown stack 'flask'"):
        transport_profile("flask")
    with pytest.raises(ConfigError, match="websockets-sansio, websockets, wsproto"):
        transport_profile("fastapi", "hypercorn")
    with pytest.raises(ConfigError, match="choose one of: websockets"):
        transport_profile("websockets", "wsproto")


CLOSED_AT = 2.5  # when _load_then_close's page closes its socket


async def _load_then_close(tab, sc):
    await tab.sleep(0.5)
    tab.load()
    await tab.sleep(2.0)
    tab.close()


async def _second_tab_later(tab, sc):
    await tab.sleep(0.5 + 2.0 * tab.index)
    tab.load()


def _scripted(script, tabs):
    """``tabs`` tabs of one person (so a second tab claims the first one's user id)."""
    return Scenario(
        "transport", "profile check", script, tabs=tabs, duration=6.0,
        latency=Latency(LATENCY, 0.0), push_rate=0.0, tabs_per_person=(tabs, tabs),
    )  # fmt: skip


def _cleanup_after_close(**stack) -> float:
    """Seconds from the page's close to the server's cleanup, in virtual time."""
    safe = make_strategy("t", registry="kick-old-safe", unload="pagehide")
    r = simkit.run(_scripted(_load_then_close, 1), safe, trace=True, settle=5.0, **stack)
    trace = r.trace
    cleanup = trace[trace.event == "server-cleanup"].time.min()
    return float(cleanup - CLOSED_AT)


@pytest.mark.parametrize(
    ("stack", "trips"),
    [
        ({}, 3),
        ({"stack": "fastapi", "ws": "websockets-sansio"}, 1),
        ({"stack": "fastapi", "ws": "websockets"}, 3),
        ({"stack": "fastapi", "ws": "wsproto"}, 1),
    ],
    ids=["websockets", "sansio", "legacy", "wsproto"],
)
def test_virtual_cleanup_comes_as_many_trips_after_the_close_as_measured(stack, trips):
    assert _cleanup_after_close(**stack) == pytest.approx(trips * LATENCY)


@pytest.mark.parametrize(
    ("ws", "at_once"), [("websockets-sansio", True), ("websockets", False), ("wsproto", True)]
)
def test_virtual_kick_lets_the_old_handler_go_at_once_where_measured(ws, at_once):
    """A second tab of the same user: the server closes the first. Where ``close()``
    returns at once the old handler's cleanup runs in the same instant as the kick; else
    later: four trips on legacy (the echo, then the server's FIN and the page's)."""
    seed_like = make_strategy("t", registry="close-delete-register", unload="pagehide")
    r = simkit.run(
        _scripted(_second_tab_later, 2), seed_like, trace=True, settle=5.0,
        stack="fastapi", ws=ws,
    )  # fmt: skip
    trace = r.trace
    kick = trace[trace.event == "server-close"].iloc[0]
    cleanup = trace[(trace.event == "server-cleanup") & (trace.conn == kick.conn)].iloc[0]
    assert kick.code == 1000 and cleanup.code == 1000  # the post-mortem's close()
    delay = cleanup.time - kick.time
    assert delay == pytest.approx(0.0 if at_once else 4 * LATENCY)
    assert r.summary["ws"] == ws and r.summary["stack"] == "fastapi"
    # the reload strands the new tab on every implementation (measured: 20 of 20)
    assert r.timeseries.unroutable.iloc[-1] == 1


def test_cli_takes_the_stack_for_virtual_runs_and_names_bad_ones(tmp_path, capsys):
    from simkit.cli import main

    out = tmp_path / "run"
    args = ["run", "--strategy", "seed", "--tabs", "3", "--duration", "10", "--out", str(out)]
    assert main([*args, "--stack", "fastapi", "--ws", "wsproto"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["stack"], summary["ws"]) == ("fastapi", "wsproto")
    assert main([*args, "--ws", "wsproto"]) == 2  # wsproto is not the websockets server's
    assert "choose one of: websockets" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "--stack", "flask"])


# -- the calibration's three reload shapes, in virtual time ----------------------------------


async def _replace_live(tab, sc):
    await tab.sleep(0.5 + 2.0 * tab.index)  # the second tab of the user kicks the first
    tab.load()


async def _close_in_flight(tab, sc):
    if tab.index == 0:  # hides (closes 1000) just before the other tab's socket arrives
        await tab.sleep(0.5)
        tab.load()
        await tab.sleep(2.0)
        tab.hide()
    else:
        await tab.sleep(2.5 + LATENCY / 2)
        tab.load()


async def _half_open(tab, sc):
    if tab.index == 0:
        await tab.sleep(0.5)
        tab.load()
        await tab.sleep(1.0)
        tab.lose_network()
    else:
        await tab.sleep(2.5)
        tab.load()


SHAPES = {
    "replace-live": _replace_live,
    "close-in-flight": _close_in_flight,
    "half-open": _half_open,
}


def _shape(shape: str, ws: str):
    """(the new socket at t=3 s: 'strand' | 'self-kill' | 'registered', when the old
    socket's cleanup ran) under the post-mortem's handler on implementation ``ws``."""
    handler = make_strategy(
        "handler", registry="close-delete-register", identity="shared",
        visibility="disconnect-when-hidden", unload="pagehide",
    )  # fmt: skip
    scenario = Scenario(
        shape, shape, SHAPES[shape], tabs=2, duration=30.0, latency=Latency(LATENCY, 0.0),
        push_rate=0.0, tabs_per_person=(2, 2),
    )  # fmt: skip
    r = simkit.run(scenario, handler, trace=True, settle=5.0, stack="fastapi", ws=ws)
    trace, at3 = r.trace, r.timeseries.set_index("t").loc[3.0]
    killed = trace[(trace.event == "server-close") & (trace.conn == 2)]
    cleanup = trace[(trace.event == "server-cleanup") & (trace.conn == 1)].time.min()
    if len(killed):
        return "self-kill", round(float(cleanup), 6)
    outcome = "strand" if at3.unroutable == 1 else "registered"
    return outcome, round(float(cleanup), 6)


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("ws", list(CALIBRATION))
def test_virtual_reload_shapes_end_as_measured(ws, shape):
    """Each shape's outcome in virtual time is the one the calibration measured 20 times
    of 20 on that implementation (the legacy self-kill included)."""
    measured = CALIBRATION[ws]["reload"][shape]["outcomes"]
    expected = max(measured, key=measured.get)
    outcome, cleanup = _shape(shape, ws)
    assert outcome == expected, (ws, shape, measured)
    if shape == "half-open":  # the old socket's handler ends when the close gives up
        give_up = 20.0 if ws == "websockets" else 0.0  # two 10 s close timeouts on legacy
        assert cleanup == pytest.approx(2.55 + give_up)


LOST_AT, PING_DEAD = 15.0, 40.5  # the first tab's network dies; its ping of ~20.5 s times out


def _silent_then_kicked(kick_at: float):
    async def script(tab, sc):
        if tab.index == 0:
            await tab.sleep(0.5)
            tab.load()
            await tab.sleep(LOST_AT - 0.5)
            tab.lose_network()
        else:
            await tab.sleep(kick_at)
            tab.load()  # the same person: the server kicks the first, half-open, socket

    return script


@pytest.mark.parametrize(
    ("ws", "kick_at", "ends", "code", "detections"),
    [
        # legacy: the ping sent before the kick still times out within the close timeout,
        # so the connection fails there (1011) and ends one close timeout later
        ("websockets", 35.0, PING_DEAD + 10.0, 1011, 1),
        # ... but not when its timeout falls after the close timeout: two close timeouts
        ("websockets", 25.0, 25.0 + 20.0, 1006, 0),
        # the kit's own server stops its keepalive at the close: one close timeout
        (None, 35.0, 35.0 + 10.0, 1006, 0),
    ],
    ids=["legacy-ping-outlives-close", "legacy-close-gives-up-first", "websockets"],
)
def test_a_kicked_half_open_socket_ends_as_its_server_ends_it(ws, kick_at, ends, code, detections):
    """Measured through the live proxy (``tests/live/test_agreement_fastapi.py``): uvicorn's
    legacy implementation keeps its keepalive running while a close waits for the echo."""
    stack = {} if ws is None else {"stack": "fastapi", "ws": ws}
    safe = make_strategy("t", registry="kick-old-safe", unload="pagehide", liveness="websockets")
    sc = Scenario(
        "kicked", "a half-open socket kicked", _silent_then_kicked(kick_at), tabs=2,
        duration=70.0, latency=Latency(LATENCY, 0.0), push_rate=0.0, tabs_per_person=(2, 2),
    )  # fmt: skip
    r = simkit.run(sc, safe, trace=True, settle=5.0, **stack)
    trace = r.trace
    first = trace[(trace.conn == 1) & (trace.event == "server-cleanup")].iloc[0]
    assert first.time == pytest.approx(ends, abs=0.2) and first.code == code
    assert r.summary["detections_protocol"] == detections
