"""The link-level conformance check: what every network does with one WebSocket.

In the spirit of trio's ``check_two_way_stream``: :func:`check_network` takes a *maker*, an
async context manager factory that builds a network, attaches it to the server actor it is
given (the check's :class:`RecordingServer`) and yields it with its clock (a
:class:`Bound`). The check then drives the two ends of links directly, without scenarios or
actors: each tab is a :class:`RecordingTab`, and both recorders write every callback, with
its scenario time, to one :class:`Journal`. The maker's network must run :data:`HEARTBEAT`
and a close timeout of :data:`CLOSE_TIMEOUT`. Each step gets a fresh network:

- ``open``: the server's ``on_open`` comes first, then the tab's; both ends share an id;
  the server's end carries the user and session claimed and is in ``open_links``.
- ``page-close`` / ``browser-close``: the page closes with 1000, the browser with 1001; the
  server's ``on_close`` sees that code and the end leaves ``open_links``; the page's
  ``on_close`` sees it too (the server's echo).
- ``server-close``: the server closes with 4000 and a reason; the page's ``on_close`` sees
  4000, after every message the server sent before its close.
- ``abort``: TCP ends with no close frame; the server sees 1006, the tab hears nothing more.
- ``silence-restore``: the path goes silent (nothing arrives either way), then comes back
  on a new path: the page sees 1006 at once, while the server's end stays open until the
  heartbeat reaps it with 1011.
- ``order``: messages from the server arrive in the order sent. The other direction carries
  no messages in this contract (a page's sends are not part of :class:`ClientEnd`): what it
  has, the handshake and then a close sent from the tab's ``on_open``, reaches the server in
  that order.
- ``after-close``: sending to, or closing, an end that is closing or closed never raises,
  and delivers nothing.

After every step, for every connection: each side hears ``open`` at most once and first,
the tab's ``open`` only after the server's, ``close`` at most once and nothing after it.

A failure raises :class:`Nonconforming`, naming the network, the step and what was expected
and got. Run it with ``asyncio.run(check_network(maker))``, or on the virtual loop with
``simkit.virtual.loop.run(check_network(maker))``; :func:`memory_network` and
:func:`live_network` are the makers of the kit's own networks.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

from simkit.model.errors import SimkitError
from simkit.model.latency import Latency
from simkit.model.liveness import Liveness
from simkit.runtime.interfaces import (
    ClientEnd,
    Clock,
    Message,
    Network,
    RegistryView,
    ServerActor,
    ServerEnd,
)

# The heartbeat and close timeout a maker's network must run (scenario seconds).
HEARTBEAT = Liveness("conformance", 2.0, 2.0, summary="ping 2 s, timeout 2 s")
CLOSE_TIMEOUT = 2.0
# How long the check waits for what must happen (scenario seconds). A reap comes at most a
# ping interval, a pong timeout and a close timeout after the silence.
SOON = 1.0  # a consequence of the check's own action (a close, a delivery)
# A handshake: generous, since only a missing open is a failure of the contract. The live
# maker runs at scale 0.2, so 5 scenario seconds were 1 s of wall time, and a loaded CI
# machine once took 1.14 s for a handshake through uvicorn; 25 are 5 s.
OPEN_WITHIN = 25.0
REAP_WITHIN = 3 * (HEARTBEAT.interval or 0.0) + CLOSE_TIMEOUT
LATENCY = Latency(0.01)  # the memory network's one-way latency, unless a maker says
POLL = 0.005  # loop seconds between looks at the journal
USER, SESSION = "u1", "s1"


class Nonconforming(SimkitError, AssertionError):
    """A network broke the link contract: ``step`` expected ``expected`` and got ``got``."""

    def __init__(self, network: str, step: str, what: str, expected: object, got: object):
        super().__init__(f"{network}, step {step!r}: {what}: expected {expected!r}, got {got!r}")
        self.network, self.step, self.what = network, step, what
        self.expected, self.got = expected, got


class _Failed(SimkitError):
    """Raised inside a step; :func:`check_network` adds the network and the step."""

    def __init__(self, what: str, expected: object, got: object) -> None:
        super().__init__(what)
        self.what, self.expected, self.got = what, expected, got


def expect(what: str, got: object, expected: object) -> None:
    if got != expected:
        raise _Failed(what, expected, got)


@dataclass(frozen=True)
class Heard:
    """One callback: at scenario time ``t``, ``side`` ("tab" or "server") heard ``event``
    ("open", "message" or "close") on connection ``conn``, with the message or code."""

    t: float
    side: str
    event: str
    conn: int
    detail: object = None


@dataclass
class Journal:
    """Every callback of one step, in the order they came."""

    clock: Clock | None = None
    heard: list[Heard] = field(default_factory=list)

    def add(self, side: str, event: str, conn: int, detail: object = None) -> None:
        self.heard.append(Heard(self.now(), side, event, conn, detail))

    def of(self, side: str, conn: int, event: str | None = None) -> list[Heard]:
        return [
            h
            for h in self.heard
            if h.side == side and h.conn == conn and (event is None or h.event == event)
        ]

    def details(self, side: str, conn: int, event: str) -> list[object]:
        return [h.detail for h in self.of(side, conn, event)]

    def now(self) -> float:
        return self.clock.now() if self.clock is not None else math.nan

    async def until(self, what: str, ready: Callable[[], bool], within: float) -> None:
        """Wait until ``ready()`` holds, at most ``within`` scenario seconds."""
        assert self.clock is not None, "the journal has no clock yet"
        deadline = self.clock.now() + within
        while not ready():
            if self.clock.now() > deadline:
                raise _Failed(f"{what} within {within} s", "it happened", self.heard)
            await asyncio.sleep(POLL)

    async def wait(self, seconds: float) -> None:
        """Let ``seconds`` of scenario time pass."""
        assert self.clock is not None, "the journal has no clock yet"
        end = self.clock.now() + seconds
        while self.clock.now() < end:
            await asyncio.sleep(POLL)


class _NoRegistry:
    """The recording server keeps no registry: nothing is routed anywhere."""

    def route(self, user: str) -> tuple[int, ...]:
        return ()

    def entries(self) -> list[tuple[str, int]]:
        return []

    def routes_to(self, user: str, conn: int) -> bool:
        return False

    def audit(self, is_open: Callable[[int], bool]) -> tuple[int, int]:
        return 0, 0


class RecordingServer:
    """A server actor that only listens: every ``on_open`` and ``on_close`` goes to the
    journal, and the server ends it was given are kept by id for the check to drive."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.ends: dict[int, ServerEnd] = {}
        self.restarts = 0
        self.pending: Mapping[int, int] = {}

    @property
    def registry(self) -> RegistryView:
        return _NoRegistry()

    def on_open(self, end: ServerEnd) -> None:
        self.ends[end.id] = end
        self.journal.add("server", "open", end.id, (end.user, end.session, end.tab_index))

    def on_close(self, end: ServerEnd, code: int) -> None:
        self.journal.add("server", "close", end.id, code)

    def restart(self) -> None:
        self.restarts += 1

    def push(self, person: str, push: int) -> None:
        """Pushes go through the ends the check drives, never through a registry."""

    def waiting_on(self, conn: int) -> list[int]:
        return []  # no handler here awaits another connection's close

    def close_returned(self, conn: int, user: str) -> None:
        """Never called: :meth:`waiting_on` names no one."""

    def on_sample(self, t: float) -> None:
        """Nothing is sampled."""

    def summary(self) -> dict[str, object]:
        return {}


