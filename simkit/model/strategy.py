"""A strategy is one complete design: client policy + registry policy + liveness policy.

Presets tell the post-mortem's story in order: ``before`` (what it started with),
``postmortem`` (exactly the fixes it shipped, flaws included), ``seed`` and
``seed-uvicorn-defaults`` (the post-mortem's handler and client as written, for its own
stack, FastAPI on uvicorn, without and with uvicorn's default keepalive),
``postmortem-safe`` (the same intent done right), and two designs for products that need
more (``multi-heartbeat``, ``resume``). Build your own with :func:`make_strategy` and
score it with the same harness.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from simkit.model.client import BACKOFF_PRESETS, Backoff, Client
from simkit.model.cluster import CLUSTER_POLICIES
from simkit.model.errors import ConfigError, choice
from simkit.model.liveness import LIVENESS, Liveness, liveness
from simkit.model.registry import REGISTRIES, Registry

RegistryFactory = Callable[[], Registry]


@dataclass(frozen=True)
class Strategy:
    """A named design. ``registry`` is a factory: every run starts from an empty registry."""

    name: str
    client: Client
    registry: RegistryFactory
    liveness: Liveness
    summary: str = ""
    # The cross-node policy (simkit.model.cluster) when the strategy is a design for several
    # nodes; None: a one-node design (on several nodes each node keeps its own registry).
    cluster: str | None = None

    def replace(self, **changes: object) -> Strategy:
        """A copy with some parts changed; names are resolved as in :func:`make_strategy`."""
        parts = {
            "name": self.name,
            "client": self.client,
            "registry": self.registry,
            "liveness": self.liveness,
            "summary": self.summary,
            "cluster": self.cluster,
        }
        client_changes = {k: changes.pop(k) for k in list(changes) if k in _CLIENT_FIELDS}
        parts.update(changes)
        if client_changes:
            base = parts["client"]
            if not isinstance(base, Client):
                raise ConfigError(f"client must be a Client, got {base!r}")
            parts["client"] = _client_with(base, client_changes)
        # (parts of any type: make_strategy checks each and names a bad one)
        return make_strategy(**parts)  # type: ignore[arg-type]


_CLIENT_FIELDS = {f.name for f in dataclasses.fields(Client)}


def _client_with(base: Client, changes: dict[str, object]) -> Client:
    backoff = changes.get("backoff")
    if isinstance(backoff, str):
        if backoff not in BACKOFF_PRESETS:
            raise choice("backoff", backoff, list(BACKOFF_PRESETS))
        changes["backoff"] = BACKOFF_PRESETS[backoff]
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]  # Client checks them


def make_strategy(
    name: str = "custom",
    *,
    client: Client | None = None,
    registry: str | RegistryFactory = "kick-old-safe",
    liveness: str | Liveness = "websockets",
    summary: str = "",
    cluster: str | None = None,
    **client_fields: object,
) -> Strategy:
    """Build a strategy from parts given as names or objects.

    ``registry`` may be a preset name or any callable returning a fresh
    :class:`~simkit.model.registry.Registry` (e.g. your own subclass). Extra keyword
    arguments set fields of the client policy (``identity="per-tab"``, ``backoff="rfc6455"``).
    ``cluster`` names a cross-node policy (:data:`simkit.model.cluster.CLUSTER_POLICIES`).
    """
    if isinstance(registry, str):
        if registry not in REGISTRIES:
            raise choice("registry", registry, list(REGISTRIES))
        registry = REGISTRIES[registry]
    if not callable(registry):
        raise ConfigError(f"registry must be a name or a factory of Registry, got {registry!r}")
    rule = _liveness_of(liveness)
    unknown = sorted(set(client_fields) - _CLIENT_FIELDS)
    if unknown:
        raise ConfigError(
            f"unknown strategy option(s) {', '.join(unknown)}; client options are: "
            f"{', '.join(sorted(_CLIENT_FIELDS))}"
        )
    base = client if client is not None else Client()
    if client_fields:
        base = _client_with(base, dict(client_fields))
    if cluster is not None and cluster not in CLUSTER_POLICIES:
        raise choice("cross-node policy", cluster, list(CLUSTER_POLICIES))
    return Strategy(name, base, registry, rule, summary, cluster)


def _liveness_of(value: str | Liveness) -> Liveness:
    if isinstance(value, Liveness):
        return value
    if isinstance(value, str):
        return liveness(value)
    raise ConfigError(f"liveness must be a preset name or a Liveness, got {value!r}")


def _presets() -> dict[str, Strategy]:
    presets = [
        make_strategy(
            "before",
            registry="naive",
            liveness="off",
            identity="shared",
            backoff=BACKOFF_PRESETS["immediate"],
            on_resume="none",
            on_pageshow="none",
            summary="the post-mortem's starting point: naive registry, no heartbeat, "
            "reconnect at once",
        ),
        make_strategy(
            "postmortem",
            registry="kick-old",
            liveness="off",
            identity="fresh-per-load",
            unload="beforeunload",
            visibility="disconnect-when-hidden",
            guard="single-flight",
            on_resume="none",
            on_pageshow="none",
            summary="exactly the fixes shipped: fresh id per load, close on beforeunload, "
            "disconnect when hidden, connect guard, kick-old with blind delete",
        ),
        make_strategy(
            "seed",
            registry="close-delete-register",
            liveness="off",
            identity="fresh-per-load",
            unload="beforeunload",
            visibility="disconnect-when-hidden",
            guard="single-flight",
            guard_wait=3.0,
            guard_poll=0.1,
            replace_wait=0.1,
            on_resume="none",
            on_pageshow="none",
            summary="the post-mortem's code as written, keepalive off (uvicorn started with "
            "ws_ping_interval=None): close-delete-register handler, fresh id per load, "
            "beforeunload, hidden -> close, 3 s guard polling 100 ms, close-then-wait 100 ms",
        ),
        make_strategy(
            "seed-uvicorn-defaults",
            registry="close-delete-register",
            liveness="websockets",
            identity="fresh-per-load",
            unload="beforeunload",
            visibility="disconnect-when-hidden",
            guard="single-flight",
            guard_wait=3.0,
            guard_poll=0.1,
            replace_wait=0.1,
            on_resume="none",
            on_pageshow="none",
            summary="seed as deployed with `uvicorn app:app`: uvicorn's default keepalive "
            "(ws_ping_interval=20, ws_ping_timeout=20)",
        ),
        make_strategy(
            "postmortem-safe",
            registry="kick-old-safe",
            liveness="websockets",
            identity="shared",
            unload="pagehide",
            guard="single-flight",
            summary="the same intent done right: user id kept, pagehide, compare-and-delete, "
            "20 s/20 s heartbeat",
        ),
        make_strategy(
            "multi-heartbeat",
            registry="multi",
            liveness="websockets",
            identity="shared",
            unload="pagehide",
            guard="single-flight",
            summary="every tab of a user registered and pushed to; heartbeat reaps the dead",
        ),
        make_strategy(
            "resume",
            registry="resume",
            liveness="websockets",
            identity="shared",
            unload="pagehide",
            guard="single-flight",
            summary="resumable sessions: missed pushes replayed on reconnect within 120 s",
        ),
    ]
    # Designs for several nodes (python -m simkit run --nodes 3): postmortem-safe's client
    # and heartbeat on every node; what differs is what the nodes share.
    for name, policy in CLUSTER_POLICIES.items():
        presets.append(
            make_strategy(
                name,
                registry="kick-old" if name == "shared-kick-old" else "kick-old-safe",
                liveness="websockets",
                identity="shared",
                unload="pagehide",
                guard="single-flight",
                cluster=name,
                summary=f"several nodes: {policy.summary}",
            )
        )
    return {s.name: s for s in presets}


STRATEGIES: dict[str, Strategy] = _presets()


def strategy(value: str | Strategy) -> Strategy:
    """A strategy preset by name (a Strategy passes through)."""
    if isinstance(value, Strategy):
        return value
    if isinstance(value, str) and value in STRATEGIES:
        return STRATEGIES[value]
    raise choice("strategy", value, list(STRATEGIES))


__all__ = [
    "LIVENESS",
    "STRATEGIES",
    "Backoff",
    "Strategy",
    "make_strategy",
    "strategy",
]
