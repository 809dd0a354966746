"""What a target run adds to the summary, and which metrics it cannot know, as data.

Against a server that is not the kit's, some metrics cannot be measured from outside: the
registry's without the stats protocol, the pushes and the heartbeat's verdicts always,
silence when the target never speaks. Each is NaN (or None), never guessed, and the
summary's ``unknown_metrics`` says why. :data:`UNKNOWN` is that knowledge as a table (the
metric, when it is unknown, why, and the summary keys it blanks), and :func:`unknown` is the
one function that applies it; :func:`target_summary` lays out the known values in the
order the summary prints them.
"""

from __future__ import annotations

import enum
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from simkit.net.target.network import TargetNetwork

# The census's columns that need the target's registry (its stats route).
REGISTRY_COLUMNS = ("registry_entries", "dangling", "unroutable")


class When(enum.Enum):
    """When a metric is unknown."""

    ALWAYS = "always"  # the kit never sees it from outside
    NO_STATS = "no stats"  # the stats route is unusable
    SILENT = "silent"  # the target sent no message during the run


@dataclass(frozen=True)
class Unknown:
    """One metric a target run may not know: ``keys`` of the summary are set to ``value``
    and ``unknown_metrics[metric]`` to ``why`` (``{problem}``: why the stats route is
    unusable) whenever ``when`` holds."""

    metric: str
    when: When
    why: str
    keys: tuple[str, ...]
    value: float | None = math.nan


def derived(column: str) -> tuple[str, ...]:
    """The summary keys the run derives from a census column."""
    return (f"peak_{column}", f"mean_{column}", f"final_{column}")


PUSH_KEYS = (
    "pushes_sent",
    "pushes_delivered",
    "pushes_lost",
    "pushes_lost_stale",
    "pushes_lost_frozen",
    "pushes_no_route",
)
DETECTION_KEYS = (
    "detections",
    "detection_delay_mean",
    "detection_delay_max",
    "heartbeat_pings",
    "heartbeat_pongs",
)
NEEDS_REGISTRY = "needs the target's registry; its stats route is unusable ({problem})"

UNKNOWN: tuple[Unknown, ...] = (
    *(Unknown(c, When.NO_STATS, NEEDS_REGISTRY, derived(c)) for c in REGISTRY_COLUMNS),
    Unknown(
        "delivery_ratio",
        When.ALWAYS,
        "the target pushes on its own; the kit counts what the tabs received "
        "(messages_received, starved_tabs), not what the server meant to send",
        PUSH_KEYS,
    ),
    Unknown(
        "detections",
        When.ALWAYS,
        "the target's heartbeat verdicts are not visible from outside",
        DETECTION_KEYS,
    ),
    Unknown(
        "starved_tabs",
        When.SILENT,
        "the target sent no messages, so silence means nothing",
        ("starved_tabs",),
    ),
    Unknown(
        "invariants_hold",
        When.NO_STATS,
        "dangling and unroutable are unknown",
        ("invariants_hold",),
        value=None,  # half of them need the registry: not guessed
    ),
)

# A key the run's own summary already has (from the census): listed in the layout only to
# give it its place when the table blanks it, and left out otherwise.
FROM_CENSUS: object = object()


def unknown(
    layout: Mapping[str, object], holds: Iterable[When], problem: str | None = None
) -> tuple[dict[str, object], dict[str, str]]:
    """Apply :data:`UNKNOWN` to ``layout`` (the known values, in order): the values with
    every blanked key set, the census's own keys dropped, and ``unknown_metrics``."""
    now = set(holds)
    values, why = dict(layout), {}
    for row in UNKNOWN:
        if row.when in now:
            values.update(dict.fromkeys(row.keys, row.value))
            why[row.metric] = row.why.format(problem=problem)
    return {k: v for k, v in values.items() if v is not FROM_CENSUS}, why


def target_summary(
    net: TargetNetwork,
    *,
    target: str,
    keepalive: float,
    starve_after: float,
    received: Sequence[int],
    stats_problem: str | None,
    stats_polls: int,
    stats_failures: int,
    stats_last_failure: str,
    foreign_entries: int,
) -> dict[str, object]:
    """A target run's part of the summary: what the proxy and the clients saw, the stats
    route's record, every metric it cannot know blanked with its reason, and ``notes``."""
    rows = net.census.rows
    layout: dict[str, object] = {
        "target": target,
        "target_keepalive": keepalive,
        **dict.fromkeys((k for c in REGISTRY_COLUMNS for k in derived(c)), FROM_CENSUS),
        "stats_polls": stats_polls,
        "stats_failures": stats_failures,
        "registry_foreign_entries": foreign_entries,
        **dict.fromkeys(PUSH_KEYS + DETECTION_KEYS, FROM_CENSUS),
        "messages_received": net.messages,
        "messages_per_tab": (
            {"min": min(received), "median": statistics.median(received), "max": max(received)}
            if received
            else {}
        ),
        "binary_messages": net.binary,
        "garbage_messages": net.garbage,
        "starved_tabs": net.starved(starve_after),
        "starve_after": starve_after,
        "handshake_refusals": dict(sorted(net.refusals.items())),
        "closed_by_server": {str(k): v for k, v in sorted(net.closes["server"].items())},
        "closed_for_client": {str(k): v for k, v in sorted(net.closes["client"].items())},
        "proxy_outages": net.outages,
        "client_invariants_hold": bool(
            rows["stale"]
            and rows["stale"][-1] == 0
            and rows["open_sockets"][-1] == rows["connected_tabs"][-1]
            and rows["live_tabs"][-1] == rows["connected_tabs"][-1]
        ),
        "invariants_hold": FROM_CENSUS,
    }
    holds = {When.ALWAYS}
    if stats_problem is not None:
        holds.add(When.NO_STATS)
    if not net.messages:
        holds.add(When.SILENT)
    summary, why = unknown(layout, holds, stats_problem)
    summary["notes"] = notes(net, stats_problem, stats_polls, stats_failures, stats_last_failure)
    summary["unknown_metrics"] = why
    return summary


def notes(
    net: TargetNetwork,
    stats_problem: str | None,
    stats_polls: int,
    stats_failures: int,
    stats_last_failure: str,
) -> list[str]:
    """Sentences for what a person pointing the kit at a server must hear first."""
    said = []
    if net.census.connects == 0 and net.refusals:
        what = ", ".join(f"{k} x{v}" for k, v in net.refusals.most_common())
        said.append(f"the target refused every handshake ({what})")
    if stats_problem is not None:
        said.append(
            f"no stats route ({stats_problem}): registry_entries, dangling and "
            "unroutable are unknown (NaN)"
        )
    elif stats_failures:
        said.append(
            f"the stats route failed {stats_failures} of {stats_polls} polls "
            f"(last: {stats_last_failure}); those samples reuse its previous answer"
        )
    if net.binary or net.garbage:
        said.append(f"the target sent {net.binary} binary and {net.garbage} non-JSON messages")
    return said
