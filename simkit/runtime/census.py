"""Ground truth on both ends of every connection, kept incrementally.

A production server sees only its side; the simulator sees both, so it can count what
really matters (the README's "Vocabulary and metrics"). Actors report facts as they happen
(a socket opened on the server, a page load ended, a client saw its socket open); the
census keeps running counters so a sample is cheap. ``dangling`` and ``unroutable`` need the
registry, which changes only when a connection opens or closes on the server: those events
mark their user (and tab) dirty, and a sample re-counts only what is dirty. A full walk of
the registry and of every connected tab costs 20,000 look-ups per sample at 10,000 tabs;
the dirty set is the few hundred that changed since the last one. ``check=True`` does the
full walk as well and raises if the two disagree (the tests run every scenario so).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simkit.runtime.interfaces import RegistryView as Registry

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


class ServerSide:
    """The server's end of one connection, as the truth sees it: its id, its tab's index
    (None: a client that is not one of ours), its user, and from :meth:`Census.opened` on
    when it opened, whether it is still open and whether it is stale.

    The virtual network's connection (``simkit.virtual.network.Link``) is one itself, so
    there a connection is one object, not a link and a record of it; the other runtimes'
    census makes one per connection (:meth:`Census.server_opened`). Only the census writes
    ``opened_at``, ``open`` and ``stale``."""

    __slots__ = ("id", "open", "opened_at", "stale", "tab_index", "user")
    id: int
    tab_index: int | None
    user: str
    opened_at: float
    open: bool
    stale: bool

    def __init__(self, conn: int, tab: int | None, user: str) -> None:
        self.id = conn
        self.tab_index = tab
        self.user = user

    def __repr__(self) -> str:
        return (
            f"ServerSide(id={self.id!r}, tab_index={self.tab_index!r}, user={self.user!r}, "
            f"open={getattr(self, 'open', None)!r}, stale={getattr(self, 'stale', None)!r})"
        )


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
    gave_up: int = 0  # pages that stopped reconnecting because they were replaced
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
    check: bool = False  # also walk everything on each sample, and compare
    # -- the incremental audit (see the module docstring) --
    user_tabs: dict[str, dict[int, int]] = field(default_factory=dict)  # open sides per tab
    _dirty_users: set[str] = field(default_factory=set)
    _dirty_tabs: set[int] = field(default_factory=set)
    _entries: dict[str, int] = field(default_factory=dict)  # user -> registry entries
    _dangling: dict[str, int] = field(default_factory=dict)  # user -> entries not open
    _unroutable: set[int] = field(default_factory=set)  # connected tabs no push reaches
    _entries_total: int = 0
    _dangling_total: int = 0
    _audited: object = None  # the registry the caches describe (a restart makes a new one)
    # -- several nodes (simkit.actors.cluster); both stay empty on one node --
    cluster: dict[str, float] = field(default_factory=dict)  # counters, e.g. cross_node_kicks
    node_rows: dict[str, list[int]] = field(default_factory=dict)  # per-sample node columns

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
        # set_current(truth, None), inline: one call per fact (every reload ends a page)
        old = truth.current
        if old is not None:
            truth.current = None
            side = self.servers.get(old)
            if side is not None and side.open and not side.stale:
                side.stale = True
                self.stale += 1
        self._dirty_tabs.add(truth.index)
        if truth.connected:
            truth.connected = False
            del self.connected[truth.index]

    def page_away(self, truth: TabTruth) -> None:
        """The page sits in the back/forward cache: not live (nobody looks at it), not
        ended (it may come back), its socket, if still open, still its current one."""
        if truth.live:
            self.live_tabs -= 1
            self.person_live[truth.person] -= 1
        truth.live = False

    def page_frozen(self, truth: TabTruth) -> None:
        """The page stops running code (frozen, or in the back/forward cache); its socket,
        if any, stays open and the browser still answers protocol pings."""
        truth.receiving, truth.deaf = False, True

    def page_woke(self, truth: TabTruth) -> None:
        """The page runs code again (resumed, or restored from the cache)."""
        truth.receiving, truth.deaf = True, False

    def claim(self, truth: TabTruth, conn: int) -> None:
        """The page reports ``conn`` as its current socket after the server has already
        seen that socket's handshake (the browser runtime learns of a page's socket from the
        page's own report, which may arrive second): it is current, so not stale."""
        self.set_current(truth, conn)
        side = self.servers.get(conn)
        if side is not None and side.stale:
            side.stale = False
            self.stale -= 1

    def page_gave_up(self, truth: TabTruth) -> None:
        """The page was replaced by another connection of its user and stopped wanting one
        ("opened elsewhere"): it is loaded but no longer a live tab, until it loads again."""
        if truth.live:
            self.live_tabs -= 1
            self.person_live[truth.person] -= 1
        truth.live = False
        self.gave_up += 1

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
        self._dirty_tabs.add(truth.index)
        if truth.connected:  # set_connected(truth, False), inline: twice a reload
            truth.connected = False
            del self.connected[truth.index]

    def set_connected(self, truth: TabTruth, connected: bool) -> None:
        if connected == truth.connected:
            return
        truth.connected = connected
        self._dirty_tabs.add(truth.index)
        if connected:
            self.connected[truth.index] = truth
        else:
            del self.connected[truth.index]

    # -- server side -----------------------------------------------------------------------

    def server_opened(self, conn: int, tab: int | None, user: str, now: float) -> None:
        """A connection opened on the server (a handshake reached it), told by id."""
        self.opened(ServerSide(conn, tab, user), now)

    def opened(self, side: ServerSide, now: float) -> None:
        """A connection opened on the server, told by its own record (the virtual network's
        link is one): every count it changes, changed here."""
        side.opened_at = now
        side.open = True
        side.stale = False
        conn, tab, user = side.id, side.tab_index, side.user
        self.servers[conn] = side
        self.open_sockets += 1
        self.connects += 1
        count = self.user_open.get(user, 0) + 1
        self.user_open[user] = count
        if count == 2:
            self.duplicates += 1
        self._dirty_users.add(user)
        if tab is not None:
            per_tab = self.user_tabs.setdefault(user, {})
            per_tab[tab] = per_tab.get(tab, 0) + 1
        # None: a client that is not one of ours (a browser)
        truth = self.tabs.get(tab) if tab is not None else None
        if truth is not None and truth.current != conn:
            side.stale = True  # _mark_stale(conn) on the side just made: open, not stale
            self.stale += 1

    def server_closed(self, conn: int) -> None:
        """A connection's server end closed (its handler's cleanup ran), told by id."""
        side = self.servers.get(conn)
        if side is not None:
            self.closed(side)

    def closed(self, side: ServerSide) -> None:
        """A connection's server end closed, told by its own record: every count it changes,
        changed here (nothing if it was closed already)."""
        if not side.open:
            return
        conn = side.id
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
        self._dirty_users.add(side.user)
        tab = side.tab_index
        if tab is not None:
            self._dirty_tabs.add(tab)
            per_tab = self.user_tabs[side.user]
            left = per_tab[tab] - 1
            if left:
                per_tab[tab] = left
            elif len(per_tab) > 1:
                del per_tab[tab]
            else:
                del self.user_tabs[side.user]

    def registry_changed(self, user: str) -> None:
        """A handler changed ``user``'s registry entry outside ``on_open``/``on_close`` (the
        post-mortem's handler on the FastAPI server writes its own dict): re-count it."""
        self._dirty_users.add(user)

    def registry_replaced(self) -> None:
        """The registry changed wholesale (a node died or came back, so what routes where
        changed for many users at once): the next audit re-counts everything."""
        self._audited = None

    def count_cluster(self, what: str, n: float = 1) -> None:
        """A cross-node event: ``cross_node_kicks``, ``pushes_via_other_node``,
        ``store_errors``, ``node_crashes``, ..."""
        self.cluster[what] = self.cluster.get(what, 0) + n

    def sample_nodes(self, columns: dict[str, int]) -> None:
        """Per-sample numbers of a run on several nodes (open sockets per node, entries held
        for dead nodes), one value per column, taken with :meth:`sample`."""
        rows = self.node_rows
        for name, value in columns.items():
            rows.setdefault(name, []).append(value)

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
        index = side.tab_index  # None: a client that is not one of the run's tabs
        truth = self.tabs.get(index) if index is not None else None
        if truth is None:
            return True  # an outside client: assume it listens
        return truth.receiving and truth.connected and truth.current == conn

    def is_deaf(self, conn: int) -> bool:
        """Is ``conn`` its tab's current socket while the page runs no code (frozen or in
        the back/forward cache)? Pushes to it are lost though the socket is fine."""
        side = self.servers.get(conn)
        if side is None or side.stale:
            return False
        index = side.tab_index  # None: a client that is not one of the run's tabs
        truth = self.tabs.get(index) if index is not None else None
        return truth is not None and truth.current == conn and truth.deaf

    def kicked(self, conn: int) -> None:
        """The server closed ``conn`` on purpose; count it if a live tab was using it."""
        side = self.servers.get(conn)
        if side is not None and not side.stale:
            index = side.tab_index
            truth = self.tabs.get(index) if index is not None else None
            if truth is not None and truth.live and truth.current == conn and truth.connected:
                self.kicked_live += 1

    def kicked_tab(self, index: int, conn: int) -> None:
        """Tab ``index`` saw the server close ``conn``; count it if that was the socket of a
        live page using it. For runtimes that learn of a server's close from the client side
        only (a target of the user's), when the server's end may already be gone."""
        truth = self.tabs.get(index)
        if truth is not None and truth.live and truth.current == conn and truth.connected:
            self.kicked_live += 1

    def declared_dead(
        self,
        silent_since: float | None,
        now: float,
        kind: str = "protocol",
        deaf_since: float | None = None,
    ) -> None:
        """A heartbeat of ``kind`` gave up on a connection. Its peer has been dead since its
        path went silent (``silent_since``) or, if the path is fine, since its page stopped
        running code (``deaf_since``): the detection delay counts from then. A verdict on a
        peer that was neither (a slow one) is no detection of a dead peer."""
        since = silent_since if silent_since is not None else deaf_since
        if since is not None:
            self.detections.append(now - since)
            self.detections_by_kind[kind].append(now - since)

    # -- counters the actors and networks report -----------------------------------------

    def count_pings(self, pings: int = 1, pongs: int = 0) -> None:
        """Heartbeat traffic: ``pings`` sent, ``pongs`` received."""
        self.pings += pings
        self.pongs += pongs

    def count_pongs(self, pongs: int = 1) -> None:
        self.pongs += pongs

    def count_refusal(self) -> None:
        """The registry refused a connection (reject-new, a limit)."""
        self.refused += 1

    def count_duplicate_push(self) -> None:
        """A page received a push it had already received (resume must deliver once)."""
        self.duplicate_pushes += 1

    def count_push(self, outcome: str, n: int = 1) -> None:
        """``n`` pushes met ``outcome`` (one of :attr:`pushes`' keys)."""
        self.pushes[outcome] += n

    # -- sampling --------------------------------------------------------------------------

    def sample(self, now: float, registry: Registry) -> None:
        entries, dangling, unroutable = self.audit(registry)
        if self.check:
            walked = self.walk(registry)
            if walked != (entries, dangling, unroutable):
                raise AssertionError(
                    f"census at t={now}: incremental (entries, dangling, unroutable) = "
                    f"{(entries, dangling, unroutable)}, a full walk says {walked}"
                )
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

    def audit(self, registry: Registry) -> tuple[int, int, int]:
        """(registry entries, dangling entries, unroutable connected tabs), re-counting only
        the users and tabs marked dirty since the last audit. Relies on ``registry.route``
        returning a user's entries (what :class:`Registry` asks of every policy) and on the
        registry changing only when :meth:`server_opened`/:meth:`server_closed` run in the
        same callback (the Server actor's ``on_open``/``on_close``)."""
        if registry is not self._audited:  # first audit, or a new registry (a restart)
            self._audited = registry
            self._entries, self._dangling, self._unroutable = {}, {}, set()
            self._entries_total = self._dangling_total = 0
            self._dirty_users = {user for user, _ in registry.entries()}
            self._dirty_tabs = set(self.connected)
        servers = self.servers
        if self._dirty_users:
            entries, dangling, user_tabs = self._entries, self._dangling, self.user_tabs
            dirty_tabs = self._dirty_tabs
            route = registry.route
            # Locals, and plain loops over the (mostly one-element) routes: this loop is
            # a tenth of a big run (hundreds of dirty users per sample at 10,000 tabs).
            entries_total, dangling_total = self._entries_total, self._dangling_total
            for user in self._dirty_users:
                conns = route(user)
                n = len(conns)
                d = 0
                for conn in conns:
                    if conn not in servers:
                        d += 1
                if n:
                    entries_total += n - entries.get(user, 0)
                    entries[user] = n
                else:
                    entries_total -= entries.pop(user, 0)
                if d:
                    dangling_total += d - dangling.get(user, 0)
                    dangling[user] = d
                elif dangling:
                    dangling_total -= dangling.pop(user, 0)
                tabs = user_tabs.get(user)
                if tabs:
                    dirty_tabs.update(tabs)
            self._entries_total, self._dangling_total = entries_total, dangling_total
            self._dirty_users = set()
        if self._dirty_tabs:
            unroutable, connected, routes_to = self._unroutable, self.connected, registry.routes_to
            for index in self._dirty_tabs:
                truth = connected.get(index)
                current = None if truth is None else truth.current
                side = None if current is None else servers.get(current)
                if side is not None and current is not None and not routes_to(side.user, current):
                    unroutable.add(index)
                else:
                    unroutable.discard(index)
            self._dirty_tabs = set()
        return self._entries_total, self._dangling_total, len(self._unroutable)

    def walk(self, registry: Registry) -> tuple[int, int, int]:
        """The same three counts from a full walk of the registry and the connected tabs."""
        servers = self.servers
        entries, dangling = registry.audit(servers.__contains__)
        unroutable = 0
        for truth in self.connected.values():
            conn = truth.current
            side = None if conn is None else servers.get(conn)
            if side is not None and conn is not None and not registry.routes_to(side.user, conn):
                unroutable += 1
        return entries, dangling, unroutable
