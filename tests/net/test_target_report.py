"""The table of what a target run cannot know (``simkit.net.target.report``), applied on its
own: which keys it blanks, with which value and reason, and what it leaves out. (That it
gives the summary the hand-written bookkeeping gave is shown on real runs in
``tests/live/test_target.py``.)"""

from __future__ import annotations

import math

from simkit.net.target.report import FROM_CENSUS, REGISTRY_COLUMNS, UNKNOWN, When, unknown

LAYOUT = {
    "target": "ws://h:1/ws",
    "final_unroutable": FROM_CENSUS,
    "pushes_sent": FROM_CENSUS,
    "starved_tabs": 2,
    "invariants_hold": FROM_CENSUS,
}


def test_with_the_stats_route_only_the_always_unknown_are_blanked():
    values, why = unknown(LAYOUT, {When.ALWAYS})
    assert "final_unroutable" not in values and "invariants_hold" not in values  # the census's
    assert list(values)[:3] == ["target", "pushes_sent", "starved_tabs"]  # in place, and then
    assert all(math.isnan(values[k]) for k in ("pushes_no_route", "heartbeat_pongs"))  # added
    assert math.isnan(values["pushes_sent"]) and values["starved_tabs"] == 2
    assert list(why) == ["delivery_ratio", "detections"]


def test_without_it_the_registry_and_the_invariants_are_unknown_with_the_problem_named():
    values, why = unknown(LAYOUT, {When.ALWAYS, When.NO_STATS, When.SILENT}, "HTTP 404")
    assert list(values)[: len(LAYOUT)] == list(LAYOUT)  # every key blanked, in its place
    assert math.isnan(values["final_unroutable"]) and math.isnan(values["starved_tabs"])
    assert values["invariants_hold"] is None  # not NaN: a verdict that is not given
    assert why["unroutable"] == (
        "needs the target's registry; its stats route is unusable (HTTP 404)"
    )
    assert list(why) == [*REGISTRY_COLUMNS, "delivery_ratio", "detections", "starved_tabs",
                         "invariants_hold"]  # fmt: skip


def test_every_row_names_a_metric_once_and_blanks_at_least_one_key():
    metrics = [row.metric for row in UNKNOWN]
    assert len(metrics) == len(set(metrics))
    assert all(row.keys and row.why for row in UNKNOWN)
