"""``python -m simkit calibrate --stack fastapi``: measure the post-mortem's own stack.

For each of uvicorn's WebSocket implementations, ``reps`` times each, on a real
:class:`~simkit.net.fastapi_stack.FastAPIServer` behind a
:class:`~simkit.net.proxy.FaultProxy` adding ``latency`` each way:

- **the reload under the post-mortem's handler** (preset ``seed``), in three shapes: the old
  socket is live and idle (``replace-live``); the old page's close frame is already in
  flight when the new socket arrives (``close-in-flight``); the old socket is half-open
  (``half-open``). Each repetition ends in one outcome: ``strand`` (the new socket open and
  not in the registry), ``self-kill`` (the new handler's ``del`` raised and its ``except``
  closed the NEW socket), ``registered`` (the new socket routed), and, separately,
  ``blocked_s``: how long the new socket was open but unregistered;
- **cleanup trips**: how many one-way trips after the page calls ``close()`` the handler's
  cleanup runs (the time to the cleanup divided by the proxy's latency);
- **server close**: whether ``await websocket.close()`` returns at once or waits for the
  echo (the time it took, in one-way trips);
- **keepalive**: with ``ws_ping_interval``/``ws_ping_timeout`` set, whether a silent peer is
  reaped and with which code; with them off, that it is not;
- **close codes**: what the handler's cleanup sees for a page's 1000 and 1001 and for a
  reset, and what the page sees for the server's close.

The result is written to ``simkit/calibration_fastapi.json`` (shipped) and
``tests/live/test_calibration_fastapi.py`` holds the kit to it.
"""

from __future__ import annotations

import asyncio
import json
import platform
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypedDict, TypeVar, cast

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from simkit.model.errors import ConfigError
from simkit.model.liveness import Liveness
from simkit.model.strategy import Strategy
from simkit.model.strategy import strategy as strategy_of
from simkit.net.common import STACKS, BaseServer
from simkit.net.proxy import FaultProxy, Toxics
from simkit.net.server import LocalServer

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "calibration_fastapi.json"
IMPLS = STACKS["fastapi"]
LATENCY = 0.025  # one way, through the proxy
CLOSE_TIMEOUT = 1.0  # the servers' close timeout during calibration (legacy blocks this long)
SETTLE = 0.2  # after the old handler finished, before the outcome is read

Log = Callable[[str], None]
T = TypeVar("T")


# -- what is measured, as calibration_fastapi.json holds it -----------------------------------


class Spread(TypedDict):
    median: float
    min: float
    max: float


class ReloadShape(TypedDict):
    """One shape of the reload, over its repetitions."""

    outcomes: dict[str, int]  # strand, self-kill, registered -> how many
    blocked_s: Spread | None  # how long the new socket was open but unregistered
    self_kill_codes: list[int]  # the codes the new socket was closed with by its own handler


class KeepaliveOn(TypedDict):
    interval_s: float
    timeout_s: float
    reaped: int  # silent peers reaped, of the repetitions
    codes: dict[str, int]  # the code the handler saw -> how many
    after_s: Spread


class KeepaliveOff(TypedDict):
    reaped: int
    watched_s: float


class Keepalive(TypedDict):
    on: KeepaliveOn
    off: KeepaliveOff


class Timings(TypedDict):
    cleanup_trips: Spread  # one-way trips from the page's close() to its handler's cleanup
    server_close_trips: Spread  # one-way trips ``await websocket.close()`` took
    server_close_code_seen_by_page: dict[str, int]
    handler_sees: dict[str, dict[str, int]]  # the page's 1000, 1001, reset -> codes seen


class Implementation(Timings):
    """Every measurement of one uvicorn WebSocket implementation."""

    reload: dict[str, ReloadShape]
    keepalive: Keepalive


class Versions(TypedDict):
    fastapi: str
    uvicorn: str
    websockets: str
    wsproto: str
    python: str


class Setup(TypedDict):
    reps: int
    latency_one_way_s: float
    close_timeout_s: float
    host: str


class FastAPICalibration(TypedDict):
    """The file: what was measured on which versions, per implementation."""

    about: str
    versions: Versions
    setup: Setup
    implementations: dict[str, Implementation]


class _Reloaded(TypedDict):
    outcome: str
    blocked_s: float | None
    code: int | None


class _Silent(TypedDict):
    reaped: bool
    code: str | None
    after_s: float


class Bench:
    """One FastAPI server behind one proxy, and what a case needs of them."""

    def __init__(self, server: BaseServer, proxy: FaultProxy) -> None:
        self.server, self.proxy = server, proxy

    async def join(self, user: str) -> ClientConnection:
        return await connect(
            f"ws://127.0.0.1:{self.proxy.port}/ws?user={user}",
            proxy=None,
            ping_interval=None,
            open_timeout=5,
            close_timeout=CLOSE_TIMEOUT,
        )

    async def registered(self, user: str, timeout: float = 5.0) -> None:
        await self.server.until(lambda s: user in s.registry_snapshot(), timeout=timeout)

    def events(self, user: str) -> list[tuple[float, str, int, str]]:
        return [(t, e, c, d) for t, e, c, u, d in self.server.events if u == user]


