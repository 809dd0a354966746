"""A real Next.js front end, started and stopped by the kit as it does ``redis-server``.

``async with NextApp("examples/postmortem_frontend", mode="dev", backend=url) as app:``
starts ``next dev`` (or ``next build`` then ``next start``) on a free 127.0.0.1 port, waits
(bounded) until it answers its first page, captures every line it prints into
:attr:`NextApp.log`, and stops it on the way out, whatever happened (error, cancel,
KeyboardInterrupt). Its rewrites proxy's complaints become numbers:
:meth:`NextApp.proxy_errors` counts "Failed to proxy <url> ... socket hang up" and the like
by error code and path.

Two ways to reach the backend, as in the post-mortem (the app's ``next.config.ts`` reads
them from the environment):

- ``via="rewrites"``: ``BACKEND_URL`` is set; the app rewrites ``/api/*`` and ``/ws`` to the
  backend, so its bundled http-proxy carries the API calls and the WebSocket upgrades (the
  set-up before the post-mortem's fix);
- ``via="direct"``: ``NEXT_PUBLIC_API_URL`` is set; the page calls the backend itself (the
  fix; the backend must allow the page's origin by CORS).

Both are fixed at ``next build`` time for ``next start``, so a build is keyed on them (and on
the app's sources): the same settings reuse the last build, others get a build directory of
their own (``.next-<key>``, the three newest kept), since a build takes a minute on two
cores. A dev server writes to a directory of its own, removed when it stops.

Nothing outlives the kit's process, by the one mechanism of :mod:`simkit.net.children`:
Node runs in its own process group under a small ``sh`` leader that the kernel kills when
the thread that started it dies (Linux ``PR_SET_PDEATHSIG``), even on SIGKILL, and the
kit's watchdog then kills the whole group (``next dev`` and ``next start`` start Node
children of their own). Stopping kills the group. Start a
NextApp from the thread that lives as long as it (the event loop's thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import time
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import pandas as pd

from simkit.model.errors import ConfigError, ServiceError
from simkit.net.children import die_with, forget_group, watch_group
from simkit.net.service import Service

Mode = Literal["dev", "start"]
Via = Literal["rewrites", "direct"]
MODES = ("dev", "start")
VIAS = ("rewrites", "direct")
MIN_NODE = (18, 18)

HOW_TO_INSTALL = (
    "install Node.js 18.18 or newer and npm (Debian/Ubuntu: apt-get install nodejs npm; "
    "`make frontend` does it as root and runs `npm ci` in the example)"
)

# Lines of the rewrites proxy: "Failed to proxy http://h:p/path [Error: socket hang up]
# { code: 'ECONNRESET' }" (Next.js 15; older ones print the error's fields on the lines that
# follow, and without the brackets).
FAILED = re.compile(
    r"Failed to proxy (?P<url>\S+)\s+\[?(?P<error>[A-Za-z]*Error\b[^\]\n{]*?)\]?\s*(?:\{.*)?$"
)
CODE = re.compile(r"""\bcode:\s*['"](?P<code>[A-Z_0-9]+)['"]""")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
TAIL = 30  # log lines shown in an error
KEEP_BUILDS = 3  # `next build` directories kept per app (one per settings)


class NextAppError(ServiceError):
    """A Next.js app that failed to build or to start; the message ends with its log's tail."""


def node_binary() -> str | None:
    """The ``node`` binary (``SIMKIT_NODE`` or the PATH), or None when Node is not installed."""
    return shutil.which(os.environ.get("SIMKIT_NODE", "node"))


def node_version(node: str) -> tuple[int, int, int]:
    """``node --version`` as numbers (``v20.1.2`` -> ``(20, 1, 2)``)."""
    import subprocess

    out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10)
    match = re.match(r"v(\d+)\.(\d+)\.(\d+)", out.stdout.strip())
    if match is None:
        raise ConfigError(f"{node} --version said {out.stdout.strip()!r}, not a Node.js version")
    return (int(match[1]), int(match[2]), int(match[3]))


