"""Which conditions make a Next.js rewrites proxy log "Failed to proxy ... socket hang up".

The post-mortem's first problem: behind ``next dev`` with rewrites of ``/api/*`` to a
FastAPI backend, the log said ``Failed to proxy http://backend:8080/api/database/select
[Error: socket hang up]`` and ``ECONNRESET``; the fix removed the rewrites. Public reports
name several causes. This module plays each one, 20 repetitions, against the real thing:
the example front end (``examples/postmortem_frontend``) under ``next dev`` with its rewrites,
in front of the post-mortem's backend (``examples/postmortem_app.py``) on uvicorn, with
headless Chromium for the WebSocket cases. It counts the proxy's failure lines per case
(:meth:`simkit.net.nextapp.NextApp.proxy_errors`' parsing), with their error and code, and
writes them as JSON: the shipped ``simkit/calibration_nextproxy.json``.

``python -m simkit.net.nextproxy_measure [--out PATH] [--reps N]`` re-measures (a few minutes;
needs Node.js, the example's node_modules, Chromium and the source checkout).

Cases (each repetition is one request, one page or one event, as its ``unit`` says):

- ``slow-response``: an API answer slower than the proxy's timeout (``delay`` 31 s against
  the 30 s default ``experimental.proxyTimeout``), and a control under it (25 s);
- ``keep-alive``: a second request through the proxy just as uvicorn closes the idle
  keep-alive connection of the first (gaps spread around ``timeout_keep_alive``, 5 s);
- ``backend-restart``: requests in flight when uvicorn is killed (SIGKILL) or stopped
  gracefully (SIGTERM), requests while it is down, and open WebSockets when it restarts;
- ``ws-reload``, ``ws-hide``, ``ws-idle``, ``ws-close``: a page whose WebSocket goes through
  the rewrite reloads (pre-fix and post-fix client), hides (the post-fix client closes on
  ``visibilitychange``; the event is dispatched by the test, since headless pages stay
  visible), sits idle past the proxy's timeout, or is closed;
- ``dev-recompile``: the dev server recompiles (a source file changes) while pages hold
  sockets and API requests are in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict
from urllib.parse import parse_qs, urlsplit

from simkit.model.errors import ConfigError
from simkit.net.nextapp import (
    CODE,
    FAILED,
    NextApp,
    http_status,
    node_binary,
    node_missing,
    port_free,
)
from simkit.net.uvicorn_app import CHECKOUT, UvicornApp

if TYPE_CHECKING:  # Playwright is imported when the measurement runs
    from playwright.async_api import Browser, Page

FRONTEND = CHECKOUT / "examples" / "postmortem_frontend"
SHIPPED = Path(__file__).resolve().parents[1] / "calibration_nextproxy.json"
BACKEND_PORT = 18612
CHROMIUM = os.environ.get("SIMKIT_CHROMIUM", "/usr/bin/chromium")
CASES = (
    "slow-response",
    "keep-alive",
    "backend-restart",
    "ws-reload",
    "ws-hide",
    "ws-idle",
    "ws-close",
    "dev-recompile",
)


class Failure(TypedDict):
    """One "Failed to proxy" line of the app's log."""

    t: float
    path: str
    query: dict[str, str]  # its first value per key (rid, user)
    error: str
    code: str  # "" when neither its line nor the next ones gave one


Record = dict[str, object]
"""One case's JSON-ready record (:func:`summarize`'s keys, plus what the case adds)."""


def failures(lines: list[tuple[float, str, str]]) -> list[Failure]:
    """Each "Failed to proxy" line: time, URL, path, query, error and code (the code from
    its line or the lines after it, as :meth:`NextApp.proxy_errors` reads them)."""
    found: list[Failure] = []
    for t, _stream, line in lines:
        match = FAILED.search(line)
        code = CODE.search(line)
        if match is not None:
            url = urlsplit(match["url"])
            found.append(
                {
                    "t": t,
                    "path": url.path,
                    "query": {k: v[0] for k, v in parse_qs(url.query).items()},
                    "error": match["error"].strip(),
                    "code": code["code"] if code else "",
                }
            )
        elif code is not None and found and not found[-1]["code"]:
            found[-1]["code"] = code["code"]
    return found


