"""The ``reference`` scenario in naive plain SimPy: every connection runs a keepalive process
that ticks every 20 s, even while every ping is answered at once. It was the benchmark's
first yardstick; :mod:`benchmarks.simpy_reference` (the yardstick now) schedules a keepalive
only when its peer goes silent, gives the same trajectories and runs ~3x faster. ``make
bench`` still times this one, labelled "SimPy, ticking keepalive", for comparison with
earlier figures. It runs with Python's default garbage-collector settings, as first written.

The model (simkit/scenarios.py ``reference``, as simkit's actors and network play it with
zero latency):

* ``tabs`` tabs; tab i is user i (per-tab identity: the id survives reloads).
* A tab opens at U(0, 5) s and connects. Connecting is instantaneous: the server socket opens
  and the server registers it at once (kick-old-safe: if the registry holds an older
  connection of the same user, the server closes that one).
* The tab stays Exp(mean 60 s), then reloads (no new reload starts at or after ``duration``).
  Its socket is stale from that moment until the server closes it. With probability 0.7 the
  page closes it: the browser sends close(1001) 0.2 ms after unload and the server closes it
  when that arrives (zero latency). Otherwise the tab vanishes: nothing reaches the server.
* The reload takes U(1, 3) s, then the tab connects again as the same user.
* A server-initiated close (a kick, or a keepalive failure, code 1011) waits for the peer's
  close echo; a silent peer never echoes, so the socket closes after the 10 s close timeout.
* Keepalive: the server pings every 20 s per connection, the first 20 s after it opened; a
  ping unanswered when the next one is due (20 s timeout) means the connection is closed.
* Compare-and-delete: a closing handler removes the registry entry only if it is its own.
* Sampled every second, t = 0 .. duration + settle, both included; a socket counts as open
  from its handshake until the server has closed it (a closing socket is still open).

Random draws per tab, in order: U(0, 5), then per cycle Exp(60), U(1, 3), U(0, 1). ``rng``
may give each tab its own stream (simkit's, for a trajectory-exact comparison); by default
one ``random.Random(seed)`` feeds them all.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import simpy

# The model's constants and its sampler are the careful yardstick's: the two differ only in
# how a connection's keepalive is scheduled, never in what is modelled or how it is read.
from benchmarks.simpy_reference import (
    ARRIVAL,
    BROWSER_CLOSE_DELAY,
    CLEAN_CLOSE,
    CLOSE_TIMEOUT,
    MEAN_STAY,
    PING_INTERVAL,
    RELOAD,
    SETTLE,
    sampler,
)


class Conn:
    """The server's end of one WebSocket."""

    __slots__ = ("awaiting_pong", "closing", "open", "silent", "stale", "user")

    def __init__(self, user: int) -> None:
        self.user = user
        self.open = True  # handshake done, not yet closed (closing counts as open)
        self.closing = False  # the server sent its close frame and waits for the echo
        self.silent = False  # the tab vanished: nothing arrives in either direction
        self.stale = False  # its page load is over
        self.awaiting_pong = False


class Server:
    """The registry (user -> connection) and the counters the sampler reads."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.registry: dict[int, Conn] = {}
        self.open_sockets = 0
        self.stale = 0
        self.connects = 0

    def connect(self, user: int) -> Conn:
        conn = Conn(user)
        self.open_sockets += 1
        self.connects += 1
        old = self.registry.get(user)
        self.registry[user] = conn
        if old is not None:
            self.close(old)  # kick-old: replaced by a newer connection
        self.env.process(self.keepalive(conn))
        return conn

    def keepalive(self, conn: Conn):
        while True:
            yield self.env.timeout(PING_INTERVAL)
            if conn.closing or not conn.open:
                return
            if conn.awaiting_pong:  # the last ping went unanswered for 20 s
                self.close(conn)  # 1011
                return
            # With zero latency a live tab's pong is back at once; a silent one never answers.
            conn.awaiting_pong = conn.silent

    def page_ended(self, conn: Conn) -> None:
        if conn.open and not conn.stale:
            conn.stale = True
            self.stale += 1

    def close(self, conn: Conn) -> None:
        """The server closes ``conn``: wait for the echo, at most CLOSE_TIMEOUT seconds."""
        if conn.closing or not conn.open:
            return
        conn.closing = True
        if conn.silent:
            self.env.timeout(CLOSE_TIMEOUT).callbacks.append(lambda _: self.closed(conn))
        else:
            self.closed(conn)  # the echo is back at once

    def closed(self, conn: Conn) -> None:
        """The handler finishes: counters, then compare-and-delete."""
        if not conn.open:
            return
        conn.open = False
        self.open_sockets -= 1
        if conn.stale:
            self.stale -= 1
        if self.registry.get(conn.user) is conn:
            del self.registry[conn.user]


def tab(env: simpy.Environment, server: Server, user: int, rng: random.Random, duration: float):
    yield env.timeout(rng.uniform(0.0, ARRIVAL))
    conn = server.connect(user)
    while True:
        yield env.timeout(rng.expovariate(1.0 / MEAN_STAY))
        if env.now >= duration:
            return
        downtime = rng.uniform(*RELOAD)
        vanish = rng.random() >= CLEAN_CLOSE
        server.page_ended(conn)
        if vanish:
            conn.silent = True
        else:
            env.timeout(BROWSER_CLOSE_DELAY).callbacks.append(lambda _, c=conn: server.closed(c))
        yield env.timeout(downtime)
        conn = server.connect(user)


def simulate(
    tabs: int,
    duration: float,
    seed: int,
    *,
    settle: float = SETTLE,
    rng: Callable[[int], random.Random] | None = None,
) -> dict:
    """Run the reference model; return mean open and stale sockets, connects and the number
    of SimPy events processed."""
    env = simpy.Environment()
    server = Server(env)
    shared = random.Random(seed)
    for user in range(tabs):
        stream = shared if rng is None else rng(user)
        env.process(tab(env, server, user, stream, duration))
    end = duration + settle
    rows: list[tuple[int, int]] = []
    env.process(sampler(env, server, end, rows))
    events = 0
    while env.peek() <= end:
        env.step()
        events += 1
    return {
        "mean_open_sockets": sum(r[0] for r in rows) / len(rows),
        "mean_stale": sum(r[1] for r in rows) / len(rows),
        "connects": server.connects,
        "events": events,
        "samples": len(rows),
    }
