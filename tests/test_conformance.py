"""Every runtime passes the same run-level suite (``simkit.conformance.runs``), and every
network the same link-level check (``simkit.conformance.links``).

Virtual runs are exact; live runs are real sockets at the live runtime's scale; browser
runs are real Chromium pages at scale 0.5 (Chromium's own page operations take tens to
hundreds of milliseconds, so a smaller scale would test the driver, not the contract).
FastAPI on uvicorn joins as the live runtime with ``stack="fastapi"``, once per WebSocket
implementation. A later server, target or set of nodes joins by adding its runtime here.

The link-level check runs on the memory network (on the virtual loop, with latency, with
none, with jitter, and under each server's close ordering) and on the live network (real
sockets through the proxy, to each stack), and is shown able to fail on broken networks.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from simkit.conformance import (
    CHECKS,
    STEPS,
    Bound,
    Maker,
    Nonconforming,
    check_network,
    check_step,
    live_network,
    memory_network,
    runner_for,
)
from simkit.conformance.links import CLOSE_TIMEOUT, HEARTBEAT, LoopClock
from simkit.model.latency import Latency
from simkit.model.strategy import strategy as strategy_of
from simkit.model.transport import PROFILES
from simkit.runtime.census import Census
from simkit.runtime.interfaces import Message, ServerActor, TabCallbacks
from simkit.virtual import loop as virtual_loop
from simkit.virtual.network import Link, MemoryNetwork

LEGACY_WARNING = "remove second argument of ws_handler:DeprecationWarning"
RUNTIMES = [
    pytest.param("virtual", {}, id="virtual"),
    pytest.param("live", {}, id="live", marks=pytest.mark.live),
    # the post-mortem's own stack, under each of uvicorn's WebSocket implementations
    *(
        pytest.param(
            "live",
            {"stack": "fastapi", "ws": ws},
            id=f"fastapi-{ws}",
            # websockets' legacy server (under uvicorn's legacy implementation) warns per socket
            marks=[pytest.mark.live, pytest.mark.filterwarnings(f"ignore:{LEGACY_WARNING}")],
        )
        for ws in ("websockets-sansio", "websockets", "wsproto")
    ),
    pytest.param("browser", {"scale": 0.5}, id="browser", marks=pytest.mark.browser),
    # several nodes: the suite's designs with a cross-node policy, 3 nodes, round-robin
    pytest.param("virtual", {"nodes": 3, "cross_node": "presence-ttl"}, id="virtual-3-nodes"),
    pytest.param(
        "virtual", {"nodes": 3, "cross_node": "shared-kick-old-safe"}, id="virtual-3-nodes-cad"
    ),
    pytest.param(
        "live",
        {"nodes": 3, "cross_node": "presence-ttl"},
        id="live-3-nodes-redis",
        # alone: a keepalive reap raced a close (1006 for 1011) beside the nice-19 checks
        marks=[pytest.mark.live, pytest.mark.redis, pytest.mark.alone],
    ),
]


def nodes_runner(runtime: str, cross_node: str, **options: Any) -> Any:
    """The suite's runner with each of its strategies made a design for several nodes."""
    base = runner_for(runtime, **options)

    def run(scenario: Any, strategy: Any = None, **kwargs: Any) -> Any:
        return base(scenario, strategy_of(strategy).replace(cluster=cross_node), **kwargs)

    return run


@pytest.mark.timeout(90)
@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize(("runtime", "options"), RUNTIMES)
def test_runtime_conforms(runtime: str, options: dict[str, Any], check: str) -> None:
    if "cross_node" in options:
        CHECKS[check](nodes_runner(runtime, **options))
        return
    CHECKS[check](runner_for(runtime, **options))


