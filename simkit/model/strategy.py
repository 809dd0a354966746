"""A strategy is one complete design: client policy + registry policy + liveness policy.

Presets tell the post-mortem's story in order: ``before`` (what it started with),
``postmortem`` (exactly the fixes it shipped, flaws included), ``postmortem-safe`` (the same
intent done right), and two designs for products that need more (``multi-heartbeat``,
``resume``). Build your own with :func:`make_strategy` and score it with the same harness.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from simkit.model.client import BACKOFF_PRESETS, Backoff, Client
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

    def replace(self, **changes: object) -> Strategy:
        """A copy with some parts changed; names are resolved as in :func:`make_strategy`."""
        parts = {
            "name": self.name,
            "client": self.client,
            "registry": self.registry,
            "liveness": self.liveness,
            "summary": self.summary,
        }
        client_changes = {k: changes.pop(k) for k in list(changes) if k in _CLIENT_FIELDS}
        parts.update(changes)
        if client_changes:
            base = parts["client"]
            if not isinstance(base, Client):
                raise ConfigError(f"client must be a Client, got {base!r}")
            parts["client"] = _client_with(base, client_changes)
        return make_strategy(**parts)  # type: ignore[arg-type]


_CLIENT_FIELDS = {f.name for f in dataclasses.fields(Client)}


def _client_with(base: Client, changes: dict[str, object]) -> Client:
    backoff = changes.get("backoff")
    if isinstance(backoff, str):
        if backoff not in BACKOFF_PRESETS:
            raise choice("backoff", backoff, list(BACKOFF_PRESETS))
        changes["backoff"] = BACKOFF_PRESETS[backoff]
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def make_strategy(
    name: str = "custom",
    *,
    client: Client | None = None,
    registry: str | RegistryFactory = "kick-old-safe",
    liveness: str | Liveness = "websockets",
    summary: str = "",
    **client_fields: object,
) -> Strategy:
    """Build a strategy from parts given as names or objects.

    ``registry`` may be a preset name or any callable returning a fresh
    :class:`~simkit.model.registry.Registry` (e.g. your own subclass). Extra keyword
    arguments set fields of the client policy (``identity="per-tab"``, ``backoff="rfc6455"``).
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
    return Strategy(name, base, registry, rule, summary)


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