def summarize(
    name: str,
    condition: str,
    unit: str,
    keys: list[str],
    lines: list[Failure],
    key_of: str,
    trigger_t: dict[str, float] | None = None,
    rep_of: dict[str, str] | None = None,
    **extra: object,
) -> Record:
    """One case's record: repetitions (``keys``, one per repetition), which of them produced
    a failure line (a line whose ``key_of`` query value is the repetition's key), codes,
    errors, paths, and the seconds from each repetition's trigger to its first line.
    ``rep_of`` maps keys to repetitions when one has several (a reloaded page's two users)."""
    mine = [f for f in lines if f["query"].get(key_of) in set(keys)]
    produced = sorted({f["query"][key_of] for f in mine})
    reps = len(set(rep_of.values())) if rep_of else len(keys)
    produced_reps = len({rep_of[k] for k in produced}) if rep_of else len(produced)
    delays: list[float] = []
    if trigger_t:
        for key in produced:
            first = min(f["t"] for f in mine if f["query"][key_of] == key)
            delays.append(round(first - trigger_t[key], 3))
    return {
        "case": name,
        "condition": condition,
        "unit": unit,
        "repetitions": reps,
        "produced": produced_reps,
        "lines": len(mine),
        "codes": dict(Counter(f["code"] or "(none)" for f in mine)),
        "errors": dict(Counter(f["error"] for f in mine)),
        "paths": dict(Counter(f["path"] for f in mine)),
        "seconds_to_line": stats(delays),
        **extra,
    }


def stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {
        "min": ordered[0],
        "median": ordered[len(ordered) // 2],
        "max": ordered[-1],
    }


class Bench:
    """The front end, the backend and (for the WebSocket cases) Chromium, with helpers."""

    def __init__(self, reps: int, app: NextApp, backend: UvicornApp) -> None:
        self.reps = reps
        self.app = app
        self.backend = backend
        self.browser: Browser | None = None  # set by measure()
        self.t0 = time.monotonic()

    def now(self) -> float:
        """Seconds on the app log's clock."""
        return self.app.elapsed()

    def failures(self) -> list[Failure]:
        return failures(self.app.lines)

    async def get(self, rid: str, delay: float = 0.0, timeout: float = 60.0) -> int | None:
        query = f"rid={rid}" + (f"&delay={delay:g}" if delay else "")
        return await http_status(f"{self.app.url}/api/database/select?{query}", timeout)

    async def settle(self, seconds: float = 1.0) -> None:
        await asyncio.sleep(seconds)

    # -- pages ----------------------------------------------------------------------------

    async def open_pages(self, n: int, client: str) -> list[Page]:
        if self.browser is None:
            raise ConfigError("the bench has no browser: measure() launches it")
        context = await self.browser.new_context()
        pages = await asyncio.gather(*(context.new_page() for _ in range(n)))
        await asyncio.gather(*(p.goto(f"{self.app.url}/?client={client}") for p in pages))
        await asyncio.gather(*(self.wait_status(p, "open") for p in pages))
        return list(pages)

    @staticmethod
    async def wait_status(page: Page, status: str, timeout: float = 30.0) -> None:
        await page.wait_for_function(
            f"document.getElementById('status')?.textContent === {status!r}",
            timeout=timeout * 1000,
        )

    @staticmethod
    async def user(page: Page) -> str:
        return str(await page.text_content("#user"))


async def case_slow_response(b: Bench) -> list[Record]:
    over = [f"slow-over-{i}" for i in range(b.reps)]
    under = [f"slow-under-{i}" for i in range(b.reps)]
    start = b.now()
    statuses = await asyncio.gather(
        *(b.get(k, 31.0, 45.0) for k in over), *(b.get(k, 25.0, 45.0) for k in under)
    )
    await b.settle()
    lines = b.failures()
    trig = dict.fromkeys(over + under, start)
    return [
        summarize(
            "slow-response-31s",
            "GET /api/database/select answered after 31 s, proxyTimeout 30 s (default)",
            "request (concurrent)",
            over,
            lines,
            "rid",
            trig,
            client_status=dict(Counter(str(s) for s in statuses[: b.reps])),
        ),
        summarize(
            "slow-response-25s",
            "control: answered after 25 s, under the 30 s proxyTimeout",
            "request (concurrent)",
            under,
            lines,
            "rid",
            trig,
            client_status=dict(Counter(str(s) for s in statuses[b.reps :])),
        ),
    ]


async def case_keep_alive(b: Bench) -> list[Record]:
    """Pairs of requests, the second after a gap spread around uvicorn's keep-alive timeout
    (a connection the proxy kept would be closed by uvicorn just then)."""
    keep = b.backend.keep_alive
    keys = [f"ka-{i}" for i in range(b.reps)]
    gaps = [keep - 0.1 + 0.2 * i / max(1, b.reps - 1) for i in range(b.reps)]
    trig: dict[str, float] = {}

    async def pair(key: str, gap: float) -> int | None:
        await b.get(key + "-first")
        await asyncio.sleep(gap)
        trig[key] = b.now()
        return await b.get(key)

    statuses = await asyncio.gather(*(pair(k, g) for k, g in zip(keys, gaps, strict=True)))
    await b.settle()
    return [
        summarize(
            "keep-alive-race",
            f"second request {keep - 0.1:g}..{keep + 0.1:g} s after the first, uvicorn "
            f"timeout_keep_alive {keep:g} s",
            "request pair",
            keys,
            b.failures(),
            "rid",
            trig,
            client_status=dict(Counter(str(s) for s in statuses)),
            upstream_connection="the proxy sends Connection: close upstream (no agent)",
        )
    ]


async def case_backend_restart(b: Bench) -> list[Record]:
    out = []
    for sig in (signal.SIGKILL, signal.SIGTERM):
        keys = [f"restart-{sig.name}-{i}" for i in range(b.reps)]
        tasks = [asyncio.create_task(b.get(k, 4.0, 20.0)) for k in keys]
        await asyncio.sleep(2.0)  # all in flight at the backend (through a busy dev server)
        trig = dict.fromkeys(keys, b.now())
        await b.backend.restart(sig)
        statuses = await asyncio.gather(*tasks)
        await b.settle()
        out.append(
            summarize(
                f"backend-restart-inflight-{sig.name}",
                f"uvicorn stopped by {sig.name} while the requests wait for their 4 s answer, "
                "then started again",
                "request in flight (concurrent)",
                keys,
                b.failures(),
                "rid",
                trig,
                client_status=dict(Counter(str(s) for s in statuses)),
            )
        )
    # requests while the backend is down
    keys = [f"down-{i}" for i in range(b.reps)]
    await b.backend.stop()
    trig = dict.fromkeys(keys, b.now())
    statuses = await asyncio.gather(*(b.get(k, 0.0, 20.0) for k in keys))
    await b.backend.start()
    await b.settle()
    out.append(
        summarize(
            "backend-down",
            "requests while uvicorn is not running",
            "request (concurrent)",
            keys,
            b.failures(),
            "rid",
            trig,
            client_status=dict(Counter(str(s) for s in statuses)),
        )
    )
    # open WebSockets through the rewrite when the backend restarts
    pages = await b.open_pages(b.reps, "postfix")
    users = [await b.user(p) for p in pages]
    start = b.now()
    await b.backend.restart(signal.SIGTERM)
    await b.settle(3.0)
    out.append(
        summarize(
            "backend-restart-ws",
            "uvicorn restarted (SIGTERM) under pages whose WebSocket goes through the rewrite",
            "page",
            users,
            b.failures(),
            "user",
            dict.fromkeys(users, start),
        )
    )
    await pages[0].context.close()
    return out


async def ws_case(b: Bench, name: str, condition: str, client: str, act: str) -> Record:
    pages = await b.open_pages(b.reps, client)
    users = [await b.user(p) for p in pages]
    rep_of = {u: str(i) for i, u in enumerate(users)}
    start = b.now()
    extra: dict[str, object] = {}
    if act == "reload":
        await asyncio.gather(*(p.reload() for p in pages))
        await asyncio.gather(*(b.wait_status(p, "open") for p in pages))
        for i, p in enumerate(pages):
            rep_of.setdefault(await b.user(p), str(i))  # the post-fix client's new id
    elif act == "hide":
        hide = (
            "Object.defineProperty(document, 'visibilityState', {value: %r, configurable: true});"
            "document.dispatchEvent(new Event('visibilitychange'))"
        )
        await asyncio.gather(*(p.evaluate(hide % "hidden") for p in pages))
        await asyncio.sleep(1.0)
        await asyncio.gather(*(p.evaluate(hide % "visible") for p in pages))
        await asyncio.gather(*(b.wait_status(p, "open") for p in pages))
    elif act == "idle":
        await asyncio.sleep(35.0)
        opened = [int(str(await p.text_content("#opened"))) for p in pages]
        status = [str(await p.text_content("#status")) for p in pages]
        extra = {
            "still_open": sum(s == "open" for s in status),
            "sockets_opened_per_page": dict(Counter(map(str, opened))),
        }
    elif act == "close":
        await asyncio.gather(*(p.close() for p in pages))
    await b.settle(2.0)
    record = summarize(
        name,
        condition,
        "page",
        list(rep_of),
        b.failures(),
        "user",
        dict.fromkeys(rep_of, start),
        rep_of,
        **extra,
    )
    with contextlib.suppress(Exception):
        await pages[0].context.close()
    return record


async def case_dev_recompile(b: Bench) -> list[Record]:
    page_file = FRONTEND / "app" / "page.tsx"
    original = page_file.read_bytes()
    pages = await b.open_pages(4, "postfix")
    users = [await b.user(p) for p in pages]
    keys = [f"recompile-{i}" for i in range(b.reps)]
    trig: dict[str, float] = {}
    statuses: list[int | None] = []
    try:
        for i, key in enumerate(keys):
            request = asyncio.create_task(b.get(key, 1.5, 30.0))
            await asyncio.sleep(0.3)
            trig[key] = b.now()
            page_file.write_bytes(original + f"\n// simkit recompile {i}\n".encode())
            statuses.append(await request)
            await asyncio.sleep(1.0)
    finally:
        page_file.write_bytes(original)
    await b.settle(2.0)
    lines = b.failures()
    ws_lines = [f for f in lines if f["query"].get("user") in set(users)]
    with contextlib.suppress(Exception):
        await pages[0].context.close()
    return [
        summarize(
            "dev-recompile",
            "app/page.tsx changed while an API request waits for its 1.5 s answer and 4 pages "
            "hold sockets through the rewrite",
            "recompile",
            keys,
            lines,
            "rid",
            trig,
            client_status=dict(Counter(str(s) for s in statuses)),
            ws_lines=len(ws_lines),
        )
    ]


def versions(app_path: Path) -> dict[str, str]:
    import uvicorn

    node = node_binary() or "node"
    next_pkg = json.loads((app_path / "node_modules" / "next" / "package.json").read_text())
    react_pkg = json.loads((app_path / "node_modules" / "react" / "package.json").read_text())
    chromium = subprocess.run(
        [CHROMIUM, "--version"], capture_output=True, text=True, timeout=30
    ).stdout.strip()
    return {
        "next": next_pkg["version"],
        "react": react_pkg["version"],
        "node": subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip(),
        "uvicorn": uvicorn.__version__,
        "chromium": chromium,
        "python": platform.python_version(),
    }


async def measure(reps: int = 20, cases: tuple[str, ...] = CASES) -> Record:
    """Play ``cases`` (``reps`` repetitions each) and return the JSON-ready record."""
    why = node_missing(FRONTEND)
    if why is not None:
        raise ConfigError(why)
    unknown = set(cases) - set(CASES)
    if unknown:
        raise ConfigError(f"unknown cases {sorted(unknown)}; choose from {CASES}")
    if not 1 <= reps <= 100:
        raise ConfigError(f"reps must be in 1..100, not {reps}")
    from playwright.async_api import async_playwright

    port = BACKEND_PORT if port_free(BACKEND_PORT) else 0
    backend = UvicornApp("examples.postmortem_app:app", port, keep_alive=5.0)
    app = NextApp(FRONTEND, mode="dev", backend=backend.url, via="rewrites")
    results: list[Record] = []
    async with backend, app, async_playwright() as pw:
        bench = Bench(reps, app, backend)
        bench.browser = browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            # warm the page once (the first load compiles it)
            warm = await bench.open_pages(1, "postfix")
            await warm[0].context.close()
            for case in cases:
                started = time.monotonic()
                if case == "slow-response":
                    results += await case_slow_response(bench)
                elif case == "keep-alive":
                    results += await case_keep_alive(bench)
                elif case == "backend-restart":
                    results += await case_backend_restart(bench)
                elif case == "ws-reload":
                    for client in ("prefix", "postfix"):
                        results.append(
                            await ws_case(
                                bench,
                                f"ws-reload-{client}",
                                f"each page ({client} client) reloads once",
                                client,
                                "reload",
                            )
                        )
                elif case == "ws-hide":
                    results.append(
                        await ws_case(
                            bench,
                            "ws-hide-postfix",
                            "each page (postfix client) is hidden for 1 s then shown: its "
                            "listener closes the socket and opens a new one",
                            "postfix",
                            "hide",
                        )
                    )
                elif case == "ws-idle":
                    results.append(
                        await ws_case(
                            bench,
                            "ws-idle",
                            "each page sits 35 s (past the 30 s proxyTimeout) with its socket "
                            "open; the backend pushes once a second",
                            "postfix",
                            "idle",
                        )
                    )
                elif case == "ws-close":
                    results.append(
                        await ws_case(bench, "ws-close", "each page is closed", "postfix", "close")
                    )
                elif case == "dev-recompile":
                    results += await case_dev_recompile(bench)
                print(f"{case}: {time.monotonic() - started:.1f} s", file=sys.stderr)
        finally:
            await browser.close()
        other = [f for f in bench.failures() if not (set(f["query"]) & {"rid", "user"})]
    return {
        "about": (
            "Which conditions make the Next.js rewrites proxy (next dev) log 'Failed to proxy "
            "... socket hang up' in front of the post-mortem's FastAPI backend on uvicorn; "
            "python -m simkit.net.nextproxy_measure"
        ),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
        "versions": versions(FRONTEND),
        "setup": {
            "mode": "next dev",
            "via": "rewrites (/api/:path* and /ws to the backend)",
            "proxy_timeout_s": 30.0,
            "uvicorn_timeout_keep_alive_s": backend.keep_alive,
            "reps": reps,
            "host": "127.0.0.1",
            "cores": os.cpu_count(),
        },
        "cases": results,
        "unattributed_lines": len(other),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simkit.net.nextproxy_measure",
        description="Re-measure which conditions make the Next.js rewrites proxy say "
        "'socket hang up' (writes a JSON like simkit/calibration_nextproxy.json)",
    )
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: stdout)")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--case", action="append", choices=CASES, help="only these (repeatable)")
    args = parser.parse_args(argv)
    if args.out is not None and not args.out.parent.is_dir():
        parser.error(f"--out: folder {args.out.parent} does not exist")
    if shutil.which(CHROMIUM) is None:
        parser.error(f"Chromium was not found at {CHROMIUM} (apt-get install chromium)")
    try:
        record = asyncio.run(measure(args.reps, tuple(args.case or CASES)))
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    text = json.dumps(record, indent=1) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
