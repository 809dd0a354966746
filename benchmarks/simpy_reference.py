"""The ``reference`` scenario in plain SimPy, written as carefully as we can: the yardstick
simkit's speed is measured against.

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

What makes it careful (and what simkit does too): with zero latency every ping to a peer
that still answers is answered at once, so a keepalive that ticks every 20 s changes nothing
until its peer goes silent. Here a connection's keepalive costs nothing while its peer
answers; when the peer goes silent, one timeout is scheduled for the instant the ticking
keepalive would declare it dead: the second tick at or after that moment (the first ping
goes unanswered, the next tick finds it so). Tick times are summed as the ticking process
sums them (opened + 20 + 20 ...), so the trajectory is the same as the ticking model's
(:mod:`benchmarks.simpy_ticking`, kept as the naive yardstick), event for event where
anything changes. Each tab is an ordinary SimPy process; one-shot reactions (the browser's
delayed close, the close timeout, the keepalive's verdict) are callbacks on timeouts, not
processes of their own, as a SimPy user who cares about speed writes them. Bound methods
and locals are hoisted out of the hot loops (``env.timeout``), which is worth ~10 %.

Random draws per tab, in order: U(0, 5), then per cycle Exp(60), U(1, 3), U(0, 1). ``rng``
may give each tab its own stream (simkit's, for a trajectory-exact comparison); by default
one ``random.Random(seed)`` feeds them all.
"""

from __future__ import annotations

import gc
import random
from collections.abc import Callable

import simpy

ARRIVAL = 5.0  # a tab opens at U(0, ARRIVAL)
MEAN_STAY = 60.0
RELOAD = (1.0, 3.0)
CLEAN_CLOSE = 0.7  # probability that a reload closes the socket (else it vanishes)
# No unload handler: the browser closes the socket this much later (simkit's default, from
# its Chromium calibration: simkit.calibration.TIMING.unload_close; a test keeps them equal).
BROWSER_CLOSE_DELAY = 0.0002
CLOSE_TIMEOUT = 10.0  # websockets' default: a closing server waits this long for the echo
PING_INTERVAL = 20.0  # websockets' default; its ping timeout is 20 s as well
# simkit runs on after the workload long enough for every timeout to pass (api.default_settle:
# heartbeat 40 + close timeout 10 + backoff 5 + guard 3 + 10), and samples that tail too.
SETTLE = 68.0


class Conn:
    """The server's end of one WebSocket."""

    __slots__ = ("closing", "open", "opened", "silent", "stale", "user")

    def __init__(self, user: int, opened: float) -> None:
        self.user = user
        self.opened = opened  # the keepalive ticks at opened + 20, + 20, ...
        self.open = True  # handshake done, not yet closed (closing counts as open)
        self.closing = False  # the server sent its close frame and waits for the echo
        self.silent = False  # the tab vanished: nothing arrives in either direction
        self.stale = False  # its page load is over


class Server:
    """The registry (user -> connection) and the counters the sampler reads."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.timeout = env.timeout
        self.registry: dict[int, Conn] = {}
        self.open_sockets = 0
        self.stale = 0
        self.connects = 0

    def connect(self, user: int) -> Conn:
        conn = Conn(user, self.env.now)
        self.open_sockets += 1
        self.connects += 1
        registry = self.registry
        old = registry.get(user)
        registry[user] = conn
        if old is not None:
            self.close(old)  # kick-old: replaced by a newer connection
        return conn

    def went_silent(self, conn: Conn) -> None:
        """The peer stops answering: the keepalive's verdict comes at the second tick at or
        after now (the first ping goes unanswered; the next tick finds it so), unless the
        connection is closed before."""
        now = self.env.now
        tick = conn.opened + PING_INTERVAL
        while tick < now:
            tick += PING_INTERVAL
        self.timeout(tick + PING_INTERVAL - now).callbacks.append(
            lambda _, c=conn: self.keepalive_verdict(c)
        )

    def keepalive_verdict(self, conn: Conn) -> None:
        if conn.open and not conn.closing:
            self.close(conn)  # 1011

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
            self.timeout(CLOSE_TIMEOUT).callbacks.append(lambda _: self.closed(conn))
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
    timeout, uniform, expovariate, chance = env.timeout, rng.uniform, rng.expovariate, rng.random
    connect, closed = server.connect, server.closed
    rate = 1.0 / MEAN_STAY
    yield timeout(uniform(0.0, ARRIVAL))
    conn = connect(user)
    while True:
        yield timeout(expovariate(rate))
        if env.now >= duration:
            return
        downtime = uniform(*RELOAD)
        vanish = chance() >= CLEAN_CLOSE
        server.page_ended(conn)
        if vanish:
            conn.silent = True
            server.went_silent(conn)
        else:
            timeout(BROWSER_CLOSE_DELAY).callbacks.append(lambda _, c=conn: closed(c))
        yield timeout(downtime)
        conn = connect(user)


def sampler(env: simpy.Environment, server: Server, end: float, rows: list[tuple[int, int]]):
    t = 0
    while True:
        rows.append((server.open_sockets, server.stale))
        if t + 1 > end:
            return
        t += 1
        yield env.timeout(1.0)


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
    thresholds = gc.get_threshold()
    gc.freeze()  # as simkit's VirtualRuntime.execute does
    gc.set_threshold(100_000, 50, 100)
    try:
        return _simulate(tabs, duration, seed, settle, rng)
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _simulate(
    tabs: int,
    duration: float,
    seed: int,
    settle: float,
    rng: Callable[[int], random.Random] | None,
) -> dict:
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
    step, peek = env.step, env.peek
    while peek() <= end:
        step()
        events += 1
    return {
        "mean_open_sockets": sum(r[0] for r in rows) / len(rows),
        "mean_stale": sum(r[1] for r in rows) / len(rows),
        "connects": server.connects,
        "events": events,
        "samples": len(rows),
    }
