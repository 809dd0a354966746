"""The tabs' side of a target run: the live network's ``websockets`` clients, dialled at the
user's server through the kit's fault proxy, with the server side rebuilt from outside.

There is no server actor of ours here, so the ground truth comes from the two places the
kit still sees:

- the clients: handshakes (refused, with their HTTP status), close codes and who closed,
  every message a page received;
- the proxy: a server-side socket is open exactly as long as the proxy holds its upstream
  connection (:attr:`FaultProxy.on_closed`), which is exact when all traffic goes through
  it. ``open_sockets``, ``stale`` and ``duplicates`` follow, through the census's own
  methods, as for the kit's servers.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Mapping

from websockets.exceptions import InvalidHandshake, InvalidStatus

from simkit.model.codes import CloseCode
from simkit.model.errors import ConfigError
from simkit.model.liveness import CLOSE_TIMEOUT
from simkit.net.network import ClientNetwork, ConnectOptions, LiveLink, ServerMessage
from simkit.net.proxy import FaultProxy, Piped
from simkit.net.target.mirror import TargetEnd
from simkit.net.target.url import Target
from simkit.runtime.census import Census
from simkit.runtime.interfaces import Clock, ServerActor

OPEN_TIMEOUT = 5.0  # seconds a handshake may take before the tab gives up on it
STARVE_AFTER = 10.0  # a connected tab that heard nothing for this long is starved

# The handshake headers for one user (a token, a cookie): the user's own way to log in.
Auth = Callable[[str], Mapping[str, str]]


class TargetNetwork(ClientNetwork):
    """The tabs' side of a target run: the live network's links, dialled at the target
    through the proxy, with the server side reconstructed from the proxy's upstream
    connections and the clients' handshakes."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        census: Census,
        proxy: FaultProxy,
        target: Target,
        *,
        auth: Auth | None = None,
        close_timeout: float = CLOSE_TIMEOUT,
        open_timeout: float = OPEN_TIMEOUT,
    ) -> None:
        super().__init__(loop, census, proxy, scale=1.0, close_timeout=close_timeout)
        self.target = target
        self.auth = auth
        self.open_timeout = open_timeout
        self.core: ServerActor | None = None
        self.ends: dict[int, TargetEnd] = {}  # open at the server: the proxy holds them
        self._by_piped: dict[Piped, TargetEnd] = {}
        self.refusals: Counter[str] = Counter()
        self.closes: dict[str, Counter[int]] = {"server": Counter(), "client": Counter()}
        self.messages = self.binary = self.garbage = 0
        self.last_heard: dict[int, float] = {}  # conn -> when its page last heard anything
        self.outages = 0
        self.finished = False
        self._message_ids = 0
        proxy.on_closed = self._upstream_closed

    @property
    def server(self) -> ServerActor:
        assert self.core is not None, "attach() first"
        return self.core

    def attach(self, clock: Clock, server: ServerActor) -> None:
        self.core = server
        self.env = clock

    @property
    def open_links(self) -> dict[int, TargetEnd]:
        return self.ends

    def dial(self, link: LiveLink) -> tuple[str, ConnectOptions]:
        headers: dict[str, str] | None = None
        if self.auth is not None:
            try:
                headers = dict(self.auth(link.user))
            except Exception as error:
                raise ConfigError(f"auth({link.user!r}) raised {error!r}") from error
        return self.target.url_for(link.user, link.id, link.session), {
            "host": "127.0.0.1",  # the TCP connection goes to the proxy; Host: the target
            "port": self.proxy.port,
            "proxy": None,
            "additional_headers": headers,
            "ping_interval": None,  # browsers do not ping
            "open_timeout": self.open_timeout,
            "close_timeout": self.close_timeout,
            "compression": None,
            "max_size": 2**20,
        }

    def opened(self, link: LiveLink) -> None:
        assert self.core is not None
        end = TargetEnd(link)
        self.last_heard[link.id] = self.env_now()
        self.core.on_open(end)  # census.server_opened: the handshake reached the server
        piped = self.proxy.connection(link.port) if link.port is not None else None
        if piped is None or piped.server_gone:  # already over at the server's end
            self.core.on_close(end, int(CloseCode.ABNORMAL))
            return
        self.ends[link.id] = end
        self._by_piped[piped] = end

    def issued(self, conn: int) -> bool:
        """Is ``conn`` one of this run's connection ids?"""
        return 0 < conn <= self._next_id

    def _upstream_closed(self, piped: Piped) -> None:
        end = self._by_piped.pop(piped, None)
        if end is None or self.finished or self.core is None:
            return
        del self.ends[end.id]
        code = end.code if end.code is not None else int(CloseCode.ABNORMAL)
        self.core.on_close(end, code)

    def refused(self, link: LiveLink, error: BaseException) -> None:
        self.refusals[describe_refusal(error)] += 1
        self.census.count_refusal()

    def decode(self, link: LiveLink, raw: str | bytes) -> ServerMessage:
        """A foreign server's message as a page reads it: the kit's app-level ``ping`` is
        answered, its ``welcome`` kept; anything else (text, JSON of any shape, binary) is a
        message the page received, counted (binary and non-JSON apart)."""
        message: object = None
        if isinstance(raw, bytes):
            self.binary += 1
        else:
            try:
                message = json.loads(raw)
            except ValueError:
                self.garbage += 1
        if isinstance(message, dict):
            kind = message.get("t")
            if kind == "ping":
                return {"t": "ping"}
            if kind == "welcome" and isinstance(message.get("session"), str):
                return {"t": "welcome", "session": message["session"]}
        self.messages += 1
        if link.tab.answers(link, "app"):  # a frozen page hears nothing
            self.last_heard[link.id] = self.env_now()
        self._message_ids -= 1  # never one of the kit's own push ids
        return {"t": "push", "id": self._message_ids}

    def ended(self, link: LiveLink, code: int, by_server: bool) -> None:
        self.closes["server" if by_server else "client"][code] += 1
        end = self.ends.get(link.id)
        if end is not None:
            end.code = code
        if by_server:
            self.census.kicked_tab(link.tab.index, link.id)

    def restart_server(self, downtime: float) -> None:
        """The target's process is not the kit's to restart: the proxy goes down instead
        (every socket reset, new ones refused) for ``downtime`` seconds."""
        self.outages += 1
        self.proxy.set_down(True)
        self.loop.call_later(downtime, self.proxy.set_down, False)

    def starved(self, threshold: float) -> int:
        """Connected tabs whose page heard nothing for more than ``threshold`` seconds."""
        now = self.env_now()
        count = 0
        for truth in self.census.connected.values():
            heard = self.last_heard.get(truth.current) if truth.current is not None else None
            if heard is not None and now - heard > threshold:
                count += 1
        return count

    async def aclose(self) -> None:
        self.finished = True
        await super().aclose()


def describe_refusal(error: BaseException) -> str:
    """A failed handshake in a few words: ``HTTP 403``, ``timeout``, ``connection refused``."""
    if isinstance(error, InvalidStatus):
        return f"HTTP {error.response.status_code}"
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, InvalidHandshake):
        return f"invalid handshake ({type(error).__name__})"
    return f"connection error ({type(error).__name__})"
