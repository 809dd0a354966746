"""Ground truth on both ends of every connection, kept incrementally.

A production server sees only its side; the simulator sees both, so it can count what
really matters (DESIGN.md, "Ground-truth metrics"). Actors report facts as they happen
(a socket opened on the server, a page load ended, a client saw its socket open); the
census keeps running counters so a sample is cheap, and walks only the registry and the
connected tabs when it samples ``dangling`` and ``unroutable``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simkit.model.registry import Registry

COLUMNS = (
    "t",
    "open_sockets",
    "live_tabs",
    "connected_tabs",
    "registry_entries",
    "stale",
    "dangling",
    "unroutable",
    "duplicates",
    "connects",
)


@dataclass(slots=True)
class ServerSide:
    """The server's end of one connection, as the truth sees it."""

    conn: int
    tab: int | None
    user: str
    opened_at: float
    open: bool = True
    stale: bool = False


@dataclass(slots=True)
class TabTruth:
    """What a tab really is: loaded or not, and which connection is its current one."""

    index: int
    person: str
    live: bool = False  # loaded and wanting a connection
    receiving: bool = False  # its page runs code (not frozen, not gone)
    current: int | None = None  # the connection of the current page load, if any
    connected: bool = False  # the client sees ``current`` open
    user: str = ""  # the id the current load claims
    deaf: bool = False  # frozen or in the back/forward cache: the page runs no code


