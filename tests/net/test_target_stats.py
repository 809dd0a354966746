"""The stats protocol's client (``simkit.net.target.stats``): h11 frames the answer, the kit
bounds it and checks its shape, and every way of not getting a usable answer is a
:class:`StatsUnavailable` that names it.

The framing is tested by feeding bytes to :class:`StatsAnswer` (pure CPU, split at every
byte, so no test depends on how a socket happens to cut an answer); then the whole client
against real HTTP servers on 127.0.0.1 written byte by byte (``live``: real sockets, real
time), so the answers are exactly the framings under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import pytest

from simkit.net.target import STATS_PATH, StatsUnavailable, fetch_registry
from simkit.net.target.stats import MAX_STATS_BYTES, StatsAnswer, registry_entries

DOCUMENT = json.dumps({"entries": [["alice", "1"], ["bob", 2]]}).encode()
ENTRIES = [("alice", "1"), ("bob", 2)]


def with_length(body: bytes, status: str = "200 OK") -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n%s" % (status.encode(), len(body), body)


def chunked(body: bytes, size: int = 7) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in pieces)
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"


CLOSE_DELIMITED = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + DOCUMENT


def feed(pieces: Iterable[bytes]) -> bytes | None:
    """What :class:`StatsAnswer` makes of an answer arriving as ``pieces``."""
    answer = StatsAnswer("127.0.0.1", 8000)
    request = answer.request()
    assert request.startswith(b"GET /simkit/registry HTTP/1.1\r\n")
    assert b"host: 127.0.0.1:8000\r\n" in request.lower()
    for piece in pieces:
        body = answer.feed(piece)
        if body is not None:
            return body
    return None


def bytewise(raw: bytes) -> list[bytes]:
    return [raw[i : i + 1] for i in range(len(raw))]


# -- the framing, fed by hand (pure CPU) ----------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [with_length(DOCUMENT), chunked(DOCUMENT), chunked(DOCUMENT, size=1)],
    ids=["content-length", "chunked", "chunked-by-1"],
)
def test_a_framed_body_is_read_whole_however_the_socket_cuts_it(raw):
    assert feed([raw]) == DOCUMENT
    assert feed(bytewise(raw)) == DOCUMENT
    assert feed(bytewise(raw)[:-1]) is None  # one byte short: not complete yet


def test_a_body_without_length_ends_when_the_server_closes():
    assert feed([CLOSE_DELIMITED]) is None  # could go on
    assert feed([CLOSE_DELIMITED, b""]) == DOCUMENT


def test_an_interim_answer_is_skipped_for_the_real_one():
    assert feed([b"HTTP/1.1 100 Continue\r\n\r\n" + with_length(DOCUMENT)]) == DOCUMENT


@pytest.mark.parametrize(
    ("pieces", "message"),
    [
        (
            [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n"],
            "got a malformed answer (illegal chunk header",
        ),
        (
            [b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{}", b""],
            "got a malformed answer (peer closed connection without sending complete "
            "message body (received 2 bytes, expected 50))",
        ),
        ([b"SSH-2.0-OpenSSH_9.2\r\n\r\n"], "got no HTTP answer (illegal status line"),
        ([b""], "got no HTTP answer (the target closed the connection)"),
        ([b"HTTP/1.1 20", b""], "got no HTTP answer (the target closed the connection)"),
        ([with_length(b"nope", "404 Not Found")], "answered HTTP 404"),
        ([with_length(b"", "426 Upgrade Required")], "answered HTTP 426"),
    ],
    ids=["bad-chunk", "truncated", "not-http", "closed", "closed-mid-head", "404", "426"],
)
def test_an_unusable_answer_names_its_problem(pieces, message):
    with pytest.raises(StatsUnavailable, match=r"^GET /simkit/registry ") as caught:
        feed(pieces)
    assert message in str(caught.value)


def test_an_answer_over_the_size_limit_is_refused_before_it_is_all_read():
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_STATS_BYTES + 10)
    answer = StatsAnswer("h", 1)
    answer.request()
    assert answer.feed(head + b"x" * MAX_STATS_BYTES) is None  # exactly the limit: read on
    with pytest.raises(StatsUnavailable, match="more than 8 MiB"):
        answer.feed(b"x")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>", "did not answer JSON"),
        (b"[]", "must answer"),
        (b'{"entries": [["alice"]]}', "must answer"),
        (b'{"entries": [[1, "1"]]}', "must answer"),
        (b'{"entries": {"alice": 1}}', "must answer"),
    ],
)
def test_a_body_of_the_wrong_shape_is_refused(body, message):
    with pytest.raises(StatsUnavailable, match=message):
        registry_entries(body)


def test_the_entries_keep_the_connection_id_as_sent():
    assert registry_entries(DOCUMENT) == ENTRIES
    assert registry_entries(b'{"entries": [], "other": 1}') == []


# -- the whole client against real servers on 127.0.0.1 (live) ------------------------------

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def http_server(answer: Answer) -> AsyncIterator[tuple[int, list[bytes]]]:
    """A loopback server that reads each request's head (kept in the list) and then runs
    ``answer``; closed, with its connections, however the test ends."""
    heads: list[bytes] = []
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            heads.append(await reader.readuntil(b"\r\n\r\n"))
            await answer(reader, writer)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], heads
    finally:
        server.close()
        for writer in writers:
            writer.transport.abort()
        await asyncio.wait_for(server.wait_closed(), 5)


def sends(*pieces: bytes) -> Answer:
    """An answer written in ``pieces``, each flushed before the next (so a chunked body
    really arrives in parts)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.01)

    return answer


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), 20))  # no test may hang


