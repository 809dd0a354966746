"""Runtimes as values: which runtime a run plays on, with its settings, checked once.

``simkit.run(..., runtime=Live(stack="fastapi", ws="wsproto"))`` says in one value what
used to take a string plus flags forwarded through four functions: a value validates
itself when it is made (a bad stack, scale or URL fails there, naming the bad value and
what is allowed), knows how long its runs must settle and how the strategy is deployed on
it, and builds the runtime adapter (:class:`simkit.actors.play.Runtime`) for one run.

- :class:`Virtual`: deterministic virtual time; ``stack``/``ws`` choose the transport
  profile measured on that server implementation; ``nodes``/``balancer`` several nodes.
- :class:`Live`: real sockets to the kit's own server on 127.0.0.1 (``stack``: the
  ``websockets`` server or FastAPI on uvicorn with ``ws`` its WebSocket implementation),
  every duration multiplied by ``scale``; ``nodes`` several server processes sharing Redis.
- :class:`Target`: the live runtime's tabs against your own server (``url``), at scale 1.
- :class:`Browser`: real Chromium pages against the kit's own server; with ``page=`` your
  own front end (any URL) in those pages, against the kit's server or your ``target=``.

The strings ``"virtual"``, ``"live"`` and ``"browser"`` stay as shorthands, and so do
``run``'s older keywords (``stack=``, ``ws=``, ``scale=``, ``target=``, ``auth=``,
``target_keepalive=``, ``nodes=``, ``balancer=``, ``page=``): :func:`as_runtime` turns them into a
value in one place, so the CLI, ``run``, ``compare`` and ``sweep`` never forward them again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from simkit.actors.cluster import ClusterSpec, cluster_spec
from simkit.model.balancer import balancer as balancer_of
from simkit.model.balancer import check_nodes
from simkit.model.errors import ConfigError, choice
from simkit.model.liveness import CLOSE_TIMEOUT
from simkit.model.strategy import Strategy
from simkit.net.realtime import check_scale
from simkit.net.target.url import TARGET_KEEPALIVE

if TYPE_CHECKING:
    from simkit.actors.play import Runtime
    from simkit.model.transport import TransportProfile
    from simkit.scenarios import Scenario

Auth = Callable[[str], Mapping[str, str]]

LIVE_SCALE = 0.05  # a live run plays 20 scenario seconds per wall second by default
BROWSER_SCALE = 0.1  # a browser run plays 10 scenario seconds per wall second by default

STACKS = ("websockets", "fastapi")


def default_settle(strategy: Strategy) -> float:
    """Long enough after the workload for every timeout to pass: the heartbeat's worst
    detection, the close timeout, the longest reconnect delay, the connect guard."""
    worst = strategy.liveness.worst_detection
    backoff = strategy.client.backoff
    return (
        (0.0 if math.isinf(worst) else worst)
        + CLOSE_TIMEOUT
        + max(backoff.max_delay, backoff.first_max)
        + strategy.client.guard_wait
        + 10.0
    )


def _check_stack(stack: str, ws: str | None) -> tuple[str, str]:
    from simkit.model.transport import transport_profile

    if stack not in STACKS:
        raise choice("stack", stack, list(STACKS))
    profile = transport_profile(stack, ws)  # a bad ws name fails here, listing the valid ones
    _, _, impl = profile.name.partition("/")
    return stack, impl or stack


@dataclass(frozen=True, kw_only=True)
class RuntimeSpec:
    """What every runtime value has: a name, the nodes it plays, and the three questions
    the run core asks of it."""

    name: ClassVar[str]
    nodes: int | None = None  # None: the scenario's own (1 for all but the multi-node ones)
    balancer: str | None = None

    def __post_init__(self) -> None:
        if self.nodes is not None:
            check_nodes(self.nodes)
        if self.balancer is not None:
            balancer_of(self.balancer)  # a bad name fails here, listing the valid ones

    def deploy(self, strategy: Strategy) -> Strategy:
        """``strategy`` as it behaves on this runtime (its handler on this stack)."""
        return strategy

    def settle(self, strategy: Strategy) -> float:
        """How long a run of ``strategy`` must settle after its workload by default."""
        return default_settle(strategy)

    def cluster(self, scenario: Scenario, strategy: Strategy) -> ClusterSpec | None:
        """Several nodes (None: one node and a one-node design, exactly the one-node run)."""
        nodes = scenario.nodes if self.nodes is None else self.nodes
        return cluster_spec(nodes, self.balancer, strategy, self.name)

    def build(self, scenario: Scenario, strategy: Strategy, *, tabs: int, seed: int) -> Runtime:
        """The runtime adapter for one run."""
        raise NotImplementedError

    def info(self) -> dict[str, object]:
        """What the run's summary records of this runtime beyond its name and scale."""
        return {}

    def default_strategy(self) -> str | None:
        """The strategy a run uses when neither the caller nor the scenario names one
        (None: one must be named)."""
        return None


