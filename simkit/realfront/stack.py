"""The post-mortem's whole stack, for real, held open while the kit's tabs play it.

Its FastAPI backend under uvicorn (the post-mortem's handler, ``examples/postmortem_app.py``,
or the same app on the safe adapter, ``examples/fixed_app.py``) and its Next.js front end
(``examples/postmortem_frontend``, ``next dev`` or ``next start``, reaching the backend
through the rewrites or directly): :class:`PostmortemStack` starts both, and
:meth:`PostmortemStack.play` runs a scenario's tabs on the real page in real Chromium
(page mode, :mod:`simkit.browser.frontend`) against the real backend behind the kit's
fault proxy.

Why a thread of its own: :class:`~simkit.net.nextapp.NextApp` and
:class:`~simkit.net.uvicorn_app.UvicornApp` are asyncio objects whose processes die with
the thread that started them, while a test or a notebook cell is plain synchronous code
that calls :func:`simkit.run` (which runs its own loop in a thread). The stack's loop lives
in a daemon thread from :meth:`~PostmortemStack.start` to :meth:`~PostmortemStack.stop`;
``with PostmortemStack(...) as stack:`` stops everything however the block ends, and if
the whole process dies the kernel takes the servers with the thread.

Each socket the page opens dials the kit's proxy (the page's ``?ws=`` parameter: the
page then adds its own ``user`` and ``simkit_conn``, which the backend reads), so the
kit sees both ends; the page's HTTP API call (``GET /api/database/select``, one per load)
takes the way the stack was started with (``via``), and the rewrites proxy's complaints
are counted by :meth:`~simkit.net.nextapp.NextApp.proxy_errors`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from simkit.actors.play import Runtime
from simkit.api import run
from simkit.model.errors import ConfigError, choice
from simkit.net.nextapp import Mode, NextApp, Via
from simkit.net.uvicorn_app import CHECKOUT, UvicornApp
from simkit.runtimes import Browser

if TYPE_CHECKING:
    import pandas as pd

    from simkit.model.strategy import Strategy
    from simkit.results import Result
    from simkit.scenarios import Scenario

T = TypeVar("T")

FRONTEND = CHECKOUT / "examples" / "postmortem_frontend"
# The backend behind the front end: the post-mortem's handler, or the safe adapter.
BACKENDS: dict[str, str] = {
    "postmortem": "examples.postmortem_app:app",
    "safe": "examples.fixed_app:app",
}
Backend = Literal["postmortem", "safe"]
# The page's client code, chosen by its ``?client=`` parameter (no rebuild).
CLIENTS = ("prefix", "postfix")
Client = Literal["prefix", "postfix"]
START_WAIT = 240.0  # seconds: uvicorn, then `next dev` (or a build) and its first page
RUN_SLACK = 120.0  # seconds a play may take beyond its scenario's scaled length


@dataclass(frozen=True)
class KeptBrowser(Browser):
    """:class:`~simkit.runtimes.Browser` that keeps the runtime it built, so the play can
    read the socket tracker's records (every socket's times), which a Result leaves out."""

    kept: list[Runtime] = field(default_factory=list, compare=False, hash=False, repr=False)

    def build(self, scenario: Scenario, strategy: Strategy, *, tabs: int, seed: int) -> Runtime:
        runtime = super().build(scenario, strategy, tabs=tabs, seed=seed)
        self.kept.append(runtime)
        return runtime


@dataclass(frozen=True)
class PagePlay:
    """One scenario played on the real page: the kit's :class:`~simkit.results.Result`,
    every socket as CDP and the proxy saw it (:meth:`SocketTracker.frame
    <simkit.browser.sockets.SocketTracker.frame>`, times in seconds of the monotonic clock),
    and the rewrites proxy's failures counted during the play."""

    client: str
    result: Result
    sockets: pd.DataFrame
    proxy_errors: int


