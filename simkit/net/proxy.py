"""A fault-injecting TCP proxy with Toxiproxy's vocabulary, for loopback tests.

Every accepted connection gets two pumps (client -> server "upstream", server -> client
"downstream") and a :class:`Toxics` per direction, changeable while it runs:

- ``latency`` (+ ``jitter``): each chunk is held that long; order is kept (TCP is FIFO);
- ``timeout``: a blackhole: data is swallowed and nobody is told (the half-open link);
- ``bandwidth``: bytes per second; ``limit_data``: close after that many bytes;
- ``slow_close``: wait this long before passing on a close;
- ``reset_peer`` (a call, not a setting): abort both sides at once (RST);
- ``down`` (proxy-wide): refuse new connections and cut existing ones;
- ``idle_timeout`` (proxy-wide): cut a connection that carried nothing for that long, as
  nginx does after ``proxy_read_timeout`` (60 s by default). (Next.js's rewrites proxy was
  measured not to: ``simkit/calibration_nextproxy.json``.)

Connections are found by the client's local port, which the client side knows.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass

# A chunk read by a pump, with the loop time at which it may be written out; ``b""`` is the
# peer's FIN, passed on as a half-close.
_Chunk = tuple[float, bytes]


@dataclass
class Toxics:
    latency: float = 0.0
    jitter: float = 0.0
    timeout: bool = False
    bandwidth: float | None = None
    limit_data: int | None = None
    slow_close: float = 0.0


class Piped:
    """One proxied connection."""

    def __init__(
        self,
        proxy: FaultProxy,
        client_port: int,
        cr: asyncio.StreamReader,
        cw: asyncio.StreamWriter,
        sr: asyncio.StreamReader,
        sw: asyncio.StreamWriter,
    ) -> None:
        self.proxy = proxy
        self.client_port = client_port
        self.up = Toxics(**vars(proxy.defaults))
        self.down = Toxics(**vars(proxy.defaults))
        self._cw, self._sw = cw, sw
        # The port of the proxy's own socket to the server: the server sees the connection
        # come from it (its remote address), so it names the connection at the server.
        sockname = sw.get_extra_info("sockname")
        self.upstream_port: int | None = sockname[1] if sockname is not None else None
        self.last_traffic = asyncio.get_running_loop().time()
        self.closed = False
        self.server_gone = False  # the server's side has ended (see FaultProxy.on_closed)
        self._writers: list[asyncio.Task[None]] = []
        self._tasks = [
            asyncio.create_task(self._pump(cr, sw, self.up)),
            asyncio.create_task(self._pump(sr, cw, self.down)),
        ]
        self._tasks[1].add_done_callback(self._server_side_done)

    def _server_side_done(self, task: asyncio.Task[None]) -> None:
        self.server_gone = True
        if self.proxy.on_closed is not None:
            self.proxy.on_closed(self)

    def blackhole(self) -> None:
        """The network dies silently: both directions swallow everything from now on."""
        self.up.timeout = self.down.timeout = True

    def reset_peer(self) -> None:
        """Abort both TCP connections: each side sees a reset, no close frame (1006)."""
        self.closed = True
        for writer in (self._cw, self._sw):
            writer.transport.abort()
        for task in (*self._tasks, *self._writers):
            task.cancel()

    def drop_client(self) -> None:
        """Abort only the client's side; the server's side stays open and silent."""
        self.blackhole()
        self._cw.transport.abort()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, toxics: Toxics
    ) -> None:
        """Read as data arrives and stamp each chunk (and the final FIN) with its release
        time, so a delay starts when the bytes reach the proxy, as on a real path; a
        second task writes them out in order."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Chunk] = asyncio.Queue()
        writer_task = asyncio.create_task(self._release(queue, writer, toxics))
        self._writers.append(writer_task)
        release = 0.0
        try:
            while True:
                data = await reader.read(65536)
                now = loop.time()
                self.last_traffic = now
                if toxics.timeout:
                    if not data:
                        writer_task.cancel()
                        return  # a blackhole does not pass on the close either
                    continue
                if data and self.proxy.on_data is not None:
                    self.proxy.on_data(self, toxics is self.up, data)
                delay = toxics.latency + (self.proxy.rng.random() * toxics.jitter)
                if data and toxics.bandwidth:
                    delay += len(data) / toxics.bandwidth
                if not data:
                    delay += toxics.slow_close
                release = max(now + delay, release)
                queue.put_nowait((release, data))
                if not data:
                    break
        except (ConnectionError, OSError):
            writer.transport.abort()
            writer_task.cancel()
            return
        except asyncio.CancelledError:
            writer_task.cancel()
            raise
        await writer_task

    async def _release(
        self, queue: asyncio.Queue[_Chunk], writer: asyncio.StreamWriter, toxics: Toxics
    ) -> None:
        loop = asyncio.get_running_loop()
        sent = 0
        while True:
            release, data = await queue.get()
            if release > loop.time():
                await asyncio.sleep(release - loop.time())
            if toxics.timeout:
                continue
            if not data:
                with contextlib.suppress(OSError, RuntimeError):
                    writer.write_eof()
                return
            writer.write(data)
            sent += len(data)
            if toxics.limit_data is not None and sent >= toxics.limit_data:
                writer.transport.abort()
                return


