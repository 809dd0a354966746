"""simkit.adapters: the drop-in safe registry, on fake sockets, on FastAPI and on websockets.

Each test states one promise of the adapter: compare-and-delete (the old handler's cleanup
never removes the new entry), the kick runs in the background (a socket whose close hangs
does not block the next registration), sends are bounded and never raise for a dead peer,
the heartbeat reaps a page that stopped answering, the stats route answers the protocol,
and importing the module pulls in no heavy dependency.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import subprocess
import sys

import pytest
from fastapi import FastAPI, WebSocket  # module level: FastAPI resolves the string annotations
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from simkit.adapters import PONG, SafeRegistry, stats_process_request, stats_router
from simkit.model.errors import ConfigError


def in_loop(test):
    """Run an async test body on a fresh event loop, bounded (no test may hang)."""

    @functools.wraps(test)
    def wrapper():
        asyncio.run(asyncio.wait_for(test(), 20))

    return wrapper


class FakeSocket:
    """Just enough of a websockets connection: ``send``, ``close``, ``recv``."""

    def __init__(self, *, hang_close: bool = False, hang_send: bool = False, dead: bool = False):
        self.sent: list[str] = []
        self.closed: tuple[int, str] | None = None
        self.hang_close, self.hang_send, self.dead = hang_close, hang_send, dead
        self.inbox: asyncio.Queue[str] = asyncio.Queue()

    async def send(self, text: str) -> None:
        if self.dead:
            raise ConnectionResetError("peer gone")
        if self.hang_send:
            await asyncio.sleep(3600)
        self.sent.append(text)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.hang_close:
            await asyncio.sleep(3600)
        self.closed = (code, reason)

    async def recv(self) -> str:
        return await self.inbox.get()


def test_importing_the_adapters_pulls_no_heavy_dependency():
    code = (
        "import sys, simkit.adapters; "
        "print(','.join(m for m in ('pandas', 'matplotlib', 'fastapi', 'websockets') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_bad_settings_name_the_value_and_the_choices():
    with pytest.raises(ConfigError, match=r"'kick-old'.*kick-old-safe, multi, reject-new"):
        SafeRegistry("kick-old")
    with pytest.raises(ConfigError, match="send_timeout"):
        SafeRegistry(send_timeout=0)
    with pytest.raises(ConfigError, match="heartbeat"):
        SafeRegistry(heartbeat=(1.0,))  # type: ignore[arg-type]


@in_loop
async def test_the_old_handlers_cleanup_never_removes_the_new_entry():
    registry = SafeRegistry("kick-old-safe")
    old_ws, new_ws = FakeSocket(), FakeSocket()
    old = registry.register("alice", old_ws)
    new = registry.register("alice", new_ws)
    registry.unregister(old)  # the old handler's finally runs after the new one registered
    assert registry.policy.entries() == [("alice", new.id)]
    await asyncio.sleep(0)
    assert old_ws.closed is not None and old_ws.closed[0] == 4000  # kicked, replaced
    assert await registry.push("alice", "hi") == 1
    assert new_ws.sent == ["hi"] and old_ws.sent == []
    await registry.aclose()


@in_loop
async def test_a_kick_that_hangs_never_blocks_the_new_registration():
    registry = SafeRegistry("kick-old-safe", kick_timeout=0.2)
    old_ws = FakeSocket(hang_close=True)  # a half-open socket: its close never completes
    registry.register("alice", old_ws)
    loop = asyncio.get_running_loop()
    started = loop.time()
    new = registry.register("alice", FakeSocket())  # synchronous: nothing awaited
    assert loop.time() - started < 0.05
    assert registry.policy.entries() == [("alice", new.id)]
    await asyncio.sleep(0.4)  # the background close gave up after kick_timeout
    assert not registry._background
    assert registry.kicks == 1


@in_loop
async def test_sends_are_bounded_and_never_raise_for_a_dead_peer():
    registry = SafeRegistry("multi", send_timeout=0.2)
    registry.register("bob", FakeSocket(dead=True))
    registry.register("bob", FakeSocket(hang_send=True))
    live = FakeSocket()
    registry.register("bob", live)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await registry.push("bob", "x") == 1
    assert loop.time() - started < 1.0
    assert live.sent == ["x"]
    assert registry.failed_sends == 2
    await registry.aclose()


@in_loop
async def test_reject_new_refuses_the_second_socket_and_reads_nothing_from_it():
    registry = SafeRegistry("reject-new")
    first = registry.register("carol", FakeSocket())
    second_ws = FakeSocket()
    async with registry.connection("carol", second_ws) as second:
        assert second.refused
        assert [m async for m in second.messages()] == []
    await asyncio.sleep(0)
    assert second_ws.closed is not None and second_ws.closed[0] == 4001
    assert registry.policy.entries() == [("carol", first.id)]


@in_loop
async def test_the_heartbeat_reaps_a_page_that_stopped_answering():
    registry = SafeRegistry("kick-old-safe", heartbeat=(0.05, 0.05))
    silent, answering = FakeSocket(), FakeSocket()
    registry.register("dave", silent)
    conn = registry.register("erin", answering)

    async def answer() -> None:
        async for _ in conn.messages():  # consumes the pongs, yields nothing else
            pytest.fail("a heartbeat answer must not reach the app")

    reader = asyncio.ensure_future(answer())
    for _ in range(6):
        await asyncio.sleep(0.05)
        answering.inbox.put_nowait(PONG)
    assert silent.closed is not None and silent.closed[0] == 1011
    assert answering.closed is None
    assert registry.reaped == 1
    reader.cancel()
    await registry.aclose()


def test_fastapi_app_with_the_adapter_kicks_the_old_socket_and_reports_the_new_one():
    registry = SafeRegistry("kick-old-safe")
    app = FastAPI()
    app.include_router(stats_router(registry))

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, user: str) -> None:
        await websocket.accept()
        async with registry.connection(user, websocket) as conn:
            async for text in conn.messages():
                await conn.send(f"echo {text}")

    with TestClient(app) as client:
        opening = client.websocket_connect("/ws?user=alice&simkit_conn=1")
        first = opening.__enter__()
        first.send_text("a")
        assert first.receive_text() == "echo a"
        with client.websocket_connect("/ws?user=alice&simkit_conn=2") as second:
            with pytest.raises(WebSocketDisconnect) as kicked:
                first.receive_text()
            assert kicked.value.code == 4000
            second.send_text("b")
            assert second.receive_text() == "echo b"
            answer = client.get("/simkit/registry").json()
            assert answer == {"entries": [["alice", "2"]]}
        with contextlib.suppress(WebSocketDisconnect):  # already closed by the kick
            opening.__exit__(None, None, None)


@in_loop
async def test_websockets_server_answers_the_stats_protocol():
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    from simkit.net.target import fetch_registry

    registry = SafeRegistry("kick-old-safe")

    async def handler(ws):
        user = ws.request.path.split("user=")[1].split("&")[0]
        async with registry.connection(user, ws) as conn:
            async for _ in conn.messages():
                pass

    async with serve(
        handler, "127.0.0.1", 0, process_request=stats_process_request(registry)
    ) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/ws?user=bob&simkit_conn=7"):
            for _ in range(50):
                if registry.entries():
                    break
                await asyncio.sleep(0.01)
            assert await fetch_registry("127.0.0.1", port, timeout=2.0) == [("bob", "7")]
    await registry.aclose()


def test_stats_entries_accept_a_plain_function():
    conns = {"alice": "3"}
    router = stats_router(lambda: conns.items())
    app = FastAPI()
    app.include_router(router)
    with TestClient(app) as client:
        assert client.get("/simkit/registry").json() == {"entries": [["alice", "3"]]}
    assert json.loads(json.dumps({"entries": [["alice", "3"]]}))  # the documented shape
