"""Whether a run can be trusted, and the gates a user's CI puts on its numbers.

Two questions, answered here once for the CLI, ``Result.check`` and ``Comparison.check``:

- **Is the run valid?** :func:`invalid_reasons` turns the facts a run reports about itself
  (:class:`~simkit.actors.play.Health`: rows sampled late or missing, errors logged, what
  the runtime lost) into sentences; a run with none is valid. An invalid run still has its
  numbers, but they do not mean what they say (a "final" row that is not after settling, a
  count of connections a dead browser never made), so ``python -m simkit run`` exits 2.
- **Does it pass the user's checks?** A check is ``invariants`` (the run's invariants
  hold), ``valid`` (the run is valid) or ``METRIC OP NUMBER`` with ``OP`` one of ``==``,
  ``!=``, ``<=``, ``>=``, ``<``, ``>`` and ``METRIC`` any number in the summary
  (``final_unroutable==0``, ``delivery_ratio>=0.99``), as k6 thresholds are. A failed
  check is an ``AssertionError`` naming the metric, its value and the limit, so that a
  pytest test reads ``result.check("final_unroutable==0")``.

The CLI's exit statuses (:data:`EXIT_PASS`, :data:`EXIT_FAILED`, :data:`EXIT_INVALID`) and
the JUnit XML report (:func:`junit_xml`) are defined here too; ``docs/ci.md`` shows them.
"""

from __future__ import annotations

import math
import operator
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import quoteattr

from simkit.model.errors import ConfigError

if TYPE_CHECKING:
    from simkit.actors.play import Health

EXIT_PASS = 0  # every run valid, every check passed
EXIT_FAILED = 1  # a check failed (``--check invariants``: the invariants failed)
EXIT_INVALID = 2  # a run is invalid, or the input was bad (an option, a path, a URL)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it

# A real-time run is invalid when more than this share of its rows were sampled late, or
# one row came later than WORST_LAG_STEPS steps: a few late rows are a busy machine's
# hiccups (a garbage collection, another process), many are a loop that cannot keep up.
LATE_SHARE = 0.1
WORST_LAG_STEPS = 10.0

# A run must end within a day of wall time and fit in memory. A virtual run's time series
# holds one row per step (about 0.5 kB each while it plays); the fastest scenario, measured
# here at 100 tabs on a loaded 2-core machine, plays 250,000 tab-seconds per wall second, so
# VIRTUAL_TAB_SECONDS is a day of that at four times the speed: no real run is refused.
WALL_DAY = 86_400.0
MAX_ROWS = 2_000_000
VIRTUAL_TAB_SECONDS = 4 * 250_000 * WALL_DAY

# How many tabs the live runtime plays in real time, per unit of scale (tabs / scale: the
# work per wall second grows with tabs and shrinks with scale). Measured with reload-storm
# under postmortem-safe on the kit's websockets server (60 s of workload, 20 s of settling)
# on a 2-core machine shared with other work (load average 5 to 9): at scale 0.05, 100 and
# 150 tabs kept time (0 and 2 of 81 rows late), 200 did not (62 late, worst 0.86 s); at
# scale 0.2, 200 tabs kept time (2 late), 400 did not (12 late). So the limit is between
# 2,000 and 3,000 tabs per unit of scale on that machine, lower under more load. Above
# LIVE_TABS_PER_SCALE a run warns before it starts; above LIVE_REFUSE x that it is refused
# (1,000 tabs at scale 0.05 is 20,000: such a run lost a third of its time series).
LIVE_TABS_PER_SCALE = 2_000
LIVE_REFUSE = 4
LIVE_MEASURED = (
    "measured with reload-storm on a shared 2-core machine: 150 tabs at scale 0.05 and 200 "
    "at 0.2 kept real time, 200 at 0.05 and 400 at 0.2 fell behind"
)

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
NAMES = ("invariants", "valid")

