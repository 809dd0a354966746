"""Several live nodes sharing a real Redis: the run, the faults, and nothing left running."""

from __future__ import annotations

import asyncio
import os

import pytest

import simkit
from simkit.model.errors import ConfigError
from simkit.net import redis as kit_redis
from simkit.net.redis import RedisServer, free_port

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


def test_redis_starts_on_a_free_port_and_leaves_nothing_behind(children) -> None:
    async def main() -> tuple[int, str]:
        async with RedisServer() as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"PING\r\n")
            assert await reader.readline() == b"+PONG\r\n"
            writer.close()
            assert server.dir is not None and os.path.isdir(server.dir)
            assert children("redis-server")
            return server.port, server.dir

    port, folder = asyncio.run(main())
    assert not children("redis-server")
    assert not os.path.exists(folder)
    with pytest.raises(OSError):  # nobody listens there any more
        asyncio.run(asyncio.open_connection("127.0.0.1", port))


def test_node_crash_live_holds_the_invariants_and_stops_redis(children) -> None:
    r = simkit.run(
        "node-crash", "presence-ttl", nodes=3, runtime="live", tabs=30, duration=100, seed=1
    )
    s = r.summary
    assert s["runtime"] == "live" and s["nodes"] == 3 and s["node_crashes"] == 1
    assert s["invariants_hold"], {k: s[k] for k in ("final_stale", "final_dangling")}
    assert s["store_ops"] > 0 and s["store_errors"] == 0
    assert s["peak_dead_node_entries"] > 0  # the crashed node's entries lingered, then expired
    assert s["final_dead_node_entries"] == 0
    assert not children("redis-server")


def test_redis_down_mid_run_is_counted_and_the_run_finishes(children) -> None:
    r = simkit.run(
        "redis-blip", "presence-ttl", nodes=3, runtime="live", tabs=30, duration=100, seed=2
    )
    assert r.summary["store_errors"] > 0
    assert r.summary["invariants_hold"]  # the heartbeat refresh writes back what was lost
    assert not children("redis-server")


def test_redis_missing_or_unreachable_says_how_to_start_it(monkeypatch) -> None:
    monkeypatch.setattr(kit_redis, "redis_binary", lambda: None)
    with pytest.raises(ConfigError, match="redis-server was not found; install it"):
        asyncio.run(RedisServer().start())

    class Env:
        scale = 0.05

        def now(self) -> float:
            return 0.0

    async def unreachable() -> None:
        server = RedisServer()
        server.port = free_port()  # nothing listens there
        store = kit_redis.RedisStore(
            Env(), simkit.model.cluster.CLUSTER_POLICIES["presence-ttl"], server
        )
        try:
            await store.check()
        finally:
            await store.aclose()

    with pytest.raises(ConfigError, match=r"is not reachable.*apt-get install redis-server"):
        asyncio.run(unreachable())