class RecordingTab:
    """A tab that only listens (and answers every heartbeat, as a live page does).
    ``then``: what the tab does inside its ``on_open`` (the check's one way to act at the
    very instant a socket opens)."""

    def __init__(self, journal: Journal, index: int) -> None:
        self.journal = journal
        self.index = index
        self.net_rng = random.Random(f"conformance-tab:{index}")
        self.deaf_since: float | None = None
        self.then: Callable[[ClientEnd], None] | None = None

    def on_open(self, end: ClientEnd) -> None:
        self.journal.add("tab", "open", end.id)
        if self.then is not None:
            self.then(end)

    def on_message(self, end: ClientEnd, message: Message) -> None:
        self.journal.add("tab", "message", end.id, message)

    def on_close(self, end: ClientEnd, code: int) -> None:
        self.journal.add("tab", "close", end.id, code)

    def answers(self, end: ClientEnd, kind: str) -> bool:
        return True


@dataclass(frozen=True)
class Bound:
    """What a maker yields: its network, attached to the check's server with ``clock``."""

    network: Network
    clock: Clock


Maker = Callable[[ServerActor], AbstractAsyncContextManager[Bound]]


@dataclass
class Step:
    """One step's network, journal and server, and the verbs the steps share."""

    network: Network
    journal: Journal
    server: RecordingServer
    tabs: int = 0

    async def open(self, then: Callable[[ClientEnd], None] | None = None) -> ClientEnd:
        """Connect a new tab and wait until both ends are open."""
        self.tabs += 1
        tab = RecordingTab(self.journal, self.tabs)
        tab.then = then
        end = self.network.connect(tab, USER, SESSION)
        expect("a new client end's state", end.client, "connecting")
        await self.journal.until(
            f"the tab hears socket {end.id} open",
            lambda: bool(self.journal.of("tab", end.id, "open")),
            OPEN_WITHIN,
        )
        return end

    def server_end(self, conn: int) -> ServerEnd:
        if conn not in self.server.ends:
            raise _Failed(f"the server's end of socket {conn}", "on_open", self.journal.heard)
        return self.server.ends[conn]

    async def closed(self, side: str, conn: int, within: float = SOON) -> int:
        """Wait for ``side``'s ``on_close`` of ``conn``; its code."""
        await self.journal.until(
            f"the {side} hears socket {conn} close",
            lambda: bool(self.journal.of(side, conn, "close")),
            within,
        )
        code = self.journal.details(side, conn, "close")[0]
        if not isinstance(code, int):
            raise _Failed(f"the code the {side} heard", "an int", code)
        return code


