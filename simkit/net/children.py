"""Child processes that die with the kit's process, and temporary folders that go with them.

The kit starts real programs (Chromium, ``redis-server``, a Next.js app) and temporary
folders for them (a browser profile, Redis's working dir). A run stops them in its
``finally``; but a Python process that is SIGKILLed (a Jupyter kernel restart, the OOM
killer, ``kill -9``) or SIGTERMed with the default handler runs no ``finally``. Measured
before this module: Chromium (15 processes, ~1.7 GiB, its DevTools port listening) and
``redis-server`` were re-parented to init and kept running, their folders left in /tmp.

Two mechanisms, both needed:

- **PR_SET_PDEATHSIG** (Linux): :func:`spawn` starts every program in a session of its own
  (one process group, out of reach of a terminal's Ctrl-C, which the run handles itself)
  with the kernel asked to SIGKILL it when its parent dies. The kernel ties it to the
  parent *thread*: spawn from a thread that outlives the child (the run's event-loop
  thread does; an executor thread that may retire does not).
  It only reaches the direct child. Chromium's own children (zygotes, renderers, GPU and
  network services) notice their browser's death and exit (measured: the group dead and the
  DevTools port closed 0.1-0.25 s after a SIGKILL of the Python process; its two crashpad
  handlers, which leave the group for sessions of their own under init, exit when the
  browser is gone). A program whose children do not watch it (``sh -c "a & b"``) leaves
  them running; and it removes no folder.
- **A watchdog**: one small process per kit process (started at the first :func:`spawn` or
  :func:`temp_dir`, plain Python with no import of the kit, in a session of its own and
  deaf to SIGINT, SIGTERM and SIGHUP). The kit holds the write end of a pipe to it and
  tells it each process group and folder to look after (and to forget them after a clean
  stop). When the pipe closes, which the kernel does on the kit process's death however it
  died, the watchdog SIGKILLs every group it still looks after and deletes every folder,
  then exits (measured: Chromium's profile gone 0.16-0.35 s after a SIGKILL of the Python
  process, its group dead in 0.2-0.35 s).

API: :func:`spawn` (``subprocess.Popen`` in its own group, dying with this process),
:func:`temp_dir` (``mkdtemp`` removed even if this process is killed), :func:`stop`
(SIGTERM the group, wait, SIGKILL the group, reap; async), :func:`kill` (SIGKILL the group
and reap at once), :func:`remove_dir`, :func:`signal_group`.

The module imports only the standard library: the watchdog is this file, run by path.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, cast

PR_SET_PDEATHSIG = 1

__all__ = [
    "kill",
    "remove_dir",
    "signal_group",
    "spawn",
    "stop",
    "temp_dir",
    "watchdog_pid",
]


# -- the kit's side ------------------------------------------------------------------------


class _Watchdog:
    """The pipe to this process's watchdog (started lazily, once per process)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.owner = 0  # the pid that started the watchdog below
        self.proc: subprocess.Popen[bytes] | None = None
        self.failed = False

    def tell(self, *message: str) -> None:
        with self.lock:
            if self.owner != os.getpid():
                self._start()
            if self.proc is None or self.proc.stdin is None:
                return
            try:
                self.proc.stdin.write(json.dumps(message).encode() + b"\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                self._lost()

    def _start(self) -> None:
        self.owner = os.getpid()
        self.proc = None
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", os.path.abspath(__file__)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a group kill of this process's group spares it
                close_fds=True,
            )
        except OSError as error:
            self._lost(error)

    def _lost(self, error: BaseException | None = None) -> None:
        self.proc = None
        if not self.failed:
            self.failed = True
            warnings.warn(
                f"simkit's child watchdog is not running ({error or 'it exited'}): child "
                "processes still die with this process (PR_SET_PDEATHSIG), but their "
                "temporary folders may be left if it is killed",
                RuntimeWarning,
                stacklevel=4,
            )

    def forked(self) -> None:
        """In a forked child: the pipe belongs to the parent's watchdog; drop it unclosed
        for the parent (closing our copy of the fd is what lets EOF reach the watchdog)."""
        proc, self.proc = self.proc, None
        self.lock = threading.Lock()
        self.owner = 0
        if proc is not None:
            _STALE.append(proc)  # never collected here: its __del__ is the parent's business
            if proc.stdin is not None:
                with contextlib.suppress(OSError, ValueError):
                    cast(Any, proc.stdin).detach().close()  # our copy of the fd, closed once


_STALE: list[subprocess.Popen[bytes]] = []
_WATCHDOG = _Watchdog()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WATCHDOG.forked)


def watchdog_pid() -> int | None:
    """The pid of this process's watchdog, or None before the first spawn (for tests)."""
    proc = _WATCHDOG.proc
    return proc.pid if proc is not None and _WATCHDOG.owner == os.getpid() else None


_prctl: Any = None


