"""FastAPI on uvicorn, the post-mortem's own stack, as a server of the kit.

The same interface as the ``websockets`` server (``tests/live/test_abuse.py`` and the
conformance suite run on both); here: what only this stack has. The issue's reproduction
(``python -m simkit serve --stack fastapi ... --strategy seed``), the post-mortem's handler
as written on each of uvicorn's WebSocket implementations, close codes both ways, and the
port and the stack choice. Waits are bounded; timings are never asserted exactly.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from simkit.live import LocalServer
from simkit.model import make_strategy
from simkit.model.errors import ConfigError
from simkit.model.liveness import Liveness
from simkit.net.fastapi_stack import FastAPIServer

IMPLS = ("websockets-sansio", "websockets", "wsproto")
# uvicorn's legacy implementation on websockets' legacy server warns on every connection
pytestmark = pytest.mark.filterwarnings(
    "ignore:remove second argument of ws_handler:DeprecationWarning"
)
LIMIT = 30


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, LIMIT))


async def join(url: str, user: str):
    return await connect(f"{url}?user={user}", proxy=None, ping_interval=None, open_timeout=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stats(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as response:
        return json.loads(response.read())


async def two_connections_for_one_user(url: str) -> None:
    """The issue's reproduction: a tab, then its reload (a second socket for the same user
    id), the old one closed by the server."""
    first = await join(url, "alice")
    await asyncio.sleep(0.2)
    second = await join(url, "alice")
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(first.recv(), 5)
    await asyncio.sleep(0.3)
    return second


# -- the "done when" -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "entries"), [("seed", 0), ("postmortem-safe", 1)], ids=["seed", "safe"]
)
def test_serve_command_reproduces_the_strand_on_the_default_implementation(strategy, entries):
    """``python -m simkit serve --stack fastapi --ws websockets-sansio --strategy seed``:
    two connections for one user leave one open socket and no registry entry; the safe
    design leaves one and one."""
    port = free_port()
    command = [sys.executable, "-m", "simkit", "serve", "--stack", "fastapi"]
    command += ["--ws", "websockets-sansio", "--strategy", strategy, "--port", str(port)]
    server = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # as from a shell: a pytest-xdist worker ignores SIGINT, the child would inherit the
        # ignore and the kit keeps an inherited one, so the Ctrl-C below would never arrive
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                stats(port)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(server.stderr.read().decode()) from None
                time.sleep(0.1)

        async def main():
            second = await two_connections_for_one_user(f"ws://127.0.0.1:{port}/ws")
            counts = await asyncio.to_thread(stats, port)
            await second.close()
            return counts

        counts = run(main())
        server.send_signal(signal.SIGINT)  # Ctrl-C: every socket closed, the port freed
        out, _ = server.communicate(timeout=20)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)
    assert counts["open_sockets"] == 1
    assert counts["registry_entries"] == entries
    assert server.returncode == 0 and b"port freed" in out


@pytest.mark.parametrize("ws", IMPLS)
@pytest.mark.parametrize(
    ("strategy", "entries"), [("seed", 0), ("postmortem-safe", 1)], ids=["seed", "safe"]
)
def test_two_connections_for_one_user_on_every_implementation(ws, strategy, entries):
    async def main():
        async with LocalServer(strategy, stack="fastapi", ws=ws) as server:
            second = await two_connections_for_one_user(server.url)
            counts = server.counts()
            snapshot = server.registry_snapshot()
            await second.close()
            return counts, snapshot

    counts, snapshot = run(main())
    assert counts["open_sockets"] == 1 and counts["connects"] == 2
    assert counts["registry_entries"] == entries
    if entries:
        assert list(snapshot) == ["alice"]


@pytest.mark.parametrize("ws", ["websockets-sansio", "wsproto"])
def test_the_strand_is_certain_where_close_returns_at_once(ws):
    """On sansio and wsproto ``await old.close()`` returns at once and the old handler's
    blind delete always comes after the new registration: not a race, every time."""

    async def main():
        outcomes = []
        async with LocalServer("seed", stack="fastapi", ws=ws) as server:
            for i in range(5):
                user = f"u{i}"
                old = await join(server.url, user)
                await server.until(lambda s, u=user: u in s.registry_snapshot())
                new = await join(server.url, user)
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(old.recv(), 5)
                await server.until(lambda s, u=user: s.per_user.get(u) == 1)
                await asyncio.sleep(0.05)
                outcomes.append((closed.value.rcvd.code, user in server.registry_snapshot()))
                await new.close()
        return outcomes

    outcomes = run(main())
    assert outcomes == [(1000, False)] * 5  # the post-mortem's close() sends 1000


# -- close codes both ways -------------------------------------------------------------------


@pytest.mark.parametrize("ws", IMPLS)
def test_close_codes_as_the_handler_sees_them(ws):
    """The page closes (1000, 1001) or vanishes (1006); the server kicks (the page sees
    4000); a silent peer is reaped by uvicorn's keepalive (1011): the server's log records
    the code its handler's cleanup saw, as the websockets server does."""
    quick = Liveness("quick", 0.3, 0.3, summary="ping 0.3 s, timeout 0.3 s")
    strategy = make_strategy("codes", registry="kick-old-safe", liveness=quick)

    async def main():
        async with LocalServer(strategy, stack="fastapi", ws=ws, close_timeout=1.0) as server:
            for user, how in (("a", 1000), ("b", 1001)):
                ws_ = await join(server.url, user)
                await server.until(lambda s, u=user: u in s.registry_snapshot())
                await ws_.close(how)
            reset = await join(server.url, "c")
            await server.until(lambda s: "c" in s.registry_snapshot())
            reset.transport.abort()
            owner = await join(server.url, "d")
            await server.until(lambda s: "d" in s.registry_snapshot())
            kicker = await join(server.url, "d")
            with pytest.raises(ConnectionClosed) as kicked:
                await asyncio.wait_for(owner.recv(), 5)
            silent = await join(server.url, "e")
            await server.until(lambda s: "e" in s.registry_snapshot())
            silent.transport.pause_reading()  # pings unread, never answered
            await server.until(lambda s: "e" not in s.registry_snapshot(), timeout=10)
            silent.transport.abort()
            await kicker.close()
            await server.until(lambda s: s.counts()["open_sockets"] == 0, timeout=10)
            log = server.log
            cleanup = log[log.event == "cleanup"].groupby("user").detail.first().to_dict()
            return cleanup, kicked.value.rcvd.code, server.core.env.census.detections

    cleanup, kicked, detections = run(main())
    assert cleanup["a"] == "1000" and cleanup["b"] == "1001"
    assert cleanup["c"] == "1006"
    assert kicked == 4000 and cleanup["d"] == "4000"
    assert cleanup["e"] == "1011"
    assert detections == []  # outside clients: nobody told the census their path went silent


