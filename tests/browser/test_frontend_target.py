"""Front-end target mode: the kit's Chromium tabs on pages it did not write.

The example pages (``examples/frontends``: a leaky one, whose every mount opens a socket
nobody closes, and a correct one, one socket per load closed in ``pagehide``) are served by
a small static HTTP server on 127.0.0.1, and played against (a) the kit's own server and (b)
the post-mortem's FastAPI app under uvicorn, a server the kit did not write. The leaky page
shows two sockets per load and sockets left open after their load ended; the correct page
one per load and none left open. Then the issue's command line, and the bad inputs and
faults: each a clear error or a note, a bounded wait, and no Chromium left behind.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import simkit
from simkit.model.errors import ConfigError
from simkit.runtimes import Browser

ROOT = Path(__file__).resolve().parents[2]
PAGES = ROOT / "examples" / "frontends"

EXTRA = {
    # opens no WebSocket at all
    "nows.html": "<!doctype html><title>no socket</title><p>nothing to see</p>",
    # opens fifty at once
    "fifty.html": (
        "<!doctype html><title>fifty</title><script>const u = new URLSearchParams("
        "location.search).get('ws'); for (let i = 0; i < 50; i++) new WebSocket(u);</script>"
    ),
    # goes somewhere else on its own, a moment after it loaded
    "away.html": (
        "<!doctype html><title>away</title><script>setTimeout(() => "
        "location.href = '/nows.html', 200);</script>"
    ),
    # never finishes loading: an image whose answer never comes
    "slow.html": (
        "<!doctype html><title>slow</title><script>new WebSocket(new URLSearchParams("
        "location.search).get('ws'));</script><img src='/hang'>"
    ),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def uvicorn_app(name: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """``uvicorn examples.<name>:app`` on a free loopback port; killed however the test ends
    (as tests/live/test_target.py starts its targets)."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", f"examples.{name}:app", "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        [*command, "--port", str(port), "--log-level", "warning"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"uvicorn {name} exited"
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"uvicorn {name} did not listen in 30 s"
                time.sleep(0.1)
        yield port, proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Static(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/hang"):
            time.sleep(20)  # longer than any load wait; the server thread is a daemon
            return
        super().do_GET()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The example pages and the bad ones, served on 127.0.0.1: yields the base URL."""
    folder = tmp_path_factory.mktemp("site")
    for page in PAGES.glob("*.html"):
        shutil.copy(page, folder / page.name)
    for name, text in EXTRA.items():
        (folder / name).write_text(text)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Static, directory=str(folder))
    )
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def chromium_children() -> list[int]:
    """Chromium processes this test process started and left behind (any depth)."""
    me, found = os.getpid(), []
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            parents[int(entry)], names[int(entry)] = ppid, name
    for pid, name in names.items():
        if "chrom" not in name.lower():
            continue
        up, seen = parents.get(pid), 0
        while up not in (None, 0, 1) and seen < 50:
            if up == me:
                found.append(pid)
                break
            up, seen = parents.get(up), seen + 1  # type: ignore[arg-type]
    return found


def play(site: str, page: str, scenario: Any = "reload-storm", **kwargs: Any) -> simkit.Result:
    """A short page run, checked to leave no Chromium behind."""
    options: dict[str, Any] = {"tabs": 4, "duration": 30, "settle": 10} | kwargs
    target = options.pop("target", None)
    scale = options.pop("scale", 0.1)
    started = time.monotonic()
    try:
        return simkit.run(
            scenario,
            runtime=Browser(page=f"{site}/{page}?ws={{ws}}", target=target, scale=scale),
            **options,
        )
    finally:
        assert time.monotonic() - started < 90, "a page run must end in bounded time"
        deadline = time.monotonic() + 5
        while chromium_children() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert chromium_children() == [], "a page run left Chromium processes behind"


def check_common(result: simkit.Result) -> dict[str, Any]:
    summary = result.summary
    assert summary["browser_version"].startswith("Chrome/")
    assert summary["browser_errors"] == 0, summary.get("browser_first_error")
    assert summary["client_policy"].startswith("the page's own code")
    assert {"open_sockets", "stale", "duplicates", "connects"} <= set(result.timeseries.columns)
    assert result.timeseries["connects"].iloc[-1] > 0
    assert "delivery_ratio" in summary["unknown_metrics"]
    return summary["page_sockets"]


def check_leaky(result: simkit.Result) -> None:
    sockets = check_common(result)
    assert sockets["sockets_per_load_max"] == 2
    assert sockets["sockets_per_load_mean"] > 1.5
    assert sockets["left_open"] >= 1  # closed by the browser (1001) after its load ended
    assert sockets["max_open"] > 4  # more than one per tab at some moment
    assert result.summary["peak_stale"] >= 1  # the first mount's socket is nobody's current


def check_correct(result: simkit.Result) -> None:
    sockets = check_common(result)
    assert sockets["sockets_per_load_max"] == 1
    assert sockets["left_open"] == 0
    assert sockets["closed_by"].get("page", 0) >= 1  # its pagehide's close 1000, seen on the wire
    assert sockets["max_open"] <= 4


def test_leaky_and_correct_pages_against_the_kits_server(site: str) -> None:
    leaky = play(site, "leaky.html")
    check_leaky(leaky)
    correct = play(site, "correct.html")
    check_correct(correct)
    for result in (leaky, correct):
        assert result.summary["target"] is None
        assert "registry_entries" not in result.summary["unknown_metrics"]
        assert not math.isnan(result.summary["peak_registry_entries"])
    assert leaky.summary["page_sockets"]["sockets"] > correct.summary["page_sockets"]["sockets"]


def test_leaky_and_correct_pages_against_a_target_the_kit_did_not_write(site: str) -> None:
    with uvicorn_app("postmortem_app") as (port, _):
        target = f"ws://127.0.0.1:{port}/ws"
        leaky = play(site, "leaky.html", target=target)
        correct = play(site, "correct.html", target=target)
    check_leaky(leaky)
    check_correct(correct)
    for result in (leaky, correct):
        assert result.summary["target"] == target
        assert result.summary["server_policy"] == "the target's own (unknown to the kit)"
        assert result.summary["stats_polls"] > 0  # the app answers the stats protocol
        assert "registry_entries" not in result.summary["unknown_metrics"]


def test_the_issues_command_line(site: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with uvicorn_app("postmortem_app") as (port, _):
        command = [
            sys.executable, "-m", "simkit", "run", "--runtime", "browser",
            "--page", f"{site}/leaky.html?ws={{ws}}",
            "--target", f"ws://127.0.0.1:{port}/ws",
            "--scenario", "hidden-tabs", "--tabs", "6", "--duration", "60", "--out", str(out),
        ]  # fmt: skip
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=150, check=False
        )
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("timeseries.csv", "summary.json", "connections.png"):
        assert (out / name).stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["page_sockets"]["sockets"] >= 12  # six tabs, two sockets each
    assert summary["page_sockets"]["sockets_per_load_max"] == 2
    assert summary["strategy"] == "multi-heartbeat"
    assert summary["browser_version"].startswith("Chrome/")


def test_a_page_that_does_not_answer_or_answers_an_error(site: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ConfigError, match="does not answer"):
        play(dead, "leaky.html")
    with pytest.raises(ConfigError, match="answered HTTP 404"):
        play(site, "missing.html")


@pytest.mark.parametrize(
    ("page", "note"),
    [
        ("nows.html", "opened no WebSocket"),
        ("fifty.html", "one page load opened 50 WebSockets"),
        ("away.html", "navigated away on its own"),
        ("slow.html", "did not finish (no load event"),
    ],
)
def test_pages_that_misbehave_get_a_note(site: str, page: str, note: str) -> None:
    result = play(site, page, "hidden-tabs", tabs=2, duration=20, settle=5)
    notes = " | ".join(result.summary["notes"])
    assert note in notes, notes


def test_a_target_that_goes_away_mid_run(site: str) -> None:
    with uvicorn_app("postmortem_app") as (port, proc):
        target = f"ws://127.0.0.1:{port}/ws"
        killed: list[bool] = []

        def kill_at_10(row: dict[str, float]) -> None:
            if row["t"] >= 10 and not killed:
                killed.append(True)
                proc.kill()

        result = play(site, "correct.html", "hidden-tabs", target=target, on_sample=kill_at_10)
    assert killed
    assert result.timeseries["open_sockets"].iloc[-1] == 0  # the server's ends are gone
    assert any("stats route failed" in note for note in result.summary["notes"])


async def every_verb(tab: Any, sc: Any) -> None:
    """Each tab plays every verb once on the page, in scenario seconds."""
    tab.load()
    await tab.sleep(4)
    tab.hide()
    await tab.sleep(2)
    tab.show()
    await tab.sleep(2)
    tab.freeze()
    await tab.sleep(3)
    tab.resume()
    await tab.sleep(4)
    tab.enter_bfcache()
    await tab.sleep(3)
    tab.restore()
    await tab.sleep(4)
    tab.lose_network()
    await tab.sleep(3)
    tab.regain_network()
    await tab.sleep(4)
    await tab.reload(0.5)
    await tab.sleep(4)
    if tab.index == 0:
        twin = tab.duplicate(10)
        await tab.sleep(4)
        twin.close()
    if tab.index % 2:
        tab.crash()
    else:
        tab.enter_bfcache()
        await tab.sleep(3)
        tab.evict()


def test_every_verb_on_the_correct_page(site: str) -> None:
    from simkit.scenarios import Scenario

    scenario = Scenario("every-verb", "each verb once", every_verb, push_rate=0.0)
    result = play(site, "correct.html", scenario, tabs=2, duration=50, settle=10, scale=0.2)
    summary = result.summary
    sockets = summary["page_sockets"]
    assert summary["browser_bfcache"]["restored"] >= 1  # with its socket closed in pagehide
    # only the crashed tab's socket: a crashed page runs no pagehide, the browser closes it
    assert sockets["left_open"] <= 1
    assert sockets["closed_by"].get("browser", 0) >= 1
    # one, then a new one after each of resume, restore and regain_network (same load)
    assert sockets["sockets_per_load_max"] <= 4
    assert sockets["loads"] >= 2 * 3 + 1  # load, restore-or-not, reload per tab; the twin
    assert summary["page_tracker_errors"] == []
    assert result.timeseries["open_sockets"].iloc[-1] == 0  # every tab is gone at the end