def _conns(bench: Bench, user: str) -> list[int]:
    seen: list[int] = []
    for _, event, conn, _ in bench.events(user):
        if event == "open" and conn not in seen:
            seen.append(conn)
    return seen


async def _reload(bench: Bench, user: str, shape: str) -> _Reloaded:
    """One reload of a tab under the post-mortem's handler; what became of the new socket."""
    old = await bench.join(user)
    await bench.registered(user)
    if shape == "half-open":
        piped = bench.proxy.connection(old.transport.get_extra_info("sockname")[1])
        assert piped is not None
        piped.blackhole()
    elif shape == "close-in-flight":
        asyncio.get_running_loop().create_task(old.close())
        await asyncio.sleep(LATENCY / 2)  # the close frame is on its way when the new one opens
    new = await bench.join(user)
    old_id = _conns(bench, user)[0]
    # the old handler finishes (at once, or after the close timeout), then its consequences
    await bench.server.until(lambda s: old_id not in s.open_links, timeout=CLOSE_TIMEOUT + 3)
    await asyncio.sleep(SETTLE)
    killed: int | None = None
    try:
        await asyncio.wait_for(new.recv(), 0.05)
    except ConnectionClosed as closed:
        killed = closed.rcvd.code if closed.rcvd is not None else 1006
    except TimeoutError:
        pass
    conns = _conns(bench, user)
    new_id = conns[-1]
    registered = [t for t, e, c, _ in bench.events(user) if e == "registered" and c == new_id]
    opened_at = [t for t, e, c, _ in bench.events(user) if e == "open" and c == new_id]
    blocked = (registered[0] - opened_at[0]) if registered else None
    routed = bench.server.registry_snapshot().get(user) == [new_id]
    if killed is not None:
        outcome = "self-kill"
    elif routed:
        outcome = "registered"
    else:
        outcome = "strand"
    for ws in (old, new):
        ws.transport.abort()
    await bench.server.until(lambda s: user not in s.per_user, timeout=CLOSE_TIMEOUT + 5)
    blocked_s = None if blocked is None else round(blocked, 4)
    return {"outcome": outcome, "blocked_s": blocked_s, "code": killed}


async def _cleanup_trips(bench: Bench, user: str) -> float:
    """One-way trips from the page's ``close()`` to its handler's cleanup."""
    ws = await bench.join(user)
    await bench.registered(user)
    start = bench.server.elapsed()
    await ws.close(1000)
    await bench.server.until(lambda s: user not in s.per_user, timeout=5)
    cleanup = [t for t, e, _, _ in bench.events(user) if e == "cleanup"][-1]
    return (cleanup - start) / LATENCY


async def _server_close(bench: Bench, user: str) -> tuple[float, int | None]:
    """(one-way trips ``await websocket.close()`` took, the code the page saw)."""
    ws = await bench.join(user)
    await bench.registered(user)
    link = next(link for link in bench.server.open_links.values() if link.user == user)
    start = time.monotonic()
    await link.close_socket(1000, "")
    took = (time.monotonic() - start) / LATENCY
    code: int | None = None
    try:
        await asyncio.wait_for(ws.recv(), 5)
    except ConnectionClosed as closed:
        code = closed.rcvd.code if closed.rcvd is not None else 1006
    await bench.server.until(lambda s: user not in s.per_user, timeout=5)
    return took, code


async def _page_code(bench: Bench, user: str, how: str) -> str:
    """The code the handler's cleanup logs when the page closes with ``how``."""
    ws = await bench.join(user)
    await bench.registered(user)
    if how == "reset":
        ws.transport.abort()
    else:
        await ws.close(int(how))
    await bench.server.until(lambda s: user not in s.per_user, timeout=5)
    return [d for _, e, _, d in bench.events(user) if e == "cleanup"][-1]


async def _keepalive(bench: Bench, user: str, wait: float) -> _Silent:
    """A peer whose path goes silent: reaped (and with which code, after how long) or not."""
    ws = await bench.join(user)
    await bench.registered(user)
    piped = bench.proxy.connection(ws.transport.get_extra_info("sockname")[1])
    assert piped is not None
    piped.blackhole()
    start = time.monotonic()
    try:
        await bench.server.until(lambda s: user not in s.per_user, timeout=wait)
        reaped = True
    except TimeoutError:
        reaped = False
    took = time.monotonic() - start
    codes = [d for _, e, _, d in bench.events(user) if e == "cleanup"]
    ws.transport.abort()
    if not reaped:
        for link in list(bench.server.open_links.values()):
            if link.user == user:
                link.abort()
        await bench.server.until(lambda s: user not in s.per_user, timeout=5)
    return {"reaped": reaped, "code": codes[-1] if reaped else None, "after_s": round(took, 3)}


async def _bench(strategy: str | Strategy, ws: str, run: Callable[[Bench], Awaitable[T]]) -> T:
    server = LocalServer(strategy, stack="fastapi", ws=ws, close_timeout=CLOSE_TIMEOUT)
    async with server:
        proxy = FaultProxy(server.port, defaults=Toxics(latency=LATENCY))
        async with proxy:
            return await run(Bench(server, proxy))