def die_with(parent: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` asking the kernel to SIGKILL the child when ``parent`` (the
    spawning thread) dies; None where there is no prctl (not Linux)."""
    global _prctl
    if not sys.platform.startswith("linux"):
        return None
    if _prctl is None:
        try:
            _prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, not after fork
        except (OSError, AttributeError):
            return None
    prctl = _prctl

    def preexec() -> None:  # runs in the child between fork and exec: no import, no lock
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the line above: die now
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def spawn(
    argv: Sequence[str], *, dirs: Sequence[str] = (), **popen: Any
) -> subprocess.Popen[bytes]:
    """``subprocess.Popen(argv, **popen)`` in a session and process group of its own, that
    dies with this process even on SIGKILL (see the module docstring), its whole group
    killed and ``dirs`` deleted by the watchdog then. Stop it with :func:`stop` or
    :func:`kill`, which also tell the watchdog to forget it."""
    for path in dirs:
        _WATCHDOG.tell("+d", path)
    proc: subprocess.Popen[bytes] = subprocess.Popen(
        list(argv),
        start_new_session=True,
        preexec_fn=die_with(os.getpid()),
        **popen,
    )
    _WATCHDOG.tell("+g", str(proc.pid))
    return proc


def watch_group(pgid: int) -> None:
    """Have the watchdog kill process group ``pgid`` if this process dies first: for a child
    started elsewhere (an asyncio subprocess with ``process_group=0`` and
    ``preexec_fn=die_with(os.getpid())``). Undo with :func:`forget_group` once it is reaped."""
    _WATCHDOG.tell("+g", str(pgid))


def forget_group(pgid: int) -> None:
    """The group is gone (stopped and reaped): the watchdog must not kill it, or a group
    that reuses its number, later."""
    _WATCHDOG.tell("-g", str(pgid))


def temp_dir(prefix: str) -> str:
    """``tempfile.mkdtemp(prefix=prefix)``, deleted by the watchdog if this process dies
    before :func:`remove_dir` does it."""
    path = tempfile.mkdtemp(prefix=prefix)
    _WATCHDOG.tell("+d", path)
    return path


def remove_dir(path: str | None) -> None:
    """Delete a folder made by :func:`temp_dir` (or given to :func:`spawn`) and tell the
    watchdog it is gone. Idempotent."""
    if not path:
        return
    shutil.rmtree(path, ignore_errors=True)
    _WATCHDOG.tell("-d", path)


def signal_group(proc: subprocess.Popen[Any] | None, sig: int) -> None:
    """Send ``sig`` to every process of ``proc``'s group (started by :func:`spawn`)."""
    if proc is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)


def kill(proc: subprocess.Popen[Any] | None, timeout: float = 10.0) -> None:
    """SIGKILL every process of ``proc``'s group, reap the leader (at most ``timeout`` s),
    forget the group. Blocking; idempotent."""
    if proc is None:
        return
    signal_group(proc, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)
    _WATCHDOG.tell("-g", str(proc.pid))


async def stop(proc: subprocess.Popen[Any] | None, grace: float = 2.0) -> int | None:
    """End ``proc``'s group politely: SIGCONT (a paused process ignores the rest) and
    SIGTERM to the group, up to ``grace`` s for the leader to exit, then SIGKILL to the
    group (stragglers: zygotes, helpers), reap, forget. Returns the leader's exit status."""
    if proc is None:
        return None
    if proc.poll() is None:
        signal_group(proc, signal.SIGCONT)
        signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    signal_group(proc, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        await asyncio.to_thread(proc.wait, 10.0)
    _WATCHDOG.tell("-g", str(proc.pid))
    return proc.returncode


# -- the watchdog's side (this file run as a script, by the kit) -----------------------------


def _started(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, /proc/PID/stat field 22), or
    None when there is no such process. A group id is its leader's pid, and pids are reused:
    a group is killed only while its leader is the process that was registered, or gone (the
    kernel does not hand out a pid still used as a group id, so then the group is ours)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19] if len(fields) > 19 else None


def _watch() -> None:
    """Read what to look after from stdin until EOF (the kit process died or is done), then
    kill what is left and delete the folders."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)
    groups: dict[int, str | None] = {}  # group id -> its leader's start time, when told
    dirs: set[str] = set()
    for line in sys.stdin.buffer:
        try:
            op, arg = json.loads(line)
        except ValueError:
            continue
        if op == "+g":
            groups[int(arg)] = _started(int(arg))
        elif op == "-g":
            groups.pop(int(arg), None)
        elif op == "+d":
            dirs.add(arg)
        elif op == "-d":
            dirs.discard(arg)
    for group, started in groups.items():
        now = _started(group)
        if now is not None and now != started:
            continue  # the number is another process's now: its group is not ours to kill
        with contextlib.suppress(OSError):
            os.killpg(group, signal.SIGKILL)
    for _ in range(20):  # a dying process may still be writing into its folder
        for path in list(dirs):
            shutil.rmtree(path, ignore_errors=True)
            if not os.path.exists(path):
                dirs.discard(path)
        if not dirs:
            break
        time.sleep(0.05)


if __name__ == "__main__":
    _watch()