@dataclass(frozen=True)
class Virtual(RuntimeSpec):
    """Deterministic virtual time. ``stack``/``ws``: play the transport profile measured on
    that server implementation (when a handler's cleanup runs after a close)."""

    name: ClassVar[str] = "virtual"
    stack: str | None = None
    ws: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.stack, self.ws) != (None, None):
            _check_stack("websockets" if self.stack is None else self.stack, self.ws)

    def deploy(self, strategy: Strategy) -> Strategy:
        """The post-mortem's handler (``close-delete-register``) on an implementation whose
        ``close()`` waits for the handshake (uvicorn's legacy one) is
        ``close-await-register``."""
        if (self.stack, self.ws) == (None, None):
            return strategy
        from simkit.model.registry import CloseAwaitRegister, CloseDeleteRegister

        profile = self._profile()
        if (
            profile is not None
            and profile.close_awaits
            and strategy.registry is CloseDeleteRegister
        ):
            return strategy.replace(registry=CloseAwaitRegister)
        return strategy

    def _profile(self) -> TransportProfile | None:
        if (self.stack, self.ws) == (None, None):
            return None
        from simkit.model.transport import transport_profile

        return transport_profile("websockets" if self.stack is None else self.stack, self.ws)

    def build(self, scenario: Scenario, strategy: Strategy, *, tabs: int, seed: int) -> Runtime:
        from simkit.virtual.runtime import VirtualRuntime

        chosen = VirtualRuntime(scenario, strategy, profile=self._profile())
        chosen.cluster = self.cluster(scenario, strategy)
        return chosen

    def info(self) -> dict[str, object]:
        profile = self._profile()
        if profile is None:
            return {}
        stack, _, ws = profile.name.partition("/")
        return {"stack": stack, "ws": ws or stack}


@dataclass(frozen=True)
class Live(RuntimeSpec):
    """Real ``websockets`` clients through the fault proxy to the kit's own server on
    127.0.0.1, every duration multiplied by ``scale`` (0.05: a 300 s scenario takes 15 s)."""

    name: ClassVar[str] = "live"
    stack: str = "websockets"
    ws: str | None = None
    scale: float = LIVE_SCALE

    def __post_init__(self) -> None:
        super().__post_init__()
        _, ws = _check_stack(self.stack, self.ws)
        object.__setattr__(self, "ws", ws)
        object.__setattr__(self, "scale", check_scale(self.scale))

    def build(self, scenario: Scenario, strategy: Strategy, *, tabs: int, seed: int) -> Runtime:
        from simkit.live.runtime import LiveRuntime

        spec = self.cluster(scenario, strategy)
        if spec is not None:
            from simkit.live.nodes import LiveClusterRuntime

            if self.stack != "websockets":
                raise ConfigError(
                    f"several nodes run the kit's websockets server, not stack={self.stack!r}"
                )
            return LiveClusterRuntime(scenario, strategy, spec, scale=self.scale, seed=seed)
        return LiveRuntime(
            scenario, strategy, scale=self.scale, seed=seed, stack=self.stack, ws=self.ws
        )

    def info(self) -> dict[str, object]:
        return {"stack": self.stack, "ws": self.ws}


