"""Test-suite set-up shared by every folder: markers by folder, and the one browser check.

The markers (registered in pyproject.toml) say what a test needs beyond the CPU:

- ``live``: real sockets in real time on 127.0.0.1 (every test under ``tests/live/``),
- ``browser``: headless Chromium (every test under ``tests/browser/``, except the files in
  :data:`BROWSER_FREE`),
- ``slow``: more than a few seconds of CPU (put on by hand, next to the test),
- ``notebooks``: executes notebooks,
- ``alone``: needs the machine to itself (set by file, :data:`ALONE`): it measures pace or
  agreement with the model within tolerances, or it counts processes machine-wide.
  ``make test`` runs the other live tests two at a time and these one at a time after.

Folders set ``live`` (``tests/live/`` and ``tests/net/``) and ``browser`` so that a new file
dropped into ``tests/live/`` is kept out of ``make test-fast`` without anyone remembering a
decorator. ``make test-fast`` runs
``-m "not live and not browser and not slow and not notebooks"``; ``make test`` runs all.

A test marked ``browser`` (by folder or by hand, anywhere) is skipped with the reason when
Chromium is missing here, and fails instead when ``SIMKIT_REQUIRE_BROWSER`` is set (CI
sets it, so CI can never pass by skipping the browser tests). That check lives only here,
as do the same checks for ``redis`` (``SIMKIT_REQUIRE_REDIS``) and ``node`` (Node.js, npm and
the example front end's node_modules; ``SIMKIT_REQUIRE_NODE``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

# Folder (relative to tests/) -> the marker every test in it gets.
BY_FOLDER = {"live": "live", "browser": "browser", "net": "live"}

# Files in those folders that need no browser: they read the shipped calibration and play
# the virtual model, so they belong in the fast subset (a missing Chromium must not skip them).
BROWSER_FREE = {"browser/test_calibration.py"}
# Files in tests/net/ that play nothing in real time (they read a shipped measurement).
NET_FREE = {"net/test_nextproxy_calibration.py"}
# Files whose tests need the machine to themselves, with why (a single test is marked by
# hand: ``@pytest.mark.alone``). Measured: run two at a time
# (pytest -n 2) these failed and nothing else did (agreement within tolerances, a browser's
# pace, a whole-machine count of leftover processes that a neighbour's children confuse).
ALONE = {
    "live/test_agreement.py": "live against virtual, within timing tolerances",
    "live/test_agreement_fastapi.py": "the same on every FastAPI implementation",
    "live/test_calibration_fastapi.py": "measures the stack's timings",
    "live/test_no_leftovers.py": "counts the processes left on the whole machine",
    "benchmarks/test_live.py": "measures a live run's pace",
    "browser/test_real_tabs.py": "real tabs against the model, within tolerances",
    "browser/test_background_tabs.py": "hidden, frozen and cached tabs as the model predicts",
    "browser/test_frontend_target.py": "page-mode runs at scale 0.1 that must stay valid",
}


def folder_markers(path: Path) -> list[str]:
    """The markers a test file gets from where it lives (``[]`` outside the marked folders)."""
    try:
        rel = path.resolve().relative_to(TESTS)
    except ValueError:  # not under tests/ (e.g. nbval collecting notebooks/)
        return []
    path_name = rel.as_posix()
    alone = ["alone"] if any(path_name.startswith(k) for k in ALONE) else []
    if len(rel.parts) < 2:
        return alone
    marker = BY_FOLDER.get(rel.parts[0])
    if marker is None or path_name in (BROWSER_FREE | NET_FREE):
        return alone
    return [marker, *alone]


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for name in folder_markers(Path(str(item.path))):
            item.add_marker(getattr(pytest.mark, name))
    # The tests marked slow first (a stable sort: the rest keep their order): pytest-xdist
    # hands tests out in this order, and a 40 s test drawn last leaves the other core idle
    # at the end of the CPU-only phase.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def browser_required() -> bool:
    """Whether a missing browser is a failure rather than a skip (``SIMKIT_REQUIRE_BROWSER``)."""
    return os.environ.get("SIMKIT_REQUIRE_BROWSER", "").strip().lower() not in ("", "0", "false")


@functools.cache
def browser_missing() -> str | None:
    """Why the browser tests cannot run here (Chromium or Playwright absent), or None."""
    from simkit.browser import browser_missing as why

    return why()


def require_browser() -> None:
    """Skip the calling test, with the reason, when Chromium is missing; fail under CI's
    ``SIMKIT_REQUIRE_BROWSER``. The only copy of this check in the suite."""
    reason = browser_missing()
    if reason is None:
        return
    if browser_required():
        pytest.fail(f"SIMKIT_REQUIRE_BROWSER is set but {reason}", pytrace=False)
    pytest.skip(f"browser tests: {reason}")


def redis_missing() -> str | None:
    """Why the tests that need a real Redis cannot run here, or None."""
    from simkit.net.redis import HOW_TO_START, redis_binary

    return None if redis_binary() else f"redis-server is not installed; {HOW_TO_START}"


def require_redis() -> None:
    """Skip the calling test, with the reason, when redis-server is missing; fail instead
    when ``SIMKIT_REQUIRE_REDIS`` is set (``.ci/run`` sets it). The only copy of this check."""
    reason = redis_missing()
    if reason is None:
        return
    if os.environ.get("SIMKIT_REQUIRE_REDIS", "").strip().lower() not in ("", "0", "false"):
        pytest.fail(f"SIMKIT_REQUIRE_REDIS is set but {reason}", pytrace=False)
    pytest.skip(f"redis tests: {reason}")


def node_missing() -> str | None:
    """Why the tests that run the example Next.js front end cannot run here, or None."""
    from simkit.net.nextapp import node_missing as why

    return why(TESTS.parent / "examples" / "postmortem_frontend")


def require_node() -> None:
    """Skip the calling test, with the reason, when Node.js, npm or the example front end's
    node_modules are missing; fail instead when ``SIMKIT_REQUIRE_NODE`` is set (``.ci/run``
    sets it). The only copy of this check."""
    reason = node_missing()
    if reason is None:
        return
    if os.environ.get("SIMKIT_REQUIRE_NODE", "").strip().lower() not in ("", "0", "false"):
        pytest.fail(f"SIMKIT_REQUIRE_NODE is set but {reason}", pytrace=False)
    pytest.skip(f"front-end tests: {reason}")


def _child_processes(name: str) -> list[int]:
    """Live (not zombie) child processes of this test process named ``name``, or with
    ``name`` as a word of their command line (``simkit`` for ``python -m simkit serve``:
    not every Python child is the test's, multiprocessing starts helpers too)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            comm = (entry / "comm").read_text().strip()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        named = comm.startswith(name) or name.encode() in argv
        if named and int(fields[1]) == os.getpid() and fields[0] != "Z":
            found.append(int(entry.name))
    return found


@pytest.fixture
def children() -> Callable[[str], list[int]]:
    """``children(name)``: the processes named so that this test started and left running
    (a test that starts redis-server or node processes checks none is left)."""
    return _child_processes


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("browser") is not None:
        require_browser()
    if item.get_closest_marker("redis") is not None:
        require_redis()
    if item.get_closest_marker("node") is not None:
        require_node()