# The summary's numbers a check may name before the run has made them (so that a typo
# fails in a line, not after the run): every run's, then those of some runtimes only
# (several nodes, real time, a browser, a target). A check on one the run does not have
# fails after it, naming the ones it has.
_PER_METRIC = (
    "open_sockets",
    "live_tabs",
    "registry_entries",
    "stale",
    "dangling",
    "unroutable",
    "duplicates",
)
KNOWN_METRICS = frozenset(
    [f"{kind}_{m}" for kind in ("peak", "mean", "final") for m in _PER_METRIC]
    + [
        "seed",
        "tabs",
        "duration",
        "settle",
        "scale",
        "final_connected_tabs",
        "peak_connect_rate",
        "pushes_sent",
        "pushes_delivered",
        "pushes_lost",
        "pushes_lost_stale",
        "pushes_lost_frozen",
        "pushes_no_route",
        "pushes_buffered",
        "pushes_replayed",
        "pushes_pending",
        "pushes_duplicated",
        "pushes_expired",
        "delivery_ratio",
        "kicked_live_tabs",
        "tabs_opened_elsewhere",
        "connects",
        "refused_connects",
        "detections",
        "detection_delay_mean",
        "detection_delay_max",
        "detections_protocol",
        "detections_app",
        "detection_delay_mean_app",
        "detection_delay_mean_protocol",
        "heartbeat_pings",
        "heartbeat_pongs",
        "server_restarts",
        "final_disconnected_tabs",
        "nodes",
        "cross_node_kicks",
        "pushes_via_other_node",
        "store_ops",
        "store_ops_per_second",
        "store_errors",
        "node_crashes",
        "node_drains",
        "peak_node_open_sockets",
        "peak_dead_node_entries",
        "mean_dead_node_entries",
        "final_dead_node_entries",
        "samples_late",
        "sample_lag_max",
        "errors_logged",
        "browser_errors",
        "pushes_seen_by_pages",
        "target_keepalive",
        "starve_after",
        "starved_tabs",
        "messages_received",
        "binary_messages",
        "garbage_messages",
        "proxy_outages",
        "stats_polls",
        "stats_failures",
        "registry_foreign_entries",
    ]
)
_CHECK = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(==|!=|<=|>=|<|>)\s*(\S+)\s*$")


def check_feasible(
    runtime: str, *, tabs: int, duration: float, settle: float, scale: float, step: float
) -> None:
    """Refuse, before any work, a run that cannot end in a day of wall time or whose time
    series cannot fit in memory (``duration=1e12``, ``scale=1e9``), naming the limit."""
    end = duration + settle
    rows = end / step
    if rows > MAX_ROWS:
        raise ConfigError(
            f"duration + settle = {end:g} s is {rows:.3g} samples of {step:g} s; the limit "
            f"is {MAX_ROWS:,} samples ({MAX_ROWS * step / 86_400:.0f} days of scenario time)"
        )
    if runtime == "virtual":
        if tabs * end > VIRTUAL_TAB_SECONDS:
            raise ConfigError(
                f"{tabs} tabs x {end:g} s is {tabs * end:.3g} tab-seconds, more than a virtual "
                f"run plays in a day of wall time (limit {VIRTUAL_TAB_SECONDS:.3g}); use "
                "fewer tabs or a shorter duration"
            )
        return
    wall = end * scale
    if wall > WALL_DAY:
        raise ConfigError(
            f"duration + settle = {end:g} s at scale {scale:g} takes {wall:.3g} s of wall "
            f"time; the limit is a day ({WALL_DAY:,.0f} s): lower the duration or the scale"
        )
    if runtime == "live":
        check_live_size(tabs, scale)


def check_live_size(tabs: int, scale: float) -> None:
    """Warn before a live run bigger than a small machine plays in real time, refuse one
    far bigger (:data:`LIVE_TABS_PER_SCALE`, :data:`LIVE_REFUSE`): it would only be
    reported invalid after the fact. A faster machine may play more than the warning
    says; whether it did is in the run's ``run_valid``."""
    load = tabs / scale
    if load <= LIVE_TABS_PER_SCALE:
        return
    advice = (
        f"the live runtime keeps real time up to about {LIVE_TABS_PER_SCALE:,} ("
        f"{LIVE_MEASURED}); use at most {max(1, int(LIVE_TABS_PER_SCALE * scale))} tabs at "
        f"this scale, or scale >= {tabs / LIVE_TABS_PER_SCALE:.3g} for {tabs} tabs"
    )
    if load > LIVE_REFUSE * LIVE_TABS_PER_SCALE:
        raise ConfigError(
            f"{tabs} tabs at scale {scale:g} is {load:,.0f} tabs per unit of scale, more "
            f"than {LIVE_REFUSE * LIVE_TABS_PER_SCALE:,}: {advice}"
        )
    warnings.warn(
        f"{tabs} tabs at scale {scale:g} is {load:,.0f} tabs per unit of scale: {advice}. "
        "The run may fall behind real time (then summary['run_valid'] is False)",
        UserWarning,
        stacklevel=4,
    )