@dataclass(frozen=True)
class Target(RuntimeSpec):
    """The live runtime's tabs, through the fault proxy, against your own server at ``url``
    (``ws://HOST:PORT/PATH``; ``{user}`` in it is the id a tab claims, else ``?user=`` is
    appended). ``auth(user)`` returns extra handshake headers; ``keepalive`` is how long
    your server takes to close a silent socket (ping interval + timeout). Scale is 1: your
    server's timers are real."""

    name: ClassVar[str] = "live"
    url: str = ""
    auth: Auth | None = field(default=None, compare=False)
    keepalive: float = TARGET_KEEPALIVE

    def __post_init__(self) -> None:
        from simkit.net.target import check_keepalive, parse_target

        if self.nodes not in (None, 1):
            raise ConfigError(
                "nodes= plays the kit's own servers; a target server is one deployment of "
                "yours: point the target at its load balancer and use nodes=1"
            )
        parse_target(self.url)
        object.__setattr__(self, "keepalive", check_keepalive(self.keepalive))
        if self.auth is not None and not callable(self.auth):
            raise ConfigError(f"auth must be a function user -> headers, got {self.auth!r}")

    def cluster(self, scenario: Scenario, strategy: Strategy) -> ClusterSpec | None:
        if strategy.cluster is not None:
            raise ConfigError(
                f"strategy {strategy.name!r} is a cross-node design: it plays the kit's own "
                "nodes, not a target"
            )
        return None

    def settle(self, strategy: Strategy) -> float:
        from simkit.live.target import target_settle

        return target_settle(strategy, self.keepalive)

    def build(self, scenario: Scenario, strategy: Strategy, *, tabs: int, seed: int) -> Runtime:
        from simkit.live.target import TargetRuntime

        self.cluster(scenario, strategy)
        return TargetRuntime(
            scenario, strategy, self.url, auth=self.auth, keepalive=self.keepalive, seed=seed
        )


# The strategy a page run uses when none is named: the page's client policy is its own
# code, so only the kit's server side is chosen, and this one neither kicks nor refuses
# (every connection registered, websockets' protocol pings, which browsers answer).
PAGE_STRATEGY = "multi-heartbeat"


@dataclass(frozen=True)
class Browser(RuntimeSpec):
    """Real Chromium pages against the kit's own server, every duration multiplied by
    ``scale``. Without ``page`` the pages are the kit's own (playing the strategy's client
    policy); with ``page`` (an ``http://`` URL, ``{ws}``, ``{user}``, ``{tab}`` filled in per
    tab) they are your front end, unchanged and uninstrumented, against the kit's own
    server or, with ``target`` (a ``ws://`` URL), your server behind the kit's fault proxy.
    ``ignore`` is a regular expression for URLs of sockets that are not the app's (default:
    the dev servers' hot-reload sockets, :class:`simkit.browser.sockets.DevServerFilter`)."""

    name: ClassVar[str] = "browser"
    scale: float = BROWSER_SCALE
    page: str | None = None
    target: str | None = None
    ignore: str | None = None

    def __post_init__(self) -> None:
        if self.nodes not in (None, 1) or self.balancer is not None:
            raise ConfigError(
                "several nodes are played by the virtual and live runtimes, not 'browser'"
            )
        object.__setattr__(self, "scale", check_scale(self.scale))
        if self.page is None:
            if self.target is not None or self.ignore is not None:
                raise ConfigError(
                    "target= and ignore= with runtime='browser' need page= (your front end's "
                    "URL): the kit's own page talks only to the kit's own server"
                )
            return
        from simkit.browser.frontend import check_ignore, check_page
        from simkit.net.target import parse_target

        check_page(self.page)
        if self.target is not None:
            parse_target(self.target)
        if self.ignore is not None:
            check_ignore(self.ignore)

    def default_strategy(self) -> str | None:
        return PAGE_STRATEGY if self.page is not None else None

    def cluster(self, scenario: Scenario, strategy: Strategy) -> ClusterSpec | None:
        if self.page is not None and strategy.cluster is not None:
            raise ConfigError(
                f"strategy {strategy.name!r} is a cross-node design: a page run plays one node"
            )
        return super().cluster(scenario, strategy)

    def settle(self, strategy: Strategy) -> float:
        if self.target is not None:
            from simkit.live.target import target_settle

            return target_settle(strategy, TARGET_KEEPALIVE)
        return default_settle(strategy)

    def build(self, scenario: Scenario, strategy: Strategy, *, tabs: int, seed: int) -> Runtime:
        self.cluster(scenario, strategy)
        if self.page is not None:
            from simkit.browser.frontend import FrontendRuntime

            return FrontendRuntime(
                scenario,
                strategy,
                self.page,
                target=self.target,
                ignore=self.ignore,
                tabs=tabs,
                scale=self.scale,
                seed=seed,
            )
        from simkit.browser.runtime import BrowserRuntime

        return BrowserRuntime(scenario, strategy, tabs=tabs, scale=self.scale, seed=seed)

    def info(self) -> dict[str, object]:
        if self.page is None:
            return {}
        return {"page": self.page, "target": self.target}


