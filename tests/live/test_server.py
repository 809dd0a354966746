"""The live server driven by a plain websockets client (not simkit's tabs), on loopback."""

import asyncio
import json
import urllib.request

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from simkit.live import FaultProxy, LocalServer
from simkit.model import make_strategy
from simkit.net.page import PAGE

LIMIT = 30  # seconds: no test may hang


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, LIMIT))


def client(url: str, user: str, **query: str):
    extra = "".join(f"&{k}={v}" for k, v in query.items())
    return connect(f"{url}?user={user}{extra}", proxy=None, ping_interval=None, open_timeout=5)


async def settle(server: LocalServer, predicate, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        assert loop.time() < end, f"not settled: {server.counts()} {server.registry_snapshot()}"
        await asyncio.sleep(0.01)


def test_connect_reload_and_kick_keep_the_registry_true() -> None:
    async def main():
        async with LocalServer("postmortem-safe") as server:
            old = await client(server.url, "alice")
            await settle(server, lambda: server.registry_snapshot() == {"alice": [1_000_001]})
            # Reload: the new page connects before the old socket's close arrives.
            new = await client(server.url, "alice")
            with pytest.raises(ConnectionClosed) as kicked:
                await asyncio.wait_for(old.recv(), 5)
            assert kicked.value.rcvd.code == 4000  # replaced by a newer connection
            await settle(server, lambda: server.counts()["open_sockets"] == 1)
            assert server.registry_snapshot() == {"alice": [1_000_002]}
            await new.close(1001)
            await settle(server, lambda: server.registry_snapshot() == {})
            log = server.log
            assert list(log["event"]) == ["open", "open", "cleanup", "cleanup"]
        return server

    server = run(main())
    assert server._ws_server is None  # stopped and port freed


def test_kick_old_blind_delete_strands_the_new_connection_live() -> None:
    async def main():
        async with LocalServer(make_strategy("ko", registry="kick-old", identity="shared")) as s:
            await client(s.url, "bob")
            new = await client(s.url, "bob")
            await settle(s, lambda: s.counts()["open_sockets"] == 1)
            assert s.registry_snapshot() == {}  # the kicked handler's del removed bob's entry
            await new.close()

    run(main())


def test_half_open_through_the_proxy_is_reaped_by_keepalive_in_time() -> None:
    scale = 0.05  # 20 s / 20 s heartbeat -> 1 s / 1 s; close_timeout 10 s -> 0.5 s

    async def main():
        async with LocalServer("postmortem-safe", scale=scale) as server:  # noqa: SIM117
            async with FaultProxy(server.port) as proxy:
                ws = await client(f"ws://127.0.0.1:{proxy.port}/ws", "carol")
                await settle(server, lambda: server.counts()["open_sockets"] == 1)
                port = ws.transport.get_extra_info("sockname")[1]
                loop = asyncio.get_running_loop()
                start = loop.time()
                proxy.connection(port).blackhole()
                await settle(server, lambda: server.counts()["open_sockets"] == 0, timeout=10)
                took = loop.time() - start
                ws.transport.abort()
        return took

    took = run(main())
    # interval + timeout <= detection <= ... + close_timeout, plus scheduling slack
    assert 1.0 <= took <= 2.0 + 0.5 + 0.5, took


def test_http_stats_page_and_bad_ids() -> None:
    async def main():
        async with LocalServer("multi-heartbeat") as server:
            ws = await client(server.url, "dave")
            await settle(server, lambda: server.counts()["open_sockets"] == 1)
            stats = await asyncio.to_thread(
                lambda: json.load(urllib.request.urlopen(server.http_url + "stats", timeout=5))
            )
            page = await asyncio.to_thread(
                lambda: urllib.request.urlopen(server.http_url, timeout=5).read().decode()
            )
            for bad, why in (
                ("", "missing user id"),
                ("x" * 200, "too long"),
                ("a%01b", "control characters"),
            ):
                with pytest.raises(InvalidStatus) as refused:
                    await client(server.url, bad)
                assert refused.value.response.status_code == 400
                assert why in refused.value.response.body.decode()
            await ws.close()
            await settle(server, lambda: server.counts()["open_sockets"] == 0)
            assert server.registry_snapshot() == {}
            return stats, page

    stats, page = run(main())
    assert stats["open_sockets"] == 1 and stats["registry_entries"] == 1
    assert "<title>simkit tab</title>" in page and "pagehide" in page
    assert page == PAGE  # served byte for byte as assembled from simkit/net/static/


def test_a_second_server_on_the_same_port_right_after() -> None:
    async def main():
        async with LocalServer() as first:
            port = first.port
            await client(first.url, "erin")
        async with LocalServer(port=port) as second:
            assert second.port == port

    run(main())


def test_an_error_inside_the_block_still_stops_the_server_and_frees_the_port() -> None:
    async def main():
        server = LocalServer()
        with pytest.raises(RuntimeError, match="boom"):
            async with server:
                await client(server.url, "frank")
                raise RuntimeError("boom")
        assert server._ws_server is None
        # The port is free: a new server binds it at once (the old connection's socket may
        # sit in TIME_WAIT, which SO_REUSEADDR, set by asyncio, allows).
        async with LocalServer(port=server.port) as again:
            await client(again.url, "frank")
            await settle(again, lambda: again.counts()["open_sockets"] == 1)

    run(main())
