"""The live half of ``make bench``: simkit's live runtime against raw ``websockets``.

Two questions, each answered against a yardstick written with nothing but ``websockets``
(v17, asyncio API) on the same machine in the same run:

- **Churn**: how many connections per second can be opened, used and closed? One unit of
  work is what a live tab does on a page load: connect with ``?user=``, get one push from
  the server (the app pushes to every user as soon as the registry routes to it), close
  with 1000, and the server's handler runs its cleanup. simkit runs it with everything a
  live run has switched on: ``LocalServer`` with its registry, census and event log, the
  census sampled every :data:`SAMPLE_EVERY` s as a live run's observer does, tabs on
  :class:`~simkit.live.network.LiveLink`. The raw loop keeps a ``dict`` registry with
  compare-and-delete and nothing else. A third engine, ``simkit-server``, is simkit's
  server with the raw client, to tell the server's share of the cost from the client's.
  No fault proxy: it is a test fixture, not part of either stack. Clients and server share
  one event loop, as in a live run; the engines alternate (raw, simkit, simkit-server,
  raw, ...) after a warm-up, all in one fresh process, so drift on a shared machine hits
  all alike; the figure is the median of the per-round ratios.
- **Capacity**: how much server memory does a held connection cost? A server process
  (``LocalServer`` or the raw server) and a client process holding N connections; the
  server's RSS growth divided by N, with the server's own count as proof they were held.

Both servers run with the same protocol settings (:data:`KEEPALIVE`, :data:`PROTOCOL`):
websockets' default keepalive (which is also the ``postmortem-safe`` strategy's), no
compression, 64 KiB messages, as ``LocalServer`` configures itself.

This module imports only the standard library and ``websockets`` at the top: the raw
server's process loads it with ``runpy`` and must not pay for simkit's imports.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[1]
STRATEGY = "postmortem-safe"  # the default live strategy: kick-old-safe, 20 s/20 s keepalive
# websockets' defaults, written out: both servers ping every 20 s, give up after 20 s more,
# and wait 10 s for a closing handshake. Clients do not ping (browsers do not).
KEEPALIVE: dict[str, float] = {"ping_interval": 20.0, "ping_timeout": 20.0, "close_timeout": 10.0}
PROTOCOL: dict[str, Any] = {"compression": None, "max_size": 2**16}
CLIENT: dict[str, Any] = {"ping_interval": None, "proxy": None, "open_timeout": 30.0, **PROTOCOL}

ENGINES = ("raw", "simkit", "simkit-server")  # churn; capacity compares the two servers
SERVERS = ("raw", "simkit")
# (connections per timed run, concurrent clients, timed rounds)
CHURN_FULL = (3_000, 32, 9)
CHURN_QUICK = (600, 32, 5)
CHURN_WARMUP = 300  # connections per engine before the timed rounds
SAMPLE_EVERY = 0.05  # s: a live run's observer step (1 scenario second at scale 0.05)
# (connections held, timed rounds)
CAPACITY_FULL = (10_000, 2)
CAPACITY_QUICK = (1_000, 1)
CAPACITY_WARMUP = 100  # connections opened and closed before the baseline RSS
OPEN_CONCURRENCY = 100  # handshakes in flight while the client process opens its batch
TIMEOUT = 60.0  # s: the bound on any one step (a churn run, a batch of handshakes, a reply)
TARGET = 0.8  # issue #6: simkit's churn at least 0.8x raw websockets'


def spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def user_of(path: str) -> str:
    return parse_qs(urlsplit(path).query).get("user", [""])[0]


def rss_kib(pid: int | str = "self") -> int:
    """Resident set size of a process, from /proc (0 where there is no /proc)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# --- the raw yardstick ------------------------------------------------------------------


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


# --- simkit's side ----------------------------------------------------------------------


async def start_local_server(*, push: bool, capacity: int) -> Any:
    """A ``LocalServer`` as a live run has it (its own Server actor, census, event log) plus
    the observer's sampling; with ``push``, the app greets every user as it connects."""
    from simkit.live.server import LocalServer

    server = LocalServer(STRATEGY, max_connections=max(10_000, capacity))
    await server.start()
    core = server.core
    if push:
        opened = core.on_open

        def on_open(link: Any) -> None:
            opened(link)
            server.push(link.user)

        core.on_open = on_open
    loop = asyncio.get_running_loop()

    def sample() -> None:
        if server._ws_server is None:
            return  # stopped
        core.env.census.sample(core.env.now(), core.registry)
        loop.call_later(SAMPLE_EVERY, sample)

    sample()
    return server