RUNTIMES = ("virtual", "live", "browser")


def as_runtime(
    runtime: str | RuntimeSpec = "virtual",
    *,
    stack: str | None = None,
    ws: str | None = None,
    scale: float | None = None,
    target: str | None = None,
    auth: Auth | None = None,
    target_keepalive: float | None = None,
    nodes: int | None = None,
    balancer: str | None = None,
    page: str | None = None,
) -> RuntimeSpec:
    """A runtime value from a value or a shorthand string plus the older keywords. The one
    place they are read: a keyword that does not apply to the runtime is an error naming
    both, and a value given with keywords must not be given them twice."""
    given = {
        k: v
        for k, v in dict(
            stack=stack, ws=ws, scale=scale, target=target, auth=auth,
            target_keepalive=target_keepalive, nodes=nodes, balancer=balancer, page=page,
        ).items()
        if v is not None
    }  # fmt: skip
    if isinstance(runtime, RuntimeSpec):
        if given:
            raise ConfigError(
                f"runtime={runtime!r} already says how to run; drop {', '.join(sorted(given))}="
            )
        return runtime
    if runtime not in RUNTIMES:
        raise choice("runtime", runtime, list(RUNTIMES))
    if page is not None:
        if runtime != "browser":
            raise ConfigError(
                f"page= loads your front end in real Chromium tabs: use runtime='browser', "
                f"not {runtime!r}"
            )
        if (stack, ws) != (None, None) or auth is not None or target_keepalive is not None:
            raise ConfigError(
                "stack=, ws=, auth= and target_keepalive= do not apply to a page run: the "
                "page dials the kit's server or your target= itself"
            )
        return Browser(
            nodes=nodes,
            balancer=balancer,
            scale=BROWSER_SCALE if scale is None else scale,
            page=page,
            target=target,
        )
    if target is None and (auth is not None or target_keepalive is not None):
        raise ConfigError("auth= and target_keepalive= only apply with target=")
    if target is not None:
        if runtime != "live":
            raise ConfigError(
                "target= plays real sockets against your server: use runtime='live' (or "
                f"runtime='browser' with page=, your front end), not {runtime!r}"
            )
        if (stack, ws) != (None, None):
            raise ConfigError(
                "stack= and ws= choose the kit's own server (live) or its transport profile "
                "(virtual), not runtime='live' with target="
            )
        if scale not in (None, 1, 1.0):
            raise ConfigError(
                f"scale must be 1 against a target (its timers are real), got {scale!r}"
            )
        return Target(
            nodes=nodes,
            balancer=balancer,
            url=target,
            auth=auth,
            keepalive=TARGET_KEEPALIVE if target_keepalive is None else target_keepalive,
        )
    if runtime == "virtual":
        if scale not in (None, 1, 1.0):
            raise ConfigError(f"scale only applies to the live and browser runtimes, got {scale!r}")
        return Virtual(nodes=nodes, balancer=balancer, stack=stack, ws=ws)
    if runtime == "live":
        return Live(
            nodes=nodes,
            balancer=balancer,
            stack="websockets" if stack is None else stack,
            ws=ws,
            scale=LIVE_SCALE if scale is None else scale,
        )
    if (stack, ws) != (None, None):
        raise ConfigError(
            "stack= and ws= choose the kit's own server (live) or its transport profile "
            "(virtual), not runtime='browser'"
        )
    return Browser(nodes=nodes, balancer=balancer, scale=BROWSER_SCALE if scale is None else scale)


__all__ = [
    "BROWSER_SCALE",
    "LIVE_SCALE",
    "PAGE_STRATEGY",
    "RUNTIMES",
    "TARGET_KEEPALIVE",
    "Browser",
    "Live",
    "RuntimeSpec",
    "Target",
    "Virtual",
    "as_runtime",
    "check_scale",
    "default_settle",
]