# (summaries are Result.summary: values of many kinds by key, hence Mapping[str, Any])
def invalid_reasons(summary: Mapping[str, Any], health: Health) -> list[str]:
    """Why the run's numbers cannot be trusted, one sentence each (empty: it is valid).

    Read from ``summary`` (its ``duration``, ``settle``, ``scale``, ``tabs``) and
    ``health``; the one place the kit decides whether a run is valid."""
    reasons: list[str] = []
    end = float(summary.get("duration", 0.0)) + float(summary.get("settle", 0.0))
    scale = float(summary.get("scale", 1.0))
    tabs = summary.get("tabs", "?")
    if health.samples_taken < health.samples_due:
        missing = health.samples_due - health.samples_taken
        reasons.append(
            f"the time series stops short of duration + settle = {end:g} s: {missing} of "
            f"{health.samples_due} rows were never sampled (the loop fell behind real time), "
            "so its final values are not after settling"
        )
    if health.realtime and health.samples_due:
        step_wall = health.late_bound
        too_many = health.samples_late > LATE_SHARE * health.samples_due
        too_late = health.worst_lag > max(WORST_LAG_STEPS * step_wall, 1.0)
        if too_many or too_late:
            reasons.append(
                f"the run fell behind real time: {health.samples_late} of "
                f"{health.samples_due} rows were sampled more than {step_wall:.3g} s late "
                f"(worst {health.worst_lag:.2f} s); {tabs} tabs at scale {scale:g} are "
                "more than this machine plays in time: use fewer tabs or a larger scale"
            )
    refused = int(summary.get("refused_connects", 0) or 0)
    if health.realtime and summary.get("connects") == 0 and refused:
        reasons.append(
            f"no tab ever connected: all {refused} handshakes failed, so the run measured "
            "nothing of the server's session management"
        )
    if health.errors_logged:
        first = "; ".join(health.first_errors)
        reasons.append(
            f"{health.errors_logged} errors were logged during the run (tasks of the "
            f"clients or the server raised); first: {first}"
        )
    reasons.extend(health.losses)
    return reasons


@dataclass(frozen=True)
class Check:
    """One gate: ``invariants``, ``valid`` or ``metric op limit``. ``text`` is as given."""

    text: str
    metric: str
    op: str | None = None
    limit: float | None = None

    def evaluate(self, summary: Mapping[str, Any]) -> tuple[bool, str]:
        """(passed, a sentence naming the metric, its value and the limit)."""
        if self.op is None:  # a named check
            key = "invariants_hold" if self.metric == "invariants" else "run_valid"
            value = summary.get(key)
            if value is None:
                raise ConfigError(f"check {self.text!r}: the summary has no {key!r}")
            passed = bool(value)
            if self.metric == "valid" and not passed:
                why = "; ".join(summary.get("invalid_reasons", []))
                return False, f"valid: the run is invalid ({why})"
            if self.metric == "invariants" and not passed:
                finals = ", ".join(
                    f"{k}={summary.get(k)}"
                    for k in (
                        "final_stale", "final_dangling", "final_unroutable",
                        "final_open_sockets", "final_connected_tabs", "final_disconnected_tabs",
                    )
                )  # fmt: skip
                return False, f"invariants: invariants_hold is False ({finals})"
            return True, f"{self.metric}: {key} is {passed}"
        if self.metric not in summary:
            numbers = [k for k, v in summary.items() if _is_number(v)]
            raise ConfigError(
                f"check {self.text!r}: unknown metric {self.metric!r}; choose one of: "
                f"{', '.join(numbers)}"
            )
        value = summary[self.metric]
        if not _is_number(value):
            raise ConfigError(f"check {self.text!r}: {self.metric} is {value!r}, not a number")
        assert self.limit is not None
        passed = not math.isnan(float(value)) and OPERATORS[self.op](float(value), self.limit)
        verdict = "ok" if passed else "failed"
        return passed, (
            f"{self.metric} = {value!r}, limit {self.metric} {self.op} {self.limit:g} ({verdict})"
        )


def parse_check(text: str) -> Check:
    """A :class:`Check` from ``invariants``, ``valid`` or ``METRIC OP NUMBER``; anything
    else is a ConfigError naming it and what is allowed."""
    if not isinstance(text, str):
        raise ConfigError(f"a check is a string such as 'final_unroutable==0', got {text!r}")
    stripped = text.strip()
    if stripped in NAMES:
        return Check(text, stripped)
    match = _CHECK.match(text)
    if match is None:
        raise ConfigError(
            f"bad check {text!r}: write invariants, valid, or METRIC OP NUMBER with OP one "
            f"of {' '.join(OPERATORS)} (e.g. 'final_unroutable==0', 'delivery_ratio>=0.99')"
        )
    metric, op, raw = match.groups()
    try:
        limit = float(raw)
    except ValueError:
        raise ConfigError(f"bad check {text!r}: the limit {raw!r} is not a number") from None
    if math.isnan(limit):
        raise ConfigError(f"bad check {text!r}: the limit must be a number, not nan")
    return Check(text, metric, op, limit)


