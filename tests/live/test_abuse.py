"""The live servers under bad input, floods and impostors: they keep serving others and
their registry stays true throughout. Every test runs on the ``websockets`` server and on
FastAPI/uvicorn under each of its WebSocket implementations: bad input gets the same answers
on both stacks."""

import asyncio
import json
import os

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from simkit.live import LocalServer
from simkit.model import make_strategy

LIMIT = 30
# uvicorn's legacy implementation on websockets' legacy server warns on every connection
pytestmark = pytest.mark.filterwarnings(
    "ignore:remove second argument of ws_handler:DeprecationWarning"
)

STACKS = [
    pytest.param({}, id="websockets"),
    pytest.param({"stack": "fastapi", "ws": "websockets-sansio"}, id="fastapi-sansio"),
    pytest.param({"stack": "fastapi", "ws": "websockets"}, id="fastapi-legacy"),
    pytest.param({"stack": "fastapi", "ws": "wsproto"}, id="fastapi-wsproto"),
]


@pytest.fixture(params=STACKS)
def make(request):
    """``LocalServer`` on the stack under test."""

    def server(*args, **kwargs):
        return LocalServer(*args, **kwargs, **request.param)

    return server


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, LIMIT))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def join(url: str, **query: str):
    q = "&".join(f"{k}={v}" for k, v in query.items())
    return await connect(f"{url}?{q}", proxy=None, ping_interval=None, open_timeout=5)


async def registry_is_true(server: LocalServer) -> None:
    """No entry for a closed socket, and every open socket routed (kick-old-safe)."""
    await server.until(
        lambda s: set(s.open_links) == {c for cs in s.registry_snapshot().values() for c in cs}
    )


async def a_good_client_still_gets_served(server: LocalServer) -> None:
    ws = await join(server.url, user="good")
    await server.until(lambda s: "good" in s.registry_snapshot())
    assert server.push("good")
    message = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert message["t"] == "push"
    await ws.close()
    await server.until(lambda s: "good" not in s.registry_snapshot())


@pytest.mark.parametrize(
    ("query", "status", "reason"),
    [
        ("", 400, "missing user id"),
        ("user=", 400, "missing user id"),
        ("user=" + "x" * 300, 400, "user id too long (300 > 128 characters)"),
        ("user=a%00b", 400, "user id contains control characters"),
        ("user=%FF%FE", 400, "query string is not valid UTF-8"),
    ],
)
def test_bad_handshakes_are_refused_with_a_reason_and_register_nothing(query, status, reason, make):
    async def main():
        async with make() as server:
            with pytest.raises(InvalidStatus) as refused:
                await connect(f"{server.url}?{query}", proxy=None, open_timeout=5)
            assert refused.value.response.status_code == status
            assert reason in refused.value.response.body.decode()
            assert server.registry_snapshot() == {} and server.counts()["connects"] == 0
            await a_good_client_still_gets_served(server)

    run(main())


def test_plain_http_on_the_websocket_path_and_unknown_paths(make) -> None:
    async def main():
        async with make() as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /ws?user=a HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await asyncio.wait_for(reader.readline(), 5)
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
            missing = await asyncio.wait_for(reader.readline(), 5)
            writer.close()
            await a_good_client_still_gets_served(server)
            return head, missing

    head, missing = run(main())
    assert b" 426 " in head and b" 404 " in missing


