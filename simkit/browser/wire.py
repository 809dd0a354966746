"""One proxied WebSocket connection read off the wire: its handshake and its close frames.

A page the kit did not write tells the kit nothing, and CDP never reports a close code. The
fault proxy sits on the path, so it sees the bytes: the request line and headers (the
socket's URL and its ``Sec-WebSocket-Key``, the key that joins the proxy's connection to the
socket CDP reports), the server's status line (101: the server accepted it), and the first
close frame of each direction (its code, and who sent the first). :class:`Wire` is that
reader, sans I/O: fed each chunk as it passes (any split), it returns what it learnt.
Payloads other than a close frame's code are skipped, never buffered.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_HEAD = 16384  # bytes of a request or response head kept before giving up on it


@dataclass
class Direction:
    """One direction's reading state: the head until it ends, then frame by frame."""

    head: bytearray = field(default_factory=bytearray)
    in_frames: bool = False
    buf: bytearray = field(default_factory=bytearray)
    skip: int = 0  # payload bytes of the current frame still to pass over
    closed_with: int | None = None  # the code of the first close frame, once seen


class Wire:
    """What one proxied connection said: ``request`` (the request target, e.g.
    ``/ws?user=u``), ``headers`` (lower-case names), ``status`` (the server's answer),
    and the close codes sent by each side (``client_close`` / ``server_close``, 1005 for a
    close frame with no code) with ``first_close`` (``client`` or ``server``)."""

    def __init__(self) -> None:
        self.up, self.down = Direction(), Direction()
        self.request: str | None = None
        self.headers: dict[str, str] = {}
        self.status: int | None = None
        self.first_close: str | None = None

    @property
    def key(self) -> str | None:
        return self.headers.get("sec-websocket-key")

    @property
    def client_close(self) -> int | None:
        return self.up.closed_with

    @property
    def server_close(self) -> int | None:
        return self.down.closed_with

    def feed(self, upstream: bool, data: bytes) -> list[str]:
        """Read one chunk (``upstream``: client to server); returns what became known:
        ``request``, ``response``, ``close``."""
        side = self.up if upstream else self.down
        learnt: list[str] = []
        if not side.in_frames:
            side.head += data
            end = side.head.find(b"\r\n\r\n")
            if end < 0:
                if len(side.head) > MAX_HEAD:
                    side.head.clear()  # not HTTP: stop looking (a raw TCP client)
                    side.in_frames = True
                return learnt
            head, rest = bytes(side.head[:end]), bytes(side.head[end + 4 :])
            side.head.clear()
            side.in_frames = True
            lines = head.decode("latin-1").split("\r\n")
            if upstream:
                parts = lines[0].split(" ")
                self.request = parts[1] if len(parts) > 1 else ""
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    self.headers[name.strip().lower()] = value.strip()
                learnt.append("request")
            else:
                parts = lines[0].split(" ")
                self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
                learnt.append("response")
            data = rest
        if data and side.closed_with is None and self._frames(side, data):
            if self.first_close is None:
                self.first_close = "client" if upstream else "server"
            learnt.append("close")
        return learnt

    @staticmethod
    def _frames(side: Direction, data: bytes) -> bool:
        """Walk frame headers; True when this chunk completed the first close frame."""
        if side.skip >= len(data):
            side.skip -= len(data)
            return False
        side.buf += data[side.skip :]
        side.skip = 0
        buf = side.buf
        while len(buf) >= 2:
            opcode, masked, size = buf[0] & 0x0F, buf[1] & 0x80, buf[1] & 0x7F
            at = 2
            if size == 126:
                if len(buf) < 4:
                    return False
                size, at = int.from_bytes(buf[2:4], "big"), 4
            elif size == 127:
                if len(buf) < 10:
                    return False
                size, at = int.from_bytes(buf[2:10], "big"), 10
            mask = b""
            if masked:
                if len(buf) < at + 4:
                    return False
                mask, at = bytes(buf[at : at + 4]), at + 4
            if opcode == 0x8:
                if len(buf) < at + min(size, 2):
                    return False
                code = 1005
                if size >= 2:
                    raw = bytes(buf[at : at + 2])
                    if mask:
                        raw = bytes(b ^ mask[i] for i, b in enumerate(raw))
                    code = int.from_bytes(raw, "big")
                side.closed_with = code
                buf.clear()
                return True
            if len(buf) >= at + size:
                del buf[: at + size]
            else:
                side.skip = at + size - len(buf)
                buf.clear()
        return False
