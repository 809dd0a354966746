"""A tiny raw Chrome DevTools Protocol client over ``websockets``, for what Playwright's own
session cannot do here: make a page hidden and freeze it.

With Playwright attached, a page stays ``visible`` and ``Page.setWebLifecycleState`` frozen
has no effect; through a plain CDP connection to a directly started Chromium, a second tab
in front makes the first one hidden, and the freeze takes: the page stops running code while
its socket stays open (measured here: app-level pings go unanswered, protocol pings are
still answered by the browser).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect


class RawCDP:
    """``async with RawCDP(profile_dir) as cdp:``: the browser-level CDP connection of a
    Chromium started with ``--remote-debugging-port=0`` and that ``--user-data-dir``."""

    def __init__(self, profile: str) -> None:
        self.profile = profile
        self._ws: Any = None
        self._next = 0
        self._pending: dict[int, asyncio.Future] = {}
        self._reader: asyncio.Task | None = None

    async def __aenter__(self) -> RawCDP:
        port, path = (Path(self.profile) / "DevToolsActivePort").read_text().split()[:2]
        self._ws = await connect(f"ws://127.0.0.1:{port}{path}", proxy=None, max_size=None)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._ws.close()

    async def _read(self) -> None:
        async for raw in self._ws:
            message = json.loads(raw)
            future = self._pending.pop(message.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(message)

    async def send(self, method: str, params: dict | None = None, session: str | None = None):
        self._next += 1
        future = asyncio.get_running_loop().create_future()
        self._pending[self._next] = future
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        await self._ws.send(json.dumps(message))
        reply = await asyncio.wait_for(future, 10)
        if "error" in reply:
            raise RuntimeError(f"CDP {method} failed: {reply['error']}")
        return reply.get("result", {})

    async def open(self, url: str) -> str:
        """Open ``url`` in a new tab; returns a session id attached to it."""
        target = await self.send("Target.createTarget", {"url": url})
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        return attached["sessionId"]

    async def evaluate(self, session: str, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session
        )
        return result["result"].get("value")

    async def hide_and_freeze(self, session: str) -> str:
        """Put another tab in front (the page becomes hidden), then freeze the page.
        Returns the page's visibilityState just before the freeze."""
        await self.send("Target.createTarget", {"url": "about:blank"})
        for _ in range(40):
            state = await self.evaluate(session, "document.visibilityState")
            if state == "hidden":
                break
            await asyncio.sleep(0.05)
        await self.send("Page.setWebLifecycleState", {"state": "frozen"}, session)
        return state

    async def resume(self, session: str) -> None:
        await self.send("Page.setWebLifecycleState", {"state": "active"}, session)


class RawChromium:
    """``async with RawChromium() as cdp:``: Chromium started directly with no Playwright
    attached (Playwright's attachment keeps pages visible), driven by :class:`RawCDP`. The
    whole process group is killed and the profile deleted on exit, also on error."""

    def __init__(self, start_timeout: float = 20.0) -> None:
        self.start_timeout = start_timeout
        self.proc: Any = None
        self.profile = ""
        self.cdp: RawCDP | None = None

    async def __aenter__(self) -> RawCDP:
        import subprocess
        import tempfile

        from simkit.browser.chromium import CHROMIUM, FLAGS

        self.profile = tempfile.mkdtemp(prefix="simkit-rawcdp-")
        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            port_file = Path(self.profile) / "DevToolsActivePort"
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.start_timeout
            while not (port_file.exists() and port_file.read_text().split()):
                if self.proc.poll() is not None or loop.time() > deadline:
                    raise RuntimeError("chromium did not start for raw CDP")
                await asyncio.sleep(0.05)
            self.cdp = await RawCDP(self.profile).__aenter__()
            return self.cdp
        except BaseException:
            self._kill()
            raise

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self.cdp is not None:
                await self.cdp.__aexit__()
        finally:
            self._kill()

    def _kill(self) -> None:
        import os
        import shutil
        import signal

        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)
