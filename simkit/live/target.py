"""Target mode's runtime: the kit's tabs against a WebSocket server that is not the kit's.

``simkit.run(scenario, strategy, runtime="live", target="ws://HOST:PORT/PATH")`` plays the
scenario's tabs (the strategy's *client* policy: identity, unload, guard, backoff) through
the kit's :class:`~simkit.net.proxy.FaultProxy` to the user's own server, at scale 1 (a
foreign server's timers are real). The server's registry policy and heartbeat are the
target's own; the strategy's are not used.

The run core (:func:`~simkit.actors.play.play`) needs a server actor, a census and a
network whose ``open_links`` are the server's open sockets. There is no server actor of
ours here: :mod:`simkit.net.target` rebuilds the server side from what the clients and the
proxy see (:class:`~simkit.net.target.TargetNetwork`), and this runtime wires those parts
into a live run.

What needs the server's registry (``registry_entries``, ``dangling``, ``unroutable``) is
known only if the target answers the **stats protocol**: each connection's query carries
``simkit_conn=<id>``, and ``GET http://HOST:PORT/simkit/registry`` returns ``{"entries":
[[user, simkit_conn], ...]}``. The runtime polls it once per sampling step (bounded by a
timeout) and hands the census a :class:`~simkit.net.target.Mirror` of the answer, a
read-only :class:`~simkit.model.registry.Registry`; otherwise those columns are NaN and the
summary's ``unknown_metrics`` says why (:mod:`simkit.net.target.report`). Nothing is guessed.
"""

from __future__ import annotations

import asyncio
import base64
import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from simkit.actors.env import Env
from simkit.actors.tab import Tab
from simkit.model.client import Storage
from simkit.model.errors import ConfigError
from simkit.model.liveness import CLOSE_TIMEOUT
from simkit.model.strategy import Strategy
from simkit.net.realtime import RealtimeRuntime
from simkit.net.target import (
    CONNECT_TIMEOUT,
    OPEN_TIMEOUT,
    REGISTRY_COLUMNS,
    STARVE_AFTER,
    STATS_TIMEOUT,
    TARGET_KEEPALIVE,
    Auth,
    Mirror,
    StatsUnavailable,
    TargetNetwork,
    TargetServer,
    check_keepalive,
    fetch_registry,
    parse_target,
    target_summary,
)
from simkit.runtime.census import Census

if TYPE_CHECKING:
    from simkit.scenarios import Scenario