def _summary(values: list[float]) -> Spread:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


async def measure(ws: str, reps: int, log: Log) -> Implementation:
    """Every measurement for one implementation."""
    reload: dict[str, ReloadShape] = {}
    for shape in ("replace-live", "close-in-flight", "half-open"):

        async def reloads(bench: Bench, shape: str = shape) -> list[_Reloaded]:
            return [await _reload(bench, f"{shape}-{i}", shape) for i in range(reps)]

        results = await _bench("seed", ws, reloads)
        outcomes = Counter(r["outcome"] for r in results)
        blocked = [r["blocked_s"] for r in results if r["blocked_s"] is not None]
        reload[shape] = {
            "outcomes": {k: outcomes.get(k, 0) for k in ("strand", "self-kill", "registered")},
            "blocked_s": _summary(blocked) if blocked else None,
            "self_kill_codes": sorted({code for r in results if (code := r["code"]) is not None}),
        }
        log(f"  {ws} {shape}: {dict(outcomes)}, blocked {reload[shape]['blocked_s']}")

    async def timings(bench: Bench) -> Timings:
        trips = [await _cleanup_trips(bench, f"trip-{i}") for i in range(reps)]
        closes = [await _server_close(bench, f"close-{i}") for i in range(reps)]
        codes = {
            how: Counter([await _page_code(bench, f"code-{how}-{i}", how) for i in range(reps)])
            for how in ("1000", "1001", "reset")
        }
        return {
            "cleanup_trips": _summary(trips),
            "server_close_trips": _summary([c[0] for c in closes]),
            "server_close_code_seen_by_page": dict(Counter(str(c[1]) for c in closes)),
            "handler_sees": {how: dict(counter) for how, counter in codes.items()},
        }

    timed = await _bench("postmortem-safe", ws, timings)
    log(f"  {ws} cleanup trips {timed['cleanup_trips']}, close() {timed['server_close_trips']}")
    quick = Liveness("calibration", 0.2, 0.2, summary="ping 0.2 s, timeout 0.2 s")
    keepalive = strategy_of("seed").replace(name="seed-keepalive", liveness=quick)

    async def silent(bench: Bench, wait: float) -> list[_Silent]:
        return [await _keepalive(bench, f"silent-{i}", wait) for i in range(reps)]

    on = await _bench(keepalive, ws, lambda b: silent(b, 3.0))
    off = await _bench("seed", ws, lambda b: silent(b, 0.6))
    keepalive_seen: Keepalive = {
        "on": {
            "interval_s": 0.2,
            "timeout_s": 0.2,
            "reaped": sum(r["reaped"] for r in on),
            "codes": dict(Counter(str(r["code"]) for r in on)),
            "after_s": _summary([r["after_s"] for r in on]),
        },
        "off": {"reaped": sum(r["reaped"] for r in off), "watched_s": 0.6},
    }
    log(f"  {ws} keepalive on: {keepalive_seen['on']['reaped']}/{reps} reaped")
    return {
        "reload": reload,
        "cleanup_trips": timed["cleanup_trips"],
        "server_close_trips": timed["server_close_trips"],
        "server_close_code_seen_by_page": timed["server_close_code_seen_by_page"],
        "handler_sees": timed["handler_sees"],
        "keepalive": keepalive_seen,
    }


def calibrate(
    reps: int = 20,
    *,
    out: Path | None = DEFAULT_OUT,
    log: Log = print,
    impls: tuple[str, ...] = IMPLS,
) -> FastAPICalibration:
    """Measure every implementation ``reps`` times per case; write ``out`` (None: don't)."""
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        raise ConfigError(f"reps must be a whole number >= 1, got {reps!r}")
    import fastapi
    import uvicorn
    import wsproto
    from websockets.version import version as websockets_version

    results: dict[str, Implementation] = {}
    for ws in impls:
        log(f"calibrating FastAPI on uvicorn, ws={ws} ({reps} repetitions per case)")
        results[ws] = asyncio.run(measure(ws, reps, log))
    data: FastAPICalibration = {
        "about": "FastAPI on uvicorn under the post-mortem's handler (preset seed) and the "
        "kit's postmortem-safe, per WebSocket implementation; python -m simkit calibrate "
        "--stack fastapi",
        "versions": {
            "fastapi": fastapi.__version__,
            "uvicorn": uvicorn.__version__,
            "websockets": websockets_version,
            "wsproto": getattr(wsproto, "__version__", "?"),
            "python": platform.python_version(),
        },
        "setup": {
            "reps": reps,
            "latency_one_way_s": LATENCY,
            "close_timeout_s": CLOSE_TIMEOUT,
            "host": "127.0.0.1, through simkit's FaultProxy",
        },
        "implementations": results,
    }
    if out is not None:
        out.write_text(json.dumps(data, indent=1) + "\n")
    return data


def load(path: Path = DEFAULT_OUT) -> FastAPICalibration:
    """The shipped measurements."""
    # The file :func:`calibrate` wrote, read as written (its shape is not checked here).
    return cast(FastAPICalibration, json.loads(path.read_text()))
