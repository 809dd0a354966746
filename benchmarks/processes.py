"""Fresh Python processes for the benchmarks, started one way.

A timed run gets a process of its own (:func:`run_once`), so that neither the heap nor the
imports of what ran before distort its time or its memory; the live bench's server and
client processes are driven by lines (:class:`Child`). Either way the process runs one
function of a ``benchmarks`` module, from the repository root, and imports nothing else:
a SimPy or raw-websockets process never pays for simkit's imports.

Only the standard library: the helper processes import this module too.
"""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from benchmarks.common import ROOT

REPLY_TIMEOUT = 60.0  # s: how long a helper may take to answer one command, by default


def python_command(target: str, *args: object) -> list[str]:
    """The command line that calls ``target`` ("module:function") with ``args`` (given as
    Python literals) in a fresh interpreter."""
    module, sep, function = target.partition(":")
    if not sep or not module.startswith("benchmarks.") or not function:
        raise ValueError(f"target must be 'benchmarks.<module>:<function>', got {target!r}")
    code = f"from {module} import {function} as f; f(*{list(args)!r})"
    return [sys.executable, "-c", code]


def run_once(target: str, *args: object) -> dict[str, Any]:
    """Run ``target(*args)`` in a fresh process to completion; its last stdout line is the
    JSON it reports (see :func:`say`)."""
    done = subprocess.run(
        python_command(target, *args), cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{target}{args!r} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def say(payload: dict[str, Any]) -> None:
    """A child's reply: one JSON line on stdout."""
    print(json.dumps(payload), flush=True)


async def commands() -> AsyncIterator[list[str]]:
    """A :class:`Child`'s commands, one per stdin line (split in words), until EOF or
    ``exit``; read in a thread so the child's event loop keeps serving meanwhile."""
    import asyncio

    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        words = line.split()
        if not words or words[0] == "exit":
            return
        yield words


class Child:
    """A helper process driven by lines: commands on its stdin, one JSON reply per command
    on its stdout (lines starting ``log:`` are progress). Every read has a deadline, and
    :meth:`close` always leaves no process behind."""

    def __init__(self, target: str, *args: object) -> None:
        self.role = target.rpartition(":")[2]
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            python_command(target, *(str(a) for a in args)),
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def reply(
        self, timeout: float = REPLY_TIMEOUT, log: Callable[[str], None] | None = None
    ) -> dict:
        """The next JSON line, passing ``log:`` lines to ``log`` on the way."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"{self.role}: no reply within {timeout} s") from None
            if line is None:
                raise RuntimeError(f"{self.role} process ended:\n{self.stderr()}")
            if line.startswith("log:"):
                if log is not None:
                    log(line[4:])
                continue
            return json.loads(line)

    def ask(self, command: str, timeout: float = REPLY_TIMEOUT) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.reply(timeout)

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-4000:]

    def close(self, timeout: float = 15.0) -> None:
        """Ask it to exit (EOF on stdin); kill it if it has not within ``timeout``."""
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.close()  # type: ignore[union-attr]
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._reader.join(5)
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdout.close()  # type: ignore[union-attr]
        self._stderr.close()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        self.close(timeout=15.0 if kind is None else 1.0)  # on failure, no patience