# -- the server itself -----------------------------------------------------------------------


def test_bad_stack_or_implementation_names_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown stack 'flask'.*websockets, fastapi"):
        LocalServer("postmortem-safe", stack="flask")
    with pytest.raises(ConfigError, match=r"'hypercorn'.*websockets-sansio, websockets, wsproto"):
        LocalServer("postmortem-safe", stack="fastapi", ws="hypercorn")
    with pytest.raises(ConfigError, match="'wsproto'; choose one of: websockets"):
        LocalServer("postmortem-safe", ws="wsproto")
    server = LocalServer("postmortem-safe", stack="fastapi")
    assert isinstance(server, FastAPIServer) and server.ws_impl == "websockets-sansio"


@pytest.mark.parametrize("ws", IMPLS)
def test_page_stats_and_port_freed_on_error_and_restart(ws):
    async def main():
        port = None
        with pytest.raises(RuntimeError, match="boom"):
            async with LocalServer("postmortem-safe", stack="fastapi", ws=ws) as server:
                port = server.port
                page = await asyncio.to_thread(
                    lambda: urllib.request.urlopen(server.http_url, timeout=5).read()
                )
                counts = await asyncio.to_thread(stats, port)
                client = await join(server.url, "x")
                raise RuntimeError("boom")
        # the port is free at once: a new server binds it, serves, restarts on it
        async with LocalServer("postmortem-safe", port=port, stack="fastapi", ws=ws) as again:
            assert again.port == port
            first = await join(again.url, "y")
            await again.until(lambda s: "y" in s.registry_snapshot())
            await again.restart(0.1)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(first.recv(), 5)
            second = await join(again.url, "y")
            await again.until(lambda s: s.registry_snapshot() == {"y": [s._next_id]})
            await second.close()
        await client.close()
        return page, counts

    page, counts = run(main())
    assert b"<html" in page.lower() and set(counts) >= {"open_sockets", "registry_entries"}