def node_missing(path: str | os.PathLike[str] | None = None) -> str | None:
    """Why a Next.js app (at ``path``, when given) cannot run here, or None.

    Node.js and npm must be installed; the app's ``node_modules`` must hold Next.js."""
    node = node_binary()
    if node is None or shutil.which("npm") is None:
        return f"Node.js or npm was not found; {HOW_TO_INSTALL}"
    version = node_version(node)
    if version[:2] < MIN_NODE:
        found = ".".join(map(str, version))
        return f"Node.js {found} is too old for Next.js 15 (18.18 or newer); {HOW_TO_INSTALL}"
    if path is not None and not next_bin(Path(path)).is_file():
        return f"{path} has no node_modules/next: run `npm ci` there (or `make frontend`)"
    return None


def next_bin(path: Path) -> Path:
    return path / "node_modules" / "next" / "dist" / "bin" / "next"


def port_free(port: int) -> bool:
    """Whether a server could listen on ``port`` of 127.0.0.1 now (with SO_REUSEADDR, as
    Node and uvicorn bind: connections of a server just stopped do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The group leader: on SIGTERM (from the kernel when the parent dies, or from stop()) it
# kills its whole process group, Next.js's own children included; otherwise it waits for
# Node and exits with its status.
LEADER = 'trap "kill -KILL 0" TERM INT HUP; "$@" & wait $!'


class NextApp(Service):
    """A Next.js app on 127.0.0.1, run by the kit (see the module's docstring).

    ``path`` is the app's directory (``node_modules`` installed), ``mode`` ``"dev"``
    (``next dev``: StrictMode's double mount, recompiles) or ``"start"`` (``next build`` when
    needed, then ``next start``), ``backend`` the backend's http URL, ``via`` how the page
    reaches it, ``port`` 0 for a free one. ``proxy_timeout`` (seconds) sets the rewrites
    proxy's ``experimental.proxyTimeout`` (30 s when None); ``env`` adds variables."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        mode: Mode = "dev",
        backend: str | None = None,
        via: Via = "rewrites",
        port: int = 0,
        *,
        proxy_timeout: float | None = None,
        env: dict[str, str] | None = None,
        start_timeout: float = 120.0,
        build_timeout: float = 600.0,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, not {mode!r}")
        if via not in VIAS:
            raise ConfigError(f"via must be one of {VIAS}, not {via!r}")
        if backend is not None and not re.match(r"^https?://[^/\s]+/?$", backend):
            raise ConfigError(f"backend must be an http(s) URL with no path, not {backend!r}")
        if not (port == 0 or 1024 <= port <= 65535):
            raise ConfigError(f"port must be 0 (a free one) or 1024..65535, not {port}")
        if proxy_timeout is not None and not 0 < proxy_timeout <= 3600:
            raise ConfigError(f"proxy_timeout must be in (0, 3600] seconds, not {proxy_timeout}")
        self.path = Path(path).resolve()
        if not (self.path / "package.json").is_file():
            raise ConfigError(f"{path} is not a Node.js app (no package.json)")
        self.mode: Mode = mode
        self.backend = backend.rstrip("/") if backend else None
        self.via: Via = via
        self.port = port
        self.proxy_timeout = proxy_timeout
        self.extra_env = dict(env or {})
        self.start_timeout = start_timeout
        self.build_timeout = build_timeout
        self.process: asyncio.subprocess.Process | None = None
        self.built = False  # whether this start ran `next build` (False: reused)
        self._lines: list[tuple[float, str, str]] = []
        self._readers: list[asyncio.Task[None]] = []
        self._t0 = time.monotonic()
        self._dist: str | None = None

    # -- what the app is told -------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self) -> dict[str, str]:
        """The environment that shapes the app (and so keys its build)."""
        env: dict[str, str] = {}
        if self.backend is not None:
            env["BACKEND_URL" if self.via == "rewrites" else "NEXT_PUBLIC_API_URL"] = self.backend
        if self.proxy_timeout is not None:
            env["PROXY_TIMEOUT_MS"] = str(round(self.proxy_timeout * 1000))
        env.update(self.extra_env)
        return env

    def build_key(self) -> str:
        """A hash of the settings and of the app's sources: equal keys share one build."""
        digest = hashlib.sha256(json.dumps(self.settings(), sort_keys=True).encode())
        for file in sorted(self._sources()):
            digest.update(str(file.relative_to(self.path)).encode())
            digest.update(file.read_bytes())
        return digest.hexdigest()[:12]

    def _sources(self) -> list[Path]:
        """The app's own files: not node_modules, build directories, or what Next.js
        writes itself (``next-env.d.ts``, the per-build tsconfig copies)."""
        found = []
        for file in self.path.rglob("*"):
            rel = file.relative_to(self.path).parts
            if rel[0] == "node_modules" or rel[0].startswith(".") or not file.is_file():
                continue
            if file.name == "next-env.d.ts" or re.fullmatch(r"tsconfig\.next-.*\.json", file.name):
                continue
            if file.suffix in {".ts", ".tsx", ".js", ".jsx", ".mjs", ".json", ".css"}:
                found.append(file)
        return found

    def dist_dir(self) -> str:
        """Where Next.js writes: a dev server's own directory (``.next-dev-<port>``, removed
        when it stops), or the build for these settings (``.next-<key>``, kept for reuse)."""
        if self.mode == "dev":
            return f".next-dev-{self.port}"
        return f".next-{self.build_key()}"

    def _prune(self, keep: str | None) -> None:
        """Remove what earlier runs left: dev directories whose server is gone (nobody
        listens on their port, untouched for 10 minutes: a SIGKILLed parent's) and all but
        the :data:`KEEP_BUILDS` newest builds (``keep`` excepted), with their tsconfigs."""
        now = time.time()
        builds = []
        for entry in self.path.glob(".next-*"):
            dev = re.fullmatch(r"\.next-dev-(\d+)", entry.name)
            if dev is not None:
                stale = now - entry.stat().st_mtime > 600 and port_free(int(dev[1]))
                if stale and entry.name != keep:
                    self._remove(entry.name)
            elif re.fullmatch(r"\.next-[0-9a-f]{12}", entry.name) and entry.name != keep:
                builds.append((entry.stat().st_mtime, entry.name))
        for _, name in sorted(builds, reverse=True)[KEEP_BUILDS - 1 :]:
            self._remove(name)

    def _remove(self, dist: str) -> None:
        shutil.rmtree(self.path / dist, ignore_errors=True)
        with contextlib.suppress(OSError):
            (self.path / f"tsconfig{dist}.json").unlink()

    def _env(self, dist: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("BACKEND_URL", "NEXT_PUBLIC_API_URL", "PROXY_TIMEOUT_MS", "NODE_ENV")
        }
        env.update(self.settings())
        env["SIMKIT_DIST_DIR"] = dist
        # Next.js adds the build directory's types to the tsconfig it uses: a copy per
        # build directory (git-ignored) keeps the app's own tsconfig.json untouched.
        tsconfig = f"tsconfig{dist}.json"  # tsconfig.next-<key>.json
        if not (self.path / tsconfig).is_file() and (self.path / "tsconfig.json").is_file():
            shutil.copyfile(self.path / "tsconfig.json", self.path / tsconfig)
        env["SIMKIT_TSCONFIG"] = tsconfig
        env["NEXT_TELEMETRY_DISABLED"] = "1"
        env["FORCE_COLOR"] = "0"
        env["NO_COLOR"] = "1"
        return env

    # -- the log --------------------------------------------------------------------------

    @property
    def log(self) -> pd.DataFrame:
        """Every line the app printed: ``t`` (s since start), ``stream`` (``build``,
        ``stdout``, ``stderr``) and ``line`` (colour codes removed)."""
        return pd.DataFrame(self._lines, columns=["t", "stream", "line"])

    @property
    def lines(self) -> list[tuple[float, str, str]]:
        """The log as ``(t, stream, line)`` tuples (a copy), for parsers of its own."""
        return list(self._lines)

    def elapsed(self) -> float:
        """Seconds since the app was started, on the clock of :attr:`log`'s ``t``."""
        return round(time.monotonic() - self._t0, 4)

    def tail(self, n: int = TAIL) -> str:
        return "\n".join(f"[{s}] {line}" for _, s, line in self._lines[-n:])

    def proxy_errors(self) -> pd.DataFrame:
        """The rewrites proxy's failures, counted: one row per (``code``, ``path``,
        ``error``) with ``count`` and the ``first``/``last`` time seen (s since start).

        A failure is a "Failed to proxy <url> <Error: message>" line; its ``code``
        (``ECONNRESET``, ``ECONNREFUSED``...) is the ``code: '...'`` on its line, else the
        first on the lines that follow it (empty when none is printed). The path is the
        URL's path without its query."""
        rows: list[dict[str, object]] = []
        for t, _stream, line in self._lines:
            match = FAILED.search(line)
            code = CODE.search(line)
            if match is not None:
                path = urlsplit(match["url"]).path or "/"
                error = match["error"].strip()
                code_name = code["code"] if code else ""
                rows.append({"t": t, "path": path, "error": error, "code": code_name})
                continue
            if code is not None and rows and not rows[-1]["code"]:
                rows[-1]["code"] = code["code"]
        columns = ["code", "path", "error", "count", "first", "last"]
        if not rows:
            return pd.DataFrame(columns=columns)
        frame = pd.DataFrame(rows)
        out = (
            frame.groupby(["code", "path", "error"], as_index=False)
            .agg(count=("t", "size"), first=("t", "min"), last=("t", "max"))
            .sort_values("count", ascending=False, kind="stable")
            .reset_index(drop=True)
        )
        return out[columns]

    # -- start and stop -------------------------------------------------------------------

    async def start(self) -> None:
        """Build when needed, start the server and wait until it answers its page; on any
        failure (or cancel) nothing is left running."""
        why = node_missing(self.path)
        if why is not None:
            raise ConfigError(why)
        if self.port == 0:
            self.port = free_port()
        elif not port_free(self.port):
            raise ConfigError(f"port {self.port} on 127.0.0.1 is already in use; pass port=0")
        self._t0 = time.monotonic()
        dist = self._dist = self.dist_dir()
        self._prune(keep=dist)
        try:
            if self.mode == "start":
                await self._build(dist)
            command = "dev" if self.mode == "dev" else "start"
            self.process = await self._spawn(
                [command, "-p", str(self.port), "-H", "127.0.0.1"], dist, command
            )
            await self._wait_ready()
        except BaseException:
            await self.stop()
            raise

    async def _spawn(self, args: list[str], dist: str, what: str) -> asyncio.subprocess.Process:
        node = node_binary()
        assert node is not None  # checked by node_missing
        stream = "build" if what == "build" else None
        process = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            LEADER,
            "simkit-next",
            node,
            str(next_bin(self.path)),
            *args,
            cwd=self.path,
            env=self._env(dist),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            process_group=0,
            preexec_fn=die_with(os.getpid()),
        )
        watch_group(process.pid)
        assert process.stdout is not None and process.stderr is not None
        self._readers += [
            asyncio.create_task(self._read(process.stdout, stream or "stdout")),
            asyncio.create_task(self._read(process.stderr, stream or "stderr")),
        ]
        return process

    async def _read(self, pipe: asyncio.StreamReader, stream: str) -> None:
        while True:
            try:
                raw = await pipe.readline()
            except ValueError:  # a line longer than the reader's limit: take what came
                raw = await pipe.read(65536)
            if not raw:
                return
            line = ANSI.sub("", raw.decode(errors="replace")).rstrip("\r\n")
            self._lines.append((round(time.monotonic() - self._t0, 4), stream, line))

    async def _build(self, dist: str) -> None:
        stamp = self.path / dist / "simkit-build.json"
        key = self.build_key()
        if stamp.is_file() and (self.path / dist / "BUILD_ID").is_file():
            with contextlib.suppress(ValueError, OSError):
                if json.loads(stamp.read_text()).get("key") == key:
                    self.built = False
                    return
        process = await self._spawn(["build"], dist, "build")
        try:
            code = await asyncio.wait_for(process.wait(), self.build_timeout)
        except TimeoutError:
            await self._kill(process)
            raise NextAppError(
                f"next build in {self.path} did not finish within {self.build_timeout} s; "
                f"its log ends:\n{self.tail()}"
            ) from None
        await self._drain()
        if code != 0:
            raise NextAppError(
                f"next build in {self.path} failed (exit status {code}): "
                f"{self._cause()}; its log ends:\n{self.tail()}"
            )
        stamp.write_text(json.dumps({"key": key, "settings": self.settings()}, indent=1))
        self.built = True

    def _cause(self) -> str:
        """The most telling line of a failure: the first error line, else the last line."""
        for _, _, line in self._lines:
            low = line.lower()
            if "error" in low or "failed" in low or "eaddrinuse" in low:
                return line.strip()
        return self._lines[-1][2].strip() if self._lines else "no output"

    async def _drain(self) -> None:
        readers, self._readers = self._readers, []
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*readers, return_exceptions=True), 5)
        for task in readers:
            task.cancel()

    async def _wait_ready(self) -> None:
        """Until the page answers (the first answer of ``next dev`` compiles it), the
        process exits, or ``start_timeout`` passes."""
        assert self.process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        while True:
            if self.process.returncode is not None:
                await self._drain()
                raise NextAppError(
                    f"next {self.mode} in {self.path} exited at start (status "
                    f"{self.process.returncode}): {self._cause()}; its log ends:\n{self.tail()}"
                )
            left = deadline - loop.time()
            if left <= 0:
                raise NextAppError(
                    f"next {self.mode} in {self.path} did not answer on {self.url} within "
                    f"{self.start_timeout} s; its log ends:\n{self.tail()}"
                )
            status = await http_status(self.url + "/", timeout=min(left, 60.0))
            if status is not None:
                if status >= 500:
                    raise NextAppError(
                        f"next {self.mode} in {self.path} answered its page with HTTP {status}; "
                        f"its log ends:\n{self.tail()}"
                    )
                return
            await asyncio.sleep(0.2)

    async def _kill(self, process: asyncio.subprocess.Process) -> None:
        """Kill the process's whole group (Node and its children), then reap the leader."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError, ProcessLookupError):
            await asyncio.wait_for(process.wait(), 5)
        forget_group(process.pid)

    async def stop(self) -> None:
        """Kill the app's process group and wait for it; safe to call twice."""
        process, self.process = self.process, None
        if process is not None:
            await asyncio.shield(self._kill(process))
        await self._drain()
        if self.mode == "dev" and self._dist is not None:
            self._remove(self._dist)  # a dev server's directory is its own, used once
            self._dist = None


async def http_status(url: str, timeout: float = 10.0) -> int | None:
    """The HTTP status of a GET of ``url`` (an ``http://127.0.0.1:port/path``), or None when
    nothing answered within ``timeout``."""
    match = re.match(r"http://([^/:]+):(\d+)(/.*)?$", url)
    if match is None:
        raise ConfigError(f"not an http://host:port URL: {url!r}")
    host, port, path = match[1], int(match[2]), match[3] or "/"
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
                writer.write(request.encode())
                await writer.drain()
                status_line = await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return None
    parts = status_line.split()
    if len(parts) < 2 or not parts[1].isdigit():
        return None
    return int(parts[1])