def _push(n: int) -> Message:
    return ("push", n)


async def step_open(s: Step) -> None:
    end = await s.open()
    server = s.server_end(end.id)
    expect("the server end's id (the client end's)", server.id, end.id)
    expect(
        "(user, session, tab index) at the server",
        (server.user, server.session, server.tab_index),
        (USER, SESSION, 1),
    )
    expect("the client end's state once open", end.client, "open")
    expect("the server end in open_links", s.network.open_links.get(end.id), server)


async def _page_closes(s: Step, close: Callable[[ClientEnd], None], code: int) -> None:
    end = await s.open()
    close(end)
    expect(
        "the server's code (the page closed)",
        await s.closed("server", end.id, SOON + CLOSE_TIMEOUT),
        code,
    )
    expect("the closed end still in open_links", end.id in s.network.open_links, False)
    expect("the page's code (its own, echoed)", await s.closed("tab", end.id), code)


async def step_page_close(s: Step) -> None:
    await _page_closes(s, lambda end: end.close(1000), 1000)


async def step_browser_close(s: Step) -> None:
    await _page_closes(s, lambda end: end.browser_close(1001), 1001)


async def step_server_close(s: Step) -> None:
    end = await s.open()
    server = s.server_end(end.id)
    for n in range(3):
        server.send(_push(n))
    server.server_close(4000, "replaced by a newer tab")
    expect("the page's code (the server closed)", await s.closed("tab", end.id), 4000)
    expect(
        "what the page got before the close",
        s.journal.details("tab", end.id, "message"),
        [_push(n) for n in range(3)],
    )
    await s.closed("server", end.id, SOON + CLOSE_TIMEOUT)


async def step_abort(s: Step) -> None:
    end = await s.open()
    end.abort()
    expect("the server's code (no close frame)", await s.closed("server", end.id), 1006)
    expect("the client end's state after abort", end.client, "closed")
    await s.journal.wait(SOON)
    expect("what the tab heard after its abort", s.journal.of("tab", end.id)[1:], [])


