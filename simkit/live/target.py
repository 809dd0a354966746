"""Target mode: the kit's tabs against a WebSocket server that is not the kit's.

``simkit.run(scenario, strategy, runtime="live", target="ws://HOST:PORT/PATH")`` plays the
scenario's tabs (the strategy's *client* policy: identity, unload, guard, backoff) through
the kit's :class:`~simkit.net.proxy.FaultProxy` to the user's own server, at scale 1 (a
foreign server's timers are real). The server's registry policy and heartbeat are the
target's own; the strategy's are not used.

The run core (:func:`~simkit.actors.play.play`) needs a server actor, a census and a
network whose ``open_links`` are the server's open sockets. There is no server actor of
ours here, so the ground truth comes from the two places the kit still sees:

- the clients: handshakes (refused, with their HTTP status), close codes and who closed,
  every message a page received;
- the proxy: a server-side socket is open exactly as long as the proxy holds its upstream
  connection (:attr:`FaultProxy.on_closed`), which is exact when all traffic goes through
  it. ``open_sockets``, ``stale`` and ``duplicates`` follow, through the census's own
  methods, as for the kit's servers.

What needs the server's registry (``registry_entries``, ``dangling``, ``unroutable``) is
known only if the target answers the **stats protocol**: each connection's query carries
``simkit_conn=<id>``, and ``GET http://HOST:PORT/simkit/registry`` returns ``{"entries":
[[user, simkit_conn], ...]}``. The runtime polls it once per sampling step (bounded by a
timeout) and hands the census a :class:`Mirror` of the answer, a read-only
:class:`~simkit.model.registry.Registry`; otherwise those columns are NaN and the summary's
``unknown_metrics`` says why. Nothing is guessed.

Traffic goes only to the address the user names: the proxy's upstream and the stats route
are the target's own host and port.
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from websockets.exceptions import InvalidHandshake, InvalidStatus

from simkit.actors.env import Env
from simkit.actors.server import Server
from simkit.live.runtime import LiveRuntime
from simkit.model.codes import CloseCode
from simkit.model.errors import ConfigError, SimkitError
from simkit.model.liveness import CLOSE_TIMEOUT
from simkit.model.registry import Action, Hello, Registry
from simkit.model.strategy import Strategy
from simkit.net.network import LiveLink, LiveNetwork
from simkit.net.proxy import FaultProxy, Piped, Toxics
from simkit.runtime.census import Census
from simkit.runtime.interfaces import Clock, ServerActor

if TYPE_CHECKING:
    from simkit.scenarios import Scenario

TARGET_KEEPALIVE = 40.0  # uvicorn's ws_ping_interval + ws_ping_timeout defaults (20 + 20)
STATS_PATH = "/simkit/registry"
STATS_TIMEOUT = 1.0  # seconds the stats route may take to answer, per poll
OPEN_TIMEOUT = 5.0  # seconds a handshake may take before the tab gives up on it
CONNECT_TIMEOUT = 3.0  # seconds to reach the target at all before the run starts
STARVE_AFTER = 10.0  # a connected tab that heard nothing for this long is starved
MAX_STATS_BYTES = 8 * 2**20
REGISTRY_COLUMNS = ("registry_entries", "dangling", "unroutable")

Auth = Callable[[str], Mapping[str, str]]


class StatsUnavailable(SimkitError):
    """The target's stats route did not give a usable answer (the message says how)."""


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
    parts = urlsplit(url)
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


# -- the server side as seen from outside --------------------------------------------------


