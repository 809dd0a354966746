"""The run-level conformance suite: what every runtime must do the same way.

In the spirit of trio's ``check_two_way_stream``: one set of small, scripted runs that any
runtime (virtual, live, browser, and any server or set of nodes added later) must pass, so
that "the same scenario" means the same thing on each. Each check plays a tiny scenario
through :func:`simkit.run` on the runtime under test and asserts, from the run's typed
trace and its census, what must hold on every runtime:

- ``open``: a page's socket opens at both ends; the census counts one open socket, one
  connected tab and one registry entry, and nothing stale.
- ``page-close-handler`` / ``page-close-browser``: the page closes (who closed: the page);
  the server's cleanup sees the page's code: 1000 from a ``pagehide`` handler, 1001 from
  the browser's own close when no handler runs.
- ``server-close``: the server closes (who closed: the server, a kick on a second tab of
  the same user); the page sees the server's code (4000) and the census counts a kicked
  live tab.
- ``silent-link``: the path goes silent; only the server's heartbeat finds it: close 1011
  after the timeout, one protocol detection, nothing left open.
- ``reset``: TCP ends with no close frame (the browser's network service dies): the
  server sees 1006. (The browser runtime does not play this verb, which would take every
  tab's socket at once in Chromium: it must count it as not played instead.)
- ``server-restart``: the server process dies and comes back; the page reconnects, the
  new registry routes to it, nothing is stale.
- ``pushes``: every push sent once the page's socket is open is delivered, and (where
  pages report what they received) the pages saw every push the census counted delivered.

Use it on a runtime of your own as ``check_runtime("live")`` or per check with
``CHECKS[name](runner)``, where ``runner`` is ``functools.partial(simkit.run,
runtime=...)`` plus any options. Real-time runtimes are checked on codes and counts, never
on exact timings. Beside it, :mod:`simkit.conformance.links` holds a network to the link
contract directly, without scenarios or actors.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd

from simkit.api import run
from simkit.model.client import Backoff
from simkit.model.liveness import Liveness
from simkit.model.strategy import make_strategy
from simkit.model.strategy import strategy as strategy_of
from simkit.results import Result
from simkit.scenarios import Control, Scenario, Script

if TYPE_CHECKING:
    from simkit.actors.env import Env
    from simkit.model.strategy import Strategy
    from simkit.runtime.interfaces import TabActor

Runner = Callable[..., Result]  # simkit.run with the runtime's options bound

# Small enough for a real browser (a run of 10-20 scenario seconds), long enough for every
# step to settle on a real clock at the runtime's scale.
FAST_HEARTBEAT = Liveness("conformance", 2.0, 2.0, summary="ping 2 s, timeout 2 s")


def _safe(
    name: str = "conformance",
    *,
    liveness: str | Liveness = "websockets",
    unload: str | None = None,
    backoff: Backoff | None = None,
) -> Strategy:
    client = strategy_of("postmortem-safe").client
    if unload is not None:
        client = dataclasses.replace(client, unload=unload)
    if backoff is not None:
        client = dataclasses.replace(client, backoff=backoff)
    return make_strategy(name, client=client, registry="kick-old-safe", liveness=liveness)


async def _load_and_stay(tab: TabActor, sc: Scenario) -> None:
    await tab.sleep(0.5)
    tab.load()


async def _load_then_close(tab: TabActor, sc: Scenario) -> None:
    await tab.sleep(0.5)
    tab.load()
    await tab.sleep(3.0)
    tab.close()


async def _second_tab_later(tab: TabActor, sc: Scenario) -> None:
    await tab.sleep(0.5 + 2.0 * tab.index)
    tab.load()


async def _load_then_silence(tab: TabActor, sc: Scenario) -> None:
    await tab.sleep(0.5)
    tab.load()
    await tab.sleep(2.0)
    tab.lose_network()


async def _load_then_die(tab: TabActor, sc: Scenario) -> None:
    await tab.sleep(0.5)
    tab.load()
    await tab.sleep(2.0)
    tab.process_dies()


async def _restart_at_3(env: Env, sc: Scenario) -> None:
    await env.sleep(3.0)
    env.network.restart_server(1.0)


def _scenario(
    name: str,
    script: Script,
    *,
    push_rate: float = 0.0,
    tabs_per_person: tuple[int, int] = (1, 1),  # Scenario's default
    control: Control | None = None,
) -> Scenario:
    return Scenario(
        f"conformance-{name}",
        f"conformance check {name}",
        script,
        push_rate=push_rate,
        tabs_per_person=tabs_per_person,
        control=control,
    )


def _events(result: Result, event: str, conn: int | None = None) -> pd.DataFrame:
    trace = result.trace
    assert trace is not None, "the run was not traced"
    rows = trace[trace["event"] == event]
    return rows if conn is None else rows[rows["conn"] == conn]


def _at(result: Result, t: float) -> pd.Series:
    ts = result.timeseries
    return ts[ts["t"] <= t].iloc[-1]


def _expect(label: str, got: object, want: object) -> None:
    assert got == want, f"{label}: expected {want!r}, got {got!r}"


def _first_conn(result: Result) -> int:
    opened = _events(result, "server-open")
    assert len(opened) >= 1, "no socket reached the server"
    return int(opened["conn"].iloc[0])


def check_open(runner: Runner) -> None:
    r = runner(_scenario("open", _load_and_stay), _safe(), tabs=1, duration=6.0, settle=2.0)
    conn = _first_conn(r)
    _expect("connects", r.summary["connects"], 1)
    _expect("'connect' events of the page for that socket", len(_events(r, "connect", conn)), 1)
    row = _at(r, 5.0)
    for column, want in (
        ("open_sockets", 1),
        ("connected_tabs", 1),
        ("registry_entries", 1),
        ("stale", 0),
        ("unroutable", 0),
    ):
        _expect(f"{column} at t=5", int(row[column]), want)


def _page_closes(runner: Runner, strategy: Strategy, code: int) -> None:
    sc = _scenario("page-close", _load_then_close)
    r = runner(sc, strategy, tabs=1, duration=6.0, settle=4.0)
    conn = _first_conn(r)
    cleanup = _events(r, "server-cleanup", conn)
    _expect("server cleanups of the socket", len(cleanup), 1)
    _expect("close code at the server (the page closed)", int(cleanup["code"].iloc[0]), code)
    _expect("server closes (the server never closed it)", len(_events(r, "server-close")), 0)
    final = r.timeseries.iloc[-1]
    for column in ("open_sockets", "stale", "registry_entries", "dangling"):
        _expect(f"final {column}", int(final[column]), 0)


def check_page_close_handler(runner: Runner) -> None:
    _page_closes(runner, _safe(unload="pagehide"), 1000)


def check_page_close_browser(runner: Runner) -> None:
    _page_closes(runner, _safe(unload="none"), 1001)


def check_server_close(runner: Runner) -> None:
    sc = _scenario("server-close", _second_tab_later, tabs_per_person=(2, 2))
    # The kicked page must not reconnect and kick back during the check: a long backoff.
    strategy = _safe(backoff=Backoff("exponential", 30.0, 2.0, 60.0))
    r = runner(sc, strategy, tabs=2, duration=5.0, settle=2.0)
    kicks = _events(r, "server-close")
    assert len(kicks) >= 1, "the server never closed the first tab's socket"
    conn = int(kicks["conn"].iloc[0])
    _expect("code the server closed with", int(kicks["code"].iloc[0]), 4000)
    seen = _events(r, "client-close", conn)
    assert len(seen) >= 1, f"the page never saw socket {conn} close"
    _expect("code the page saw (who closed: the server)", int(seen["code"].iloc[0]), 4000)
    assert r.summary["kicked_live_tabs"] >= 1, "the census counted no kicked live tab"


def check_silent_link(runner: Runner) -> None:
    sc = _scenario("silent-link", _load_then_silence)
    r = runner(sc, _safe(liveness=FAST_HEARTBEAT), tabs=1, duration=4.0, settle=20.0)
    conn = _first_conn(r)
    closes = _events(r, "server-close", conn)
    cleanup = _events(r, "server-cleanup", conn)
    _expect("server cleanups of the silent socket", len(cleanup), 1)
    _expect("cleanup code (keepalive timeout)", int(cleanup["code"].iloc[0]), 1011)
    _expect("server-close events (the heartbeat's close is not the registry's)", len(closes), 0)
    _expect("protocol detections", r.summary["detections_protocol"], 1)
    _expect("final open_sockets", int(r.timeseries.iloc[-1]["open_sockets"]), 0)


def check_reset(runner: Runner) -> None:
    sc = _scenario("reset", _load_then_die)
    r = runner(sc, _safe(), tabs=1, duration=5.0, settle=4.0)
    if "browser_not_played" in r.summary:  # declared: Chromium kills every tab's socket
        _expect("verbs not played", r.summary["browser_not_played"], {"process_dies": 1})
        return
    conn = _first_conn(r)
    cleanup = _events(r, "server-cleanup", conn)
    _expect("server cleanups of the reset socket", len(cleanup), 1)
    _expect("cleanup code (no close frame)", int(cleanup["code"].iloc[0]), 1006)
    final = r.timeseries.iloc[-1]
    for column in ("open_sockets", "stale", "registry_entries"):
        _expect(f"final {column}", int(final[column]), 0)


def check_server_restart(runner: Runner) -> None:
    sc = _scenario("server-restart", _load_and_stay, control=_restart_at_3)
    r = runner(sc, _safe(), tabs=1, duration=6.0, settle=6.0)
    _expect("server restarts", r.summary["server_restarts"], 1)
    assert r.summary["connects"] >= 2, f"the page did not reconnect: {r.summary['connects']}"
    final = r.timeseries.iloc[-1]
    for column, want in (
        ("open_sockets", 1),
        ("connected_tabs", 1),
        ("registry_entries", 1),
        ("stale", 0),
        ("dangling", 0),
        ("unroutable", 0),
    ):
        _expect(f"final {column}", int(final[column]), want)


def check_pushes(runner: Runner) -> None:
    sc = _scenario("pushes", _load_and_stay, push_rate=2.0)
    r = runner(sc, _safe(), tabs=1, duration=8.0, settle=2.0)
    s = r.summary
    assert s["pushes_sent"] >= 5, f"too few pushes to check: {s['pushes_sent']}"
    # While the page's socket opens (about t=0.5; later on a real clock, and in the browser
    # runtime the page's report of its socket can trail the server's handshake by a second)
    # a push may find no route or a socket not yet known as the page's. After that, every
    # push must reach the page.
    early = s["pushes_no_route"] + s["pushes_lost_stale"]
    assert early <= 2, f"{early} pushes lost to a connected page: {s}"
    _expect(
        "pushes delivered + lost while opening", s["pushes_delivered"] + early, s["pushes_sent"]
    )
    _expect("pushes lost to a frozen page", s["pushes_lost_frozen"], 0)
    _expect("duplicate pushes", s["pushes_duplicated"], 0)
    if "pushes_seen_by_pages" in s:  # the pages' own count: no delivery the page did not see
        seen = s["pushes_seen_by_pages"]
        assert seen >= s["pushes_delivered"], f"pages saw {seen} of {s['pushes_delivered']}"


CHECKS: dict[str, Callable[[Runner], None]] = {
    "open": check_open,
    "page-close-handler": check_page_close_handler,
    "page-close-browser": check_page_close_browser,
    "server-close": check_server_close,
    "silent-link": check_silent_link,
    "reset": check_reset,
    "server-restart": check_server_restart,
    "pushes": check_pushes,
}


def runner_for(runtime: str, **options: Any) -> Runner:  # options: simkit.run's keywords
    """``simkit.run`` on ``runtime`` with tracing on (the checks read the trace)."""
    return functools.partial(run, runtime=runtime, trace=True, **options)


def check_runtime(runtime: str, **options: Any) -> dict[str, str]:
    """Run every check on ``runtime``; return ``{check: failure}`` for those that failed."""
    failures = {}
    runner = runner_for(runtime, **options)
    for name, check in CHECKS.items():
        try:
            check(runner)
        except AssertionError as error:
            failures[name] = str(error)
    return failures
