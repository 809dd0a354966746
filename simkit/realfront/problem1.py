"""The post-mortem's problem 1, as measured: which conditions make the Next.js rewrites
proxy log "Failed to proxy ... [Error: socket hang up]" (ECONNRESET) in front of uvicorn.

The measurement itself is :mod:`simkit.net.nextproxy_measure` (20 repetitions per case,
about half an hour of real time); its record ships as ``simkit/calibration_nextproxy.json``.
A lesson reads the record rather than re-measure it: :func:`cases` is that record as one
table, one row per condition, so that each claim about the proxy is a number in it.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pandas as pd

RECORD = "calibration_nextproxy.json"


def shipped() -> dict[str, Any]:
    """The shipped record, as the installed kit holds it."""
    text = (resources.files("simkit") / RECORD).read_text(encoding="utf-8")
    record: dict[str, Any] = json.loads(text)
    return record


def cases(record: dict[str, Any] | None = None) -> pd.DataFrame:
    """One row per condition (indexed by case): ``produced`` of ``repetitions`` gave the
    line, its ``share``, the error ``codes`` seen, and the median seconds from the
    condition to the line."""
    data = shipped() if record is None else record
    rows = []
    for case in data["cases"]:
        seconds = case.get("seconds_to_line") or {}
        rows.append(
            {
                "case": case["case"],
                "produced": case["produced"],
                "repetitions": case["repetitions"],
                "share": case["produced"] / case["repetitions"],
                "codes": ", ".join(f"{k} x{v}" for k, v in case["codes"].items()) or "-",
                "median_s": seconds.get("median", float("nan")),
                "condition": case["condition"],
            }
        )
    return pd.DataFrame(rows).set_index("case")


__all__ = ["RECORD", "cases", "shipped"]