class Mirror(Registry):
    """A read-only copy of the target's registry from one answer of the stats route.

    The census audits it as it audits the kit's own registries (``route``, ``entries``,
    ``routes_to``); a new answer is a new Mirror, so the census re-counts everything.
    Entries whose ``simkit_conn`` is not one of the run's connections are ``foreign`` and
    left out (another client of the server, or a server that does not echo the id).

    An answer describes the moment it was asked for, and the census samples a little later:
    with ``before`` (the connections open at the server when the request went out) and
    ``is_open`` (is a connection open now), a sample counts only what the answer can speak
    for. A connection opened since is not called unroutable, and an entry whose socket closed
    since is not called dangling; the next answer covers both."""

    name = "target"
    summary = "the target's own registry, as its stats route reports it"
    one_per_user = False

    def __init__(
        self,
        pairs: Iterable[tuple[str, int]] = (),
        foreign: int = 0,
        *,
        before: frozenset[int] | None = None,
        is_open: Callable[[int], bool] | None = None,
    ) -> None:
        self.map: dict[str, tuple[int, ...]] = {}
        for user, conn in pairs:
            self.map[user] = (*self.map.get(user, ()), conn)
        self.foreign = foreign
        self.before, self.is_open = before, is_open

    def _since(self, conn: int) -> bool:
        """Did ``conn`` open after the answer was asked for (so it cannot speak for it)?"""
        return self.before is not None and conn not in self.before

    @classmethod
    def of(
        cls,
        raw: list[tuple[str, Any]],
        known: Callable[[int], bool],
        *,
        before: frozenset[int] | None = None,
        is_open: Callable[[int], bool] | None = None,
    ) -> Mirror:
        pairs, foreign = [], 0
        for user, conn in raw:
            try:
                number = int(conn)
            except (TypeError, ValueError):
                foreign += 1
                continue
            if known(number):
                pairs.append((user, number))
            else:
                foreign += 1
        return cls(pairs, foreign, before=before, is_open=is_open)

    def connect(self, hello: Hello, now: float) -> list[Action]:
        return []  # the target decides; the next answer of its stats route shows what

    def disconnect(self, conn: int, user: str, now: float) -> list[Action]:
        return []

    def route(self, user: str) -> tuple[int, ...]:
        conns = self.map.get(user, ())
        is_open = self.is_open
        if is_open is None or self.before is None:
            return conns
        before = self.before  # an entry whose socket closed since the answer: left out
        return tuple(conn for conn in conns if is_open(conn) or conn not in before)

    def entries(self) -> list[tuple[str, int]]:
        return [(user, conn) for user in self.map for conn in self.route(user)]

    def routes_to(self, user: str, conn: int) -> bool:
        return conn in self.route(user) or self._since(conn)


class TargetEnd:
    """The target's end of one connection, as far as the kit knows it (a
    :class:`~simkit.runtime.interfaces.ServerEnd` that cannot send: the target pushes on
    its own)."""

    __slots__ = ("code", "id", "link", "session", "user")

    def __init__(self, link: LiveLink) -> None:
        self.link = link
        self.id, self.user, self.session = link.id, link.user, link.session
        self.code: int | None = None  # the close code its page saw, once closed

    @property
    def tab_index(self) -> int | None:
        return int(self.link.tab.index)

    @property
    def silent_since(self) -> float | None:
        return self.link.silent_since

    def send(self, message: tuple[object, ...]) -> None:
        """The kit does not push through a foreign server."""

    def server_close(self, code: int, reason: str = "") -> None:
        """The kit does not close sockets on a foreign server's behalf."""

    def server_dies(self) -> None:
        """The kit does not kill a foreign server's process."""


class TargetServer(Server):
    """The run's server actor for a target: tells the census what the proxy and the
    clients saw; its ``registry`` is the latest :class:`Mirror` of the stats route."""

    def __init__(self, env: Env) -> None:
        super().__init__(env)
        self.registry = Mirror()

    def push(self, person: str, push: int) -> None:
        """The target decides what it pushes: the kit counts what the tabs receive."""


class TargetNetwork(LiveNetwork):
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
        super().__init__(loop, census, None, proxy, scale=1.0, close_timeout=close_timeout)
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
    def open_links(self) -> dict[int, Any]:
        return self.ends  # type: ignore[return-value]

    def dial(self, link: LiveLink) -> tuple[str, dict[str, Any]]:
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

    def decode(self, link: LiveLink, raw: str | bytes) -> dict[str, Any]:
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


# -- the stats protocol --------------------------------------------------------------------


async def fetch_registry(
    host: str, port: int, timeout: float = STATS_TIMEOUT
) -> list[tuple[str, Any]]:
    """``GET /simkit/registry`` on the target: its ``entries`` as (user, simkit_conn) pairs.
    Raises :class:`StatsUnavailable` saying why when there is no usable answer in time."""

    async def get() -> bytes:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            request = (
                f"GET {STATS_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Accept: application/json\r\nConnection: close\r\n\r\n"
            )
            writer.write(request.encode("ascii"))
            await writer.drain()
            chunks, size = [], 0
            while chunk := await reader.read(65536):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_STATS_BYTES:
                    raise StatsUnavailable(f"GET {STATS_PATH} answered more than 8 MiB")
            return b"".join(chunks)
        finally:
            writer.transport.abort()

    try:
        raw = await asyncio.wait_for(get(), timeout)
    except TimeoutError:
        raise StatsUnavailable(f"GET {STATS_PATH} did not answer within {timeout:g} s") from None
    except OSError as error:
        raise StatsUnavailable(f"GET {STATS_PATH} failed: {error}") from None
    head, _, body = raw.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or not status[0].startswith(b"HTTP/"):
        raise StatsUnavailable(f"GET {STATS_PATH} did not get an HTTP answer")
    if status[1] != b"200":
        raise StatsUnavailable(
            f"GET {STATS_PATH} answered HTTP {status[1].decode(errors='replace')}"
        )
    if b"transfer-encoding: chunked" in head.lower():
        body = dechunk(body)
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