async def step_silence_restore(s: Step) -> None:
    end = await s.open()
    server = s.server_end(end.id)
    end.silence()
    server.send(_push(1))  # into the silence: lost
    await s.journal.wait(SOON / 2)
    expect("what the tab heard while silent", s.journal.of("tab", end.id)[1:], [])
    end.restore()
    restored = s.journal.now()
    expect("the page's code at restore", await s.closed("tab", end.id), 1006)
    expect(
        "the server's callbacks when the page saw the failure",
        [h.event for h in s.journal.of("server", end.id)],
        ["open"],
    )
    expect(
        "the server end in open_links when the page saw the failure",
        end.id in s.network.open_links,
        True,
    )
    code = await s.closed("server", end.id, REAP_WITHIN)
    expect("the server's code (the heartbeat reaped it)", code, 1011)
    reaped = s.journal.of("server", end.id, "close")[0].t
    if not reaped > restored:
        raise _Failed("the reap after the restore", f"after t={restored}", f"t={reaped}")
    expect("messages the tab got", s.journal.details("tab", end.id, "message"), [])


async def step_order(s: Step) -> None:
    end = await s.open()
    server = s.server_end(end.id)
    sent = [_push(n) for n in range(20)]
    for message in sent:
        server.send(message)
    await s.journal.until(
        "the tab gets 20 messages",
        lambda: len(s.journal.of("tab", end.id, "message")) >= len(sent),
        SOON,
    )
    expect("the order messages arrived in", s.journal.details("tab", end.id, "message"), sent)
    # The client -> server direction: the handshake, then the close the tab sent on open.
    second = await s.open(then=lambda end: end.close(1000))
    await s.closed("server", second.id, SOON + CLOSE_TIMEOUT)
    expect(
        "what the server heard, in order",
        [(h.event, h.detail) for h in s.journal.of("server", second.id)][1:],
        [("close", 1000)],
    )


async def step_after_close(s: Step) -> None:
    # The page closes: a message the server sends meanwhile is not delivered.
    end = await s.open()
    server = s.server_end(end.id)
    end.close(1000)
    server.send(_push(1))
    await s.closed("server", end.id, SOON + CLOSE_TIMEOUT)
    # The server closes: it sends after its own close.
    other = await s.open()
    server2 = s.server_end(other.id)
    server2.server_close(4000)
    server2.send(_push(2))
    await s.closed("server", other.id, SOON + CLOSE_TIMEOUT)
    # Both ends of both are closed now: nothing raises, nothing is delivered.
    for client, server_end in ((end, server), (other, server2)):
        server_end.send(_push(3))
        server_end.server_close(4000)
        client.close(1000)
        client.browser_close(1001)
        client.abort()
        client.silence()
        client.restore()
    await s.journal.wait(SOON)
    for conn in (end.id, other.id):
        expect(
            f"messages the tab got on socket {conn}", s.journal.details("tab", conn, "message"), []
        )


STEPS: dict[str, Callable[[Step], Awaitable[None]]] = {
    "open": step_open,
    "page-close": step_page_close,
    "browser-close": step_browser_close,
    "server-close": step_server_close,
    "abort": step_abort,
    "silence-restore": step_silence_restore,
    "order": step_order,
    "after-close": step_after_close,
}


def _check_invariants(journal: Journal) -> None:
    """For every connection: per side, ``open`` at most once and first, ``close`` at most
    once and last; the tab's ``open`` after the server's."""
    for conn in sorted({h.conn for h in journal.heard}):
        for side in ("server", "tab"):
            events = [h.event for h in journal.of(side, conn)]
            if events.count("open") > 1 or ("open" in events and events[0] != "open"):
                raise _Failed(f"the {side}'s callbacks on socket {conn}", "one open, first", events)
            if "close" in events[:-1] or events.count("close") > 1:
                raise _Failed(f"the {side}'s callbacks on socket {conn}", "one close, last", events)
        order = [h.side for h in journal.heard if h.conn == conn and h.event == "open"]
        if "tab" in order and order[0] != "server":
            raise _Failed(f"who heard socket {conn} open first", "the server", "the tab")


async def check_step(maker: Maker, step: str, *, name: str | None = None) -> None:
    """Run one of :data:`STEPS` on a fresh network from ``maker``."""
    journal = Journal()
    server = RecordingServer(journal)
    async with maker(server) as bound:
        label = name or type(bound.network).__name__
        journal.clock = bound.clock
        try:
            await STEPS[step](Step(bound.network, journal, server))
            _check_invariants(journal)
        except _Failed as failure:
            raise Nonconforming(label, step, failure.what, failure.expected, failure.got) from None


