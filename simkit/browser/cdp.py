"""A small raw Chrome DevTools Protocol client over ``websockets``: what drives the browser
runtime's pages, because Playwright's attachment changes what a page can do.

Why not Playwright here (measured with Chromium 156, Playwright 1.65): Playwright turns on
``Emulation.setFocusEmulationEnabled`` for every page of a context it creates, which keeps
the page ``visible`` whatever happens to its window, and a page that stays visible is not
frozen by ``Page.setWebLifecycleState``: no ``freeze`` event, its timers keep running, it
keeps answering app-level pings. Through a plain CDP connection to a directly started
Chromium nothing is emulated:

- a minimized window hides its page (``visibilitychange`` hidden), a normal one shows it;
- ``Page.setWebLifecycleState`` frozen first hides a visible page, then freezes it (the page
  stops running code while its socket stays open: app-level pings go unanswered, protocol
  pings are still answered by the browser); active resumes it, still hidden until its
  window is shown again;
- navigating away puts the page in the back/forward cache even with an open WebSocket
  (``pagehide`` with ``persisted``, the socket stays open and answers protocol pings), and
  history back restores it (``pageshow`` with ``persisted``);
- on waking from a freeze or the cache Chromium closes the socket that lived through it:
  the server sees 1001, the page sees 1006.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from simkit.model.errors import BrowserError

CDPParams = dict[str, Any]
"""A CDP message's JSON object (an event's params, a call's params or result). Its schema is
Chromium's, versioned with the browser, so its values stay ``Any`` here, the one place the kit
says so: each reader checks the keys it reads."""

Listener = Callable[[CDPParams, "str | None"], None]


class CDPError(BrowserError):
    """A CDP call failed, timed out, or the connection to the browser is gone."""


class RawCDP:
    """``async with RawCDP(profile_dir) as cdp:``: the browser-level CDP connection of a
    Chromium started with ``--remote-debugging-port=0`` and that ``--user-data-dir``.

    :meth:`send` calls a method (on a page when given the ``session`` of a flattened
    ``Target.attachToTarget``); :meth:`on` registers a listener for an event, called with
    the event's params and its session id. When the connection drops, every call waiting
    for a reply fails at once with :class:`CDPError`.
    """

    def __init__(self, profile: str, timeout: float = 10.0) -> None:
        self.profile = profile
        self.timeout = timeout
        self._ws: ClientConnection | None = None
        self._next = 0
        self._pending: dict[int, asyncio.Future[CDPParams]] = {}
        self._listeners: dict[str, list[Listener]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.closed = False

    async def __aenter__(self) -> RawCDP:
        port, path = (Path(self.profile) / "DevToolsActivePort").read_text().split()[:2]
        self._ws = await connect(f"ws://127.0.0.1:{port}{path}", proxy=None, max_size=None)
        self._reader = asyncio.create_task(self._read(self._ws))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 5.0)
        self._fail_pending("the CDP connection was closed")

    def on(self, method: str, listener: Listener) -> None:
        self._listeners.setdefault(method, []).append(listener)

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                message = json.loads(raw)
                if "id" in message:
                    future = self._pending.pop(message["id"], None)
                    if future is not None and not future.done():
                        future.set_result(message)
                    continue
                for listener in self._listeners.get(message.get("method", ""), ()):
                    try:
                        listener(message.get("params", {}), message.get("sessionId"))
                    except Exception:  # a listener's bug must not stop the reader
                        traceback.print_exc()
        except Exception:
            pass
        finally:
            self._fail_pending("the browser's CDP connection ended")

    def _fail_pending(self, why: str) -> None:
        self.closed = True
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(CDPError(why))

    async def send(
        self,
        method: str,
        params: CDPParams | None = None,
        session: str | None = None,
        timeout: float | None = None,
    ) -> CDPParams:
        if self.closed:
            raise CDPError(f"CDP {method}: the connection is closed")
        self._next += 1
        number = self._next
        future = asyncio.get_running_loop().create_future()
        self._pending[number] = future
        message: CDPParams = {"id": number, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        try:
            if self._ws is None:
                raise CDPError(f"CDP {method}: not connected (use async with RawCDP(...))")
            await self._ws.send(json.dumps(message))
            reply = await asyncio.wait_for(future, self.timeout if timeout is None else timeout)
        except TimeoutError:
            raise CDPError(f"CDP {method}: no reply within {timeout or self.timeout} s") from None
        except CDPError:
            raise
        except Exception as error:
            raise CDPError(f"CDP {method}: {type(error).__name__}: {error}") from error
        finally:
            self._pending.pop(number, None)
        if "error" in reply:
            raise CDPError(f"CDP {method} failed: {reply['error']}")
        result: CDPParams = reply.get("result", {})
        return result

    async def open(self, url: str, *, context: str | None = None, window: bool = False) -> str:
        """Open ``url`` in a new tab (in browser ``context``, in a ``window`` of its own);
        returns a session id attached to it."""
        params: CDPParams = {"url": url}
        if context is not None:
            params["browserContextId"] = context
        if window:
            params["newWindow"] = True
        target = await self.send("Target.createTarget", params)
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        return str(attached["sessionId"])

    async def evaluate(
        self, session: str, expression: str, timeout: float | None = None
    ) -> Any:  # the page's own JSON value: whatever the expression returned
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True},
            session,
            timeout,
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
        return str(state)

    async def resume(self, session: str) -> None:
        await self.send("Page.setWebLifecycleState", {"state": "active"}, session)


class CDPHost:
    """A run that drives Chromium (the browser runtime, the front-end runtime): its event
    loop and CDP connection, set by its ``start`` and read by its tabs afterwards."""

    _connection: RawCDP | None = None
    _running: asyncio.AbstractEventLoop | None = None

    @property
    def cdp(self) -> RawCDP:
        """The browser's CDP connection, once started."""
        if self._connection is None:
            raise CDPError("no CDP connection yet: the run has not started its browser")
        return self._connection

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop the run plays on, once started."""
        if self._running is None:
            raise CDPError("no event loop yet: the run has not started")
        return self._running


class RawChromium:
    """``async with RawChromium() as cdp:``: Chromium started directly with no Playwright
    attached (Playwright's attachment keeps pages visible), driven by :class:`RawCDP`. The
    whole process group is killed and the profile deleted on exit, also on error.

    :meth:`start` / :meth:`stop` do the same outside ``async with`` (``stop`` is
    idempotent); ``chrome.cdp`` is the connection once started.
    """

    def __init__(self, start_timeout: float = 20.0, extra_flags: tuple[str, ...] = ()) -> None:
        self.start_timeout = start_timeout
        self.extra_flags = extra_flags
        self.proc: subprocess.Popen[bytes] | None = None
        self.profile = ""
        self.cdp: RawCDP | None = None

    async def __aenter__(self) -> RawCDP:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> RawCDP:
        from simkit.browser.chromium import launch

        self.proc, self.profile, _ = await launch(
            self.extra_flags, self.start_timeout, prefix="simkit-rawcdp-"
        )
        try:
            self.cdp = await RawCDP(self.profile).__aenter__()
            return self.cdp
        except BaseException:
            self._kill()
            raise

    async def stop(self) -> None:
        cdp, self.cdp = self.cdp, None
        try:
            if cdp is not None:
                await cdp.__aexit__()
        finally:
            self._kill()

    def _kill(self) -> None:
        from simkit.browser.chromium import kill_group

        proc, self.proc = self.proc, None
        kill_group(proc, self.profile)
