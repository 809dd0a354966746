"""A target's address: the ``ws://`` URL a user names, checked, and the URL each tab dials.

Traffic goes only to the address the user names: the fault proxy's upstream and the stats
route are this URL's own host and port. ``{user}`` in the path or query puts the claimed
user there (else ``user=`` is appended), and every dial carries ``simkit_conn=<id>``, the
connection id the stats protocol echoes back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from simkit.model.errors import ConfigError
from simkit.net.target.stats import STATS_PATH

TARGET_KEEPALIVE = 40.0  # uvicorn's ws_ping_interval + ws_ping_timeout defaults (20 + 20)
CONNECT_TIMEOUT = 3.0  # seconds to reach the target at all before the run starts


@dataclass(frozen=True)
class Target:
    """A parsed target URL: where to connect and how to claim a user."""

    url: str
    host: str
    port: int
    path: str  # may hold ``{user}``
    query: str  # may hold ``{user}``

    @property
    def templated(self) -> bool:
        return "{user}" in self.path or "{user}" in self.query

    def url_for(self, user: str, conn: int, session: str | None = None) -> str:
        """The URL one tab dials: ``{user}`` filled in (else ``user=`` appended), plus
        ``simkit_conn=<conn>`` (and the kit's resume ``session``, if it has one)."""
        quoted = quote(user, safe="")
        path = self.path.replace("{user}", quoted)
        params = [self.query.replace("{user}", quoted)] if self.query else []
        extra: dict[str, str] = {} if self.templated else {"user": user}
        extra["simkit_conn"] = str(conn)
        if session:
            extra["session"] = session
        params.append(urlencode(extra))
        return f"ws://{self.host}:{self.port}{path}?{'&'.join(params)}"

    @property
    def stats_url(self) -> str:
        return f"http://{self.host}:{self.port}{STATS_PATH}"


def parse_target(url: object) -> Target:
    """``ws://HOST[:PORT]/PATH[?QUERY]`` checked; a bad one is a ConfigError naming it."""
    if not isinstance(url, str) or not url:
        raise ConfigError(
            f"target must be a ws:// URL such as 'ws://127.0.0.1:8000/ws', got {url!r}"
        )
    try:
        parts = urlsplit(url)
    except ValueError as error:  # e.g. 'ws://[::1': an unclosed IPv6 bracket
        raise ConfigError(f"target {url!r} is not a URL ({error})") from None
    if parts.scheme == "wss":
        raise ConfigError(
            f"target {url!r}: wss:// is not supported (the fault proxy relays plain TCP); "
            "point target at the server's plain ws:// address"
        )
    if parts.scheme != "ws":
        raise ConfigError(f"target {url!r}: the scheme must be ws://, got {parts.scheme!r}://")
    try:
        port = parts.port or 80
    except ValueError as error:
        raise ConfigError(f"target {url!r}: bad port ({error})") from None
    if not parts.hostname:
        raise ConfigError(f"target {url!r} names no host; e.g. 'ws://127.0.0.1:8000/ws'")
    if parts.fragment:
        raise ConfigError(f"target {url!r}: a WebSocket URL has no #fragment")
    return Target(url, parts.hostname, port, parts.path or "/", parts.query)


def check_keepalive(value: object) -> float:
    """The target's keepalive (seconds from a peer going silent to the server closing it)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"target_keepalive must be a number of seconds, got {value!r}")
    if not (value >= 0 and math.isfinite(value)):
        raise ConfigError(f"target_keepalive must be >= 0 seconds, got {value!r}")
    return float(value)
