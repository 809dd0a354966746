"""A real-time run that cannot be trusted says so: ``run_valid`` False with its reasons, and
the CLI exits 2. Each run is a few tabs for a second or two of wall time, bounded."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

import simkit
from simkit.model.errors import ConfigError

pytestmark = pytest.mark.timeout(90)


def blocking_the_loop(at: float, seconds: float) -> simkit.Scenario:
    """reload-storm, with a control that stalls the run's loop ``seconds`` of wall time at
    scenario time ``at`` (as a loop too busy for its tabs does)."""

    async def stall(env: Any, sc: simkit.Scenario) -> None:
        await env.sleep(at)
        time.sleep(seconds)

    return simkit.SCENARIOS["reload-storm"].with_(name="stalled", control=stall)


def test_a_loop_that_falls_behind_keeps_every_row_and_is_invalid() -> None:
    # scale 0.05: 20 s of workload is 1 s of wall time; a 0.6 s stall at t=14 puts every
    # row from 14 to 20 more than a step late, and the run's end timer fires during it.
    started = time.monotonic()
    result = simkit.run(
        blocking_the_loop(14.0, 0.6), "postmortem-safe", tabs=3, duration=20, settle=0,
        runtime=simkit.Live(scale=0.05),
    )  # fmt: skip
    assert time.monotonic() - started < 30
    ts, s = result.timeseries, result.summary
    assert list(ts["t"]) == [float(t) for t in range(21)]  # the series reaches the end
    assert s["samples_late"] >= 5 and s["sample_lag_max"] >= 0.3
    assert s["run_valid"] is False and not result.valid
    (reason,) = s["invalid_reasons"]
    assert "fell behind real time" in reason and "3 tabs at scale 0.05" in reason


def test_a_short_run_on_an_idle_loop_is_valid() -> None:
    result = simkit.run(
        "reload-storm", "postmortem-safe", tabs=3, duration=20, settle=0,
        runtime=simkit.Live(scale=0.05),
    )  # fmt: skip
    assert result.summary["invalid_reasons"] == [] and result.summary["run_valid"] is True
    assert result.summary["errors_logged"] == 0


def test_errors_logged_on_the_run_s_loop_make_it_invalid() -> None:
    async def raise_in_callbacks(env: Any, sc: simkit.Scenario) -> None:
        await env.sleep(2.0)
        for _ in range(3):  # asyncio logs each one ("Exception in callback")
            env.loop.call_soon(lambda: 1 / 0)

    scenario = simkit.SCENARIOS["reload-storm"].with_(name="raising", control=raise_in_callbacks)
    result = simkit.run(
        scenario, "postmortem-safe", tabs=2, duration=10, settle=0,
        runtime=simkit.Live(scale=0.05),
    )  # fmt: skip
    s = result.summary
    assert s["errors_logged"] == 3 and s["run_valid"] is False
    assert "3 errors were logged" in s["invalid_reasons"][0]
    assert "ZeroDivisionError" in s["invalid_reasons"][0]


@contextlib.contextmanager
def stoppable_server() -> Iterator[tuple[int, Any]]:
    """A websockets server on a loop of its own in a thread; yields its port and a function
    that closes it (every socket, and the port) at once; closed however the test ends."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def quiet(ws: Any) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws:
                pass

    async def main() -> None:
        box["stop"] = stop = asyncio.Event()
        server = await serve(quiet, "127.0.0.1", 0)
        box["port"] = server.sockets[0].getsockname()[1]
        ready.set()
        await stop.wait()
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 5)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()

    def kill() -> None:
        if "stop" in box:
            loop.call_soon_threadsafe(box["stop"].set)

    try:
        assert ready.wait(10), "the test server did not start"
        yield box["port"], kill
    finally:
        kill()
        thread.join(10)
        loop.close()


def test_a_target_that_goes_away_mid_run_makes_the_run_invalid() -> None:
    with stoppable_server() as (port, kill):
        timer = threading.Timer(2.0, kill)
        timer.start()
        try:
            result = simkit.run(
                "reload-storm", "postmortem-safe", tabs=3, duration=6, settle=1,
                runtime=simkit.Target(f"ws://127.0.0.1:{port}/ws"),
            )  # fmt: skip
        finally:
            timer.cancel()
    s = result.summary
    assert s["run_valid"] is False
    assert any(f"target server at 127.0.0.1:{port} went away" in r for r in s["invalid_reasons"]), (
        s["invalid_reasons"]
    )


