"""A browser run whose Chromium dies mid-run is reported invalid, not a clean pass."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

import simkit

# Marked ``browser`` by its folder (tests/conftest.py skips it without Chromium).
pytestmark = pytest.mark.timeout(90)


def our_chromium() -> list[int]:
    """Pids of the Chromium main processes this test process started (its children)."""
    found = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == me and b"simkit-rawcdp-" in cmdline:
            found.append(int(entry.name))
    return found


def test_chromium_killed_mid_run_makes_the_run_invalid() -> None:
    killed: list[int] = []

    def kill_it() -> None:
        for pid in our_chromium():  # only the browser this test started
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    def watch() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not our_chromium():
            time.sleep(0.1)
        time.sleep(2.0)  # the run is under way
        kill_it()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.monotonic()
    result = simkit.run(
        "reload-storm", "postmortem-safe", tabs=2, duration=60, settle=10,
        runtime=simkit.Browser(scale=0.1),
    )  # fmt: skip
    watcher.join(5)
    assert killed, "the test never found the run's Chromium to kill"
    assert time.monotonic() - started < 80
    s = result.summary
    assert s["run_valid"] is False
    assert any("Chromium exited during the run" in r for r in s["invalid_reasons"]), s
