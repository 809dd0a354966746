"""How a server's WebSocket implementation orders a close: the virtual network's profile.

Three facts decide the cleanup race, and they differ between implementations (measured,
``simkit/calibration_fastapi.json``; ``python -m simkit calibrate --stack fastapi``):

- ``cleanup``: when a handler's cleanup runs after the page called ``close()``. ``handshake``:
  once the closing handshake is complete, three one-way trips after the page's close
  (``websockets``' servers, and uvicorn's legacy implementation); ``frame``: as soon as the
  close frame arrives, one trip (uvicorn's ``websockets-sansio`` and ``wsproto``).
- ``server_close``: what a server-initiated close does to the closed connection's handler.
  ``waits-echo``: its cleanup runs when the page's echo arrives (or the server gives up after
  ``give_up`` close timeouts); ``at-once``: ``close()`` queues the disconnect and returns, so
  the old handler's cleanup runs at once, before the echo (sansio, wsproto).
- ``server_close_trips``: one-way trips from a server's close frame to the closed handler's
  cleanup when the page answers: 2 (the echo: the kit's ``websockets`` server as the model
  always played it) or 4 (uvicorn's legacy implementation, measured: after the echo the
  server half-closes TCP and waits for the page's end to close too). Frames that cross
  (both ends closing at once) end the same way, from the page's frame on.
- ``give_up``: how many close timeouts a server close waits for an echo that never comes (a
  half-open peer): 1 for ``websockets``, 2 for uvicorn's legacy implementation (its
  ``close()`` waits for the close frame, then for the connection to end).
- ``close_awaits``: a handler that awaits another socket's ``close()`` stays blocked until
  that socket is closed, and then wakes together with that socket's own handler (legacy
  uvicorn): the post-mortem's handler there is
  :class:`~simkit.model.registry.CloseAwaitRegister`, and who wakes first decides between
  the strand (the server's close) and the self-kill (the page's close was in flight).
- ``ping_outlives_close``: a server close does not stop a protocol ping already sent (legacy
  uvicorn: its keepalive runs until the closing handshake gives up, one close timeout after
  the close frame): if that ping's timeout falls within the close timeout, the connection
  fails there (1011, a detection) and its cleanup runs one close timeout later, before the
  close would have given up on the echo. No new ping is sent once closing.

The default profile, ``websockets``, is the kit's own server: the model as it always was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from simkit.model.errors import choice


@dataclass(frozen=True, slots=True)
class TransportProfile:
    """One server implementation's close ordering (see the module docstring)."""

    name: str
    cleanup: Literal["handshake", "frame"] = "handshake"
    server_close: Literal["waits-echo", "at-once"] = "waits-echo"
    give_up: float = 1.0
    server_close_trips: int = 2
    close_awaits: bool = False
    ping_outlives_close: bool = False
    summary: str = ""

    @property
    def cleanup_trips(self) -> int:
        """One-way trips from the page's ``close()`` to the handler's cleanup."""
        return 1 if self.cleanup == "frame" else 3


PROFILES: dict[str, TransportProfile] = {
    p.name: p
    for p in (
        TransportProfile(
            "websockets",
            summary="the kit's websockets server: cleanup after the closing handshake",
        ),
        TransportProfile(
            "fastapi/websockets-sansio",
            cleanup="frame",
            server_close="at-once",
            summary="uvicorn's default: cleanup when the close frame arrives; close() "
            "returns at once and the old handler sees its disconnect at once",
        ),
        TransportProfile(
            "fastapi/websockets",
            give_up=2.0,
            server_close_trips=4,
            close_awaits=True,
            ping_outlives_close=True,
            summary="uvicorn's legacy implementation: close() waits for the handshake (a "
            "handler awaiting it is blocked meanwhile); a half-open peer: two close timeouts, or "
            "a ping already sent times out first",
        ),
        TransportProfile(
            "fastapi/wsproto",
            cleanup="frame",
            server_close="at-once",
            summary="uvicorn on wsproto: as websockets-sansio",
        ),
    )
}


def transport_profile(stack: str = "websockets", ws: str | None = None) -> TransportProfile:
    """The profile of ``stack`` (``websockets`` or ``fastapi``) under implementation ``ws``
    (for FastAPI: ``websockets-sansio``, its default, ``websockets`` or ``wsproto``)."""
    if stack == "websockets" and ws in (None, "websockets"):
        return PROFILES["websockets"]
    if stack == "fastapi":
        key = f"fastapi/{ws or 'websockets-sansio'}"
        if key in PROFILES:
            return PROFILES[key]
        valid = [name.split("/", 1)[1] for name in PROFILES if name.startswith("fastapi/")]
        raise choice(f"ws implementation for stack {stack!r}", ws, valid)
    if stack == "websockets":
        raise choice(f"ws implementation for stack {stack!r}", ws, ["websockets"])
    raise choice("stack", stack, ["websockets", "fastapi"])