class _Direct:
    """Stands in for the fault proxy: :class:`LiveLink` dials ``proxy.port``."""

    def __init__(self, port: int) -> None:
        self.port = port


class _Tab:
    """What :class:`LiveLink` needs of a tab: on the first push, close as a page does."""

    __slots__ = ("done", "index", "pushes")

    def __init__(self, index: int, done: asyncio.Future) -> None:
        self.index, self.done, self.pushes = index, done, 0

    def on_open(self, link: Any) -> None:
        pass

    def on_message(self, link: Any, message: tuple) -> None:
        if message[0] == "push":
            self.pushes += 1
            link.close(1000)

    def on_close(self, link: Any, code: int) -> None:
        if not self.done.done():
            self.done.set_result(code)

    def answers(self, link: Any, kind: str) -> bool:
        return True


# --- churn ------------------------------------------------------------------------------


async def _workers(n: int, concurrency: int, one: Callable[[int], Any]) -> None:
    """Run ``one(i)`` for i in 0..n-1, ``concurrency`` at a time."""
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            await one(i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Wait until ``predicate()``: a client sees its close a moment before the server's
    handler has run its cleanup, and the churn is done only when the server says so."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached within {timeout} s")
        await asyncio.sleep(0.001)


def _raw_client(url: str, received: list[int]) -> Callable[[int], Any]:
    async def one(i: int) -> None:
        async with connect(f"{url}?user=u{i}", **CLIENT) as ws:
            if json.loads(await ws.recv())["t"] == "push":
                received[0] += 1

    return one


async def churn(engine: str, n: int, concurrency: int) -> dict[str, Any]:
    """``n`` connections opened, used (one push) and closed through ``engine``, timed from
    the first handshake to the server's last cleanup; with the server's own counts."""
    received = [0]
    out: dict[str, Any] = {"engine": engine, "conns": n, "concurrency": concurrency}
    if engine == "raw":
        raw = RawServer()
        await raw.start()
        one = _raw_client(f"ws://{HOST}:{raw.port}/ws", received)
        try:
            started, cpu = time.perf_counter(), time.process_time()
            await asyncio.wait_for(_workers(n, concurrency, one), TIMEOUT)
            await _until(lambda: raw.handlers == 0)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        finally:
            await raw.stop()
        out.update(server_connects=raw.connects, open_after=raw.handlers)
        out["registry_after"] = len(raw.registry)
    else:
        from simkit.live.network import LiveNetwork

        loop = asyncio.get_running_loop()
        server = await start_local_server(push=True, capacity=n)
        census = server.core.env.census
        net = LiveNetwork(
            loop,
            census,
            server,
            _Direct(server.port),  # type: ignore[arg-type]
            scale=1.0,
            close_timeout=KEEPALIVE["close_timeout"],
        )
        if engine == "simkit":
            # As in a live run: LiveNetwork keeps its links in ``server.clients`` and
            # sweeps the finished ones as they pile up (LiveNetwork._prune).

            async def one(i: int) -> None:
                tab = _Tab(i, loop.create_future())
                net.connect(tab, f"u{i}", None)
                await tab.done
                received[0] += tab.pushes

        else:
            one = _raw_client(server.url, received)
        try:
            started, cpu = time.perf_counter(), time.process_time()
            await asyncio.wait_for(_workers(n, concurrency, one), TIMEOUT)
            await _until(lambda: not server.open_links)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        finally:
            await net.aclose()
            await server.stop()
        if net.errors:
            raise RuntimeError(f"a live client failed: {net.errors[0]!r}") from net.errors[0]
        out.update(server_connects=census.connects, open_after=len(server.open_links))
        out["census_open_after"] = census.open_sockets
        out["registry_after"] = len(server.core.registry.entries())
        out["events_logged"] = len(server.events)
        out["samples"] = len(census.rows["t"])
    out.update(seconds=seconds, conns_per_s=n / seconds, pushes_received=received[0])
    # CPU time (clients and server together) is what a loaded machine distorts least: a
    # process that is descheduled loses wall time, not CPU time.
    out.update(cpu_s=cpu, cpu_us_per_conn=cpu / n * 1e6)
    return out