class FaultProxy:
    """``async with FaultProxy(upstream_port) as proxy:`` then connect to ``proxy.port``."""

    def __init__(
        self,
        upstream_port: int,
        *,
        upstream_host: str = "127.0.0.1",
        host: str = "127.0.0.1",
        port: int = 0,
        defaults: Toxics | None = None,
        idle_timeout: float | None = None,
        seed: int = 0,
        linger: float = 60.0,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host, self.port = host, port
        self.defaults = defaults or Toxics()
        self.idle_timeout = idle_timeout
        self.rng = random.Random(f"proxy:{seed}")
        self.connections: dict[int, Piped] = {}
        self.down = False
        self._server: asyncio.Server | None = None
        self._idle_task: asyncio.Task[None] | None = None
        self.idle_cuts = 0
        # Accepted connections the upstream server refused (it went away, or stopped
        # listening): a run's validity check reports them (TargetRuntime.losses).
        self.upstream_failures = 0
        self.upstream_failure = ""
        # Told each connection whose server side has ended (its server -> client direction
        # is over: FIN, reset or cut); a target run counts the server's open sockets so.
        self.on_closed: Callable[[Piped], None] | None = None
        # Told every chunk that passes (not one a blackhole swallows), with ``True`` for the
        # client -> server direction: a watcher reads handshakes and close frames from it.
        self.on_data: Callable[[Piped, bool, bytes], None] | None = None
        # The server's sockets of blackholed connections whose both directions are done,
        # held open (see _hold) until ``linger`` s have passed or the proxy closes.
        self.linger = linger
        self._held: dict[asyncio.WriteTransport, asyncio.TimerHandle] = {}

    async def __aenter__(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.idle_timeout is not None:
            self._idle_task = asyncio.create_task(self._reap_idle())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._idle_task is not None:
            self._idle_task.cancel()
        for piped in list(self.connections.values()):
            piped.reset_peer()
        self.connections.clear()
        for transport, handle in self._held.items():
            handle.cancel()
            transport.abort()
        self._held.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def connection(self, client_port: int) -> Piped | None:
        """The proxied connection whose client dialled from ``client_port``."""
        return self.connections.get(client_port)

    def connection_to(self, upstream_port: int) -> Piped | None:
        """The proxied connection the server sees coming from ``upstream_port`` (the remote
        port of its end): how a server-side view finds the path to fault."""
        for piped in self.connections.values():
            if piped.upstream_port == upstream_port:
                return piped
        return None

    def set_down(self, down: bool) -> None:
        """``down``: refuse new connections and reset the existing ones."""
        self.down = down
        if down:
            for piped in list(self.connections.values()):
                piped.reset_peer()

    async def _accept(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        if self.down:
            cw.transport.abort()
            return
        try:
            sr, sw = await asyncio.open_connection(*self.upstream)
        except OSError as error:
            self.upstream_failures += 1
            self.upstream_failure = str(error) or type(error).__name__
            cw.transport.abort()
            return
        port = cw.get_extra_info("peername")[1]
        piped = Piped(self, port, cr, cw, sr, sw)
        self.connections[port] = piped
        try:
            await asyncio.gather(*piped._tasks, return_exceptions=True)
        finally:
            if self.connections.get(port) is piped:
                del self.connections[port]
            # Both directions are done: release the sockets now, except the server's side
            # of a blackholed path, which nothing may reach.
            cw.transport.abort()
            if piped.up.timeout and not piped.closed:
                self._hold(sw.transport)
            else:
                sw.transport.abort()

    def _hold(self, transport: asyncio.WriteTransport) -> None:
        """A dead path tells the server nothing, not even that the proxy is done with it: a
        server that half-closes a blackholed socket (uvicorn's legacy implementation sends
        its FIN one close timeout after its close frame, then waits another for the peer's)
        must wait for a peer that never answers and end the socket itself. Releasing the
        proxy's side at once reset it early: the server's cleanup came a close timeout
        sooner than on a real dead network. Held ``linger`` s, longer than any server's
        give-up, so that long runs do not collect sockets."""
        loop = asyncio.get_running_loop()
        self._held[transport] = loop.call_later(self.linger, self._let_go, transport)

    def _let_go(self, transport: asyncio.WriteTransport) -> None:
        self._held.pop(transport, None)
        transport.abort()

    async def _reap_idle(self) -> None:
        loop = asyncio.get_running_loop()
        limit = self.idle_timeout
        assert limit is not None
        while True:
            await asyncio.sleep(limit / 4)
            now = loop.time()
            for piped in list(self.connections.values()):
                if now - piped.last_traffic >= limit and not piped.up.timeout:
                    self.idle_cuts += 1
                    piped.reset_peer()
