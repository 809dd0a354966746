"""The live half of ``make bench``: simkit's live runtime against raw ``websockets``.

Two questions, each answered against a yardstick written with nothing but ``websockets``
(v17, asyncio API) on the same machine in the same run:

- **Churn**: how many connections per second can be opened, used and closed? One unit of
  work is what a live tab does on a page load: connect with ``?user=``, get one push from
  the server (the app pushes to every user as soon as the registry routes to it), close
  with 1000, and the server's handler runs its cleanup. simkit runs it with everything a
  live run has switched on: ``LocalServer`` with its registry, census and event log, the
  census sampled every :data:`SAMPLE_EVERY` s as a live run's observer does, tabs on
  :class:`~simkit.net.network.LiveLink`. The raw loop keeps a ``dict`` registry with
  compare-and-delete and nothing else. A third engine, ``simkit-server``, is simkit's
  server with the raw client, to tell the server's share of the cost from the client's.
  No fault proxy: it is a test fixture, not part of either stack. Clients and server share
  one event loop, as in a live run; the engines alternate (raw, simkit, simkit-server,
  raw, ...) after a warm-up, all in one fresh process, so drift on a shared machine hits
  all alike; the figure is the median of the per-round ratios.
- **Capacity**: how much server memory does a held connection cost? A server process
  (``LocalServer`` or the raw server) and a client process holding N connections; the
  server's RSS growth divided by N, with the server's own count as proof they were held.

The yardstick (server, clients, the shared protocol settings) is
:mod:`benchmarks.raw_websockets`; the helper processes are :class:`~benchmarks.processes.Child`.
``python -m benchmarks.live [--quick] [--out FILE]`` runs this half on its own.

simkit is imported inside the functions that use it, never at the top: the raw server's
process imports this module and must not pay for simkit's imports.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import rss_kib, spread, write_json
from benchmarks.processes import Child, commands, say
from benchmarks.raw_websockets import (
    CAPACITY_CLIENT,
    HOST,
    KEEPALIVE,
    PROTOCOL,
    TIMEOUT,
    RawServer,
    raw_client,
    until,
)

STRATEGY = "postmortem-safe"  # the default live strategy: kick-old-safe, 20 s/20 s keepalive
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
TARGET = 0.8  # simkit's churn at least 0.8x raw websockets'
SERVE = "benchmarks.live:serve_process"
CHURN = "benchmarks.live:churn_process"


# --- simkit's side ----------------------------------------------------------------------


async def start_local_server(*, push: bool, capacity: int) -> Any:
    """A ``LocalServer`` as a live run has it (its own Server actor, census, event log) plus
    the observer's sampling; with ``push``, the app greets every user as it connects."""
    from simkit.net.server import LocalServer

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


async def churn(engine: str, n: int, concurrency: int) -> dict[str, Any]:
    """``n`` connections opened, used (one push) and closed through ``engine``, timed from
    the first handshake to the server's last cleanup; with the server's own counts."""
    received = [0]
    out: dict[str, Any] = {"engine": engine, "conns": n, "concurrency": concurrency}
    if engine == "raw":
        raw = RawServer()
        await raw.start()
        one = raw_client(f"ws://{HOST}:{raw.port}/ws", received)
        try:
            started, cpu = time.perf_counter(), time.process_time()
            await asyncio.wait_for(_workers(n, concurrency, one), TIMEOUT)
            await until(lambda: raw.handlers == 0)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        finally:
            await raw.stop()
        out.update(server_connects=raw.connects, open_after=raw.handlers)
        out["registry_after"] = len(raw.registry)
    else:
        from simkit.net.network import LiveNetwork

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
            one = raw_client(server.url, received)
        try:
            started, cpu = time.perf_counter(), time.process_time()
            await asyncio.wait_for(_workers(n, concurrency, one), TIMEOUT)
            await until(lambda: not server.open_links)
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


# --- helper processes -------------------------------------------------------------------


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
    say({"port": port, "pid": os.getpid(), "rss_kib": rss_kib()})
    try:
        async for words in commands():
            if words[0] == "wait":  # wait COUNT: until the server itself counts COUNT
                started = time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await until(_count_is(counts, int(words[1])))
                waited = time.monotonic() - started
                say({**counts(), "waited_s": waited})
            elif words[0] == "stats":
                gc.collect()
                say({**counts(), "rss_kib": rss_kib()})
    finally:
        await stop()


def _count_is(counts: Callable[[], dict[str, int]], target: int) -> Callable[[], bool]:
    return lambda: counts()["count"] == target


def serve_process(kind: str, capacity: str) -> None:
    """Entry point of the capacity bench's server process (a :class:`Child`)."""
    asyncio.run(_serve(kind, int(capacity)))


def churn_process(n: str, concurrency: str, repeats: str) -> None:
    """Entry point of the churn process (a :class:`Child`): every round, then one reply."""
    row = churn_rounds(
        int(n), int(concurrency), int(repeats), log=lambda line: print("log:" + line, flush=True)
    )
    say(row)


# --- measurements -----------------------------------------------------------------------


def run_churn(
    n: int, concurrency: int, repeats: int, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """:func:`churn_rounds` in a fresh process: this one's heap (and whatever ran before
    in it) must not slow down the garbage collector of either side."""
    per_run = TIMEOUT * len(ENGINES)
    with Child(CHURN, n, concurrency, repeats) as child:
        return child.reply(timeout=per_run * (repeats + 1), log=log)


def capacity(kind: str, n: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Server ``kind`` in one process, ``n`` connections held from another: the server's
    RSS growth per connection, time to open them all, and the server's own count."""
    server = Child(SERVE, kind, n)
    client = None
    try:
        hello = server.reply()
        client = Child(CAPACITY_CLIENT, hello["port"])
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
        write_json(live, Path(options.out))
    print()
    print(live_table(live))
    print(f"\nlive bench took {live['wall_s']:.0f} s")
