"""Start and stop a real headless Chromium safely, and attach Playwright to it over CDP.

Chromium is started directly (not by Playwright's ``launch``, which would want
``playwright install``) in its own process group with a fresh profile, so
:meth:`Chromium.stop` can always take the whole group down and delete the profile, also
after a crash or an interrupt; and through :func:`simkit.net.children.spawn`, so the group
dies and the profile goes with the Python process even when that is SIGKILLed. The
calibration (:mod:`simkit.browser.calibrate`) drives it through Playwright.

Playwright cannot hide or freeze a page: for every page of a context it creates it turns on
``Emulation.setFocusEmulationEnabled``, which keeps the page ``visible`` (measured: a second
tab in front leaves it visible, and ``Page.setWebLifecycleState`` frozen then does nothing:
no ``freeze`` event, its timers keep running, it answers app-level pings). So the browser
runtime does not use Playwright: it drives Chromium through raw CDP
(:mod:`simkit.browser.cdp`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from simkit.model.errors import BrowserError
from simkit.net import children
from simkit.net.service import Service

if TYPE_CHECKING:  # Playwright is imported when a browser starts, not with this module
    from playwright.async_api import Browser, BrowserContext, CDPSession, Page, Playwright

CHROMIUM = os.environ.get("SIMKIT_CHROMIUM", "/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-default-browser-check",
    "--disable-dev-shm-usage",
    "--mute-audio",
    "--remote-debugging-port=0",
)


def browser_missing() -> str | None:
    """Why the browser runtime cannot run here, or None when it can."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} not found (apt-get install -y chromium)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright)"
    return None


async def launch(
    extra_flags: tuple[str, ...] = (), start_timeout: float = 20.0, prefix: str = "simkit-chromium-"
) -> tuple[subprocess.Popen[bytes], str, int]:
    """Start headless Chromium in its own process group with a fresh profile; wait (at most
    ``start_timeout`` s) for its DevTools port. Returns (process, profile dir, port). On
    failure the process group is killed and the profile deleted before the error is raised,
    so a caller never inherits a half-started browser. The group dies, and the profile is
    deleted, with this process too, even on SIGKILL (:mod:`simkit.net.children`)."""
    if shutil.which(CHROMIUM) is None:  # checked before any folder is made
        raise BrowserError(
            f"cannot start Chromium: {CHROMIUM} is not an executable file (apt-get install -y "
            "chromium, or set SIMKIT_CHROMIUM)"
        )
    profile = children.temp_dir(prefix)
    proc: subprocess.Popen[bytes] | None = None
    try:
        try:
            proc = children.spawn(
                [CHROMIUM, *FLAGS, *extra_flags, f"--user-data-dir={profile}", "about:blank"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except OSError as error:  # the binary could not be executed
            raise BrowserError(f"cannot start Chromium ({CHROMIUM}): {error}") from error
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + start_timeout
        while True:
            lines = port_file.read_text().split() if port_file.exists() else []
            if lines:
                return proc, profile, int(lines[0])
            if proc.poll() is not None:
                raise BrowserError(f"chromium exited at start with status {proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"chromium did not start within {start_timeout} s")
            await asyncio.sleep(0.05)
    except BaseException:
        kill_group(proc, profile)
        raise


def kill_group(proc: subprocess.Popen[bytes] | None, profile: str | None) -> None:
    """SIGKILL every process of Chromium's group, reap the main one, delete the profile."""
    children.kill(proc)
    children.remove_dir(profile)


def chromium_version() -> str:
    try:
        out = subprocess.run(
            [CHROMIUM, "--version"], capture_output=True, text=True, timeout=20, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.strip().splitlines()[-1] if out.strip() else "unknown"


class Chromium(Service):
    """One headless Chromium process with Playwright attached over CDP.

    ``async with Chromium() as chrome:`` gives ``chrome.browser`` (a Playwright Browser);
    ``await chrome.new_page(context)`` makes a tab; :meth:`cdp` opens a raw CDP session on a
    page; :meth:`kill` is a browser crash (SIGKILL to the main process), :meth:`kill_group`
    takes every Chromium process down at once, :meth:`kill_network_service` kills only the
    network service.
    """

    def __init__(self, *, extra_flags: tuple[str, ...] = (), start_timeout: float = 20.0):
        self.extra_flags = extra_flags
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.profile: str | None = None
        self.playwright: Playwright | None = None
        self.browser: Browser | None = None

    async def start(self) -> None:
        from playwright.async_api import async_playwright

        self.proc, self.profile, port = await launch(self.extra_flags, self.start_timeout)
        self.playwright = await async_playwright().start()
        self.browser = await self.playwright.chromium.connect_over_cdp(
            f"http://127.0.0.1:{port}", timeout=self.start_timeout * 1000
        )

    async def new_context(self) -> BrowserContext:
        if self.browser is None:
            raise BrowserError("Chromium is not started: use async with Chromium()")
        return await self.browser.new_context()

    async def cdp(self, page: Page) -> CDPSession:
        return await page.context.new_cdp_session(page)

    async def crash(self, page: Page) -> None:
        """Crash the page's renderer (CDP ``Page.crash``): no handler runs."""
        session = await self.cdp(page)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(session.send("Page.crash"), timeout=2.0)

    def children(self) -> list[tuple[int, str]]:
        """(pid, command line) of every process in Chromium's process group."""
        if self.proc is None:
            return []
        pgid = self.proc.pid
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.getpgid(int(entry)) != pgid:
                    continue
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, ProcessLookupError):
                continue
            found.append((int(entry), cmd))
        return found

    def kill_network_service(self) -> int:
        """SIGKILL the network service (the process that owns every socket); returns how
        many processes were killed (0: it runs in the browser process here)."""
        killed = 0
        for pid, cmd in self.children():
            if "network.mojom.NetworkService" in cmd:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
        return killed

    def kill(self) -> None:
        """SIGKILL the browser's main process only (its children may linger briefly)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()

    def kill_group(self) -> None:
        children.signal_group(self.proc, signal.SIGKILL)

    async def stop(self) -> None:
        """Detach Playwright, end every Chromium process, delete the profile. Idempotent."""
        browser, self.browser = self.browser, None
        if browser is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(browser.close(), timeout=5.0)
        pw, self.playwright = self.playwright, None
        if pw is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pw.stop(), timeout=5.0)
        proc, self.proc = self.proc, None
        await children.stop(proc, grace=2.0)  # then the stragglers (zygote, utilities)
        profile, self.profile = self.profile, None
        children.remove_dir(profile)
