"""Where a sweep's runs play: the default Dask cluster kept on this machine between sweeps,
a cluster named by its scheduler's address, and the watch that ends a sweep left without
workers.

A study is several sweeps, and each would otherwise pay the cluster's start and stop (about
a second, a tenth of a 40-run sweep here), so the default cluster is started by the first
sweep that needs it and kept for the next ones (as joblib's reusable executor keeps its
workers): it shuts down after :data:`KEEP_IDLE` seconds without a sweep, at exit, or on
:func:`close_default_cluster`.
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from simkit.model.errors import ConfigError, SimkitError

if TYPE_CHECKING:  # distributed is imported when a sweep needs it (it takes a second)
    from distributed import Client, LocalCluster

__all__ = [
    "CONNECT_TIMEOUT",
    "KEEP_IDLE",
    "NO_WORKERS_TIMEOUT",
    "NoWorkers",
    "SchedulerUnreachable",
    "WorkerWatch",
    "check_main_guard",
    "close_default_cluster",
    "connect",
    "cores",
    "default_client",
    "keep_idle",
    "local_cluster",
    "under_main_guard",
    "unguarded_call",
]

KEEP_IDLE = 300.0
"""Seconds the default cluster stays up after a sweep, waiting for the next one. The
package re-exports it and the idle timer reads it there, so ``simkit.study.KEEP_IDLE = 60``
works as written (see :func:`keep_idle`)."""

NO_WORKERS_TIMEOUT = 60.0
"""Seconds a sweep waits while its cluster has no live worker before the runs not yet
played fail (a restarted worker is back within a few seconds; a cluster whose workers all
died and never come back would otherwise leave the sweep waiting forever)."""

CONNECT_TIMEOUT = 10.0
"""Seconds given to reach a scheduler named by its address."""


class SchedulerUnreachable(ConfigError):
    """Nothing answers at the scheduler address a sweep was given."""


class NoWorkers(SimkitError, RuntimeError):
    """The sweep's cluster had no live worker for longer than its bound."""


# --- the default cluster, kept between sweeps -----------------------------------------------

_DEFAULT_LOCK = threading.Lock()
_default: _Kept | None = None


@dataclass
class _Kept:
    """The default cluster, its client and the timer that shuts it down when idle."""

    cluster: LocalCluster
    client: Client
    workers: int
    timer: threading.Timer | None = None
    busy: int = 0

    def alive(self) -> bool:
        from distributed.core import Status

        return bool(self.client.status == "running" and self.cluster.status == Status.running)

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        with contextlib.suppress(Exception):
            self.client.close()
        with contextlib.suppress(Exception):
            self.cluster.close()


