"""Score a design of your own with the harness the built-in strategies use.

:func:`grade` plays a strategy (or just a registry policy, dropped into the
``postmortem-safe`` client and heartbeat) through a few virtual scenarios with
:func:`simkit.run` and checks, in each, the invariants a correct design keeps once the
workload has stopped and every timeout has passed: no stale socket, no dangling
entry, no unroutable tab, as many open sockets as connected tabs and, where the kit counts
them, no live tab left without a connection: together, the run's ``invariants_hold``.
Optional limits add
checks of your own, ``max_<measure>=`` or ``min_<measure>=`` for any number of the run's
summary (``min_delivery_ratio=0.95``, ``max_kicked_live_tabs=0``,
``max_peak_connect_rate=40``: connections accepted per second at the peak) or for
``peak_attempt_rate``, the most connection attempts begun in any one second, refused ones
included (a reconnect herd hammering a server that is down). Every check reports the number
it measured, so a failure says by how much.

>>> from simkit.grading import grade
>>> g = grade("kick-old", scenarios=["reload-storm"], tabs=20, duration=60)
>>> g.passed
False
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypedDict

import pandas as pd

from simkit.api import run
from simkit.model.errors import ConfigError, choice
from simkit.model.registry import REGISTRIES, Registry
from simkit.model.strategy import STRATEGIES, Strategy
from simkit.results import Result
from simkit.scenarios import SCENARIOS, Scenario
from simkit.scenarios import scenario as scenario_of

DEFAULT_SCENARIOS = ("reload-storm", "strict-mode", "flaky-network")
BASE_STRATEGY = "postmortem-safe"  # the client and heartbeat a bare registry is played with

# The run's own settings, in every summary but not results to put a limit on.
_SETTINGS = ("tabs", "duration", "settle", "seed", "scale")
# The invariant checks: (check, summary key that must be 0) besides open_sockets.
_ZEROES = ("stale", "dangling", "unroutable")


@functools.cache
def measures() -> tuple[str, ...]:
    """Every number a limit may name after ``max_`` or ``min_``: each numeric entry of a
    run's summary (read from a one-tab, one-second run, so the list follows the kit), plus
    ``peak_attempt_rate``."""
    summary = run("reload-storm", BASE_STRATEGY, tabs=1, duration=1.0, progress=False).summary
    numeric = [
        key
        for key, value in summary.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and key not in _SETTINGS
    ]
    return ("peak_attempt_rate", *numeric)


COLUMNS = ("scenario", "check", "measured", "limit", "passed")


class Row(TypedDict):
    """One check of one scenario: a row of :attr:`Grade.table` (its ``COLUMNS``)."""

    scenario: str
    check: str
    measured: float
    limit: str  # the operator and the bound, as printed: "<= 40", "== 0"
    passed: bool


@dataclass
class Grade:
    """The verdict of :func:`grade`: one row per (scenario, check) in ``table``."""

    name: str
    table: pd.DataFrame
    tabs: int
    duration: float
    seed: int
    results: dict[str, Result] = field(default_factory=dict, repr=False)

    @property
    def passed(self) -> bool:
        """True when every check of every scenario passed."""
        return bool(self.table["passed"].all())

    @property
    def failures(self) -> pd.DataFrame:
        """Only the rows that failed."""
        return self.table[~self.table["passed"]]

    def __str__(self) -> str:
        failed = int((~self.table["passed"]).sum())
        total = len(self.table)
        verdict = "PASS" if failed == 0 else f"FAIL ({failed} of {total} checks failed)"
        head = (
            f"grade of {self.name!r} ({self.tabs} tabs, {format_number(self.duration)} s, "
            f"seed {self.seed}): {verdict}"
        )
        t = self.table
        rows = [("scenario", "check", "measured", "limit", "result")]
        rows += [
            (scenario, check, format_number(measured), limit, "pass" if passed else "FAIL")
            for scenario, check, measured, limit, passed in zip(
                t["scenario"], t["check"], t["measured"], t["limit"], t["passed"], strict=True
            )
        ]
        return "\n".join([head, *text_columns(rows, right=(2,))])

    __repr__ = __str__


def grade(
    strategy_or_registry: str | Strategy | Callable[[], Registry],
    scenarios: Iterable[str | Scenario] = DEFAULT_SCENARIOS,
    tabs: int = 50,
    duration: float = 120.0,
    seed: int = 0,
    *,
    settle: float | None = None,
    **limits: float,
) -> Grade:
    """Run a design through ``scenarios`` and check each invariant, with the measured number.

    ``strategy_or_registry`` is a :class:`~simkit.Strategy`, a strategy preset name, a
    registry preset name, or a registry factory (your own ``Registry`` subclass); a bare
    registry runs with the ``postmortem-safe`` client (the user's own id, pagehide,
    single-flight guard) and its 20 s/20 s heartbeat. ``limits`` are extra checks named
    ``max_<measure>`` or ``min_<measure>`` (see :func:`measures`). Every run is virtual and
    seeded: the same arguments give the same grade.
    """
    strategy = _strategy(strategy_or_registry)
    chosen = [scenario_of(item) for item in _listed(scenarios)]
    if not chosen:
        raise ConfigError(f"grade needs at least one scenario; choose from: {', '.join(SCENARIOS)}")
    bounds = _bounds(limits)
    trace = any(measure == "peak_attempt_rate" for measure, _, _ in bounds)
    rows: list[Row] = []
    results: dict[str, Result] = {}
    for sc in chosen:
        result = run(
            sc,
            strategy,
            tabs=tabs,
            duration=duration,
            seed=seed,
            settle=settle,
            trace=trace,
            progress=False,
        )
        results[sc.name] = result
        rows.extend(_checks(sc.name, result, bounds))
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table["passed"] = table["passed"].astype(bool)
    return Grade(strategy.name, table, tabs, float(duration), seed, results)


# --- helpers ------------------------------------------------------------------------------


def _strategy(value: object) -> Strategy:
    if isinstance(value, Strategy):
        return value
    if isinstance(value, str):
        if value in STRATEGIES:
            return STRATEGIES[value]
        if value in REGISTRIES:
            return _with_registry(REGISTRIES[value], value)
        raise choice("strategy or registry", value, list(dict.fromkeys([*STRATEGIES, *REGISTRIES])))
    if isinstance(value, Registry):
        raise ConfigError(
            f"pass the registry class (a factory), not an instance: {type(value).__name__}, "
            f"not {type(value).__name__}(); every run needs a fresh, empty registry"
        )
    if callable(value):
        name: object = getattr(value, "name", None)
        if not isinstance(name, str) or name == "custom":
            name = str(getattr(value, "__name__", "custom"))
        return _with_registry(value, name)
    raise ConfigError(
        "grade needs a Strategy, a strategy or registry preset name, or a Registry "
        f"subclass; got {value!r}"
    )


def _with_registry(factory: Callable[[], Registry], name: str) -> Strategy:
    return STRATEGIES[BASE_STRATEGY].replace(name=name, registry=factory, summary="")


def _listed(scenarios: Iterable[str | Scenario] | str | Scenario) -> list[str | Scenario]:
    if isinstance(scenarios, str | Scenario):
        return [scenarios]
    return list(scenarios)


def _bounds(limits: dict[str, float]) -> list[tuple[str, str, float]]:
    """``max_x=1`` -> ("x", "<=", 1.0); unknown names raise ConfigError listing the valid."""
    bounds = []
    for key, value in limits.items():
        kind, _, measure = key.partition("_")
        if kind not in ("max", "min") or measure not in measures():
            valid = [f"{k}_{m}" for m in measures() for k in ("max", "min")]
            raise choice("limit", key, valid)
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise ConfigError(f"limit {key} must be a number, got {value!r}")
        bounds.append((measure, "<=" if kind == "max" else ">=", float(value)))
    return bounds


def _checks(scenario: str, result: Result, bounds: list[tuple[str, str, float]]) -> list[Row]:
    s = result.summary
    rows = [check_row(scenario, f"final {name}", s[f"final_{name}"], "==", 0) for name in _ZEROES]
    connected = s["final_connected_tabs"]
    rows.append(
        {
            "scenario": scenario,
            "check": "final open_sockets",
            "measured": float(s["final_open_sockets"]),
            "limit": f"== {connected} (connected tabs)",
            "passed": s["final_open_sockets"] == connected,
        }
    )
    if "final_disconnected_tabs" in s:  # live tabs left without a connection
        rows.append(
            check_row(scenario, "final disconnected_tabs", s["final_disconnected_tabs"], "==", 0)
        )
    for measure, op, bound in bounds:
        value = peak_attempt_rate(result) if measure == "peak_attempt_rate" else s[measure]
        rows.append(check_row(scenario, measure, value, op, bound))
    return rows


def check_row(scenario: str, check: str, value: float, op: str, bound: float) -> Row:
    """Judge ``value`` against ``bound`` with ``op`` (``==``, ``<=`` or ``>=``); a NaN
    (nothing was measured) fails."""
    value = float(value)
    if math.isnan(value):
        ok = False  # nothing was measured (e.g. no push was sent): not a pass
    elif op == "==":
        ok = value == bound
    elif op == "<=":
        ok = value <= bound
    else:
        ok = value >= bound
    return {
        "scenario": scenario,
        "check": check,
        "measured": value,
        "limit": f"{op} {format_number(bound)}",
        "passed": ok,
    }


def peak_attempt_rate(result: Result) -> int:
    """The most connection attempts begun in any one second of ``result`` (needs a trace).

    Every attempt counts, refused ones too: while a server is down its accept loop (or the
    load balancer in front of it) still takes every one. The summary's
    ``peak_connect_rate`` counts only the connections the server accepted.
    """
    if result.trace is None:
        raise ConfigError("peak_attempt_rate needs a run made with trace=True")
    return peak_per_second(connect_times(result.trace))


def connect_times(trace: pd.DataFrame) -> pd.Series[float]:
    """When each connection attempt began (the trace's time column is ``time``; ``t`` in
    traces made before it was renamed)."""
    column = "time" if "time" in trace.columns else "t"
    return trace.loc[trace["event"] == "connect", column]


def peak_per_second(times: pd.Series[float]) -> int:
    """The most of ``times`` (seconds) that fall in any one whole second."""
    if times.empty:
        return 0
    return int(times.floordiv(1.0).value_counts().max())


def format_number(value: float) -> str:
    """``value`` as a verdict prints it: whole numbers without a point, others to four
    significant digits (small) or four decimals (large)."""
    value = float(value)
    if math.isnan(value):
        return "nan"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}" if abs(value) < 1 else f"{value:.4f}".rstrip("0").rstrip(".")


def text_columns(rows: Sequence[tuple[str, ...]], right: tuple[int, ...] = ()) -> list[str]:
    """``rows`` as aligned, indented lines: the columns in ``right`` flush right."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [
            r[i].rjust(widths[i]) if i in right else r[i].ljust(widths[i]) for i in range(len(r))
        ]
        lines.append("  " + "  ".join(cells).rstrip())
    return lines


__all__ = [
    "BASE_STRATEGY",
    "COLUMNS",
    "DEFAULT_SCENARIOS",
    "Grade",
    "Row",
    "check_row",
    "connect_times",
    "format_number",
    "grade",
    "measures",
    "peak_attempt_rate",
    "peak_per_second",
    "text_columns",
]
