"""The parts of a page run that need no browser: the wire reader (handshake and close frames
in any split), the page URL's template and its checks, and the runtime value's rules."""

from __future__ import annotations

import os

import pytest

from simkit.browser.frontend import check_ignore, check_page, fill
from simkit.browser.wire import Wire
from simkit.model.errors import ConfigError
from simkit.runtimes import PAGE_STRATEGY, Browser, as_runtime

REQUEST = (
    b"GET /ws?user=u1&simkit_conn=30001 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n"
    b"Upgrade: websocket\r\nSec-WebSocket-Key: abc==\r\n\r\n"
)
RESPONSE = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"


def frame(opcode: int, payload: bytes, *, masked: bool) -> bytes:
    """One WebSocket frame (FIN set), masked as a client sends it."""
    head = bytes([0x80 | opcode])
    size = len(payload)
    bit = 0x80 if masked else 0
    if size < 126:
        head += bytes([bit | size])
    elif size < 65536:
        head += bytes([bit | 126]) + size.to_bytes(2, "big")
    else:
        head += bytes([bit | 127]) + size.to_bytes(8, "big")
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def feed_in_pieces(wire: Wire, upstream: bool, data: bytes, size: int) -> list[str]:
    learnt = []
    for at in range(0, len(data), size):
        learnt += wire.feed(upstream, data[at : at + size])
    return learnt


@pytest.mark.parametrize("size", [1, 3, 7, 1000])
def test_wire_reads_handshake_and_first_close_in_any_split(size: int) -> None:
    wire = Wire()
    up = (
        REQUEST
        + frame(1, b"x" * 300, masked=True)
        + frame(8, (1000).to_bytes(2, "big") + b"bye", masked=True)
    )
    down = (
        RESPONSE
        + frame(1, b"y" * 70000, masked=False)
        + frame(8, (1001).to_bytes(2, "big"), masked=False)
    )
    learnt = feed_in_pieces(wire, True, up[: len(REQUEST)], size)
    learnt += feed_in_pieces(wire, False, down, size)
    learnt += feed_in_pieces(wire, True, up[len(REQUEST) :], size)
    assert learnt == ["request", "response", "close", "close"]
    assert wire.request == "/ws?user=u1&simkit_conn=30001"
    assert wire.key == "abc=="
    assert wire.status == 101
    assert (wire.server_close, wire.client_close, wire.first_close) == (1001, 1000, "server")


def test_wire_close_without_code_and_refused_handshake() -> None:
    wire = Wire()
    wire.feed(True, REQUEST)
    assert wire.feed(False, b"HTTP/1.1 403 Forbidden\r\n\r\n") == ["response"]
    assert wire.status == 403
    other = Wire()
    other.feed(True, REQUEST)
    other.feed(False, RESPONSE)
    assert other.feed(True, frame(8, b"", masked=True)) == ["close"]
    assert (other.client_close, other.first_close) == (1005, "client")


def test_wire_gives_up_on_a_head_that_never_ends() -> None:
    wire = Wire()
    assert wire.feed(True, b"x" * 20000) == []
    assert wire.request is None and wire.feed(True, b"more") == []


def test_page_template() -> None:
    page = "http://127.0.0.1:3000/app?ws={ws}&who={user}&t={tab}"
    assert check_page(page) == page
    url = fill(page, ws="ws://127.0.0.1:9/ws?user=a b&simkit_conn=1", user="a b", tab=3)
    assert url == (
        "http://127.0.0.1:3000/app?ws=ws%3A%2F%2F127.0.0.1%3A9%2Fws%3Fuser%3Da%20b%26"
        "simkit_conn%3D1&who=a%20b&t=3"
    )


@pytest.mark.parametrize(
    ("page", "says"),
    [
        ("", "http:// URL"),
        (None, "http:// URL"),
        ("ftp://x/", "http:// or https://"),
        ("file:///tmp/a.html", "http:// or https://"),
        ("http://127.0.0.1/?ws={socket}", "unknown field {socket}"),
        ("http://127.0.0.1/?ws={ws", "bad template"),
    ],
)
def test_bad_page_urls(page: object, says: str) -> None:
    with pytest.raises(ConfigError, match=r".*" + says.replace("{", r"\{").replace("}", r"\}")):
        check_page(page)


def test_runtime_value_rules() -> None:
    page = "http://127.0.0.1:3000/?ws={ws}"
    spec = as_runtime("browser", page=page, target="ws://127.0.0.1:8000/ws", scale=0.2)
    assert spec == Browser(page=page, target="ws://127.0.0.1:8000/ws", scale=0.2)
    assert spec.default_strategy() == PAGE_STRATEGY
    assert Browser().default_strategy() is None
    assert spec.info() == {"page": page, "target": "ws://127.0.0.1:8000/ws"}
    with pytest.raises(ConfigError, match="runtime='browser'"):
        as_runtime("live", page=page)
    with pytest.raises(ConfigError, match="need page="):
        Browser(target="ws://127.0.0.1:8000/ws")
    with pytest.raises(ConfigError, match="wss://"):
        Browser(page=page, target="wss://127.0.0.1:8000/ws")
    with pytest.raises(ConfigError, match="do not apply to a page run"):
        as_runtime("browser", page=page, stack="fastapi")
    with pytest.raises(ConfigError, match="bad dev-server URL pattern"):
        check_ignore("(")
    with pytest.raises(ConfigError, match="already says how to run"):
        as_runtime(spec, page=page)


def test_cli_page_option_builds_the_value() -> None:
    from simkit.cli import parser, runtime_of

    args = parser().parse_args(
        ["run", "--page", "http://127.0.0.1:3000/?ws={ws}", "--target", "ws://127.0.0.1:8/ws"]
    )
    spec = runtime_of(args)
    assert isinstance(spec, Browser)
    assert (spec.page, spec.target) == ("http://127.0.0.1:3000/?ws={ws}", "ws://127.0.0.1:8/ws")