def cores() -> int:
    """The cores this process may use (its affinity, where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


@contextlib.contextmanager
def default_client(workers: int | None) -> Iterator[Client]:
    """The default cluster's client for one sweep: the kept cluster if it has ``workers``
    workers and is up, else a new one (the old one closed). Its idle timer restarts when
    the sweep ends, even on error."""
    global _default
    wanted = workers or cores()
    with _DEFAULT_LOCK:
        kept = _default
        if kept is not None and (kept.workers != wanted or not kept.alive()):
            kept.close()
            kept = _default = None
        if kept is None:
            from distributed import Client

            cluster = local_cluster(wanted)
            try:
                client = Client(cluster)
            except BaseException:
                cluster.close()
                raise
            kept = _default = _Kept(cluster, client, wanted)
        if kept.timer is not None:
            kept.timer.cancel()
            kept.timer = None
        kept.busy += 1
    try:
        yield kept.client
    finally:
        with _DEFAULT_LOCK:
            kept.busy -= 1
            if kept is _default and kept.busy == 0:
                kept.timer = threading.Timer(keep_idle(), _close_if_idle, (kept,))
                kept.timer.daemon = True
                kept.timer.start()


def keep_idle() -> float:
    """:data:`KEEP_IDLE` as the user set it: on the package (``simkit.study.KEEP_IDLE``,
    the documented name), read when each idle timer starts; this module's value when the
    package is not imported (it always is, by whoever imports this module through it)."""
    package = sys.modules.get(__name__.rpartition(".")[0])
    return float(getattr(package, "KEEP_IDLE", KEEP_IDLE))


def _close_if_idle(kept: _Kept) -> None:
    global _default
    with _DEFAULT_LOCK:
        if kept is not _default or kept.busy:
            return
        _default = None
    kept.close()


def close_default_cluster() -> None:
    """Shut the default cluster down now (it is started again by the next sweep)."""
    global _default
    with _DEFAULT_LOCK:
        kept, _default = _default, None
    if kept is not None:
        kept.close()


atexit.register(close_default_cluster)  # does nothing unless a cluster is kept


def local_cluster(workers: int | None = None) -> LocalCluster:
    """The default cluster: ``workers`` processes (default: one per core this process may
    use), one thread each (a run holds the GIL), scheduler, workers and the scheduler's
    HTTP endpoint on 127.0.0.1 only (a free port), and quiet (workers log errors only: a
    notebook compares stderr). Its workers do not run Dask's statistical profiler (a look
    at the running task's stack every 10 ms, for the dashboard's profile page): on a run,
    pure Python that holds the GIL, it cost 5-6 % of each run's CPU time, measured.

    Use it as a context manager, or keep one open across several sweeps::

        with simkit.study.local_cluster() as cluster, distributed.Client(cluster) as client:
            simkit.sweep(..., client=client)

    From a script, call it (or :func:`simkit.sweep`) under ``if __name__ == "__main__":``:
    each worker is a fresh Python that re-runs the script's top level, so it is refused,
    with a :class:`ConfigError` saying so, from the top level of a script without the guard.
    """
    import dask
    from distributed import LocalCluster

    check_main_guard()
    if workers is None:
        workers = cores()
    # Each nanny hands the configuration it was made under to its worker process.
    with dask.config.set({"distributed.worker.profile.enabled": False}):
        return LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            # its HTTP server starts even without a dashboard: a free port, never 8787 taken
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
        )


# --- a script's top level -------------------------------------------------------------------


def check_main_guard() -> None:
    """Refuse to start worker processes from a script's unguarded top level.

    Dask starts each worker as a fresh Python (multiprocessing's ``spawn``), which first
    re-runs the main script's top level: unguarded, each worker would start a sweep of its
    own, and the sweep fails with multiprocessing's tracebacks and "Nanny failed to start".
    A notebook, ``python -c``, ``python -m package`` and a guarded script are unaffected.
    """
    found = unguarded_call(sys._getframe(1))
    if found is None:
        return
    path, line = found
    raise ConfigError(
        f"a sweep's Dask workers cannot start from the top level of the script {path} "
        f"(line {line}): each worker is a new Python process that first re-runs the "
        "script's top level. Put the script's code under `if __name__ == \"__main__\":` "
        '(or play the runs in this process with scheduler="synchronous")'
    )


def unguarded_call(frame: FrameType | None) -> tuple[str, int] | None:
    """``(path, line)`` of the main script's top-level statement that led to ``frame``, when
    that statement is outside an ``if __name__ == "__main__":`` block and worker processes
    would re-run it; else None."""
    import dask

    if dask.config.get("distributed.worker.multiprocessing-method", "spawn") == "fork":
        return None  # a forked worker does not re-run the script
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or not isinstance(path, str):
        return None  # python -c, a notebook, an interactive session
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if name is not None and (name == "__main__" or name.endswith(".__main__")):
        return None  # python -m package: multiprocessing does not re-run package.__main__
    while frame is not None:
        code = frame.f_code
        if frame.f_globals is vars(main) and code.co_name == "<module>":
            if os.path.abspath(code.co_filename) != os.path.abspath(path):
                return None
            break
        frame = frame.f_back
    else:
        return None  # not below the script's top level (e.g. a thread it started)
    line = frame.f_lineno
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=path)
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return None  # cannot tell: let multiprocessing speak
    return None if under_main_guard(tree, line) else (path, line)


def under_main_guard(tree: ast.Module, line: int) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_main_test(node.test) and node.body:
            end = node.body[-1].end_lineno or node.body[-1].lineno
            if node.body[0].lineno <= line <= end:
                return True
    return False


def _is_main_test(test: ast.expr) -> bool:
    """``__name__ == "__main__"``, either way round."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return False
    if not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s.id for s in sides if isinstance(s, ast.Name)]
    texts = [s.value for s in sides if isinstance(s, ast.Constant)]
    return names == ["__name__"] and texts == ["__main__"]


# --- a cluster named by its address ---------------------------------------------------------


def connect(address: str, timeout: float = CONNECT_TIMEOUT) -> Client:
    """A ``distributed.Client`` on the scheduler at ``address``, or, within ``timeout``
    seconds (at once when the port is closed), :class:`SchedulerUnreachable` naming the
    address and why: Dask alone retries for 30 s and logs two tracebacks."""
    from distributed import Client
    from distributed.comm.addressing import parse_address, parse_host_port

    scheme, location = parse_address(address)
    if scheme in ("tcp", "tls"):
        try:
            host, port = parse_host_port(location, default_port=8786)
        except ValueError as error:
            raise ConfigError(f"scheduler address {address!r} is not valid: {error}") from None
        try:
            with socket.create_connection((host, port), timeout=timeout):
                pass
        except OSError as error:
            raise _unreachable(address, error) from None
    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError) as error:
        raise _unreachable(address, error) from None


def _unreachable(address: str, error: BaseException) -> SchedulerUnreachable:
    why = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return SchedulerUnreachable(
        f"no Dask scheduler answers at {address} ({why or type(error).__name__}); start one "
        "(`dask scheduler`) or give its address as tcp://host:port"
    )


# --- a cluster left without workers ---------------------------------------------------------


class WorkerWatch:
    """Raises :class:`NoWorkers` when the cluster behind ``client`` has had no live worker
    for longer than ``bound`` seconds. Asked while a sweep waits for a result; it asks the
    scheduler at most once a second."""

    def __init__(self, client: Client, bound: float) -> None:
        self.client, self.bound = client, bound
        self._asked = float("-inf")
        self._since: float | None = None

    def check(self) -> None:
        now = time.monotonic()
        if now - self._asked < 1.0:
            return
        self._asked = now
        try:
            live = len(self.client.nthreads())
        except Exception:  # the scheduler itself is gone: no worker either
            live = 0
        if live:
            self._since = None
            return
        if self._since is None:
            self._since = now
        elif now - self._since > self.bound:
            where = getattr(getattr(self.client, "scheduler", None), "address", "?")
            raise NoWorkers(
                f"no live Dask worker for {self.bound:g} s (scheduler {where}): the run "
                "never played"
            )

    def result_came(self) -> None:
        """A result arrived: the cluster is working."""
        self._since = None
