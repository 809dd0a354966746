"""An ASGI app served by a real uvicorn process on 127.0.0.1, that the kit can restart.

What the front-end measurements need of a backend that :class:`simkit.net.FastAPIServer`
(in-process) cannot give: a separate process to kill and start again on the same port (a
backend restart), with uvicorn's own options (``--timeout-keep-alive``). Like
:class:`simkit.net.nextapp.NextApp` it runs in its own process group, dies with the thread
that started it (``PR_SET_PDEATHSIG``), and is killed on the way out whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from simkit.model.errors import ConfigError
from simkit.net.children import die_with, forget_group, watch_group
from simkit.net.nextapp import free_port, http_status, port_free
from simkit.net.service import Service

# The source checkout (the examples live there, not in the wheel).
CHECKOUT = Path(__file__).resolve().parents[2]


class UvicornApp(Service):
    """``uvicorn <app>`` on 127.0.0.1 (``app`` as uvicorn takes it, e.g.
    ``examples.postmortem_app:app``, importable from ``cwd``); ``port`` 0 for a free one,
    kept across :meth:`restart`; ``keep_alive`` is ``--timeout-keep-alive`` (seconds,
    uvicorn's default 5); ``ready_path`` is GET until it answers."""

    def __init__(
        self,
        app: str = "examples.postmortem_app:app",
        port: int = 0,
        *,
        keep_alive: float = 5.0,
        ready_path: str = "/api/database/select",
        cwd: str | os.PathLike[str] = CHECKOUT,
        start_timeout: float = 30.0,
    ) -> None:
        if ":" not in app:
            raise ConfigError(f"app must be 'module:attribute', not {app!r}")
        if not 0 < keep_alive <= 3600:
            raise ConfigError(f"keep_alive must be in (0, 3600] seconds, not {keep_alive}")
        self.app = app
        self.port = port or free_port()  # known before start: a NextApp is built on it
        self.keep_alive = keep_alive
        self.ready_path = ready_path
        self.cwd = Path(cwd)
        self.start_timeout = start_timeout
        self.process: asyncio.subprocess.Process | None = None
        self.stderr_tail = b""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        if not port_free(self.port):
            raise ConfigError(f"port {self.port} on 127.0.0.1 is already in use")
        keep_alive = f"{self.keep_alive:g}"
        # uvicorn's --timeout-keep-alive is an int on the command line: pass it through
        # its Python API to allow fractions.
        code = (
            "import sys, uvicorn; "
            "uvicorn.run(sys.argv[1], host='127.0.0.1', port=int(sys.argv[2]), "
            "timeout_keep_alive=float(sys.argv[3]), log_level='warning')"
        )
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            code,
            self.app,
            str(self.port),
            keep_alive,
            cwd=self.cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            process_group=0,
            preexec_fn=die_with(os.getpid()),
        )
        watch_group(self.process.pid)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        try:
            while True:
                if self.process.returncode is not None:
                    assert self.process.stderr is not None
                    err = (await self.process.stderr.read()).decode(errors="replace")
                    raise ConfigError(f"uvicorn {self.app} exited at start: {err[-1500:]}")
                if await http_status(self.url + self.ready_path, timeout=2.0) is not None:
                    return
                if loop.time() > deadline:
                    raise ConfigError(
                        f"uvicorn {self.app} did not answer on {self.url} within "
                        f"{self.start_timeout} s"
                    )
                await asyncio.sleep(0.05)
        except BaseException:
            await self.stop()
            raise

    async def stop(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal the server's group (SIGKILL: gone at once; SIGTERM: uvicorn's graceful
        shutdown) and wait for it, killing it after 5 s."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            await asyncio.wait_for(process.wait(), 5)
        forget_group(process.pid)

    async def restart(self, sig: signal.Signals = signal.SIGTERM, down: float = 0.0) -> None:
        """Stop (``sig``), stay down ``down`` seconds, start again on the same port."""
        await self.stop(sig)
        await asyncio.sleep(down)
        await self.start()