class PostmortemStack:
    """``with PostmortemStack(backend="postmortem", mode="dev", via="rewrites") as stack:``
    the backend on a free loopback port, the front end in front of it, both stopped on the
    way out (error, interrupt or not). ``keep_alive`` is uvicorn's HTTP keep-alive; ``port``
    the backend's (0: a free one)."""

    start_wait: ClassVar[float] = START_WAIT

    def __init__(
        self,
        backend: Backend = "postmortem",
        *,
        mode: Mode = "dev",
        via: Via = "rewrites",
        path: str | Path = FRONTEND,
        keep_alive: float = 5.0,
        port: int = 0,
    ) -> None:
        if backend not in BACKENDS:
            raise choice("backend", backend, list(BACKENDS))
        self.backend_name = backend
        # ``port``: 0 for a free one. A `next build` bakes the backend's URL in, so a fixed
        # port lets `mode="start"` reuse the build of an earlier run with the same settings.
        self.api = UvicornApp(BACKENDS[backend], port, keep_alive=keep_alive)
        # checks mode, via and path at once, before anything starts
        self.app = NextApp(path, mode=mode, backend=self.api.url, via=via)
        self.mode, self.via = mode, via
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- the stack's own loop ----------------------------------------------------------

    def _call(self, work: Coroutine[Any, Any, T], timeout: float) -> T:
        loop = self._loop
        if loop is None:
            work.close()
            raise ConfigError("the stack is not running: use `with PostmortemStack(...)`")
        return asyncio.run_coroutine_threadsafe(work, loop).result(timeout)

    def start(self) -> PostmortemStack:
        """Start the backend, then the front end (bounded by :attr:`start_wait`)."""
        if self._loop is not None:
            return self
        loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=loop.run_forever, name="simkit-postmortem-stack", daemon=True
        )
        self._loop = loop
        self._thread.start()
        try:
            self._call(self._start(), self.start_wait)
        except BaseException:
            self.stop()
            raise
        return self

    async def _start(self) -> None:
        await self.api.start()
        await self.app.start()

    async def _stop(self) -> None:
        try:
            await self.app.stop()
        finally:
            await self.api.stop()

    def stop(self) -> None:
        """Stop the front end and the backend (each waits at most seconds), then the loop."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            self._call(self._stop(), 30.0)
        finally:
            self._loop = self._thread = None
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10.0)
            if not thread.is_alive():
                loop.close()

    def __enter__(self) -> PostmortemStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what a play needs ---------------------------------------------------------------

    @property
    def target(self) -> str:
        """The backend's WebSocket route, which the kit's proxy stands in front of."""
        return self.api.url.replace("http://", "ws://", 1) + "/ws"

    def page(self, client: Client) -> str:
        """The page URL template for page mode: the client code chosen, the socket via
        ``{ws}`` (the kit's proxy)."""
        if client not in CLIENTS:
            raise choice("client", client, list(CLIENTS))
        return f"{self.app.url}/?client={client}&ws={{ws}}"

    def proxy_error_count(self) -> int:
        """Lines of "Failed to proxy ..." the front end has printed so far."""
        errors = self.app.proxy_errors()
        return 0 if errors.empty else int(errors["count"].sum())

    def play(
        self,
        scenario: str | Scenario,
        client: Client,
        *,
        tabs: int = 4,
        duration: float = 30.0,
        settle: float = 10.0,
        scale: float = 0.2,
        seed: int = 0,
    ) -> PagePlay:
        """Play ``scenario`` on the real page (``client`` code) in real Chromium tabs."""
        if self._loop is None:
            raise ConfigError("the stack is not running: use `with PostmortemStack(...)`")
        spec = KeptBrowser(page=self.page(client), target=self.target, scale=scale)
        before = self.proxy_error_count()
        result = run(scenario, runtime=spec, tabs=tabs, duration=duration, settle=settle, seed=seed)
        runtime = spec.kept[-1]
        tracker = getattr(runtime, "tracker", None)
        if tracker is None:
            raise ConfigError(f"{type(runtime).__name__} is not a page runtime")
        return PagePlay(client, result, tracker.frame(), self.proxy_error_count() - before)


__all__ = [
    "BACKENDS",
    "CLIENTS",
    "FRONTEND",
    "KeptBrowser",
    "PagePlay",
    "PostmortemStack",
]