class TargetRuntime(RealtimeRuntime):
    """The live runtime's tabs and proxy against the user's own server (no LocalServer)."""

    name = "live"
    default_scale = 1.0

    def __init__(
        self,
        scenario: Scenario,
        strategy: Strategy,
        target: str,
        *,
        auth: Auth | None = None,
        keepalive: float = TARGET_KEEPALIVE,
        seed: int = 0,
        scale: float | None = None,
        stats_timeout: float = STATS_TIMEOUT,
        open_timeout: float = OPEN_TIMEOUT,
        starve_after: float = STARVE_AFTER,
    ) -> None:
        if scale not in (None, 1, 1.0):
            raise ConfigError(
                f"scale must be 1 against a target (its timers are real), got {scale!r}"
            )
        if auth is not None and not callable(auth):
            raise ConfigError(f"auth must be a function user -> headers, got {auth!r}")
        super().__init__(scenario, strategy, scale=1.0, seed=seed)
        self.target = parse_target(target)
        self.auth = auth
        self.keepalive = check_keepalive(keepalive)
        self.stats_timeout = stats_timeout
        self.open_timeout = open_timeout
        self.starve_after = starve_after
        self.stats_problem: str | None = None  # why the stats route is unusable, if it is
        self.stats_polls = self.stats_failures = self.foreign_entries = 0
        self.stats_last_failure = ""
        self.tabs: list[Tab] = []
        self.net: TargetNetwork | None = None
        self.core: TargetServer | None = None
        self._poller: asyncio.Task[None] | None = None

    async def start(self) -> None:
        target = self.target
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(target.host, target.port), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError) as error:
            why = str(error) or type(error).__name__
            raise ConfigError(
                f"target {target.url!r} is unreachable: no TCP connection to "
                f"{target.host}:{target.port} within {CONNECT_TIMEOUT:g} s ({why}); "
                "is the server running at that address?"
            ) from None
        try:
            await self._answers(reader, writer)
        finally:
            writer.transport.abort()
        try:
            await fetch_registry(target.host, target.port, self.stats_timeout)
        except StatsUnavailable as error:
            self.stats_problem = str(error)
        await self.open_proxy(target.port, target.host)

    async def _answers(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A server that accepts TCP and never answers (a hung process, a port held by
        something else) would make every tab's handshake wait its open timeout and retry,
        the run last its whole length with nothing learned. One handshake first, as user
        ``simkit-probe``, dropped as soon as the first byte of any answer comes (a 101, a
        403, a 404 alike, or a close: the server is alive); silence for ``open_timeout``
        seconds is refused before the run starts."""
        target = self.target
        ws_url = urlsplit(target.url_for("simkit-probe", 0))
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET {ws_url.path}?{ws_url.query} HTTP/1.1\r\nHost: {target.host}:{target.port}"
            "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "User-Agent: simkit-probe\r\n\r\n".encode()
        )
        try:
            await asyncio.wait_for(reader.read(1), self.open_timeout)
        except TimeoutError:
            raise ConfigError(
                f"target {target.url!r} accepts TCP connections but did not answer a "
                f"WebSocket handshake within {self.open_timeout:g} s; is a WebSocket server "
                "(and not a hung process) listening at that address?"
            ) from None
        except OSError:
            pass  # it answered by resetting the connection: not silent

    def census(self, one_per_user: bool) -> Census:
        # The target's policy is unknown: more than one open socket per claimed id counts.
        return Census(one_per_user=True)

    def network(self, loop: asyncio.AbstractEventLoop, census: Census) -> TargetNetwork:
        self.net = self.keep(
            TargetNetwork(
                loop,
                census,
                self.faults,
                self.target,
                auth=self.auth,
                close_timeout=self.close_timeout,
                open_timeout=self.open_timeout,
            )
        )
        return self.net

    def server_actor(self, env: Env) -> TargetServer:
        self.core = TargetServer(env)
        return self.core

    async def prepare(self, env: Env, people: list[str]) -> None:
        if self.stats_problem is None:
            self._poller = env.loop.create_task(self._poll(env), name="stats poller")

    async def _poll(self, env: Env) -> None:
        """Ask the stats route once per sampling step, just before each sample."""
        loop, step = env.loop, self.scenario.step
        lead = min(0.1, step / 4)
        n = 0
        while True:
            n += 1
            await asyncio.sleep(max(0.0, env.start + n * step - lead - loop.time()))
            self.stats_polls += 1
            assert self.net is not None
            before = frozenset(self.net.ends)
            try:
                raw = await fetch_registry(
                    self.target.host, self.target.port, min(self.stats_timeout, step * 0.8)
                )
            except StatsUnavailable as error:
                self.stats_failures += 1
                self.stats_last_failure = str(error)
                continue
            ends = self.net.ends
            mirror = Mirror.of(raw, self.net.issued, before=before, is_open=ends.__contains__)
            self.foreign_entries = max(self.foreign_entries, mirror.foreign)
            assert self.core is not None
            self.core.registry = mirror

    def losses(self) -> list[str]:
        """The target went away during the run: the proxy could not reach it for some of
        the tabs' connections (refused or reset at TCP), so those tabs' handshakes failed
        for a reason that is not the target's session management."""
        if not self.proxies or not self.proxies[0].upstream_failures:
            return []
        proxy = self.proxies[0]
        return [
            f"the target server at {self.target.host}:{self.target.port} went away during "
            f"the run: {proxy.upstream_failures} connections could not reach it "
            f"({proxy.upstream_failure})"
        ]

    def unknown_columns(self) -> tuple[str, ...]:
        return REGISTRY_COLUMNS if self.stats_problem is not None else ()

    def summary(self) -> dict[str, object]:
        assert self.net is not None
        return target_summary(
            self.net,
            target=self.target.url,
            keepalive=self.keepalive,
            starve_after=self.starve_after,
            received=[tab.received for tab in self.tabs],
            stats_problem=self.stats_problem,
            stats_polls=self.stats_polls,
            stats_failures=self.stats_failures,
            stats_last_failure=self.stats_last_failure,
            foreign_entries=self.foreign_entries,
        )

    def tab(self, env: Env, index: int, person: str, storage: Storage) -> Tab:
        tab = Tab(env, index, person, storage)  # the model's tab, as Runtime.tab makes it
        self.tabs.append(tab)
        return tab

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        await super().stop()
        # No LocalServer stops after the proxy here, so give the proxy's connection tasks
        # (reset by its close) the moment they need to finish before the loop ends.
        await self.settle_tasks()


def target_settle(strategy: Strategy, keepalive: float) -> float:
    """Long enough after the workload against a target: its keepalive (instead of the
    strategy's heartbeat, which the target does not run), the close timeout, the client's
    longest reconnect delay and its connect guard."""
    backoff = strategy.client.backoff
    return (
        keepalive
        + CLOSE_TIMEOUT
        + max(backoff.max_delay, backoff.first_max)
        + strategy.client.guard_wait
        + 5.0
    )