def test_a_target_that_accepts_tcp_and_never_answers_is_refused_in_bounded_time() -> None:
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass
        writer.transport.abort()

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(asyncio.start_server(mute, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        with pytest.raises(ConfigError, match="did not answer a WebSocket handshake within"):
            simkit.run(
                "reload-storm", "postmortem-safe", tabs=3, duration=10,
                runtime=simkit.Target(f"ws://127.0.0.1:{port}/ws"),
            )  # fmt: skip
        assert time.monotonic() - started < 8  # the probe's 5 s, not the run's 10 s + settle
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_the_cli_exits_2_for_an_invalid_run_and_names_the_reason(tmp_path) -> None:
    with stoppable_server() as (port, kill):
        timer = threading.Timer(2.0, kill)
        timer.start()
        try:
            done = subprocess.run(
                [
                    sys.executable, "-m", "simkit", "run", "--strategy", "postmortem-safe",
                    "--target", f"ws://127.0.0.1:{port}/ws", "--tabs", "3", "--duration", "6",
                    "--settle", "1", "--check", "final_unroutable>=0",
                    "--out", str(tmp_path / "out"), "--junit", str(tmp_path / "j.xml"),
                ],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
        finally:
            timer.cancel()
    assert done.returncode == 2, done.stderr
    assert "INVALID RUN: the target server" in done.stdout
    assert "the run is invalid" in done.stderr
    assert "Traceback" not in done.stderr
    assert 'name="run_valid"' in (tmp_path / "j.xml").read_text()


def test_a_live_cli_run_prints_progress_lines_on_stderr(tmp_path) -> None:
    done = subprocess.run(
        [
            sys.executable, "-m", "simkit", "run", "--strategy", "postmortem-safe",
            "--runtime", "live", "--scale", "0.1", "--tabs", "2", "--duration", "60",
            "--settle", "0", "--out", str(tmp_path),
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    lines = [x for x in done.stderr.splitlines() if x.startswith("simkit live: t=")]
    assert len(lines) >= 1, done.stderr
    assert "open sockets" in lines[0]


def test_ctrl_c_of_a_live_run_prints_one_line_exits_130_and_writes_nothing(tmp_path) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "simkit", "run", "--strategy", "postmortem-safe",
            "--runtime", "live", "--scale", "0.1", "--tabs", "2", "--duration", "600",
            "--out", str(out),
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as from a shell
    )  # fmt: skip
    try:
        time.sleep(4)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    lines = [x for x in err.splitlines() if not x.startswith("simkit live: t=")]
    assert lines == ["python -m simkit: interrupted; nothing written"], err
    assert not out.exists()


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("app", "status"), [("fixed_app", 0), ("postmortem_app", 1)])
def test_the_ci_example_passes_the_fixed_app_and_fails_the_postmortem_s(
    app, status, tmp_path
) -> None:
    """examples/ci/simkit-gate.sh as a CI job runs it: start the server, gate, stop it."""
    from simkit.net.redis import free_port

    port = free_port()
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "SERVER_CMD": f"{sys.executable} -m uvicorn examples.{app}:app --host 127.0.0.1 "
        f"--port {port} --log-level warning",
        "TARGET": f"ws://127.0.0.1:{port}/ws",
        "SCENARIO": "reload-storm",
        "TABS": "4",
        "DURATION": "8",
        "SETTLE": "3",  # shorter than the apps' keepalive: stale sockets may remain
        "CHECKS": "valid final_unroutable==0 peak_unroutable==0 kicked_live_tabs==0",
        "OUT": str(tmp_path / "out"),
    }
    proc = subprocess.Popen(
        ["bash", str(ROOT / "examples" / "ci" / "simkit-gate.sh")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == status, out + err
    report = (tmp_path / "out" / "junit.xml").read_text()
    assert 'name="final_unroutable==0"' in report
    with socket.socket() as probe:  # the script stopped the server
        assert probe.connect_ex(("127.0.0.1", port)) != 0
