"""The live bench's yardstick: what a user would write with nothing but ``websockets``.

A server with a ``dict`` registry (compare-and-delete on close) and plain ``websockets``
clients: one churn unit (connect, read the push, close), and the capacity bench's client
process, which opens, holds and closes connections on command (it is the client for both
servers, so their memory is measured against the same load).

Both servers run with the same protocol settings (:data:`KEEPALIVE`, :data:`PROTOCOL`):
websockets' default keepalive (which is also the ``postmortem-safe`` strategy's), no
compression, 64 KiB messages, as simkit's ``LocalServer`` configures itself.

Only the standard library and ``websockets``: the raw server's and the client's processes
import this module and must not pay for simkit's imports.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve

from benchmarks.common import rss_kib
from benchmarks.processes import commands, say

HOST = "127.0.0.1"
# websockets' defaults, written out: both servers ping every 20 s, give up after 20 s more,
# and wait 10 s for a closing handshake. Clients do not ping (browsers do not).
KEEPALIVE: dict[str, float] = {"ping_interval": 20.0, "ping_timeout": 20.0, "close_timeout": 10.0}
PROTOCOL: dict[str, Any] = {"compression": None, "max_size": 2**16}
CLIENT: dict[str, Any] = {"ping_interval": None, "proxy": None, "open_timeout": 30.0, **PROTOCOL}
OPEN_CONCURRENCY = 100  # handshakes in flight while the client process opens its batch
TIMEOUT = 60.0  # s: the bound on any one step (a churn run, a batch of handshakes, a reply)
CAPACITY_CLIENT = "benchmarks.raw_websockets:hold_process"  # see benchmarks.processes


def user_of(path: str) -> str:
    """The ``?user=`` of a request path (empty when there is none)."""
    return parse_qs(urlsplit(path).query).get("user", [""])[0]


async def until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Wait until ``predicate()``: a client sees its close a moment before the server's
    handler has run its cleanup, and the work is done only when the server says so."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached within {timeout} s")
        await asyncio.sleep(0.001)


class RawServer:
    """The hand-rolled server a user would write instead of simkit: a ``dict`` registry
    (compare-and-delete on close), optionally one push on arrival, only counts kept."""

    def __init__(self, *, push: bool = True) -> None:
        self.push = push
        self.registry: dict[str, ServerConnection] = {}
        self.handlers = 0  # handlers running (open, or still cleaning up)
        self.connects = 0
        self.pushes = 0
        self.port = 0
        self._server: Any = None

    async def start(self) -> None:
        self._server = await serve(self._handle, HOST, 0, **KEEPALIVE, **PROTOCOL)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.close()
            await asyncio.wait_for(server.wait_closed(), TIMEOUT)

    async def _handle(self, ws: ServerConnection) -> None:
        user = user_of(ws.request.path)
        self.handlers += 1
        self.connects += 1
        self.registry[user] = ws
        try:
            if self.push:
                self.pushes += 1
                await ws.send(json.dumps({"t": "push", "id": self.pushes}))
            async for _ in ws:
                pass
        finally:
            if self.registry.get(user) is ws:
                del self.registry[user]
            self.handlers -= 1


def raw_client(url: str, received: list[int]) -> Callable[[int], Any]:
    """One churn unit for connection ``i``: connect as user ``u<i>``, read the server's
    push (counted in ``received[0]``), close with 1000."""

    async def one(i: int) -> None:
        async with connect(f"{url}?user=u{i}", **CLIENT) as ws:
            if json.loads(await ws.recv())["t"] == "push":
                received[0] += 1

    return one


async def open_batch(url: str, held: list[ClientConnection], k: int) -> int:
    """Open ``k`` more connections, :data:`OPEN_CONCURRENCY` at a time; how many failed."""
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)
    first, failed = len(held), 0

    async def one(i: int) -> None:
        nonlocal failed
        async with gate:
            try:
                held.append(await connect(f"{url}?user=u{i}", **CLIENT))
            except Exception:  # refused, reset or timed out: counted, not fatal
                failed += 1

    await asyncio.gather(*(one(first + i) for i in range(k)))
    return failed


async def close_all(held: list[ClientConnection]) -> int:
    """Close every held connection with a close frame, as many at a time as opened."""
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def close(ws: ClientConnection) -> None:
        async with gate:
            await ws.close()

    closing, held[:] = list(held), []
    await asyncio.gather(*(close(ws) for ws in closing), return_exceptions=True)
    return len(closing)


async def hold(port: int) -> None:
    """The capacity bench's client process: ``open K`` opens K more connections and holds
    them, ``close`` closes them all; each command answers with counts and timings."""
    held: list[ClientConnection] = []
    url = f"ws://{HOST}:{port}/ws"
    say({"pid": os.getpid()})
    try:
        async for words in commands():
            started = time.perf_counter()
            if words[0] == "open":  # open K
                before = len(held)
                failed = await open_batch(url, held, int(words[1]))
                seconds = time.perf_counter() - started
                opened = len(held) - before
                say({"opened": opened, "failed": failed, "seconds": seconds, "rss_kib": rss_kib()})
            elif words[0] == "close":
                closed = await close_all(held)
                seconds = time.perf_counter() - started
                say({"closed": closed, "seconds": seconds})
    finally:
        for ws in held:
            ws.transport.abort()


def hold_process(port: str) -> None:
    """Entry point of the client process (:class:`benchmarks.processes.Child`)."""
    asyncio.run(hold(int(port)))