@dataclass
class Census:
    one_per_user: bool
    tabs: dict[int, TabTruth] = field(default_factory=dict)
    servers: dict[int, ServerSide] = field(default_factory=dict)
    open_sockets: int = 0
    live_tabs: int = 0
    stale: int = 0
    duplicates: int = 0
    connects: int = 0
    kicked_live: int = 0
    refused: int = 0
    duplicate_pushes: int = 0
    detections: list[float] = field(default_factory=list)
    detections_by_kind: dict[str, list[float]] = field(
        default_factory=lambda: {"protocol": [], "app": []}
    )
    pings: int = 0
    pongs: int = 0
    user_open: dict[str, int] = field(default_factory=dict)
    person_live: dict[str, int] = field(default_factory=dict)
    connected: dict[int, TabTruth] = field(default_factory=dict)
    pushes: dict[str, int] = field(
        default_factory=lambda: {
            "sent": 0,
            "delivered": 0,
            "lost_stale": 0,
            "lost_frozen": 0,
            "no_route": 0,
            "buffered": 0,
            "replayed": 0,
            "expired": 0,
            "dropped": 0,
            "offline": 0,
        }
    )
    rows: dict[str, list[float]] = field(default_factory=lambda: {c: [] for c in COLUMNS})

    # -- tabs ------------------------------------------------------------------------------

    def add_tab(self, index: int, person: str) -> TabTruth:
        truth = TabTruth(index, person)
        self.tabs[index] = truth
        return truth

    def page_loaded(self, truth: TabTruth, user: str) -> None:
        if not truth.live:
            self.live_tabs += 1
            self.person_live[truth.person] = self.person_live.get(truth.person, 0) + 1
        truth.live, truth.receiving, truth.user = True, True, user

    def page_ended(self, truth: TabTruth) -> None:
        """The page load is over (reload, close, crash): its sockets are stale from now."""
        if truth.live:
            self.live_tabs -= 1
            self.person_live[truth.person] -= 1
        truth.live = truth.receiving = truth.deaf = False
        self.set_current(truth, None)

    def page_away(self, truth: TabTruth) -> None:
        """The page sits in the back/forward cache: not live (nobody looks at it), not
        ended (it may come back), its socket, if still open, still its current one."""
        if truth.live:
            self.live_tabs -= 1
            self.person_live[truth.person] -= 1
        truth.live = False

    def page_back(self, truth: TabTruth) -> None:
        if not truth.live:
            self.live_tabs += 1
            self.person_live[truth.person] = self.person_live.get(truth.person, 0) + 1
        truth.live = True

    def set_current(self, truth: TabTruth, conn: int | None) -> None:
        """The tab's current connection changes; the previous one, if open, is now stale."""
        old = truth.current
        if old is not None and old != conn:
            self._mark_stale(old)
        truth.current = conn
        self.set_connected(truth, False)

    def set_connected(self, truth: TabTruth, connected: bool) -> None:
        if connected == truth.connected:
            return
        truth.connected = connected
        if connected:
            self.connected[truth.index] = truth
        else:
            del self.connected[truth.index]

    # -- server side -----------------------------------------------------------------------

    def server_opened(self, conn: int, tab: int | None, user: str, now: float) -> None:
        side = ServerSide(conn, tab, user, now)
        self.servers[conn] = side
        self.open_sockets += 1
        self.connects += 1
        count = self.user_open.get(user, 0) + 1
        self.user_open[user] = count
        if count == 2:
            self.duplicates += 1
        truth = self.tabs.get(tab)  # None: a client that is not one of ours (a browser)
        if truth is not None and truth.current != conn:
            self._mark_stale(conn)

    def server_closed(self, conn: int) -> None:
        side = self.servers.get(conn)
        if side is None or not side.open:
            return
        side.open = False
        self.open_sockets -= 1
        if side.stale:
            self.stale -= 1
        count = self.user_open[side.user] - 1
        if count == 1:
            self.duplicates -= 1
        if count:
            self.user_open[side.user] = count
        else:
            del self.user_open[side.user]
        del self.servers[conn]

    def _mark_stale(self, conn: int) -> None:
        side = self.servers.get(conn)
        if side is not None and side.open and not side.stale:
            side.stale = True
            self.stale += 1

    def is_receiving(self, conn: int) -> bool:
        """Would a push down ``conn`` reach a running page that wants it?"""
        side = self.servers.get(conn)
        if side is None or side.stale:
            return False
        truth = self.tabs.get(side.tab)  # type: ignore[arg-type]
        if truth is None:
            return True  # an outside client: assume it listens
        return truth.receiving and truth.connected and truth.current == conn

    def is_deaf(self, conn: int) -> bool:
        """Is ``conn`` its tab's current socket while the page runs no code (frozen or in
        the back/forward cache)? Pushes to it are lost though the socket is fine."""
        side = self.servers.get(conn)
        if side is None or side.stale:
            return False
        truth = self.tabs.get(side.tab)  # type: ignore[arg-type]
        return truth is not None and truth.current == conn and truth.deaf

    def kicked(self, conn: int) -> None:
        """The server closed ``conn`` on purpose; count it if a live tab was using it."""
        side = self.servers.get(conn)
        if side is not None and not side.stale:
            truth = self.tabs.get(side.tab)  # type: ignore[arg-type]
            if truth is not None and truth.live and truth.current == conn and truth.connected:
                self.kicked_live += 1

    def declared_dead(self, silent_since: float | None, now: float, kind: str = "protocol") -> None:
        """A heartbeat of ``kind`` gave up on a connection whose peer went silent (or whose
        page stopped running) at ``silent_since``."""
        if silent_since is not None:
            self.detections.append(now - silent_since)
            self.detections_by_kind[kind].append(now - silent_since)

    # -- sampling --------------------------------------------------------------------------

    def sample(self, now: float, registry: Registry) -> None:
        servers = self.servers
        entries, dangling = registry.audit(servers.__contains__)
        unroutable = 0
        routes_to = registry.routes_to
        for truth in self.connected.values():
            conn = truth.current
            side = servers.get(conn)  # type: ignore[arg-type]
            if side is not None and not routes_to(side.user, conn):  # type: ignore[arg-type]
                unroutable += 1
        row = self.rows
        row["t"].append(now)
        row["open_sockets"].append(self.open_sockets)
        row["live_tabs"].append(self.live_tabs)
        row["connected_tabs"].append(len(self.connected))
        row["registry_entries"].append(entries)
        row["stale"].append(self.stale)
        row["dangling"].append(dangling)
        row["unroutable"].append(unroutable)
        row["duplicates"].append(self.duplicates if self.one_per_user else 0)
        row["connects"].append(self.connects)