def test_oversized_binary_and_flooding_clients_are_cut_off_others_unaffected(make) -> None:
    async def main():
        async with make("postmortem-safe", close_timeout=2.0) as server:
            base = open_fds()
            big = await join(server.url, user="big")
            binary = await join(server.url, user="bin")
            flood = await join(server.url, user="flood")
            await server.until(lambda s: s.counts()["open_sockets"] == 3)
            await big.send("x" * (2**16 + 1))
            await binary.send(b"\x00\xff garbage")
            for i in range(5000):
                await flood.send(f"noise {i}")
            codes = {}
            for name, ws in (("big", big), ("bin", binary)):
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 5)
                codes[name] = closed.value.rcvd.code
            await a_good_client_still_gets_served(server)
            # uvicorn's legacy implementation keeps a failed connection's handler until its
            # close timeout (it waits for the client to close TCP first): bounded, not at once
            await server.until(lambda s: set(s.registry_snapshot()) == {"flood"}, timeout=4)
            await flood.close()
            await server.until(lambda s: s.counts()["open_sockets"] == 0)
            await registry_is_true(server)
            await asyncio.sleep(0.1)
            return codes, open_fds() - base

    codes, fd_growth = run(main())
    assert codes == {"big": 1009, "bin": 1003}  # message too big; unsupported data
    assert fd_growth <= 0


def test_a_client_that_never_reads_is_cut_loose_not_buffered_forever(make) -> None:
    async def main():
        async with make("postmortem-safe", max_queue=8) as server:
            sleepy = await join(server.url, user="sleepy")
            await server.until(lambda s: "sleepy" in s.registry_snapshot())
            sleepy.transport.pause_reading()
            payload_pushes = 0
            big = "x" * 60_000  # the kernel's socket buffers soak up a few MB first
            while "sleepy" in server.registry_snapshot() and payload_pushes < 2000:
                server.push("sleepy", big)
                payload_pushes += 1
                await asyncio.sleep(0.001)
            await server.until(lambda s: s.counts()["open_sockets"] == 0, timeout=15)
            sleepy.transport.abort()
            await a_good_client_still_gets_served(server)
            return server.slow_clients, payload_pushes

    slow, pushes = run(main())
    assert slow == 1 and pushes < 2000


def test_a_handshake_that_never_finishes_times_out(make) -> None:
    async def main():
        async with make(open_timeout=0.5) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /ws?user=slow HTTP/1.1\r\nHost: x\r\n")  # never ends
            loop = asyncio.get_running_loop()
            start = loop.time()
            data = await asyncio.wait_for(reader.read(), 5)
            took = loop.time() - start
            writer.close()
            await a_good_client_still_gets_served(server)
            return data, took

    data, took = run(main())
    assert 0.4 <= took < 3.0 and b"101" not in data


def test_connection_floods_are_refused_with_1013_per_user_and_in_total(make) -> None:
    async def main():
        async with make("multi-heartbeat", max_per_user=3, max_connections=5) as server:
            mine = [await join(server.url, user="greedy") for _ in range(3)]
            await server.until(lambda s: s.counts()["open_sockets"] == 3)
            extra = await join(server.url, user="greedy")
            with pytest.raises(ConnectionClosed) as per_user:
                await asyncio.wait_for(extra.recv(), 5)
            others = [await join(server.url, user=f"o{i}") for i in range(2)]
            await server.until(lambda s: s.counts()["open_sockets"] == 5)
            full = await join(server.url, user="late")
            with pytest.raises(ConnectionClosed) as total:
                await asyncio.wait_for(full.recv(), 5)
            snapshot = server.registry_snapshot()
            for ws in mine + others:
                await ws.close()
            await server.until(lambda s: s.counts()["open_sockets"] == 0)
            return per_user.value.rcvd, total.value.rcvd, snapshot

    per_user, total, snapshot = run(main())
    assert per_user.code == total.code == 1013
    assert "limit 3" in per_user.reason and "server full" in total.reason
    assert len(snapshot["greedy"]) == 3 and "late" not in snapshot


