"""Child processes die with the kit's process and their folders go (simkit.net.children).

No browser, no server: ``sleep`` children and a folder, a parent Python process killed with
SIGKILL (which runs no ``finally``), bounded waits."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simkit.net import children

PARENT = """
import importlib.util, sys, time
# the module alone (it imports only the standard library): no second of importing simkit
spec = importlib.util.spec_from_file_location("children", sys.argv[1])
children = importlib.util.module_from_spec(spec)
spec.loader.exec_module(children)
folder = children.temp_dir("simkit-test-")
# a leader and a grandchild that leaves nothing to tie it to the leader but the group
proc = children.spawn(["sh", "-c", "sleep 60 & exec sleep 61"], dirs=(folder,))
time.sleep(0.3)
print(proc.pid, folder, children.watchdog_pid(), flush=True)
time.sleep(60)
"""


def group_members(pgid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=lambda s: s.name)
def test_a_killed_parent_takes_its_children_grandchildren_and_folders(sig, tmp_path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, children.__file__],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    leader = 0
    try:
        line = parent.stdout.readline().split()
        assert len(line) == 3, line
        leader, folder, watchdog = int(line[0]), line[1], int(line[2])
        assert len(group_members(leader)) == 2  # sh's sleep and its backgrounded sleep
        assert os.path.isdir(folder) and folder.startswith(str(tmp_path))
        assert alive(watchdog)
        parent.send_signal(sig)
        start = time.monotonic()
        while time.monotonic() - start < 5 and (
            group_members(leader) or os.path.exists(folder) or alive(watchdog)
        ):
            time.sleep(0.02)
        assert not group_members(leader), "the child's process group outlived its parent"
        assert not os.path.exists(folder), "the folder outlived its parent"
        assert not alive(watchdog), "the watchdog outlived its job"
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.wait(timeout=10)
        parent.stdout.close()
        if leader:
            for pid in group_members(leader):
                os.kill(pid, signal.SIGKILL)


def test_stop_ends_the_group_reaps_and_forgets_it(tmp_path) -> None:
    folder = children.temp_dir("simkit-test-")
    proc = children.spawn(["sh", "-c", "sleep 60 & exec sleep 61"], dirs=(folder,))
    try:
        deadline = time.monotonic() + 5
        while len(group_members(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(group_members(proc.pid)) == 2
        assert os.getpgid(proc.pid) == proc.pid != os.getpgid(0)  # a group of its own
        code = asyncio.run(children.stop(proc, grace=2.0))
        assert code == -signal.SIGTERM
        assert not group_members(proc.pid)
    finally:
        children.kill(proc)
        children.remove_dir(folder)
    assert not os.path.exists(folder)


def test_a_missing_chromium_is_one_error_and_leaves_no_profile(monkeypatch, tmp_path) -> None:
    """Before: a FileNotFoundError traceback, and one /tmp/simkit-rawcdp-* left per try."""
    from simkit.browser import chromium
    from simkit.browser.cdp import RawChromium
    from simkit.model.errors import BrowserError

    monkeypatch.setattr(chromium, "CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with pytest.raises(BrowserError, match="no-chromium is not an executable file"):
        asyncio.run(RawChromium().start())
    assert list(tmp_path.iterdir()) == []
