"""Target mode against servers that misbehave: each gives a counted metric or a clear note,
never a hang (every wait is bounded) and never a traceback out of the run.

Each server runs on a loop of its own in a thread (``serving``) and is closed however the
test ends; each run is a few tabs for a few seconds, and must return within a bound.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import time
from typing import Any

import pytest
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

import simkit
from simkit.model.errors import ConfigError
from simkit.net.target import STATS_PATH

from .test_target import serving

pytestmark = pytest.mark.slow

WAIT_LIMIT = 45.0  # seconds any of these runs may take, all bounded waits included


def play(port: int, scenario: str = "reload-storm", **options: Any) -> simkit.Result:
    started = time.monotonic()
    result = simkit.run(
        scenario,
        "postmortem-safe",
        runtime="live",
        target=f"ws://127.0.0.1:{port}/ws",
        tabs=options.pop("tabs", 4),
        duration=options.pop("duration", 5),
        settle=options.pop("settle", 2),
        **options,
    )
    assert time.monotonic() - started < WAIT_LIMIT
    return result


async def quiet(ws: Any) -> None:
    """Read until the client goes; never push."""
    with contextlib.suppress(ConnectionClosed):
        async for _ in ws:
            pass


def test_a_server_refusing_every_handshake_counts_the_refusals_with_their_status():
    def forbid(connection: Any, request: Any) -> Any:
        return connection.respond(403, "no\n")

    with serving(lambda: serve(quiet, "127.0.0.1", 0, process_request=forbid)) as port:
        s = play(port).summary
    assert s["connects"] == 0 and s["final_connected_tabs"] == 0
    assert s["handshake_refusals"].get("HTTP 403", 0) >= 4
    assert any("refused every handshake (HTTP 403" in note for note in s["notes"])
    assert s["refused_connects"] == s["handshake_refusals"]["HTTP 403"]


def test_a_stats_route_that_never_answers_leaves_the_registry_unknown_in_bounded_time():
    async def hang_stats(connection: Any, request: Any) -> Any:
        if request.path.startswith(STATS_PATH):
            await asyncio.sleep(3600)
        return None

    def start() -> Any:
        return serve(quiet, "127.0.0.1", 0, process_request=hang_stats, open_timeout=2)

    with serving(start) as port:
        result = play(port)
    s = result.summary
    assert "did not answer within 1 s" in s["unknown_metrics"]["unroutable"]
    assert result.timeseries["unroutable"].isna().all()
    assert s["final_connected_tabs"] == 4  # the WebSocket route still worked


def test_a_server_closing_every_socket_at_once_is_counted_by_who_closed():
    async def slam(ws: Any) -> None:
        await ws.close(4000, "go away")

    with serving(lambda: serve(slam, "127.0.0.1", 0)) as port:
        s = play(port).summary
    assert s["closed_by_server"].get("4000", 0) >= 4
    assert s["kicked_live_tabs"] >= 4  # each time a live tab's current socket
    assert s["connects"] >= 8  # the tabs kept reconnecting (with backoff)


def test_binary_and_garbage_messages_are_counted_not_fatal():
    async def babble(ws: Any) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(b"\x00\xff binary")
            await ws.send("this is not json {")
            await ws.send(json.dumps([1, 2, 3]))
            await ws.send(json.dumps({"t": 5, "id": "x"}))
            await ws.send(json.dumps({"t": "welcome", "session": 7}))
            await quiet(ws)

    with serving(lambda: serve(babble, "127.0.0.1", 0)) as port:
        s = play(port, tabs=3).summary
    assert s["binary_messages"] >= 3 and s["garbage_messages"] >= 3
    assert s["messages_received"] >= 15
    assert any("binary" in note and "non-JSON" in note for note in s["notes"])
    assert s["final_connected_tabs"] == 3


def test_a_server_that_never_answers_is_refused_before_the_run():
    """Accepts TCP, reads, never writes (nor answers a ping, a close, a request)."""

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass
        writer.transport.abort()

    with serving(lambda: asyncio.start_server(mute, "127.0.0.1", 0)) as port:
        started = time.monotonic()
        # refused by the start-up probe, in its bounded wait, before any tab plays
        with pytest.raises(ConfigError, match="did not answer a WebSocket handshake within 5"):
            play(port, tabs=2, duration=6)
    assert time.monotonic() - started < 8


def test_a_server_that_accepts_and_then_never_answers_leaves_stale_sockets_counted():
    """Completes the handshake by hand, then ignores everything: no pong, no close echo. A
    page's close then waits its close timeout before dropping the socket, so the server's
    side stays open (stale) meanwhile; the run still ends on time."""

    async def deaf(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            head = await reader.readuntil(b"\r\n\r\n")
            keys = [
                line.split(b":", 1)[1].strip()
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            ]
            if keys:  # (the stats request has none: it gets no answer either)
                await handshake_then_ignore(keys[0], reader, writer)
        writer.transport.abort()

    async def handshake_then_ignore(
        key: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        accept = base64.b64encode(
            hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
        )
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        while await reader.read(65536):
            pass

    with serving(lambda: asyncio.start_server(deaf, "127.0.0.1", 0)) as port:
        result = play(port, "strict-mode", tabs=3, duration=4)
    s = result.summary
    assert s["connects"] >= 3
    assert s["peak_stale"] >= 1  # the first socket of each load, closed by its page only
    assert s["final_live_tabs"] == 3


def test_auth_headers_and_a_user_in_the_path_reach_the_server():
    seen: list[tuple[str, str | None]] = []

    def check(connection: Any, request: Any) -> Any:
        user = request.path.split("/rooms/")[1].split("?")[0]
        if request.headers.get("Authorization") != f"Bearer token-{user}":
            return connection.respond(401, "who are you?\n")
        seen.append((user, request.path.partition("simkit_conn=")[2] or None))
        return None

    with serving(lambda: serve(quiet, "127.0.0.1", 0, process_request=check)) as port:
        url = f"ws://127.0.0.1:{port}/rooms/{{user}}"
        with_auth = simkit.run(
            "reload-storm", "postmortem-safe", runtime="live", target=url, tabs=3, duration=4,
            settle=1, auth=lambda user: {"Authorization": f"Bearer token-{user}"},
        ).summary  # fmt: skip
        without = play(port, tabs=2, duration=3, settle=1)  # /ws: no user in the path
    assert with_auth["handshake_refusals"] == {} and with_auth["final_connected_tabs"] == 3
    assert {user for user, _ in seen} == {"u0", "u1", "u2"}
    assert all(conn and conn.isdigit() for _, conn in seen)  # the stats protocol's id
    assert without.summary["connects"] == 0


def test_a_server_restart_is_played_as_a_proxy_outage_and_the_tabs_come_back():
    with serving(lambda: serve(quiet, "127.0.0.1", 0)) as port:
        s = play(port, "server-restart", tabs=3, duration=12, settle=5).summary
    assert s["proxy_outages"] == 1
    assert s["closed_for_client"].get("1006", 0) >= 3  # every socket reset at once
    assert s["connects"] >= 6 and s["final_connected_tabs"] == 3