def parse_checks(texts: Iterable[str]) -> list[Check]:
    """Every check parsed, its metric one the kit's summaries have (:data:`KNOWN_METRICS`),
    so that a typo fails before a run starts."""
    checks = [parse_check(t) for t in texts]
    for check in checks:
        if check.op is not None and check.metric not in KNOWN_METRICS:
            raise ConfigError(
                f"check {check.text!r}: unknown metric {check.metric!r}; choose one of: "
                f"{', '.join(sorted(KNOWN_METRICS))}"
            )
    return checks


@dataclass(frozen=True)
class Outcome:
    """One check on one run: which strategy, the check, whether it passed, the sentence."""

    strategy: str
    check: Check
    passed: bool
    message: str


def evaluate(checks: Iterable[Check], summaries: Mapping[str, Mapping[str, Any]]) -> list[Outcome]:
    """Every check on every strategy's summary, in order (strategy, then check)."""
    listed = list(checks)
    out: list[Outcome] = []
    for strategy, summary in summaries.items():
        for check in listed:
            passed, message = check.evaluate(summary)
            out.append(Outcome(strategy, check, passed, message))
    return out


def assert_checks(
    texts: tuple[str | Check, ...], summaries: Mapping[str, Mapping[str, Any]]
) -> None:
    """Raise one AssertionError listing every failed check (metric, value and limit)."""
    checks = [t if isinstance(t, Check) else parse_check(t) for t in texts]
    if not checks:
        raise ConfigError("check needs at least one check, e.g. 'final_unroutable==0'")
    failed = [o for o in evaluate(checks, summaries) if not o.passed]
    if failed:
        several = len(summaries) > 1
        lines = [f"{o.strategy}: {o.message}" if several else o.message for o in failed]
        raise AssertionError("; ".join(lines))


def exit_status(outcomes: Iterable[Outcome], summaries: Iterable[Mapping[str, Any]]) -> int:
    """The CLI's exit status: 2 if a run is invalid, else 1 if a check failed, else 0."""
    if any(not s.get("run_valid", True) for s in summaries):
        return EXIT_INVALID
    if any(not o.passed for o in outcomes):
        return EXIT_FAILED
    return EXIT_PASS


def junit_xml(
    outcomes: list[Outcome],
    summaries: Mapping[str, Mapping[str, Any]],
    *,
    suite: str = "simkit",
) -> str:
    """A JUnit XML report: one testsuite, one testcase per check per strategy (its class
    the scenario and strategy), plus one ``run_valid`` testcase per strategy so that an
    invalid run shows as an error in the CI's test view."""
    cases: list[str] = []
    failures = errors = 0
    for strategy, summary in summaries.items():
        classname = f"{summary.get('scenario', 'simkit')}.{strategy}"
        if not summary.get("run_valid", True):
            errors += 1
            why = "; ".join(summary.get("invalid_reasons", []))
            cases.append(
                f'  <testcase classname={quoteattr(classname)} name="run_valid">\n'
                f"    <error message={quoteattr('the run is invalid: ' + why)} "
                f'type="InvalidRun"/>\n  </testcase>'
            )
        else:
            cases.append(f'  <testcase classname={quoteattr(classname)} name="run_valid"/>')
        for o in (o for o in outcomes if o.strategy == strategy):
            name = quoteattr(o.check.text.strip())
            if o.passed:
                cases.append(f"  <testcase classname={quoteattr(classname)} name={name}/>")
            else:
                failures += 1
                cases.append(
                    f"  <testcase classname={quoteattr(classname)} name={name}>\n"
                    f'    <failure message={quoteattr(o.message)} type="CheckFailed"/>\n'
                    "  </testcase>"
                )
    head = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<testsuite name={quoteattr(suite)} tests="{len(cases)}" '
        f'failures="{failures}" errors="{errors}">'
    )
    return "\n".join([head, *cases, "</testsuite>"]) + "\n"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_INVALID",
    "EXIT_PASS",
    "Check",
    "Outcome",
    "assert_checks",
    "evaluate",
    "exit_status",
    "invalid_reasons",
    "junit_xml",
    "parse_check",
    "parse_checks",
]
