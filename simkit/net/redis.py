"""A real Redis for the live runtime's nodes: started by the kit, and the store they share.

:class:`RedisServer` starts Debian's ``redis-server`` on a free loopback port with a
temporary directory and no persistence (``--save "" --appendonly no``), and stops it
afterwards, even when the run failed, so nothing is left running; started through
:func:`simkit.net.children.spawn`, it also dies (and its directory goes) with the Python
process that started it, even on SIGKILL. :class:`RedisStore` is
the live counterpart of :class:`simkit.actors.cluster.VirtualStore`: the same commands
(``open``, ``close``, ``get``, ``refresh``, a pub/sub relay) sent to Redis through the
``redis`` package's asyncio client, each one atomic in Redis (``SET ... GET``, a
compare-and-delete script, a refresh script). It keeps a mirror of what Redis holds, fed by
the replies in the order Redis executed the commands (one connection), which the census's
merged registry reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable
from typing import Any, Protocol, cast

from simkit.actors.cluster import FAILED, StoreFailed, StoreResult
from simkit.actors.env import Env
from simkit.model.cluster import ClusterPolicy, Entry, Store
from simkit.model.errors import ConfigError
from simkit.net import children

REDIS_SERVER = os.environ.get("SIMKIT_REDIS_SERVER", "redis-server")

HOW_TO_START = (
    "install it (Debian/Ubuntu: apt-get install redis-server; `make redis` does it as root) "
    "or set SIMKIT_REDIS_SERVER to the redis-server binary"
)

# Compare-and-delete: remove the key only if it still names this connection.
CAD = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
# A node's heartbeat: for each (key, value), write it with the TTL if the key is missing or
# already this value; leave keys that name another socket. Returns the keys written.
REFRESH = """
local written = {}
for i, key in ipairs(KEYS) do
  local cur = redis.call('GET', key)
  if (not cur) or cur == ARGV[i + 1] then
    redis.call('SET', key, ARGV[i + 1], 'PX', ARGV[1])
    table.insert(written, key)
  end
