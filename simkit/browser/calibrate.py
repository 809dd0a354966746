"""``python -m simkit calibrate``: measure what real Chromium does to a WebSocket when its
page goes away, and write the numbers the tab model should be held to.

Every measurement is a fresh browser context (its own storage) with one page of the kit's
own page (``/``) under a unique user id, against a real :class:`LocalServer` with no
heartbeat and a registry that never kicks (``multi``), so every close the server sees is
the browser's. The server's event log gives, per connection, when its handshake reached the
handler (``open``) and when its handler ended with which close code (``cleanup``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict
from urllib.parse import urlencode

from websockets.version import version as websockets_version

from simkit.browser.chromium import Chromium, chromium_version
from simkit.calibration import FILE as CALIBRATION_FILE
from simkit.calibration import (
    Calibration,
    Case,
    Quantiles,
    load,  # noqa: F401  (the calibration API, re-exported here)
)
from simkit.model.strategy import Strategy, make_strategy
from simkit.net.common import BaseServer
from simkit.net.server import LocalServer

DEFAULT_OUT = CALIBRATION_FILE  # shipped with the package; the tab model reads it
WAIT = 5.0  # seconds to wait for the server to see an event before calling it missing

# (kind, unload policy): what the page does, and which handler it has
PAGE_KINDS: tuple[tuple[str, str], ...] = (
    ("reload", "none"),
    ("reload", "pagehide"),
    ("reload", "beforeunload"),
    ("navigate", "none"),
    ("navigate", "pagehide"),
    ("close", "none"),
    ("close", "pagehide"),
    ("close", "beforeunload"),
    ("context-close", "none"),
    ("crash", "none"),
    ("crash", "pagehide"),
    ("network-service-kill", "none"),
    ("double-mount", "none"),
    ("double-mount", "single-flight"),
)
BROWSER_KINDS: tuple[str, ...] = ("browser-kill", "process-group-kill")

Event = tuple[float, str, int, str, str]  # a server's log line: (t, event, conn, user, detail)


class Measurement(TypedDict, total=False):
    """One repetition of a case: what the server saw (see :func:`summarise`)."""

    code: int | str | None  # the close code; a text when the socket outlived its page
    close_after_action: float | None  # seconds from the action to the close, on the server
    new_open_minus_old_close: float  # a reload: the new page's open after the old close
    error: str  # why the repetition measured nothing
    server_opens: int  # a double mount: the connections the server saw open
    codes: list[int]  # a double mount: the close codes, in order
    open_at_end: int  # a double mount: connections still open once it settled
    page_state: str  # a double mount: what the page says its socket is


def calibration_strategy() -> Strategy:
    return make_strategy("calibration", registry="multi", liveness="off", identity="shared")


class Probe:
    """One LocalServer and helpers to read its log per user."""

    def __init__(self, server: BaseServer) -> None:
        self.server = server
        self.serial = 0

    def now(self) -> float:
        return self.server.elapsed()

    def user(self) -> str:
        self.serial += 1
        return f"cal{self.serial}"

    def url(self, user: str, **params: str) -> str:
        query = {"identity": "shared", "person": user, "stats": "0", **params}
        return f"{self.server.http_url}?{urlencode(query)}"

    def events(self, user: str) -> list[Event]:
        return [e for e in self.server.events if e[3] == user]

    async def until(
        self, user: str, check: Callable[[list[Event]], bool], wait: float = WAIT
    ) -> bool:
        deadline = time.monotonic() + wait
        while not check(self.events(user)):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.005)
        return True


def _opens(events: list[Event]) -> list[Event]:
    return [e for e in events if e[1] == "open"]


def _cleanups(events: list[Event]) -> list[Event]:
    return [e for e in events if e[1] == "cleanup"]


async def measure_page(chrome: Chromium, probe: Probe, kind: str, variant: str) -> Measurement:
    """One repetition of a page-level measurement; a dict of what the server saw."""
    user = probe.user()
    params = {"unload": variant if variant in ("pagehide", "beforeunload") else "none"}
    if kind == "double-mount":
        params.update(strict="1", guard=variant if variant == "single-flight" else "none")
    context = await chrome.new_context()
    try:
        page = await context.new_page()
        await page.goto(probe.url(user, **params), timeout=10_000)
        if kind == "double-mount":
            await asyncio.sleep(0.5)  # let both mounts settle
            events = probe.events(user)
            state = await page.evaluate("window.simkit.state")
            return {
                "server_opens": len(_opens(events)),
                "codes": sorted(int(e[4]) for e in _cleanups(events)),
                "open_at_end": len(_opens(events)) - len(_cleanups(events)),
                "page_state": state,
            }
        if not await probe.until(user, lambda ev: len(_opens(ev)) == 1):
            return {"code": None, "error": "first connection never reached the server"}
        await page.wait_for_function("window.simkit.state === 'open'", timeout=5_000)
        old = _opens(probe.events(user))[0][2]
        start = probe.now()
        if kind == "reload":
            await page.reload(timeout=10_000)
        elif kind == "navigate":
            await page.goto(probe.server.http_url + "stats", timeout=10_000)
        elif kind == "close":
            await page.close()
        elif kind == "context-close":
            await context.close()
        elif kind == "crash":
            await chrome.crash(page)
        elif kind == "network-service-kill" and chrome.kill_network_service() == 0:
            return {"code": None, "error": "no separate network service process"}
        closed = await probe.until(
            user, lambda ev: any(e[1] == "cleanup" and e[2] == old for e in ev)
        )
        if kind == "reload":
            await probe.until(user, lambda ev: len(_opens(ev)) == 2)
        events = probe.events(user)
        cleanup = next((e for e in events if e[1] == "cleanup" and e[2] == old), None)
        row: Measurement = {
            # no close within WAIT s: the socket outlives its page (bfcache keeps it open)
            "code": int(cleanup[4]) if cleanup else f"open after {WAIT:g} s",
            "close_after_action": round(cleanup[0] - start, 6) if closed and cleanup else None,
        }
        if kind == "reload":
            new_open = next((e for e in _opens(events) if e[2] != old), None)
            if cleanup is not None and new_open is not None:
                row["new_open_minus_old_close"] = round(new_open[0] - cleanup[0], 6)
        if kind == "network-service-kill":
            await asyncio.sleep(0.3)  # the browser restarts its network service
        return row
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(context.close(), timeout=5.0)


async def measure_browser(probe: Probe, kind: str) -> Measurement:
    """One repetition of a whole-browser death: its own Chromium, killed."""
    user = probe.user()
    chrome = Chromium()
    try:
        await chrome.start()
        page = await (await chrome.new_context()).new_page()
        await page.goto(probe.url(user, unload="pagehide"), timeout=10_000)
        if not await probe.until(user, lambda ev: len(_opens(ev)) == 1):
            return {"code": None, "error": "connection never reached the server"}
        await page.wait_for_function("window.simkit.state === 'open'", timeout=5_000)
        start = probe.now()
        if kind == "browser-kill":
            chrome.kill()
        else:
            chrome.kill_group()
        closed = await probe.until(user, lambda ev: len(_cleanups(ev)) == 1)
        cleanup = _cleanups(probe.events(user))
        return {
            "code": int(cleanup[0][4]) if cleanup else None,
            "close_after_action": round(cleanup[0][0] - start, 6) if closed else None,
        }
    finally:
        await chrome.stop()


def quantiles(values: list[float]) -> Quantiles | None:
    """The spread of ``values``; None when nothing was measured."""
    return _spread(values) if values else None


def _spread(values: list[float]) -> Quantiles:
    values = sorted(values)
    if len(values) == 1:
        q = [values[0]] * 9
    else:
        q = statistics.quantiles(values, n=10, method="inclusive")
    return {
        "n": len(values),
        "min": round(values[0], 6),
        "p10": round(q[0], 6),
        "p50": round(statistics.median(values), 6),
        "p90": round(q[8], 6),
        "max": round(values[-1], 6),
    }


def summarise(rows: list[Measurement]) -> Case:
    """Counts per close code and quantiles of the delays, for one measured case."""
    if rows and "server_opens" in rows[0]:
        return {
            "reps": len(rows),
            "server_opens": dict(Counter(str(r["server_opens"]) for r in rows)),
            "codes": dict(Counter(",".join(map(str, r["codes"])) or "-" for r in rows)),
            "open_at_end": dict(Counter(str(r["open_at_end"]) for r in rows)),
            "page_state": dict(Counter(r["page_state"] for r in rows)),
        }
    out: Case = {"reps": len(rows), "codes": dict(Counter(str(r.get("code")) for r in rows))}
    out["close_after_action"] = quantiles(
        [delay for r in rows if (delay := r.get("close_after_action")) is not None]
    )
    gaps = [r["new_open_minus_old_close"] for r in rows if "new_open_minus_old_close" in r]
    if gaps:
        out["new_open_minus_old_close"] = _spread(gaps)
        out["old_close_first"] = sum(g > 0 for g in gaps)
        out["new_open_first"] = sum(g <= 0 for g in gaps)
    errors = [r["error"] for r in rows if "error" in r]
    if errors:
        out["errors"] = dict(Counter(errors))
    return out


async def calibrate_async(
    reps: int = 20,
    *,
    kinds: tuple[tuple[str, str], ...] = PAGE_KINDS,
    browser_kinds: tuple[str, ...] = BROWSER_KINDS,
    log: Callable[[str], None] | None = None,
) -> Calibration:
    """Measure every case ``reps`` times; return the calibration as a dict."""
    say = log or (lambda line: None)
    started = time.monotonic()
    results: dict[str, Case] = {}
    async with LocalServer(calibration_strategy(), close_timeout=10.0) as server:
        probe = Probe(server)
        async with Chromium() as chrome:
            for kind, variant in kinds:
                rows = [await measure_page(chrome, probe, kind, variant) for _ in range(reps)]
                results[f"{kind}/{variant}"] = summarise(rows)
                say(f"{kind}/{variant}: {json.dumps(results[f'{kind}/{variant}'])}")
        for kind in browser_kinds:
            rows = [await measure_browser(probe, kind) for _ in range(reps)]
            results[f"{kind}/none"] = summarise(rows)
            say(f"{kind}: {json.dumps(results[f'{kind}/none'])}")
    return {
        "chromium": chromium_version(),
        "websockets": websockets_version,
        "reps": reps,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(time.monotonic() - started, 1),
        "server": "LocalServer, registry multi, no heartbeat, close_timeout 10 s, 127.0.0.1",
        "note": "close_after_action and new_open_minus_old_close are seconds on the server's "
        "clock (handler cleanup time); new_open_minus_old_close > 0 means the old socket's "
        "close reached the server before the new page's connection opened",
        "cases": results,
    }


def calibrate(
    reps: int = 20,
    out: str | Path | None = None,
    *,
    kinds: tuple[tuple[str, str], ...] = PAGE_KINDS,
    browser_kinds: tuple[str, ...] = BROWSER_KINDS,
    log: Callable[[str], None] | None = None,
) -> Calibration:
    """Run the calibration (from sync code or a notebook) and write it to ``out``; the
    other options are :func:`calibrate_async`'s."""
    from simkit.runtime.threads import in_thread

    async def main() -> Calibration:
        return await calibrate_async(reps, kinds=kinds, browser_kinds=browser_kinds, log=log)

    data = in_thread(main, name="simkit-calibrate")
    if out is not None:
        Path(out).write_text(json.dumps(data, indent=2) + "\n")
    return data
