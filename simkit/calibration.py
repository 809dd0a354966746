"""The tab model's timing defaults, taken from real Chromium (``simkit/calibration.json``).

``python -m simkit calibrate`` measures, on the server, when each close arrives after a
driver command (reload, close the tab, crash the renderer), with and without a ``pagehide``
handler. The model closes from a handler at the very moment of its event (the unload), so
each default is the *difference* the browser showed between its own close (1001) and the
handler's (1000) for the same action, median against median: the command's own latency and
the time to the unload cancel out. A crash runs no handler; its reference is the quickest
handler close measured (``close/pagehide``), the latency of a driver command itself.

When a new calibration moves a number, every virtual run moves with it; the notebooks say
which figures come from here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Required, TypedDict, cast

FILE = Path(__file__).with_name("calibration.json")


class Quantiles(TypedDict):
    """The spread of one delay over a case's repetitions, in seconds."""

    n: int
    min: float
    p10: float
    p50: float
    p90: float
    max: float


class Case(TypedDict, total=False):
    """One measured case (``kind/handler``): counts per outcome and the delays' spread.

    A page's death gives ``close_after_action`` (None when no close came) and, for a reload,
    ``new_open_minus_old_close`` with how often each side came first; a double mount gives
    ``server_opens``, ``open_at_end`` and ``page_state`` instead. Counts are keyed by their
    value as text (``codes``: ``"1001"``, or a double mount's ``"1000,1001"``).
    """

    reps: Required[int]
    codes: Required[dict[str, int]]
    close_after_action: Quantiles | None
    new_open_minus_old_close: Quantiles
    old_close_first: int
    new_open_first: int
    errors: dict[str, int]
    server_opens: dict[str, int]
    open_at_end: dict[str, int]
    page_state: dict[str, int]


class Calibration(TypedDict):
    """A calibration file: where and when it was measured, and every case."""

    chromium: str
    websockets: str
    reps: int
    measured_at: str
    seconds: float
    server: str
    note: str
    cases: dict[str, Case]


def load(path: str | Path | None = None) -> Calibration:
    """The shipped calibration, or the one at ``path``."""
    # A file ``python -m simkit calibrate`` wrote, read as written: its shape is not checked
    # here; :func:`timing` says which case is missing when one is.
    return cast(Calibration, json.loads(Path(path or FILE).read_text()))


@dataclass(frozen=True, slots=True)
class BrowserTiming:
    """Seconds from the page's event to the browser's own close (1001) of its socket."""

    unload_close: float  # reload or navigation, no handler: after the unload
    tab_close: float  # the user closes the tab, no handler: after pagehide
    crash_close: float  # the renderer dies: after the crash (no handler runs)
    source: str = "defaults"

    def __post_init__(self) -> None:
        for name in ("unload_close", "tab_close", "crash_close"):
            value = getattr(self, name)
            if not 0 <= value < 10:
                raise ValueError(f"{name} must be in [0, 10) seconds, got {value!r}")


def _p50(cal: Calibration, case: str) -> float:
    missing = f"calibration has no close_after_action median for {case!r}"
    try:
        measured = cal["cases"][case]["close_after_action"]
        if measured is None:
            raise ValueError(missing)
        return float(measured["p50"])
    except (KeyError, TypeError) as error:
        raise ValueError(missing) from error


def timing(cal: Calibration | None = None) -> BrowserTiming:
    """The model's defaults from a calibration (the shipped one by default)."""
    cal = load() if cal is None else cal

    def gap(later: str, earlier: str) -> float:
        return round(max(0.0, _p50(cal, later) - _p50(cal, earlier)), 4)

    return BrowserTiming(
        unload_close=gap("reload/none", "reload/pagehide"),
        tab_close=gap("close/none", "close/pagehide"),
        crash_close=gap("crash/none", "close/pagehide"),
        source=f"{cal.get('chromium', '?')}, measured {cal.get('measured_at', '?')}",
    )


TIMING = timing()