async def check_network(maker: Maker, *, name: str | None = None) -> None:
    """Run every step of :data:`STEPS`, each on a fresh network from ``maker``; raise
    :class:`Nonconforming` at the first failure (``name``: the network's, for messages)."""
    for step in STEPS:
        await check_step(maker, step, name=name)


# -- makers of the kit's own networks ------------------------------------------------------


class LoopClock:
    """Scenario time on an event loop: loop seconds since ``start``, divided by ``scale``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, scale: float = 1.0) -> None:
        self.loop, self.scale, self.start = loop, scale, loop.time()

    def now(self) -> float:
        return (self.loop.time() - self.start) / self.scale


@asynccontextmanager
async def memory_network(
    server: ServerActor, *, latency: Latency = LATENCY, profile: str = "websockets"
) -> AsyncIterator[Bound]:
    """The virtual runtime's network (run it on the virtual loop), with one-way ``latency``
    (zero: the network settles round trips in one step) and a server ``profile``
    (:data:`simkit.model.transport.PROFILES`)."""
    from simkit.model.transport import PROFILES
    from simkit.runtime.census import Census
    from simkit.virtual.network import MemoryNetwork

    loop = asyncio.get_running_loop()
    census = Census(one_per_user=False)
    network = MemoryNetwork(
        loop, census, HEARTBEAT, latency, close_timeout=CLOSE_TIMEOUT, profile=PROFILES[profile]
    )
    clock = LoopClock(loop)
    network.attach(clock, server)
    yield Bound(network, clock)


@asynccontextmanager
async def live_network(
    server: ServerActor, *, stack: str = "websockets", ws: str | None = None, scale: float = 0.2
) -> AsyncIterator[Bound]:
    """The live runtime's network: real ``websockets`` clients through a ``FaultProxy`` to
    a ``LocalServer`` on ``stack`` (with ``ws``, one of uvicorn's implementations), every
    duration multiplied by ``scale``. Run it on a real event loop."""
    from simkit.actors.env import Env
    from simkit.model.strategy import make_strategy
    from simkit.net.network import LiveNetwork
    from simkit.net.proxy import FaultProxy
    from simkit.net.server import LocalServer
    from simkit.runtime.census import Census

    loop = asyncio.get_running_loop()
    strategy = make_strategy("conformance", liveness=HEARTBEAT)
    local = LocalServer(
        strategy, scale=scale, close_timeout=CLOSE_TIMEOUT, own_core=False, stack=stack, ws=ws
    )
    await local.start()
    try:
        async with FaultProxy(local.port) as proxy:
            census = Census(one_per_user=False)
            network = LiveNetwork(
                loop, census, local, proxy, scale=scale, close_timeout=CLOSE_TIMEOUT
            )
            env = Env(loop, strategy, census, network, 0, math.inf, scale=scale, start=loop.time())
            network.attach(env, _WithEnv(server, env))
            try:
                yield Bound(network, env)
            finally:
                await network.aclose()
            if network.errors:  # a client task failed: the check's verdict is not to be trusted
                raise network.errors[0]
    finally:
        await local.stop()


class _WithEnv:
    """The server actor, plus the ``env`` (census, clock, trace) that a ``LocalServer``
    reads of its core: more than the :class:`ServerActor` contract says."""

    def __init__(self, actor: ServerActor, env: object) -> None:
        self.actor, self.env = actor, env

    @property
    def registry(self) -> RegistryView:
        return self.actor.registry

    @property
    def restarts(self) -> int:
        return self.actor.restarts

    @property
    def pending(self) -> Mapping[int, int]:
        return self.actor.pending

    def on_open(self, end: ServerEnd) -> None:
        self.actor.on_open(end)

    def on_close(self, end: ServerEnd, code: int) -> None:
        self.actor.on_close(end, code)

    def restart(self) -> None:
        self.actor.restart()

    def push(self, person: str, push: int) -> None:
        self.actor.push(person, push)

    def waiting_on(self, conn: int) -> list[int]:
        return self.actor.waiting_on(conn)

    def close_returned(self, conn: int, user: str) -> None:
        self.actor.close_returned(conn, user)

    def on_sample(self, t: float) -> None:
        self.actor.on_sample(t)

    def summary(self) -> dict[str, object]:
        return self.actor.summary()
