"""The shipped FastAPI/uvicorn measurements (``simkit/calibration_fastapi.json``, written by
``python -m simkit calibrate --stack fastapi``) and the kit held to them.

Each assertion names the measured number it depends on; when a new uvicorn moves one, the
failure says which. The model side: the pure ``close-delete-register`` policy the ``seed``
presets run in virtual time behaves as the implementations whose ``close()`` returns at
once (sansio, wsproto) were measured to: the reload strands the new connection, every time.
"""

from __future__ import annotations

import json

import pytest

from simkit.model.registry import CloseDeleteRegister, Hello
from simkit.net.calibrate_fastapi import DEFAULT_OUT, calibrate, load

DATA = load()
IMPL = DATA["implementations"]
REPS = DATA["setup"]["reps"]
AT_ONCE = ("websockets-sansio", "wsproto")  # close() returns at once
LEGACY = "websockets"


def test_the_file_is_shipped_and_covers_every_implementation():
    assert DEFAULT_OUT.name == "calibration_fastapi.json" and DEFAULT_OUT.exists()
    assert set(IMPL) == {"websockets-sansio", "websockets", "wsproto"}
    assert REPS >= 20 and DATA["versions"]["uvicorn"]


@pytest.mark.parametrize("ws", AT_ONCE)
def test_the_strand_is_certain_where_close_returns_at_once(ws):
    reload = IMPL[ws]["reload"]
    assert reload["replace-live"]["outcomes"]["strand"] == REPS, "replace-live strand count"
    assert reload["half-open"]["outcomes"]["strand"] == REPS, "half-open strand count"
    assert IMPL[ws]["server_close_trips"]["median"] < 0.5, "close() returns at once"
    assert 0.5 < IMPL[ws]["cleanup_trips"]["median"] < 2.0, "cleanup one trip after close()"


def test_legacy_shows_the_three_outcomes():
    reload = IMPL[LEGACY]["reload"]
    assert reload["replace-live"]["outcomes"]["strand"] > 0, "legacy strand"
    assert reload["close-in-flight"]["outcomes"]["self-kill"] > 0, "legacy self-kill"
    assert reload["close-in-flight"]["self_kill_codes"] == [1000], "the page sees 1000"
    blocked = reload["half-open"]["blocked_s"]["median"]
    assert blocked >= DATA["setup"]["close_timeout_s"], "half-open registration blocked"
    assert 2.0 < IMPL[LEGACY]["cleanup_trips"]["median"] < 4.5, "cleanup three trips after"
    assert IMPL[LEGACY]["server_close_trips"]["median"] > 2.0, "close() waits for the echo"


@pytest.mark.parametrize("ws", list(IMPL))
def test_keepalive_and_close_codes_on_every_implementation(ws):
    on, off = IMPL[ws]["keepalive"]["on"], IMPL[ws]["keepalive"]["off"]
    assert on["reaped"] == REPS and on["codes"] == {"1011": REPS}, "keepalive on: 1011"
    assert off["reaped"] == 0, "keepalive off: a silent peer stays"
    sees = IMPL[ws]["handler_sees"]
    assert sees == {"1000": {"1000": REPS}, "1001": {"1001": REPS}, "reset": {"1006": REPS}}
    assert IMPL[ws]["server_close_code_seen_by_page"] == {"1000": REPS}


def test_the_pure_policy_strands_the_reload_as_measured_at_once():
    """The ``seed`` presets' registry in virtual time: close the old (1000), delete,
    register; the old handler's blind delete then removes the new entry, as on sansio and
    wsproto in every repetition."""
    registry = CloseDeleteRegister()
    assert registry.connect(Hello(1, "alice"), 0.0) == []
    actions = registry.connect(Hello(2, "alice"), 1.0)
    assert [(a.conn, a.code) for a in actions] == [(1, 1000)]
    assert registry.route("alice") == (2,)
    registry.disconnect(1, "alice", 1.1)  # the old handler's WebSocketDisconnect branch
    assert registry.route("alice") == ()  # stranded
    assert all(IMPL[ws]["reload"]["replace-live"]["outcomes"]["strand"] == REPS for ws in AT_ONCE)


@pytest.mark.slow
def test_a_short_calibration_reproduces_the_shipped_outcomes(tmp_path):
    """Two repetitions on wsproto, live: the same outcomes as the shipped file."""
    out = tmp_path / "c.json"
    data = calibrate(2, out=out, log=lambda line: None, impls=("wsproto",))
    assert json.loads(out.read_text()) == data
    fresh = data["implementations"]["wsproto"]
    for shape, shipped in IMPL["wsproto"]["reload"].items():
        dominant = max(shipped["outcomes"], key=shipped["outcomes"].get)
        assert fresh["reload"][shape]["outcomes"][dominant] == 2, shape
    assert fresh["keepalive"]["on"]["codes"] == {"1011": 2}