def test_a_broken_network_fails_the_suite(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite can fail: a virtual network that reports every close as 1006 (as the
    virtual runtime once did for a keepalive timeout) is caught by name."""
    from simkit.virtual.network import Link

    real = Link._server_closed

    def always_abnormal(self: Link, code: int) -> None:
        real(self, 1006)

    monkeypatch.setattr(Link, "_server_closed", always_abnormal)
    with pytest.raises(AssertionError, match="1011"):
        CHECKS["silent-link"](runner_for("virtual"))
    with pytest.raises(AssertionError, match="1000"):
        CHECKS["page-close-handler"](runner_for("virtual"))


# -- the link-level check --------------------------------------------------------------------

live = pytest.mark.live
legacy = pytest.mark.filterwarnings(f"ignore:{LEGACY_WARNING}")
NETWORKS = [
    pytest.param(memory_network, True, id="memory"),
    pytest.param(functools.partial(memory_network, latency=Latency(0.0)), True, id="memory-0"),
    pytest.param(
        functools.partial(memory_network, latency=Latency(0.01, 0.05)), True, id="memory-jitter"
    ),
    *(
        pytest.param(functools.partial(memory_network, profile=name), True, id=f"memory-{name}")
        for name in PROFILES
        if name != "websockets"
    ),
    pytest.param(live_network, False, id="live", marks=live),
    *(
        pytest.param(
            functools.partial(live_network, stack="fastapi", ws=ws),
            False,
            id=f"live-fastapi-{ws}",
            marks=[live, legacy],
        )
        for ws in ("websockets-sansio", "websockets", "wsproto")
    ),
]


def run_check(maker: Maker, step: str | None = None, *, virtual: bool = True) -> None:
    """One step (or all) on the virtual loop, or on a real one."""
    check = check_network(maker) if step is None else check_step(maker, step)
    if virtual:
        virtual_loop.run(check, context=f"link check {step}")
    else:
        asyncio.run(check)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("step", list(STEPS))
@pytest.mark.parametrize(("maker", "virtual"), NETWORKS)
def test_network_conforms(maker: Maker, virtual: bool, step: str) -> None:
    run_check(maker, step, virtual=virtual)


class Reaps1006(Link):
    """Reports a heartbeat's reap (1011) as an abnormal close (1006)."""

    __slots__ = ()

    def _server_closed(self, code: int) -> None:
        super()._server_closed(1006 if code == 1011 else code)


class Reorders(Link):
    """Each message overtakes the ones sent before it."""

    __slots__ = ()

    def send(self, message: Message) -> None:
        if self.server == "open":
            net = self.net
            net.post(net.now() + 0.5 / (1 + int(str(message[1]))), self._client_receives, message)


class DeliversWhileClosing(Link):
    """Delivers messages to a page that has closed its socket."""

    __slots__ = ()

    def _client_receives(self, message: Message) -> None:
        if self.client != "closed":
            self.tab.on_message(self, message)


def broken(link: type[Link]) -> Maker:
    """A maker of a memory network whose links are ``link``s."""

    class Broken(MemoryNetwork):
        def connect(self, tab: TabCallbacks, user: str, session: str | None) -> Link:
            self._next_id += 1
            made = link(self, self._next_id, tab, user, session)
            made._up(made.handshake_reaches_server)
            return made

    @asynccontextmanager
    async def maker(server: ServerActor) -> AsyncIterator[Bound]:
        loop = asyncio.get_running_loop()
        network = Broken(loop, Census(one_per_user=False), HEARTBEAT, Latency(0.01), CLOSE_TIMEOUT)
        network.attach(clock := LoopClock(loop), server)
        yield Bound(network, clock)

    return maker


@pytest.mark.parametrize(
    ("link", "step", "expected"),
    [
        (
            Reaps1006,
            "silence-restore",
            "the server's code (the heartbeat reaped it): expected 1011, got 1006",
        ),
        (Reorders, "order", "the order messages arrived in: expected [('push', 0), ('push', 1)"),
        (
            DeliversWhileClosing,
            "after-close",
            "messages the tab got on socket 1: expected [], got [('push', 1)]",
        ),
    ],
)
def test_a_broken_network_fails_the_check(link: type[Link], step: str, expected: str) -> None:
    """The check can fail, and says where: the network, the step, expected and got."""
    with pytest.raises(Nonconforming) as failure:
        run_check(broken(link), step)
    assert failure.value.step == step
    assert str(failure.value).startswith(f"Broken, step {step!r}: ")
    assert expected in str(failure.value)
    with pytest.raises(Nonconforming):  # the whole check fails too
        run_check(broken(link))
    run_check(broken(Link), step)  # the same maker with the real link passes
