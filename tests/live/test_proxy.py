"""The fault proxy's toxics, each against a tiny echo server on loopback."""

import asyncio

from simkit.net.proxy import FaultProxy, Toxics

LIMIT = 20


async def echo_server():
    async def handle(reader, writer):
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, LIMIT))


async def roundtrip(proxy: FaultProxy, payload: bytes = b"ping") -> tuple[bytes, float]:
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    start = loop.time()
    writer.write(payload)
    data = await asyncio.wait_for(reader.readexactly(len(payload)), 5)
    took = loop.time() - start
    writer.close()
    return data, took


def test_latency_is_added_in_each_direction() -> None:
    async def main():
        server = await echo_server()
        port = server.sockets[0].getsockname()[1]
        async with FaultProxy(port, defaults=Toxics(latency=0.1)) as proxy:
            data, took = await roundtrip(proxy)
        server.close()
        return data, took

    data, took = run(main())
    assert data == b"ping" and 0.2 <= took < 1.0


def test_blackhole_swallows_everything_and_tells_nobody() -> None:
    async def main():
        server = await echo_server()
        port = server.sockets[0].getsockname()[1]
        async with FaultProxy(port) as proxy:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"a")
            assert await reader.readexactly(1) == b"a"
            local = writer.get_extra_info("sockname")[1]
            proxy.connection(local).blackhole()
            writer.write(b"b")
            try:
                await asyncio.wait_for(reader.read(1), 0.5)
                got = "data or eof"
            except TimeoutError:
                got = "silence"
            writer.close()
        server.close()
        return got

    assert run(main()) == "silence"


def test_reset_peer_and_down() -> None:
    async def main():
        server = await echo_server()
        port = server.sockets[0].getsockname()[1]
        async with FaultProxy(port) as proxy:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"x")
            await reader.readexactly(1)
            proxy.connection(writer.get_extra_info("sockname")[1]).reset_peer()
            after_reset = await asyncio.wait_for(reader.read(10), 2)
            proxy.set_down(True)
            r2, _w2 = await asyncio.open_connection("127.0.0.1", proxy.port)
            refused = await asyncio.wait_for(r2.read(10), 2)
            proxy.set_down(False)
            ok, _ = await roundtrip(proxy, b"up")
        server.close()
        return after_reset, refused, ok

    after_reset, refused, ok = run(main())
    assert after_reset == b"" and refused == b"" and ok == b"up"


def test_idle_timeout_cuts_quiet_connections_only() -> None:
    async def main():
        server = await echo_server()
        port = server.sockets[0].getsockname()[1]
        async with FaultProxy(port, idle_timeout=0.3) as proxy:
            quiet_r, _quiet_w = await asyncio.open_connection("127.0.0.1", proxy.port)
            busy_r, busy_w = await asyncio.open_connection("127.0.0.1", proxy.port)
            for _ in range(8):
                busy_w.write(b".")
                await busy_r.readexactly(1)
                await asyncio.sleep(0.1)
            quiet_end = await asyncio.wait_for(quiet_r.read(1), 1)
            busy_w.write(b"!")
            busy_still = await asyncio.wait_for(busy_r.readexactly(1), 1)
            cuts = proxy.idle_cuts
        server.close()
        return quiet_end, busy_still, cuts

    quiet_end, busy_still, cuts = run(main())
    assert quiet_end == b"" and busy_still == b"!" and cuts == 1


def test_a_blackholed_path_tells_the_server_nothing_even_when_both_sides_are_done() -> None:
    """The client's side is dropped (a new network path) and the server half-closes (FIN):
    the proxy's pumps are both done, yet the server must not see the proxy let go (EOF or
    reset) before ``linger``: a dead network answers nothing. Releasing it at once made
    uvicorn's legacy server end half-open sockets a close timeout early."""

    async def main():
        seen: asyncio.Queue = asyncio.Queue()

        async def handle(reader, writer):
            await reader.read(1)
            seen.put_nowait("connected")
            await seen.join()  # until the test has blackholed the path
            writer.write_eof()  # the server half-closes, as legacy uvicorn does
            start = asyncio.get_running_loop().time()
            await reader.read(1)  # EOF or reset: the proxy let go
            seen.put_nowait(asyncio.get_running_loop().time() - start)

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with FaultProxy(port, linger=1.0) as proxy:
            _reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"x")
            assert await asyncio.wait_for(seen.get(), 5) == "connected"
            proxy.connection(writer.get_extra_info("sockname")[1]).drop_client()
            seen.task_done()
            held = await asyncio.wait_for(seen.get(), 5)
            writer.close()
        server.close()
        return held

    held = run(main())
    assert 0.9 <= held < 3.0, held
