"""The stats protocol's client: ``GET /simkit/registry`` on the target, read with h11.

A target that answers the stats protocol lets the census audit its registry: each tab's
query carries ``simkit_conn=<id>``, and ``GET http://HOST:PORT/simkit/registry`` answers
``{"entries": [[user, simkit_conn], ...]}``. The HTTP/1.1 framing (a length, a chunked body,
or a body that ends when the server closes) is h11's, so the kit holds no HTTP parser of its
own; what is left here is the request, the bounds (one timeout for the whole answer, a
size limit) and the check of the document's shape.

Every way of not getting a usable answer is a :class:`StatsUnavailable` whose message says
which (no answer in time, a refused connection, an HTTP status, a malformed answer, a body
that is not JSON or not that shape): the runtime then reports the registry columns as
unknown with that reason, and never guesses them.
"""

from __future__ import annotations

import asyncio
import json

import h11

from simkit.model.errors import SimkitError

STATS_PATH = "/simkit/registry"
STATS_TIMEOUT = 1.0  # seconds the stats route may take to answer, per poll
MAX_STATS_BYTES = 8 * 2**20
READ_SIZE = 65536

# One registry entry as the target sent it: (user, simkit_conn). The connection id is any
# JSON value; :meth:`~simkit.net.target.mirror.Mirror.of` decides which are the run's.
Entry = tuple[str, object]


class StatsUnavailable(SimkitError):
    """The target's stats route did not give a usable answer (the message says how)."""


class StatsAnswer:
    """h11's client side of one ``GET /simkit/registry``: the request's bytes out, the
    answer's bytes in (as the socket gives them), the body out once it is complete.

    Pure bookkeeping, no I/O, so the framing can be tested by feeding it bytes."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=64 * 1024)
        self.status: int | None = None
        self.chunks: list[bytes] = []
        self.size = 0

    def request(self) -> bytes:
        """The request to write: one GET, then the client is done (``Connection: close``)."""
        head = h11.Request(
            method="GET",
            target=STATS_PATH,
            headers=[
                ("Host", f"{self.host}:{self.port}"),
                ("Accept", "application/json"),
                ("Connection", "close"),
            ],
        )
        parts = (self.conn.send(head), self.conn.send(h11.EndOfMessage()))
        return b"".join(part for part in parts if part is not None)

    def feed(self, data: bytes) -> bytes | None:
        """Take what the socket read (``b""`` when the server closed): the whole body once
        the answer is complete, else None (more to read). Raises :class:`StatsUnavailable`
        on an answer that is not a 200 or not well-formed HTTP/1.1."""
        self.conn.receive_data(data)
        while True:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as error:
                if self.status is None and not data:
                    raise StatsUnavailable(
                        f"GET {STATS_PATH} got no HTTP answer (the target closed the connection)"
                    ) from None
                what = "a malformed answer" if self.status is not None else "no HTTP answer"
                raise StatsUnavailable(f"GET {STATS_PATH} got {what} ({error})") from None
            if event is h11.NEED_DATA:
                return None
            if isinstance(event, h11.Response):
                self.status = event.status_code
                if event.status_code != 200:
                    raise StatsUnavailable(f"GET {STATS_PATH} answered HTTP {event.status_code}")
            elif isinstance(event, h11.Data):
                self.size += len(event.data)
                if self.size > MAX_STATS_BYTES:
                    raise StatsUnavailable(f"GET {STATS_PATH} answered more than 8 MiB")
                self.chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(self.chunks)
            # an InformationalResponse (1xx) is followed by the real answer: read on


def registry_entries(body: bytes) -> list[Entry]:
    """The ``entries`` of a stats answer's body, checked for the documented shape."""
    try:
        document = json.loads(body)
    except ValueError:
        raise StatsUnavailable(f"GET {STATS_PATH} did not answer JSON") from None
    entries = document.get("entries") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not all(
        isinstance(e, list | tuple) and len(e) == 2 and isinstance(e[0], str) for e in entries
    ):
        raise StatsUnavailable(
            f'GET {STATS_PATH} must answer {{"entries": [[user, simkit_conn], ...]}}'
        )
    return [(user, conn) for user, conn in entries]


async def fetch_registry(host: str, port: int, timeout: float = STATS_TIMEOUT) -> list[Entry]:
    """``GET /simkit/registry`` on the target: its ``entries`` as (user, simkit_conn) pairs.
    Raises :class:`StatsUnavailable` saying why when there is no usable answer within
    ``timeout`` seconds (connecting, the request and the whole answer included)."""
    answer = StatsAnswer(host, port)

    async def get() -> bytes:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(answer.request())
            await writer.drain()
            while True:
                body = answer.feed(await reader.read(READ_SIZE))
                if body is not None:
                    return body
        finally:
            writer.transport.abort()

    try:
        async with asyncio.timeout(timeout):
            body = await get()
    except TimeoutError:
        raise StatsUnavailable(f"GET {STATS_PATH} did not answer within {timeout:g} s") from None
    except OSError as error:
        raise StatsUnavailable(f"GET {STATS_PATH} failed: {error}") from None
    return registry_entries(body)