def churn_once(engine: str, n: int, concurrency: int) -> dict[str, Any]:
    """One churn run on a fresh event loop, after a garbage collection."""
    gc.collect()
    return asyncio.run(churn(engine, n, concurrency))


def churn_rounds(
    n: int, concurrency: int, repeats: int, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """A warm-up run of each engine, then ``repeats`` rounds, each engine once per round in
    :data:`ENGINES` order (in this process: see :func:`run_churn` for a fresh one)."""
    for engine in ENGINES:
        churn_once(engine, min(n, CHURN_WARMUP), concurrency)
    runs: dict[str, list[dict[str, Any]]] = {engine: [] for engine in ENGINES}
    for number in range(repeats):
        for engine in ENGINES:
            runs[engine].append(churn_once(engine, n, concurrency))
        raw = runs["raw"][-1]["conns_per_s"]
        log(
            f"  churn round {number}: "
            + ", ".join(f"{e} {runs[e][-1]['conns_per_s']:.0f}" for e in ENGINES)
            + f" conn/s (simkit {runs['simkit'][-1]['conns_per_s'] / raw:.2f}x raw)"
        )
    row: dict[str, Any] = {
        "conns": n,
        "concurrency": concurrency,
        "repeats": repeats,
        "warmup_conns": min(n, CHURN_WARMUP),
    }
    for engine, done in runs.items():
        row[engine] = {
            "conns_per_s": spread([r["conns_per_s"] for r in done]),
            "cpu_us_per_conn": spread([r["cpu_us_per_conn"] for r in done]),
            "runs": done,
        }
    for engine in ENGINES[1:]:
        name = engine.replace("-", "_")
        pairs = list(zip(runs["raw"], runs[engine], strict=True))
        ratios = [b["conns_per_s"] / a["conns_per_s"] for a, b in pairs]
        row[f"ratio_{name}_over_raw"] = {**spread(ratios), "per_pair": ratios}
        # the same ratio from CPU time: raw's CPU per connection over the engine's
        by_cpu = [a["cpu_us_per_conn"] / b["cpu_us_per_conn"] for a, b in pairs]
        row[f"cpu_ratio_{name}_over_raw"] = {**spread(by_cpu), "per_pair": by_cpu}
    return row


# --- child processes --------------------------------------------------------------------


class Child:
    """A helper process driven by lines: commands on its stdin, one JSON reply per command
    on its stdout (lines starting ``log:`` are progress). Every read has a deadline, and
    :meth:`close` always leaves no process behind."""

    def __init__(self, role: str, *args: object) -> None:
        code = (
            f"import runpy; runpy.run_path({str(Path(__file__))!r}, run_name='bench_live_child')"
            f"['_child']({role!r}, {[str(a) for a in args]!r})"
        )
        self.role = role
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def reply(self, timeout: float = TIMEOUT, log: Callable[[str], None] | None = None) -> dict:
        """The next JSON line, passing ``log:`` lines to ``log`` on the way."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"{self.role}: no reply within {timeout} s") from None
            if line is None:
                raise RuntimeError(f"{self.role} process ended:\n{self.stderr()}")
            if line.startswith("log:"):
                if log is not None:
                    log(line[4:])
                continue
            return json.loads(line)

    def ask(self, command: str, timeout: float = TIMEOUT) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.reply(timeout)

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-4000:]

    def close(self, timeout: float = 15.0) -> None:
        """Ask it to exit (EOF on stdin); kill it if it has not within ``timeout``."""
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.close()  # type: ignore[union-attr]
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._reader.join(5)
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdout.close()  # type: ignore[union-attr]
        self._stderr.close()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        self.close(timeout=15.0 if kind is None else 1.0)  # on failure, no patience


def _say(payload: dict[str, Any]) -> None:
    print(json.dumps(payload), flush=True)


async def _commands() -> Any:
    """This child's commands, one per stdin line, until EOF or ``exit``."""
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        words = line.split()
        if not words or words[0] == "exit":
            return
        yield words


async def _serve(kind: str, capacity: int) -> None:
    """The server process for the capacity test: holds connections, answers counts."""
    if kind == "simkit":
        local = await start_local_server(push=False, capacity=capacity)
        port = local.port

        def counts() -> dict[str, int]:
            return {
                "count": len(local.open_links),
                "census_open": local.core.env.census.open_sockets,
                "registry": len(local.core.registry.entries()),
                "connects": local.core.env.census.connects,
            }

        stop = local.stop
    elif kind == "raw":
        raw = RawServer(push=False)
        await raw.start()
        port = raw.port

        def counts() -> dict[str, int]:
            return {"count": raw.handlers, "registry": len(raw.registry), "connects": raw.connects}

        stop = raw.stop
    else:
        raise ValueError(f"unknown server {kind!r}; choose one of {SERVERS}")
    _say({"port": port, "pid": os.getpid(), "rss_kib": rss_kib()})
    try:
        async for words in _commands():
            if words[0] == "wait":  # wait COUNT: until the server itself counts COUNT
                started = time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await _until(_count_is(counts, int(words[1])))
                waited = time.monotonic() - started
                _say({**counts(), "waited_s": waited})
            elif words[0] == "stats":
                gc.collect()
                _say({**counts(), "rss_kib": rss_kib()})
    finally:
        await stop()


def _count_is(counts: Callable[[], dict[str, int]], target: int) -> Callable[[], bool]:
    return lambda: counts()["count"] == target


async def _open_batch(url: str, held: list[ClientConnection], k: int) -> int:
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


async def _close_all(held: list[ClientConnection]) -> int:
    """Close every held connection with a close frame, as many at a time as opened."""
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def close(ws: ClientConnection) -> None:
        async with gate:
            await ws.close()

    closing, held[:] = list(held), []
    await asyncio.gather(*(close(ws) for ws in closing), return_exceptions=True)
    return len(closing)


async def _hold(port: int) -> None:
    """The client process for the capacity test: opens, holds and closes connections."""
    held: list[ClientConnection] = []
    url = f"ws://{HOST}:{port}/ws"
    _say({"pid": os.getpid()})
    try:
        async for words in _commands():
            started = time.perf_counter()
            if words[0] == "open":  # open K
                before = len(held)
                failed = await _open_batch(url, held, int(words[1]))
                seconds = time.perf_counter() - started
                opened = len(held) - before
                _say({"opened": opened, "failed": failed, "seconds": seconds, "rss_kib": rss_kib()})
            elif words[0] == "close":
                closed = await _close_all(held)
                seconds = time.perf_counter() - started
                _say({"closed": closed, "seconds": seconds})
    finally:
        for ws in held:
            ws.transport.abort()


def _churn_child(n: int, concurrency: int, repeats: int) -> None:
    row = churn_rounds(n, concurrency, repeats, log=lambda line: print("log:" + line, flush=True))
    _say(row)


def _child(role: str, args: list[str]) -> None:
    """Entry point of a :class:`Child` process."""
    if role == "serve":
        asyncio.run(_serve(args[0], int(args[1])))
    elif role == "hold":
        asyncio.run(_hold(int(args[0])))
    elif role == "churn":
        _churn_child(*(int(a) for a in args))
    else:
        raise ValueError(f"unknown role {role!r}")


# --- measurements -----------------------------------------------------------------------


def run_churn(
    n: int, concurrency: int, repeats: int, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """:func:`churn_rounds` in a fresh process: this one's heap (and whatever ran before
    in it) must not slow down the garbage collector of either side."""
    per_run = TIMEOUT * len(ENGINES)
    with Child("churn", n, concurrency, repeats) as child:
        return child.reply(timeout=per_run * (repeats + 1), log=log)


def capacity(kind: str, n: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Server ``kind`` in one process, ``n`` connections held from another: the server's
    RSS growth per connection, time to open them all, and the server's own count."""
    server = Child("serve", kind, n)
    client = None
    try:
        hello = server.reply()
        client = Child("hold", hello["port"])
        client.reply()
        # Warm-up: code paths run once, so the baseline holds what any server has.
        warm = client.ask(f"open {CAPACITY_WARMUP}")
        server.ask(f"wait {warm['opened']}")
        client.ask("close")
        server.ask("wait 0")
        before = server.ask("stats")
        opened = client.ask(f"open {n}", timeout=TIMEOUT * 3)
        held = server.ask(f"wait {n}")
        during = server.ask("stats")
        closed = client.ask("close", timeout=TIMEOUT * 3)
        after = server.ask("wait 0")
        end = server.ask("stats")
        grown = (during["rss_kib"] - before["rss_kib"]) * 1024
        out = {
            "server": kind,
            "server_pid": server.pid,
            "client_pid": client.pid,
            "conns": n,
            "opened": opened["opened"],
            "failed": opened["failed"],
            "open_s": opened["seconds"],
            "server_count": held["count"],
            "server_counts_held": {k: v for k, v in during.items() if k != "rss_kib"},
            "held": held["count"] == n,
            "server_rss_start_kib": hello["rss_kib"],
            "server_rss_before_kib": before["rss_kib"],
            "server_rss_held_kib": during["rss_kib"],
            "server_rss_after_close_kib": end["rss_kib"],
            "bytes_per_conn": grown / n,
            "close_s": closed["seconds"],
            "server_count_after_close": after["count"],
            "registry_after_close": after["registry"],
            "client_rss_held_kib": opened["rss_kib"],
        }
        log(
            f"  capacity {kind}: {out['server_count']:,}/{n:,} held, opened in "
            f"{out['open_s']:.1f} s, {out['bytes_per_conn']:,.0f} B/conn server RSS"
        )
        return out
    finally:
        for child in (client, server):
            if child is not None:
                child.close(timeout=15.0 if sys.exc_info()[0] is None else 1.0)


def run_capacity(n: int, repeats: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    """``repeats`` rounds of raw then simkit, each with fresh processes."""
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in SERVERS}
    for _ in range(repeats):
        for kind in SERVERS:
            runs[kind].append(capacity(kind, n, log))
    row: dict[str, Any] = {"conns": n, "repeats": repeats, "warmup_conns": CAPACITY_WARMUP}
    for kind, done in runs.items():
        row[kind] = {
            "bytes_per_conn": spread([r["bytes_per_conn"] for r in done]),
            "open_s": spread([r["open_s"] for r in done]),
            "all_held": all(r["held"] for r in done),
            "runs": done,
        }
    ratios = [
        b["bytes_per_conn"] / a["bytes_per_conn"]
        for a, b in zip(runs["raw"], runs["simkit"], strict=True)
    ]
    row["ratio_simkit_over_raw"] = {**spread(ratios), "per_pair": ratios}
    return row


def run_live_bench(*, quick: bool, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Churn and capacity, quick (small, seconds) or full (about three minutes)."""
    started = time.perf_counter()
    n, concurrency, repeats = CHURN_QUICK if quick else CHURN_FULL
    held, rounds = CAPACITY_QUICK if quick else CAPACITY_FULL
    report: dict[str, Any] = {
        "quick": quick,
        "strategy": STRATEGY,
        "host": HOST,
        "keepalive": {"server": KEEPALIVE, "client": "no pings (browsers do not ping)"},
        "protocol": {k: v for k, v in PROTOCOL.items()},
        "method": {
            "churn": "one unit = connect ?user=, one push from the server, close 1000, the "
            "server's cleanup; timed from the first handshake to the server's last cleanup; "
            f"{concurrency} clients at a time, on one event loop with the server; engines "
            f"alternate {', '.join(ENGINES)} in one fresh process after a warm-up of "
            f"{min(n, CHURN_WARMUP)} connections each; ratio = median of per-round ratios",
            "simkit": "LocalServer (registry, census, event log, census sampled every "
            f"{SAMPLE_EVERY} s) with tabs on LiveLink; no fault proxy",
            "simkit-server": "the same LocalServer, driven by the raw client",
            "cpu": "process CPU time over the timed window, clients and server together; "
            "cpu ratio = raw CPU per connection / the engine's (a descheduled process loses "
            "wall time, not CPU time)",
            "raw": "websockets serve/connect, a dict registry with compare-and-delete",
            "capacity": "server and clients in separate processes; the server's RSS after "
            f"a warm-up of {CAPACITY_WARMUP} connections and gc, then with all held (after "
            "gc); bytes/conn = growth / connections; held = the server's own count",
            "target": f"churn simkit/raw >= {TARGET}",
        },
    }
    log(f"live churn: {repeats} rounds of {n:,} connections per engine ...")
    report["churn"] = run_churn(n, concurrency, repeats, log)
    log(f"live capacity: {held:,} connections held, {rounds} round(s) ...")
    report["capacity"] = run_capacity(held, rounds, log)
    report["problems"] = problems(report)
    report["wall_s"] = time.perf_counter() - started
    return report


def problems(report: dict[str, Any]) -> list[str]:
    """What went wrong, as opposed to slow: a run that did not do the work it counts, a
    server left with entries, connections not held. Empty when the figures can be trusted."""
    found = []
    for engine in ENGINES:
        for run in report["churn"][engine]["runs"]:
            n = run["conns"]
            if run["server_connects"] != n or run["pushes_received"] != n:
                found.append(
                    f"churn {engine}: {run['server_connects']} server connects and "
                    f"{run['pushes_received']} pushes received for {n} connections"
                )
            if run["open_after"] or run["registry_after"] or run.get("census_open_after"):
                found.append(f"churn {engine}: the server still has connections afterwards")
    for kind in SERVERS:
        for run in report["capacity"][kind]["runs"]:
            if not run["held"]:
                found.append(f"capacity {kind}: {run['server_count']} of {run['conns']} held")
            if run["server_count_after_close"] or run["registry_after_close"]:
                found.append(f"capacity {kind}: connections left after closing them all")
    return found


def live_table(report: dict[str, Any]) -> str:
    """The live report as the lines of ``make bench``'s table."""
    c, cap = report["churn"], report["capacity"]
    ratio = c["ratio_simkit_over_raw"]
    server_only = c["ratio_simkit_server_over_raw"]
    lines = [
        f"live churn ({c['conns']:,} connections per run, {c['concurrency']} at a time, "
        f"{c['repeats']} rounds; conn/s median [min-max]):",
    ]
    for engine in ENGINES:
        s, cpu = c[engine]["conns_per_s"], c[engine]["cpu_us_per_conn"]["median"]
        lines.append(
            f"  {engine:<14} {s['median']:>7.0f}  [{s['min']:.0f}-{s['max']:.0f}]  "
            f"{cpu:>5.0f} us CPU/conn (clients and server)"
        )
    verdict = "meets" if ratio["median"] >= TARGET else "BELOW"
    by_cpu = c["cpu_ratio_simkit_over_raw"]["median"]
    server_by_cpu = c["cpu_ratio_simkit_server_over_raw"]["median"]
    lines.append(
        f"  simkit/raw {ratio['median']:.2f}x [{ratio['min']:.2f}-{ratio['max']:.2f}] "
        f"({verdict} the {TARGET}x target; by CPU time {by_cpu:.2f}x); "
        f"simkit-server/raw {server_only['median']:.2f}x (by CPU time {server_by_cpu:.2f}x)"
    )
    lines.append(
        f"live capacity ({cap['conns']:,} connections held, clients in another process, "
        f"keepalive {KEEPALIVE['ping_interval']:.0f} s/{KEEPALIVE['ping_timeout']:.0f} s):"
    )
    for kind in SERVERS:
        r = cap[kind]
        run = r["runs"][-1]
        lines.append(
            f"  {kind:<14} {r['bytes_per_conn']['median']:>7,.0f} B/conn server RSS, "
            f"opened in {r['open_s']['median']:.1f} s, server count "
            f"{run['server_count']:,} ({'all held' if r['all_held'] else 'NOT ALL HELD'})"
        )
    lines.append(
        f"  simkit/raw memory per connection {cap['ratio_simkit_over_raw']['median']:.2f}x"
    )
    stages = ("server_rss_before_kib", "server_rss_held_kib", "server_rss_after_close_kib")
    rss = [
        f"{kind} " + " / ".join(f"{cap[kind]['runs'][-1][k] / 1024:.0f}" for k in stages)
        for kind in SERVERS
    ]
    lines.append(f"  server RSS MB before / holding / after closing all: {', '.join(rss)}")
    lines.extend(f"live PROBLEM: {problem}" for problem in report.get("problems", []))
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="the live half of make bench, on its own")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None, help="write the report as JSON here")
    options = parser.parse_args()
    live = run_live_bench(quick=options.quick, log=lambda line: print(line, flush=True))
    if options.out:
        Path(options.out).write_text(json.dumps(live, indent=2) + "\n")
    print()
    print(live_table(live))
    print(f"\nlive bench took {live['wall_s']:.0f} s")
