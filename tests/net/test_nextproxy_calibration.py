"""The shipped measurement of the Next.js rewrites proxy's "socket hang up" (problem 1 of the
post-mortem), read as a user's installed kit reads it: its shape, its internal consistency,
and the parsing of the proxy's log lines it was counted with. No Node.js needed."""

from __future__ import annotations

import datetime as dt
import json
from importlib import resources

import pytest

from simkit.net.nextapp import NextApp
from simkit.net.nextproxy_measure import CASES, failures


@pytest.fixture(scope="module")
def shipped() -> dict:
    return json.loads((resources.files("simkit") / "calibration_nextproxy.json").read_text())


def test_it_names_its_versions_date_and_setup(shipped: dict) -> None:
    assert {"next", "node", "uvicorn", "chromium", "react"} <= set(shipped["versions"])
    assert shipped["versions"]["next"].startswith("15.")
    dt.date.fromisoformat(shipped["date"])
    assert shipped["setup"]["reps"] == 20
    assert shipped["setup"]["proxy_timeout_s"] == 30.0


def test_every_condition_was_played_20_times(shipped: dict) -> None:
    names = [c["case"] for c in shipped["cases"]]
    assert len(names) == len(set(names))
    for family in CASES:  # every family of the module has at least one case on record
        assert any(n.startswith(family) for n in names), family
    for case in shipped["cases"]:
        assert case["repetitions"] == shipped["setup"]["reps"], case["case"]


def test_each_case_adds_up(shipped: dict) -> None:
    for case in shipped["cases"]:
        name = case["case"]
        assert 0 <= case["produced"] <= case["repetitions"], name
        assert case["lines"] >= case["produced"], name
        for field in ("codes", "errors", "paths"):
            assert sum(case[field].values()) == case["lines"], (name, field)
        timing = case["seconds_to_line"]
        if case["produced"] == 0:
            assert timing is None and case["lines"] == 0, name
        else:
            assert 0 <= timing["min"] <= timing["median"] <= timing["max"], name
        if "client_status" in case:
            assert sum(case["client_status"].values()) == case["repetitions"], name
    assert shipped["unattributed_lines"] >= 0


def test_the_findings_it_ships(shipped: dict) -> None:
    """What the measurement says, pinned: a slow answer past the timeout and a backend
    killed mid-answer give the post-mortem's line; the control under the timeout does not."""
    by = {c["case"]: c for c in shipped["cases"]}
    over = by["slow-response-31s"]
    assert over["produced"] == over["repetitions"]
    assert over["codes"] == {"ECONNRESET": over["lines"]}
    assert set(over["errors"]) == {"Error: socket hang up"}
    assert 29 <= over["seconds_to_line"]["min"] <= over["seconds_to_line"]["max"] <= 33
    assert by["slow-response-25s"]["produced"] == 0
    killed = by["backend-restart-inflight-SIGKILL"]
    assert killed["produced"] == killed["repetitions"]
    assert killed["codes"] == {"ECONNRESET": killed["lines"]}


SAMPLE = [
    (
        1.0,
        "stderr",
        "Failed to proxy http://127.0.0.1:8/api/database/select?rid=a [Error: socket "
        "hang up] { code: 'ECONNRESET' }",
    ),
    (1.0, "stderr", "[Error: socket hang up] { code: 'ECONNRESET' }"),
    (2.0, "stderr", "Failed to proxy https://app.example/api/search/q Error: read ECONNRESET"),
    (2.0, "stderr", "    at TLSWrap.onStreamRead (node:internal/stream_base_commons:217:20) {"),
    (2.0, "stderr", "  code: 'ECONNRESET',"),
    (
        3.0,
        "stderr",
        "Failed to proxy http://127.0.0.1:1/ws?user=u [Error: connect ECONNREFUSED 127.0.0.1:1] {",
    ),
    (3.0, "stderr", "  code: 'ECONNREFUSED',"),
    (4.0, "stdout", " GET / 200 in 12ms"),
]


def test_proxy_lines_are_counted_by_code_and_path() -> None:
    app = NextApp("examples/postmortem_frontend")
    app._lines = list(SAMPLE)  # a log as Next.js 15 and 13 print it
    counted = app.proxy_errors()
    rows = {(r.code, r.path): (r.error, r.count) for r in counted.itertuples()}
    assert rows == {
        ("ECONNRESET", "/api/database/select"): ("Error: socket hang up", 1),
        ("ECONNRESET", "/api/search/q"): ("Error: read ECONNRESET", 1),
        ("ECONNREFUSED", "/ws"): ("Error: connect ECONNREFUSED 127.0.0.1:1", 1),
    }
    parsed = failures(SAMPLE)
    assert [f["query"] for f in parsed] == [{"rid": "a"}, {}, {"user": "u"}]