end
return written
"""


def redis_binary() -> str | None:
    """The redis-server binary, or None when it is not installed."""
    return shutil.which(REDIS_SERVER)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """``redis-server`` on 127.0.0.1, a free port, a temporary dir, no persistence.

    ``async with RedisServer() as redis: redis.url``. :meth:`pause`/:meth:`resume` stop and
    continue the process (SIGSTOP/SIGCONT): the store is unreachable, as in a failover."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.dir: str | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self, timeout: float = 10.0) -> None:
        binary = redis_binary()
        if binary is None:
            raise ConfigError(f"redis-server was not found; {HOW_TO_START}")
        self.dir = children.temp_dir("simkit-redis-")
        self.port = free_port()
        self.process = children.spawn(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
                "--protected-mode",
                "yes",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self.process.poll() is not None:
                err = (
                    self.process.stderr.read().decode(errors="replace")
                    if self.process.stderr
                    else ""
                )
                self._cleanup()
                raise ConfigError(f"redis-server exited at start: {err.strip()[:300]}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
                return
            except OSError:
                if loop.time() > deadline:
                    await self.stop()
                    raise ConfigError(
                        f"redis-server did not accept connections on port {self.port} within "
                        f"{timeout} s"
                    ) from None
                await asyncio.sleep(0.02)

    def pause(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    async def stop(self) -> None:
        """Kill the server and remove its directory; never leaves a process behind."""
        process, self.process = self.process, None
        await children.stop(process, grace=5.0)
        if process is not None and process.stderr is not None:
            process.stderr.close()
        self._cleanup()

    def _cleanup(self) -> None:
        directory, self.dir = self.dir, None
        children.remove_dir(directory)

    async def __aenter__(self) -> RedisServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class RedisAt:
    """A Redis somebody else started (``serve --redis URL``): its address only. The kit
    cannot pause a process it does not own, so ``redis-blip`` is not played against it."""

    def __init__(self, url: str) -> None:
        if not isinstance(url, str) or not url.startswith(("redis://", "unix://")):
            raise ConfigError(f"--redis must be a redis:// or unix:// URL, got {url!r}")
        self.url = url

    def pause(self) -> None:
        raise ConfigError(f"the Redis at {self.url} was not started by the kit: it cannot pause it")

    def resume(self) -> None:  # pragma: no cover (pause never succeeds)
        pass


class RedisEndpoint(Protocol):
    """The Redis a :class:`RedisStore` talks to: one the kit runs (:class:`RedisServer`),
    or one somebody else started (:class:`RedisAt`, which refuses to pause)."""

    @property
    def url(self) -> str: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...


# What a node in its own process may be asked to do by another node over pub/sub (the
# Cluster method and its plain arguments): the kick of an old socket.
REMOTE_CALLS = ("_kick_remote",)


# A command waiting for the connection: (node, op, args, done), as ``submit`` takes them.
_Command = tuple[int, str, tuple[object, ...], Callable[[Any], None]]  # done: see submit


def _value(node: int, conn: int) -> str:
    return f"{node}:{conn}"


def _entry(raw: bytes | str | None, expires: float | None) -> Entry | None:
    if raw is None:
        return None
    node, conn = (raw.decode() if isinstance(raw, bytes) else raw).split(":")
    return Entry(int(node), int(conn), expires)


class RedisStore:
    """The nodes' shared registry in a real Redis (see the module docstring). ``env`` is
    the run's (scenario seconds x ``env.scale`` = wall seconds)."""

    def __init__(self, env: Env, policy: ClusterPolicy, server: RedisEndpoint) -> None:
        import redis.asyncio as aioredis

        self.env = env
        self.policy = policy
        self.server = server
        self.client = aioredis.Redis.from_url(
            server.url,
            single_connection_client=True,  # one connection: replies in execution order
            socket_timeout=max(0.1, 2.0 * env.scale),  # 2 scenario seconds: then it failed
            socket_connect_timeout=1.0,
        )
        self.mirror = Store()
        self.ops = 0
        self.prefix = "simkit:user:"
        self.queue: asyncio.Queue[_Command] = asyncio.Queue()
        self.worker: asyncio.Task[None] | None = None
        self.on_expired: Callable[[str], None] = lambda user: None
        # None: every node is in this process (the run's nodes). K: this process hosts node
        # K only (``serve --redis``); a relay to another node is a real PUBLISH it acts on.
        self.hosted: int | None = None
        self._cad = self.client.register_script(CAD)
        self._refresh = self.client.register_script(REFRESH)

    async def check(self) -> None:
        """Fail at start, with how to fix it, if Redis does not answer."""
        try:
            await self.client.ping()
        except Exception as error:  # any failure means: not reachable
            raise ConfigError(
                f"Redis at {self.server.url} is not reachable ({error}); {HOW_TO_START}"
            ) from error

    # -- the VirtualStore face -------------------------------------------------------------

    def submit(
        self, node: int, op: str, args: tuple[object, ...], done: Callable[[Any], None]
    ) -> None:
        self.queue.put_nowait((node, op, args, done))
        if self.worker is None:
            self.worker = asyncio.get_running_loop().create_task(self._work())

    def relay(self, src: int, dst: int, fn: Callable[..., None], *args: object) -> bool:
        """Pub/sub to another node: PUBLISH through Redis; the node acts on the reply. When
        this process hosts one node only, another node's work is sent as the message (a
        name of :data:`REMOTE_CALLS` and plain arguments) and that node's process runs it;
        what cannot travel so (a forwarded push) is lost, and the relay says False."""
        if self.hosted is None or dst == self.hosted:
            self.submit(src, "publish", (dst,), lambda ok: None if ok is FAILED else fn(*args))
            return True
        name = getattr(fn, "__name__", "")
        if name not in REMOTE_CALLS or not all(isinstance(a, int | str) for a in args):
            return False
        self.submit(src, "publish", (dst, json.dumps([name, list(args)])), lambda ok: None)
        return True

    def entries(self) -> dict[str, Entry]:
        return self.mirror.data

    def down_for(self, seconds: float) -> None:
        """Redis stops answering for ``seconds`` scenario seconds (SIGSTOP, then SIGCONT)."""
        self.server.pause()
        asyncio.get_running_loop().call_later(seconds * self.env.scale, self.server.resume)

    async def aclose(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            with contextlib.suppress(BaseException):
                await self.worker
        with contextlib.suppress(Exception):
            await self.client.aclose()

    # -- commands, one at a time on one connection -----------------------------------------

    async def _work(self) -> None:
        while True:
            node, op, args, done = await self.queue.get()
            result: StoreResult | StoreFailed
            try:
                result = await self._run(node, op, args)
            except asyncio.CancelledError:
                raise
            except Exception:  # unreachable, timed out: the command failed
                result = FAILED
            done(result)

    async def _run(self, node: int, op: str, args: tuple[Any, ...]) -> StoreResult:  # args:
        # each op's own shape (see Cluster's calls of submit), unpacked per op below
        # (each command's arguments have their own shape: see Cluster's calls of submit)
        policy, now, key = self.policy, self.env.now(), self.prefix
        ttl_ms = None if policy.ttl is None else max(1, round(policy.ttl * self.env.scale * 1000))
        expires = None if policy.ttl is None else now + policy.ttl
        self.ops += 1
        if op == "open":
            user, conn = args
            # SET with GET replies the value it replaced, or nil: redis-py's annotation covers
            # every form of SET (True/False without GET), hence the cast.
            raw = cast(
                bytes | None,
                await self.client.set(key + user, _value(node, conn), px=ttl_ms, get=True),
            )
            old = self.mirror.set(user, Entry(node, conn, expires), now)
            self._watch(user)
            old = _entry(raw, None) if raw is not None else old
            # (node, conn): node processes number their connections independently
            return old if old is not None and (old.node, old.conn) != (node, conn) else None
        if op == "close":
            user, conn = args
            if policy.safe_delete:
                gone = await self._cad(keys=[key + user], args=[_value(node, conn)])
                if gone:
                    self.mirror.delete_if(user, node, conn, now)
            else:
                gone = await self.client.delete(key + user)
                self.mirror.delete(user, now)
            return bool(gone)
        if op == "get":
            user = args[0]
            return _entry(await self.client.get(key + user), None)
        if op == "refresh":
            held = args[0]
            self.ops += max(0, len(held) - 1)
            keys = [key + user for user, _ in held]
            values = [_value(node, conn) for _, conn in held]
            raw = await self._refresh(keys=keys, args=[ttl_ms or 1, *values])
            written = [(k.decode() if isinstance(k, bytes) else k)[len(key) :] for k in raw]
            mine = dict(held)
            self.mirror.refresh(node, [(u, mine[u]) for u in written], policy.ttl or 0.0, now)
            for user in written:
                self._watch(user)
            return written
        if op == "publish":
            await self.client.publish(f"simkit:node:{args[0]}", args[1] if args[1:] else "msg")
            return True
        raise ValueError(f"unknown store command {op!r}")

    def _watch(self, user: str) -> None:
        entry = self.mirror.data.get(user)
        if entry is not None and entry.expires is not None:
            self.env.call_later(entry.expires - self.env.now(), self._expire, user)

    def _expire(self, user: str) -> None:
        entry = self.mirror.data.get(user)
        if entry is not None and entry.expires is not None and entry.expires <= self.env.now():
            del self.mirror.data[user]
            self.on_expired(user)