def dechunk(body: bytes) -> bytes:
    """The payload of an HTTP/1.1 chunked body (what a server may send instead of a length)."""
    out, rest = [], body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            raise StatsUnavailable(f"GET {STATS_PATH} sent a malformed chunked body") from None
        if size == 0:
            break
        out.append(rest[:size])
        rest = rest[size + 2 :]
    return b"".join(out)


# -- the runtime ---------------------------------------------------------------------------


class TargetRuntime(LiveRuntime):
    """The live runtime's tabs and proxy against the user's own server (no LocalServer)."""

    name = "live"
    default_scale = 1.0

    def __init__(
        self,
        scenario: Scenario,
        strategy: Strategy,
        target: str,
        *,
        auth: Auth | None = None,
        keepalive: float = TARGET_KEEPALIVE,
        seed: int = 0,
        scale: float | None = None,
        stats_timeout: float = STATS_TIMEOUT,
        open_timeout: float = OPEN_TIMEOUT,
        starve_after: float = STARVE_AFTER,
    ) -> None:
        if scale not in (None, 1, 1.0):
            raise ConfigError(
                f"scale must be 1 against a target (its timers are real), got {scale!r}"
            )
        if auth is not None and not callable(auth):
            raise ConfigError(f"auth must be a function user -> headers, got {auth!r}")
        super().__init__(scenario, strategy, scale=1.0, seed=seed)
        self.target = parse_target(target)
        self.auth = auth
        self.keepalive = check_keepalive(keepalive)
        self.stats_timeout = stats_timeout
        self.open_timeout = open_timeout
        self.starve_after = starve_after
        self.stats_problem: str | None = None  # why the stats route is unusable, if it is
        self.stats_polls = self.stats_failures = self.foreign_entries = 0
        self.stats_last_failure = ""
        self.tabs: list[Any] = []
        self.net: TargetNetwork | None = None
        self.core: TargetServer | None = None
        self._poller: asyncio.Task[None] | None = None

    async def start(self) -> None:
        target = self.target
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(target.host, target.port), CONNECT_TIMEOUT
            )
            writer.transport.abort()
        except (OSError, TimeoutError) as error:
            why = str(error) or type(error).__name__
            raise ConfigError(
                f"target {target.url!r} is unreachable: no TCP connection to "
                f"{target.host}:{target.port} within {CONNECT_TIMEOUT:g} s ({why}); "
                "is the server running at that address?"
            ) from None
        try:
            await fetch_registry(target.host, target.port, self.stats_timeout)
        except StatsUnavailable as error:
            self.stats_problem = str(error)
        sc = self.scenario
        toxics = Toxics(latency=sc.latency.base, jitter=sc.latency.jitter)
        self.proxy = FaultProxy(
            target.port,
            upstream_host=target.host,
            defaults=toxics,
            idle_timeout=sc.idle_timeout,
            seed=self.seed,
        )
        await self.proxy.__aenter__()

    def census(self, one_per_user: bool) -> Census:
        # The target's policy is unknown: more than one open socket per claimed id counts.
        return Census(one_per_user=True)

    def network(self, loop: asyncio.AbstractEventLoop, census: Census) -> TargetNetwork:
        assert self.proxy is not None, "start() first"
        self.net = TargetNetwork(
            loop,
            census,
            self.proxy,
            self.target,
            auth=self.auth,
            close_timeout=self.close_timeout,
            open_timeout=self.open_timeout,
        )
        self.networks.append(self.net)
        return self.net

    def server_actor(self, env: Env) -> TargetServer:
        self.core = TargetServer(env)
        return self.core

    async def prepare(self, env: Env, people: list[str]) -> None:
        if self.stats_problem is None:
            self._poller = env.loop.create_task(self._poll(env), name="stats poller")

    async def _poll(self, env: Env) -> None:
        """Ask the stats route once per sampling step, just before each sample."""
        loop, step = env.loop, self.scenario.step
        lead = min(0.1, step / 4)
        n = 0
        while True:
            n += 1
            await asyncio.sleep(max(0.0, env.start + n * step - lead - loop.time()))
            self.stats_polls += 1
            assert self.net is not None
            before = frozenset(self.net.ends)
            try:
                raw = await fetch_registry(
                    self.target.host, self.target.port, min(self.stats_timeout, step * 0.8)
                )
            except StatsUnavailable as error:
                self.stats_failures += 1
                self.stats_last_failure = str(error)
                continue
            ends = self.net.ends
            mirror = Mirror.of(raw, self.net.issued, before=before, is_open=ends.__contains__)
            self.foreign_entries = max(self.foreign_entries, mirror.foreign)
            assert self.core is not None
            self.core.registry = mirror

    def unknown_columns(self) -> tuple[str, ...]:
        return REGISTRY_COLUMNS if self.stats_problem is not None else ()

    def summary(self) -> dict[str, Any]:
        net = self.net
        assert net is not None
        census = net.census
        nan = math.nan
        unknown: dict[str, str] = {}
        extra: dict[str, Any] = {"target": self.target.url, "target_keepalive": self.keepalive}
        if self.stats_problem is not None:
            why = f"needs the target's registry; its stats route is unusable ({self.stats_problem})"
            for column in REGISTRY_COLUMNS:
                unknown[column] = why
                extra.update({f"peak_{column}": nan, f"mean_{column}": nan, f"final_{column}": nan})
        extra.update(stats_polls=self.stats_polls, stats_failures=self.stats_failures)
        extra["registry_foreign_entries"] = self.foreign_entries
        unknown["delivery_ratio"] = (
            "the target pushes on its own; the kit counts what the tabs received "
            "(messages_received, starved_tabs), not what the server meant to send"
        )
        for key in (
            "pushes_sent",
            "pushes_delivered",
            "pushes_lost",
            "pushes_lost_stale",
            "pushes_lost_frozen",
            "pushes_no_route",
        ):
            extra[key] = nan
        unknown["detections"] = "the target's heartbeat verdicts are not visible from outside"
        extra.update(
            detections=nan,
            detection_delay_mean=nan,
            detection_delay_max=nan,
            heartbeat_pings=nan,
            heartbeat_pongs=nan,
        )
        per_tab = [tab.received for tab in self.tabs]
        extra["messages_received"] = net.messages
        extra["messages_per_tab"] = (
            {"min": min(per_tab), "median": statistics.median(per_tab), "max": max(per_tab)}
            if per_tab
            else {}
        )
        extra["binary_messages"] = net.binary
        extra["garbage_messages"] = net.garbage
        if net.messages:
            extra["starved_tabs"] = net.starved(self.starve_after)
        else:
            extra["starved_tabs"] = nan
            unknown["starved_tabs"] = "the target sent no messages, so silence means nothing"
        extra["starve_after"] = self.starve_after
        extra["handshake_refusals"] = dict(sorted(net.refusals.items()))
        extra["closed_by_server"] = {str(k): v for k, v in sorted(net.closes["server"].items())}
        extra["closed_for_client"] = {str(k): v for k, v in sorted(net.closes["client"].items())}
        extra["proxy_outages"] = net.outages
        rows = census.rows
        final_client = bool(
            rows["stale"]
            and rows["stale"][-1] == 0
            and rows["open_sockets"][-1] == rows["connected_tabs"][-1]
            and rows["live_tabs"][-1] == rows["connected_tabs"][-1]
        )
        extra["client_invariants_hold"] = final_client
        if self.stats_problem is not None:
            extra["invariants_hold"] = None  # half of them need the registry: not guessed
            unknown["invariants_hold"] = "dangling and unroutable are unknown"
        extra["notes"] = self._notes(net)
        extra["unknown_metrics"] = unknown
        return extra

    def _notes(self, net: TargetNetwork) -> list[str]:
        """Sentences for what a person pointing the kit at a server must hear first."""
        notes = []
        census = net.census
        if census.connects == 0 and net.refusals:
            what = ", ".join(f"{k} x{v}" for k, v in net.refusals.most_common())
            notes.append(f"the target refused every handshake ({what})")
        if self.stats_problem is not None:
            notes.append(
                f"no stats route ({self.stats_problem}): registry_entries, dangling and "
                "unroutable are unknown (NaN)"
            )
        elif self.stats_failures:
            notes.append(
                f"the stats route failed {self.stats_failures} of {self.stats_polls} polls "
                f"(last: {self.stats_last_failure}); those samples reuse its previous answer"
            )
        if net.binary or net.garbage:
            notes.append(f"the target sent {net.binary} binary and {net.garbage} non-JSON messages")
        return notes

    def tab(self, env: Env, index: int, person: str, storage: Any) -> Any:
        tab = super().tab(env, index, person, storage)
        self.tabs.append(tab)
        return tab

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        await super().stop()
        # No LocalServer stops after the proxy here, so give the proxy's connection tasks
        # (reset by its close) the moment they need to finish before the loop ends.
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=1.0)


def target_settle(strategy: Strategy, keepalive: float) -> float:
    """Long enough after the workload against a target: its keepalive (instead of the
    strategy's heartbeat, which the target does not run), the close timeout, the client's
    longest reconnect delay and its connect guard."""
    backoff = strategy.client.backoff
    return (
        keepalive
        + CLOSE_TIMEOUT
        + max(backoff.max_delay, backoff.first_max)
        + strategy.client.guard_wait
        + 5.0
    )
