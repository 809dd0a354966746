"""A node crash that is a real process crash: nodes as their own OS processes, SIGKILLed.

The run's live nodes are servers in one process (the census needs both ends of every
socket as they happen); ``python -m simkit serve --redis URL --node K --nodes N`` runs one
node as its own process, sharing a kit-started Redis with the others. Here node 0's
process gets SIGKILL: nothing of it runs afterwards, so whatever cleanup the entries get
is Redis's own (a TTL) or a later writer's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from simkit.model.cluster import cluster_policy
from simkit.model.codes import CloseCode
from simkit.net.redis import RedisServer, free_port

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(120)]

SCALE = 0.1  # presence-ttl's 15 s TTL is 1.5 s here, its 5 s refresh 0.5 s
TTL = cluster_policy("presence-ttl").ttl * SCALE  # type: ignore[operator]
KEY = "simkit:user:"


async def wait_for(predicate, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
    """Poll the async ``predicate`` until it holds; the seconds it took, or fail naming
    ``what``."""
    start = time.monotonic()
    while not await predicate():
        if time.monotonic() - start > timeout:
            pytest.fail(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


@contextlib.asynccontextmanager
async def cluster(strategy: str, nodes: int = 2) -> AsyncIterator[tuple[RedisServer, list]]:
    """A kit-started Redis and ``nodes`` node processes on free loopback ports, every one
    killed and reaped on the way out (also on failure)."""
    procs: list[subprocess.Popen[bytes]] = []
    async with RedisServer() as redis:
        try:
            for k in range(nodes):
                port = free_port()
                proc = subprocess.Popen(
                    [sys.executable, "-m", "simkit", "serve", "--strategy", strategy,
                     "--redis", redis.url, "--node", str(k), "--nodes", str(nodes),
                     "--port", str(port), "--scale", str(SCALE)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )  # fmt: skip
                proc.port = port  # type: ignore[attr-defined]
                procs.append(proc)
            for proc in procs:
                await wait_for(lambda p=proc: listening(p), 30, f"node on port {proc.port}")  # type: ignore[attr-defined, misc]
            yield redis, procs
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                await asyncio.to_thread(proc.wait, 10)
                if proc.stderr is not None:
                    proc.stderr.close()


async def listening(proc: subprocess.Popen[bytes]) -> bool:
    if proc.poll() is not None:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        pytest.fail(f"node process exited at start ({proc.returncode}): {err[-500:]}")
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", proc.port)  # type: ignore[attr-defined]
    except OSError:
        return False
    writer.close()
    return True


async def dial(proc: subprocess.Popen[bytes], user: str) -> ClientConnection:
    url = f"ws://127.0.0.1:{proc.port}/ws?user={user}"  # type: ignore[attr-defined]
    return await asyncio.wait_for(connect(url, open_timeout=5, close_timeout=1), 10)


async def stats(proc: subprocess.Popen[bytes]) -> dict:
    reader, writer = await asyncio.open_connection("127.0.0.1", proc.port)  # type: ignore[attr-defined]
    writer.write(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    body = (await asyncio.wait_for(reader.read(), 5)).split(b"\r\n\r\n", 1)[1]
    writer.close()
    return json.loads(body)


async def entry(store: aioredis.Redis, user: str) -> str | None:
    raw = await store.get(KEY + user)
    return None if raw is None else raw.decode()


async def died_without_close_frame(ws: ClientConnection) -> None:
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is None, "a crashed process sends no close frame"
    assert ws.close_code == 1006


def crash_and_checks(strategy: str, children):  # type: ignore[no-untyped-def]
    """Alice on node 0 and Bob on node 1; node 0's process SIGKILLed. Returns what was
    seen, for the strategy-specific assertions."""

    async def main() -> dict:
        seen: dict = {}
        async with cluster(strategy) as (redis, (node0, node1)):
            store = aioredis.Redis.from_url(redis.url)
            try:
                alice = await dial(node0, "alice")
                bob = await dial(node1, "bob")

                async def both() -> bool:
                    a, b = await entry(store, "alice"), await entry(store, "bob")
                    return bool(a and a.startswith("0:") and b and b.startswith("1:"))

                await wait_for(both, 5, "alice at node 0 and bob at node 1 in Redis")
                await asyncio.sleep(2 * TTL)  # longer than a TTL: the live node refreshes
                seen["before"] = await entry(store, "alice")
                assert len(children("simkit")) == 2  # the check below can see node processes
                seen["pttl_before"] = await store.pttl(KEY + "alice")

                os.kill(node0.pid, signal.SIGKILL)
                await died_without_close_frame(alice)
                seen["right_after"] = await entry(store, "alice")
                seen["node0_exit"] = await asyncio.to_thread(node0.wait, 10)

                async def gone() -> bool:
                    return await entry(store, "alice") is None

                try:
                    seen["gone_after"] = await wait_for(gone, 3 * TTL, "alice's entry expired")
                except pytest.fail.Exception:
                    seen["gone_after"] = None
                seen["after_wait"] = await entry(store, "alice")
                seen["pttl_after"] = await store.pttl(KEY + "alice")
                seen["bob"] = await entry(store, "bob")

                again = await dial(node1, "alice")

                async def at_node1() -> bool:
                    found = await entry(store, "alice")
                    return bool(found and found.startswith("1:"))

                await wait_for(at_node1, 5, "alice re-registered at node 1")
                await asyncio.sleep(2 * TTL)  # still hers after node 1's refreshes
                seen["reconnected"] = await entry(store, "alice")
                seen["node1_stats"] = await stats(node1)
                await again.close()
                await bob.close()
            finally:
                await store.aclose()
        return seen

    seen = asyncio.run(main())
    assert not children("redis-server"), "redis-server left running"
    assert not children("simkit"), "a node process left running"
    assert seen["node0_exit"] == -signal.SIGKILL
    return seen


def test_presence_ttl_a_sigkilled_nodes_entry_stays_then_expires(children) -> None:
    seen = crash_and_checks("presence-ttl", children)
    assert seen["before"].startswith("0:") and 0 < seen["pttl_before"] <= TTL * 1000
    # No cleanup ran: the dead process's entry is still in Redis right after the kill.
    assert seen["right_after"] == seen["before"]
    # Redis's TTL removed it, within one TTL of the kill (plus polling slack).
    assert seen["gone_after"] is not None and seen["gone_after"] <= TTL + 0.5
    assert seen["after_wait"] is None
    assert seen["bob"].startswith("1:")  # node 1 kept refreshing Bob's
    # Alice came back through node 1: registered there, routable (node 1 holds her socket).
    assert seen["reconnected"].startswith("1:")
    assert seen["node1_stats"]["open_sockets"] == 2


def test_blind_store_keeps_a_sigkilled_nodes_entry_until_overwritten(children) -> None:
    seen = crash_and_checks("shared-kick-old-safe", children)
    assert seen["before"].startswith("0:") and seen["pttl_before"] == -1  # no TTL
    assert seen["right_after"] == seen["before"]
    # It lingers: three TTLs of presence-ttl later it still names the dead node's socket.
    assert seen["gone_after"] is None
    assert seen["after_wait"] == seen["before"] and seen["pttl_after"] == -1
    assert seen["bob"].startswith("1:")
    # Only a newer write by a live node replaces it.
    assert seen["reconnected"].startswith("1:")
    assert seen["node1_stats"]["open_sockets"] == 2


def test_the_kick_crosses_processes_over_pub_sub(children) -> None:
    async def main() -> tuple[int | None, str | None]:
        async with cluster("shared-kick-old-safe") as (redis, (node0, node1)):
            store = aioredis.Redis.from_url(redis.url)
            try:
                first = await dial(node0, "alice")
                await wait_for(lambda: _starts(store, "alice", "0:"), 5, "alice at node 0 in Redis")
                second = await dial(node1, "alice")
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(first.recv(), 10)
                await wait_for(lambda: _starts(store, "alice", "1:"), 5, "alice at node 1")
                await asyncio.sleep(0.2)  # node 0's compare-and-delete must not remove it
                held = await entry(store, "alice")
                await second.close()
                return first.close_code, held
            finally:
                await store.aclose()

    code, held = asyncio.run(main())
    assert code == int(CloseCode.REPLACED)  # node 0's process kicked it, told by node 1's
    assert held is not None and held.startswith("1:")
    assert not children("redis-server") and not children("simkit")


async def _starts(store: aioredis.Redis, user: str, prefix: str) -> bool:
    found = await entry(store, user)
    return bool(found and found.startswith(prefix))