@pytest.mark.live
@pytest.mark.parametrize(
    "answer",
    [
        sends(with_length(DOCUMENT)),
        sends(*(chunked(DOCUMENT)[i : i + 40] for i in range(0, len(chunked(DOCUMENT)), 40))),
        sends(CLOSE_DELIMITED),
    ],
    ids=["content-length", "chunked", "close-delimited"],
)
def test_fetch_registry_reads_each_framing_from_a_real_server(answer):
    async def body() -> None:
        async with http_server(answer) as (port, heads):
            assert await fetch_registry("127.0.0.1", port, timeout=5.0) == ENTRIES
        (head,) = heads
        assert head.startswith(f"GET {STATS_PATH} HTTP/1.1\r\n".encode())
        assert f"host: 127.0.0.1:{port}\r\n".encode() in head.lower()

    run(body)


@pytest.mark.live
def test_a_server_that_never_answers_is_a_bounded_error():
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(60)  # cancelled when the server closes

    async def body() -> None:
        async with http_server(mute) as (port, heads):
            started = time.monotonic()
            with pytest.raises(StatsUnavailable, match=r"did not answer within 0\.3 s"):
                await fetch_registry("127.0.0.1", port, timeout=0.3)
            assert 0.25 < time.monotonic() - started < 2.0
            assert len(heads) == 1  # the request was sent: it is the answer that never came

    run(body)


@pytest.mark.live
@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            sends(
                b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"ent', b"\r\nxyz\r\n"
            ),
            "got a malformed answer (illegal chunk header",
        ),
        (sends(with_length(b'{"entries": [["alice"]]}')), "must answer"),
        (sends(with_length(b"{not json")), "did not answer JSON"),
        (sends(with_length(DOCUMENT)[:-3]), "got a malformed answer (peer closed connection"),
    ],
    ids=["bad-chunk", "bad-shape", "not-json", "truncated"],
)
def test_a_malformed_answer_from_a_real_server_names_the_problem(answer, message):
    async def body() -> None:
        async with http_server(answer) as (port, _):
            with pytest.raises(StatsUnavailable) as caught:
                await fetch_registry("127.0.0.1", port, timeout=5.0)
        assert message in str(caught.value)

    run(body)


@pytest.mark.live
def test_nothing_listening_is_a_stats_unavailable_not_an_os_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: the connection is refused

        async def body() -> None:
            with pytest.raises(StatsUnavailable, match=f"^GET {STATS_PATH} failed: "):
                await fetch_registry("127.0.0.1", port, timeout=5.0)

        run(body)
