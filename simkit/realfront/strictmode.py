"""React StrictMode's double mount, as one page load of the real front end does it.

Under ``next dev`` React mounts every effect, runs its cleanup and mounts it again, once per
page load. What that does to the sockets depends on the page's code, not on React: how
many sockets one load opens, in which order, how far apart, and whether the first one ever
reaches the server. :func:`per_load` reads it from the CDP socket tracker's records of a
real play (:attr:`PagePlay.sockets <simkit.realfront.stack.PagePlay.sockets>`);
:func:`model_double_mount` says what the model's ``strict-mode`` load does for the same
client code, so the two can be set side by side.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from simkit.api import run
from simkit.model.latency import Latency
from simkit.realfront.model import STACK, model_strategy
from simkit.runtime.interfaces import TabActor
from simkit.scenarios import Scenario

COLUMNS = (
    "tab", "load", "sockets", "gap_ms", "first_opened", "first_reached_server",
    "first_error", "second_opened",
)  # fmt: skip


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def per_load(sockets: pd.DataFrame) -> pd.DataFrame:
    """One row per page load that opened an app socket: how many it opened, the gap (ms)
    between the first two ``new WebSocket`` calls, whether the first one opened (101 seen
    by the page), reached the server (the proxy saw its close) and its error, and whether
    the second opened."""
    rows = []
    if sockets.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    app = sockets[sockets["app"]] if "app" in sockets else sockets
    for (tab, load), group in app.groupby(["tab", "load"], sort=True, dropna=True):
        ordered = group.sort_values("created", kind="stable")
        first = ordered.iloc[0]
        second = ordered.iloc[1] if len(ordered) > 1 else None
        gap = (
            (second["created"] - first["created"]) * 1000.0
            if second is not None and _present(first["created"]) and _present(second["created"])
            else math.nan
        )
        rows.append(
            {
                "tab": tab,
                "load": load,
                "sockets": len(ordered),
                "gap_ms": gap,
                "first_opened": _present(first["opened"]),
                "first_reached_server": _present(first["server_code"]),
                "first_error": first["error"] if _present(first["error"]) else "",
                "second_opened": second is not None and _present(second["opened"]),
            }
        )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def summary(loads: pd.DataFrame) -> dict[str, Any]:
    """What the loads had in common: how many opened how many sockets, the gap's spread,
    and how often the first socket opened or reached the server."""
    if loads.empty:
        return {"loads": 0}
    gaps = loads["gap_ms"].dropna()
    return {
        "loads": len(loads),
        "sockets_per_load": {str(k): int(v) for k, v in loads["sockets"].value_counts().items()},
        "gap_ms_min": float(gaps.min()) if len(gaps) else math.nan,
        "gap_ms_median": float(gaps.median()) if len(gaps) else math.nan,
        "gap_ms_max": float(gaps.max()) if len(gaps) else math.nan,
        "first_opened": float(loads["first_opened"].mean()),
        "first_reached_server": float(loads["first_reached_server"].mean()),
        "second_opened": float(loads["second_opened"].mean()),
        "first_errors": {str(k): int(v) for k, v in loads["first_error"].value_counts().items()},
    }


def reloads(count: int = 3, gap: float = 4.0) -> Scenario:
    """Each tab loads, then reloads ``count - 1`` times, ``gap`` scenario seconds apart (a
    short random offset per tab): page loads far enough apart for each to finish and its
    sockets to settle before the next, to see what one load does."""

    async def script(tab: TabActor, sc: Scenario) -> None:
        await tab.sleep(tab.work_rng.uniform(0.0, 0.5))
        tab.load()
        for _ in range(count - 1):
            await tab.sleep(gap)
            await tab.reload(0.05)

    return Scenario(
        "reloads", f"{count} loads per tab, {gap:g} s apart", script,
        duration=count * gap + 1.0, push_rate=0.0,
    )  # fmt: skip


def model_double_mount(client: str, scale: float = 1.0) -> dict[str, Any]:
    """One StrictMode load of ``client``'s model, alone (one tab, no jitter, 1 ms each way):
    sockets opened, the gap (wall ms at ``scale``) between the first two, and whether the
    first one reached the server."""

    async def one_load(tab: TabActor, sc: Scenario) -> None:
        await tab.sleep(0.5)
        tab.load(strict_mode=True)

    scenario = Scenario(
        "one-strict-load", "one StrictMode load", one_load, tabs=1, duration=2.0,
        latency=Latency(0.001, 0.0), push_rate=0.0,
    )  # fmt: skip
    result = run(
        scenario, model_strategy(client, scale), tabs=1, duration=2.0,
        settle=2.0 + 4.0 / scale, runtime=STACK, trace=True,
    )  # fmt: skip
    trace = result.trace
    assert trace is not None
    connects = trace[trace["event"] == "connect"].sort_values("time", kind="stable")
    opened = set(trace.loc[trace["event"] == "server-open", "conn"])
    first = connects.iloc[0]["conn"] if len(connects) else None
    gap = (
        float(connects.iloc[1]["time"] - connects.iloc[0]["time"]) * scale * 1000.0
        if len(connects) > 1
        else math.nan
    )
    return {
        "sockets": len(connects),
        "gap_ms": gap,
        "first_reached_server": first in opened,
        "users": int(connects["user"].nunique()),
    }


__all__ = ["COLUMNS", "model_double_mount", "per_load", "reloads", "summary"]
