"""The knobs a sweep turns, each named once in :data:`TABLE`.

A knob is a name a grid may use (``heartbeat``, ``latency``, ``tabs``, ...), what it sets
(the strategy, the scenario or the run), how a value is checked and where it goes. The
list ``python -m simkit list`` prints (:data:`KNOBS`), the check of a grid's values and
their application to a scenario and a strategy (:func:`apply_knobs`) are all read from the
table, so a new knob is one line here and cannot be listed without being applied, or
applied without being checked.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from simkit.model.client import BACKOFF_PRESETS, Backoff
from simkit.model.errors import ConfigError, choice
from simkit.model.latency import Latency
from simkit.model.liveness import Liveness, liveness
from simkit.model.strategy import Strategy
from simkit.scenarios import Scenario

__all__ = ["KNOBS", "RUN_KNOBS", "TABLE", "Knob", "apply_knobs", "check_knobs"]

# Where a knob's value goes:
# - "strategy": a field of the strategy (``Strategy.replace``, client fields included),
# - "liveness": the strategy's heartbeat, built from every liveness knob given together,
# - "backoff": the strategy's backoff (a preset by name, then its fields),
# - "scenario": a field of the scenario (``Scenario.with_``),
# - "latency": the scenario's one-way delay, built from ``latency`` and ``jitter`` together,
# - "run": the run's size, left to the caller (the sweep's plan).
Group = Literal["strategy", "liveness", "backoff", "scenario", "latency", "run"]
Check = Callable[[str, object], object]


def _number(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"grid key {key} takes finite numbers, got {value!r}")
    return float(value)


def _seconds(key: str, value: object, *, zero: bool = False) -> float:
    number = _number(key, value)
    if number < 0 or (number == 0 and not zero):
        bound = ">= 0" if zero else "> 0"
        raise ConfigError(f"grid key {key} takes numbers {bound}, got {value!r}")
    return number


def _positive(key: str, value: object) -> float:
    return _seconds(key, value)


def _at_least_zero(key: str, value: object) -> float:
    return _seconds(key, value, zero=True)


def _positive_or_none(key: str, value: object) -> float | None:
    return None if value is None else _seconds(key, value)


def _as_given(key: str, value: object) -> object:
    """Checked where it is applied (a registry or identity name, a run's size)."""
    return value


def _preset_name(key: str, value: object) -> Liveness:
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a preset name, got {value!r}")
    return liveness(value)


def _heartbeat_kind(key: str, value: object) -> str:
    if value not in ("protocol", "app"):
        raise choice(key, value, ["protocol", "app"])
    return str(value)


def _backoff(key: str, value: object) -> Backoff:
    if isinstance(value, Backoff):
        return value
    if isinstance(value, str) and value in BACKOFF_PRESETS:
        return BACKOFF_PRESETS[value]
    raise choice(key, value, list(BACKOFF_PRESETS))


@dataclass(frozen=True)
class Knob:
    """One knob: its ``name`` in a grid, the ``group`` it is applied with, the ``field`` it
    sets there, how a value is checked (``check(name, value)`` returns the value to set or
    raises :class:`ConfigError`) and a line of ``help`` (what ``python -m simkit list``
    prints after the part it sets)."""

    name: str
    group: Group
    check: Check
    help: str
    field: str = ""

    @property
    def part(self) -> str:
        """What the knob changes: the strategy, the scenario or the run."""
        if self.group in ("strategy", "liveness", "backoff"):
            return "strategy"
        return "scenario" if self.group in ("scenario", "latency") else "run"


# The order is the order `python -m simkit list` shows them in.
TABLE: tuple[Knob, ...] = (
    Knob("heartbeat", "liveness", _positive_or_none,
         "heartbeat interval and timeout, both this many seconds (None: off)"),
    Knob("heartbeat_interval", "liveness", _positive_or_none,
         "seconds between pings (timeout kept, or equal if none)", "interval"),
    Knob("heartbeat_timeout", "liveness", _positive_or_none,
         "seconds an unanswered ping may wait (interval kept, or equal if none)", "timeout"),
    Knob("heartbeat_kind", "liveness", _heartbeat_kind,
         "who answers the pings: protocol (the browser) or app (the page)", "kind"),
    Knob("liveness", "liveness", _preset_name,
         "a liveness preset by name (websockets, socketio, off, app, ...)"),
    Knob("backoff", "backoff", _backoff,
         "reconnect backoff kind (immediate, exponential, full-jitter, rfc6455)"),
    Knob("backoff_base", "backoff", _number, "the backoff's base delay, seconds", "base"),
    Knob("backoff_factor", "backoff", _number, "the backoff's growth factor (>= 1)", "factor"),
    Knob("backoff_max", "backoff", _number, "the backoff's longest delay, seconds",
         "max_delay"),
    Knob("backoff_first_max", "backoff", _number, "rfc6455's longest first delay, seconds",
         "first_max"),
    Knob("backoff_randomization", "backoff", _number,
         "exponential backoff's +- share, in [0, 1]", "randomization"),
    Knob("guard_wait", "strategy", _positive,
         "seconds a connect() waits for one already in flight", "guard_wait"),
    Knob("registry", "strategy", _as_given,
         "registry policy by name (naive, kick-old, kick-old-safe, ...)", "registry"),
    Knob("identity", "strategy", _as_given, "identity policy (fresh-per-load, per-tab, shared)",
         "identity"),
    Knob("unload", "strategy", _as_given, "unload handler (none, beforeunload, pagehide)",
         "unload"),
    Knob("visibility", "strategy", _as_given, "keep or disconnect-when-hidden", "visibility"),
    Knob("guard", "strategy", _as_given, "connect guard (none, single-flight)", "guard"),
    Knob("latency", "latency", _at_least_zero, "one-way network delay, seconds (jitter kept)",
         "base"),
    Knob("jitter", "latency", _at_least_zero,
         "uniform extra delay up to this many seconds (latency kept)", "jitter"),
    Knob("push_rate", "scenario", _at_least_zero, "pushes per second per tab", "push_rate"),
    Knob("idle_timeout", "scenario", _positive_or_none,
         "a proxy cuts sockets idle this many seconds (None: no proxy)", "idle_timeout"),
    Knob("tabs", "run", _as_given, "number of tabs"),
    Knob("duration", "run", _as_given, "workload seconds"),
)  # fmt: skip

_BY_NAME = {knob.name: knob for knob in TABLE}

KNOBS: dict[str, str] = {knob.name: f"{knob.part}: {knob.help}" for knob in TABLE}
"""Every knob's name and what it sets (what ``python -m simkit list`` prints)."""

RUN_KNOBS: tuple[str, ...] = tuple(knob.name for knob in TABLE if knob.group == "run")
"""The knobs that size the run (the plan reads them; :func:`apply_knobs` leaves them)."""


# A knob's value is Any here: its type is the knob's own (a number, a name, a Liveness, a
# Backoff), known from its name at run time and checked there by the knob's check().
def check_knobs(params: Mapping[str, Any]) -> dict[str, Any]:
    """Each knob's value as it will be set, in ``params``' order: an unknown name or a bad
    value is a :class:`ConfigError` naming it."""
    checked: dict[str, Any] = {}
    for name, value in params.items():
        knob = _BY_NAME.get(name)
        if knob is None:
            raise choice("grid key", name, list(KNOBS))
        checked[name] = knob.check(name, value)
    return checked


def apply_knobs(
    scenario: Scenario, strategy: Strategy, params: Mapping[str, Any]
) -> tuple[Scenario, Strategy]:
    """``scenario`` and ``strategy`` with the knobs in ``params`` set (see :data:`KNOBS`;
    ``tabs`` and ``duration`` are the run's and are left to the caller).

    Every value is checked here, before a cluster is asked to do anything, so a bad value
    is the kit's usual :class:`ConfigError` naming it, not a failed run.
    """
    unknown = [k for k in params if k not in _BY_NAME]
    if unknown:
        raise choice("grid key", unknown[0], list(KNOBS))
    try:
        values = check_knobs(params)
        return _scenario_with(scenario, values), _strategy_with(strategy, values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:  # e.g. a dataclass refusing a string
        shown = {k: v for k, v in params.items() if k not in RUN_KNOBS}
        raise ConfigError(f"grid values {shown} are not allowed: {error}") from error


def _in(group: Group, values: Mapping[str, Any]) -> dict[str, Any]:
    """The values of ``group``'s knobs, by the field each one sets."""
    return {
        _BY_NAME[name].field: value
        for name, value in values.items()
        if _BY_NAME[name].group == group
    }


def _strategy_with(strat: Strategy, values: Mapping[str, Any]) -> Strategy:
    changes = _in("strategy", values)
    if any(_BY_NAME[name].group == "liveness" for name in values):
        changes["liveness"] = _liveness_with(strat.liveness, values)
    backoff = values.get("backoff", strat.client.backoff)
    fields = {f: v for f, v in _in("backoff", values).items() if f}
    if fields:
        backoff = dataclasses.replace(backoff, **fields)
    if backoff is not strat.client.backoff:
        changes["backoff"] = backoff
    return strat.replace(**changes) if changes else strat


def _liveness_with(rule: Liveness, values: Mapping[str, Any]) -> Liveness:
    """The heartbeat the liveness knobs describe together: a preset, then the interval and
    timeout (``heartbeat`` sets both), then who answers."""
    base: Liveness = values.get("liveness", rule)
    interval, timeout = base.interval, base.timeout
    if "heartbeat" in values:
        if "heartbeat_interval" in values or "heartbeat_timeout" in values:
            raise ConfigError(
                "grid key heartbeat sets both interval and timeout; give it alone, or "
                "heartbeat_interval and/or heartbeat_timeout instead"
            )
        interval = timeout = values["heartbeat"]
    # None for one half keeps it.
    given = {f: v for f, v in _in("liveness", values).items() if f and v is not None}
    interval = given.get("interval", interval)
    timeout = given.get("timeout", timeout)
    # A strategy without a heartbeat has no half to keep: the missing half equals the given.
    if interval is None and timeout is not None:
        interval = timeout
    if timeout is None and interval is not None:
        timeout = interval
    kind = given.get("kind", base.kind)
    if (interval, timeout, kind) == (base.interval, base.timeout, base.kind):
        return base
    name = "off" if interval is None else f"{kind} {interval:g}s/{timeout:g}s"
    also = base.also if base.also is not None and base.also.kind != kind else None
    return Liveness(name, interval, timeout, kind, f"swept: {name}", also)


def _scenario_with(sc: Scenario, values: Mapping[str, Any]) -> Scenario:
    changes = _in("scenario", values)
    latency = _in("latency", values)
    if latency:
        kept = {"base": float(sc.latency.base), "jitter": float(sc.latency.jitter)}
        changes["latency"] = Latency(**{**kept, **latency})
    return sc.with_(**changes) if changes else sc