def test_kick_old_trusts_any_claimed_id_so_an_impostor_kicks_the_owner(make) -> None:
    async def main():
        kick_old = make_strategy("ko", registry="kick-old-safe", identity="shared")
        async with make(kick_old) as server:
            owner = await join(server.url, user="alice")
            await server.until(lambda s: "alice" in s.registry_snapshot())
            impostor = await join(server.url, user="alice")  # knows (or guesses) the id
            with pytest.raises(ConnectionClosed) as kicked:
                await asyncio.wait_for(owner.recv(), 5)
            server.push("alice")
            stolen = json.loads(await asyncio.wait_for(impostor.recv(), 5))
            await impostor.close()
            return kicked.value.rcvd.code, stolen

    code, stolen = run(main())
    assert code == 4000 and stolen["t"] == "push"  # owner out, her push in the wrong hands


def test_signed_tokens_keep_impostors_out_and_pushes_with_their_user(make) -> None:
    secret = b"s" * 32

    async def main():
        async with make("postmortem-safe", secret=secret) as server:
            alice = await join(server.url, token=server.issue_token("alice"))
            bob_token = server.issue_token("bob")
            refusals = []
            for query in (
                {"user": "alice"},
                {"user": "alice", "token": bob_token},
                {"token": bob_token[:-2] + "xx"},
                {"token": server.issue_token("alice", ttl=-10)},
            ):
                with pytest.raises(InvalidStatus) as refused:
                    await join(server.url, **query)
                refusals.append(
                    (
                        refused.value.response.status_code,
                        refused.value.response.body.decode().strip(),
                    )
                )
            bob = await join(server.url, token=bob_token)
            await server.until(lambda s: set(s.registry_snapshot()) == {"alice", "bob"})
            assert server.push("bob")
            got = json.loads(await asyncio.wait_for(bob.recv(), 5))
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(alice.recv(), 0.3)  # nothing for alice
            await alice.close()
            await bob.close()
            return refusals, got

    refusals, got = run(main())
    assert refusals == [
        (401, "missing token (this server requires ?token=)"),
        (403, "token was issued to another user"),
        (403, "invalid token: token signature does not match"),
        (403, "invalid token: token expired"),
    ]
    assert got["t"] == "push"


def test_live_resume_tokens_are_unguessable(make) -> None:
    async def main():
        async with make("resume") as server:
            ws = await join(server.url, user="carol")
            welcome = json.loads(await asyncio.wait_for(ws.recv(), 5))
            await ws.close()
            return welcome

    welcome = run(main())
    assert welcome["t"] == "welcome" and len(welcome["session"]) >= 24


def test_memory_and_descriptors_return_to_baseline_after_rounds_of_abuse(make) -> None:
    import gc
    import tracemalloc

    async def abuse_round(server: LocalServer) -> None:
        clients = [await join(server.url, user=f"u{i % 7}") for i in range(21)]
        for bad in ("", "user=" + "x" * 300, "user=%FF"):
            with pytest.raises(InvalidStatus):
                await connect(f"{server.url}?{bad}", proxy=None, open_timeout=5)
        await clients[0].send("x" * (2**16 + 1))
        await clients[1].send(b"\x00")
        for i in range(200):
            await clients[2].send(f"noise {i}")
        for user in ("u3", "u4"):
            server.push(user, "payload" * 100)
        for ws in clients:
            await ws.close()
        await server.until(lambda s: s.counts()["open_sockets"] == 0)
        await registry_is_true(server)

    async def main():
        # close_timeout: uvicorn's legacy implementation holds the 1009 handler that long
        async with make("multi-heartbeat", close_timeout=2.0) as server:
            await abuse_round(server)  # warm-up: imports, caches, first allocations
            gc.collect()
            fds = open_fds()
            tracemalloc.start()
            for _ in range(4):
                await abuse_round(server)
            await asyncio.sleep(0.2)
            gc.collect()
            retained, _ = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            return open_fds() - fds, retained, len(server.events)

    fd_growth, retained, events = run(main())
    assert fd_growth <= 0
    # 84 more connections came and went; what is still held is the event log (about 250
    # short tuples) and allocator noise, well under 1 MiB.
    assert retained < 1024 * 1024, retained
    assert events == 5 * 21 * 2  # open + cleanup per connection, nothing else kept
