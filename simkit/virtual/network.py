"""The in-memory network of the virtual runtime: one :class:`Link` per WebSocket.

It models what makes the cleanup race real, and nothing more: per-direction latency drawn
from the tab's own random stream, FIFO order in each direction (TCP), the opening handshake
(the server registers the socket one trip before the client sees it open), the close
handshake with its codes, a link that goes silent (half-open: nothing arrives either way and
nobody is told), a reset (the server sees 1006), a server that does not answer (restart), and
the server's keepalive, which runs here as websockets runs it inside its connection.

Deliveries are scheduled on the virtual clock with ``VirtualLoop.post_at`` (``call_at``
without a handle); zero latency still goes through the loop, so a message never arrives
inside the call that sent it. But with zero latency a reply that arrives in the instant it
was provoked (the 101 answering a handshake, the echo answering a close frame, a pong) is
settled in the step that provoked it, and a heartbeat that can only be answered coasts (see
:class:`Keepalive`): half the steps of a big zero-latency run. What one event causes still
comes after it, in order. Only independent events that fall on the very same instant may
come in another order than through the loop: rare with random times, but every spell a
scenario cuts short ends at the workload's last instant, and there two tabs of one person
may see their kicks differently. Tests hold whole zero-latency runs equal both ways for the
scenarios and strategies they name (``tests/virtual/test_network.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVarTuple

from simkit.model.codes import CloseCode
from simkit.model.connection import ClientState, ServerState, client_step, server_step
from simkit.model.latency import Latency
from simkit.model.liveness import Heartbeat, Liveness
from simkit.model.transport import PROFILES, TransportProfile
from simkit.runtime.census import Census, ServerSide

if TYPE_CHECKING:
    from simkit.actors.env import Post
    from simkit.runtime.interfaces import Clock, Message, ServerActor, TabCallbacks

Ts = TypeVarTuple("Ts")

# The states as module names: an Enum member looked up on its class costs five times a
# global here, and the links compare states on every message.
CONNECTING, OPEN, CLOSING, CLOSED = (
    ClientState.CONNECTING,
    ClientState.OPEN,
    ClientState.CLOSING,
    ClientState.CLOSED,
)
NONE, S_OPEN, S_CLOSING, S_CLOSED = (
    ServerState.NONE,
    ServerState.OPEN,
    ServerState.CLOSING,
    ServerState.CLOSED,
)
LIVE = (OPEN, CLOSING)  # the page's end still answers pings and echoes a close
S_LIVE = (S_OPEN, S_CLOSING)  # the server's handler has not finished


class Link(ServerSide):
    """One WebSocket between a tab and the server, with both ends' states: the one object
    of a connection that the tab, the server, the network and the census all hold (it is
    the census's record of its server end, a :class:`ServerSide`).

    ``client`` and ``server`` move only through :mod:`simkit.model.connection`'s table
    (connecting -> open -> closing -> closed at the page, none -> open -> closing -> closed
    at the server); an event the table does not allow raises.
    """

    # With the census's slots (id, tab_index, user, opened_at, open, stale) from ServerSide.
    __slots__ = (
        "beating",
        "client",
        "close_code",
        "down_at",
        "idle_timer",
        "keepalives",
        "last_traffic",
        "net",
        "server",
        "session",
        "silent_since",
        "tab",
        "up_at",
    )

    def __init__(
        self, net: MemoryNetwork, conn: int, tab: TabCallbacks, user: str, session: str | None
    ):
        self.net = net
        self.id = conn
        self.tab = tab
        self.tab_index = tab.index  # the server's actor reads it on every open
        self.user = user
        self.session = session
        self.client: ClientState = CONNECTING
        self.server: ServerState = NONE
        self.close_code: int | None = None
        self.silent_since: float | None = None
        self.keepalives: tuple[Keepalive, ...] = ()
        self.beating = False  # the server runs its heartbeat on this link
        self.up_at = 0.0  # FIFO: nothing arrives before what was sent earlier
        self.down_at = 0.0
        self.last_traffic = 0.0
        self.idle_timer: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"<Link {self.id} user={self.user!r} client={self.client} server={self.server}>"

    # -- transport -------------------------------------------------------------------------

    def _delay(self) -> float:
        """One way's latency; the tab's random stream is touched only if there is jitter."""
        latency = self.net.latency
        return latency.draw(self.tab.net_rng) if latency.jitter else latency.base

    def _up(self, fn: Callable[[*Ts], object], *args: *Ts) -> None:
        """Send towards the server; lost if the link is silent."""
        if self.silent_since is not None:
            return
        net = self.net
        now = net.now()
        self.last_traffic = now
        latency = net.latency  # self._delay(), inline: once per message
        at = now + (latency.draw(self.tab.net_rng) if latency.jitter else latency.base)
        if at < self.up_at:  # FIFO
            at = self.up_at
        self.up_at = at
        net.post(at, fn, *args)

    def _down(self, fn: Callable[[*Ts], object], *args: *Ts) -> None:
        if self.silent_since is not None:
            return
        net = self.net
        now = net.now()
        self.last_traffic = now
        latency = net.latency  # self._delay(), inline: once per message
        at = now + (latency.draw(self.tab.net_rng) if latency.jitter else latency.base)
        if at < self.down_at:  # FIFO
            at = self.down_at
        self.down_at = at
        net.post(at, fn, *args)

    # -- client side (called by the tab) ---------------------------------------------------

    def close(self, code: int) -> None:
        """The page closes its socket (code 1000 from a handler, 1001 by the browser)."""
        if self.client is CONNECTING:
            # Closing a socket that is not open yet fails it: TCP ends without a close frame.
            self.abort()
            return
        if self.client is not OPEN:
            return
        self.client = client_step(self.client, "close")
        self._up(self._close_reaches_server, code)

    def browser_close(self, code: int) -> None:
        """The browser closes the socket itself, a moment after the page went away (a
        loop step of its own: no page code is on the stack). With zero latency the frame is
        at the server in this same instant, so the server takes it in this step."""
        if self.client is not OPEN or not self.net.instant or self.silent_since is not None:
            self.close(code)
            return
        self.client = client_step(self.client, "close")
        self.last_traffic = self.net.now()
        self._close_reaches_server(code)

    def abort(self) -> None:
        """The tab's process is gone (or a connecting socket was dropped): TCP just ends."""
        if self.client is CLOSED:
            return
        self.client = client_step(self.client, "abort")
        self._wake_beat()
        self._up(self._abort_reaches_server)

    def silence(self) -> None:
        """The network dies silently: from now on nothing arrives, in either direction."""
        if self.silent_since is None:
            self.silent_since = self.net.now()
            self._wake_beat()

    def restore(self) -> None:
        """The network is back, on a new path (a phone's new address): the browser notices
        the network change and fails this socket (the page sees 1006), but nothing reaches
        the server, whose end stays half-open until its heartbeat gives up."""
        if self.silent_since is not None and self.client is not CLOSED:
            self.net.loop.call_soon(self._client_sees_close, int(CloseCode.ABNORMAL))

    # -- events arriving at the server -----------------------------------------------------

    def handshake_reaches_server(self) -> None:
        net = self.net
        if net.down:
            self._down(self._client_sees_close, int(CloseCode.ABNORMAL))  # connection refused
            return
        self.server = server_step(self.server, "accept")
        net.open_links[self.id] = self
        if net.rules:
            rule = net.one_rule  # most runs: one rule, one keepalive, no comprehension
            self.keepalives = (
                (Keepalive(self, rule),)
                if rule is not None
                else tuple([Keepalive(self, rule) for rule in net.rules])
            )
            self.beating = True
        if net.idle_timeout is not None:
            self.idle_timer = net.loop.call_at(net.now() + net.idle_timeout, self._idle_check)
        # The 101 response leaves before the handler runs, so whatever the handler sends
        # (a welcome, a refusal) reaches a page that already sees its socket open.
        at_once = net.instant and self.silent_since is None
        if not at_once:
            self._down(self._client_sees_open)
        net.server.on_open(self)  # may close (refuse/kick) at once
        if at_once:  # zero latency: the 101 is there now, before anything the handler sent
            self.last_traffic = net.now()
            if self.client is CONNECTING:  # _client_sees_open(), inline: once per connect
                self.client = client_step(self.client, "open")
                self.tab.on_open(self)
        if self.beating and net.coast:  # not if the handler closed it at once
            for keepalive in self.keepalives:
                keepalive.start()
        if self.client is CLOSED:
            self._up(self._abort_reaches_server)  # the page dropped it while connecting

    def _close_reaches_server(self, code: int) -> None:
        """The page's close frame arrives. As in websockets, the server answers with its own
        close frame and its handler's cleanup runs only once the closing handshake is done:
        when the client, having got that echo, closes TCP. Measured through the live proxy:
        cleanup one round trip after the close frame arrived."""
        if self.server is S_OPEN:
            self.server = server_step(self.server, "peer_close")
            self.close_code = code
            self._disarm_beat()
            net = self.net
            if net.cleanup_on_frame:  # the profile: cleanup as the frame arrives, echo down
                self._down(self._client_sees_close, code)
                self._server_closed(code)
                return
            if net.instant and self.silent_since is None:
                # Zero latency: the echo is back in this same instant, so the page sees its
                # close now. Its TCP close ends the handshake at once too if nothing else is
                # due now; otherwise (a reconnect's handshake the page sent, say) the close
                # travels behind it, as through the loop, and the server's cleanup of this
                # socket comes after that registration.
                now = net.now()
                self.last_traffic = now
                self._client_sees_close(code)
                if net.alone_now():
                    if self.server is S_CLOSING:  # _teardown_reaches_server(code), inline
                        self._server_closed(code)
                else:
                    net.post(now, self._teardown_reaches_server, code)
                return
            self._down(self._echo_reaches_client, code)
            net.post(net.now() + net.close_timeout, self._server_gives_up)
        elif self.server is S_CLOSING:  # both sides sent a close frame: the frames crossed
            self._handshake_done(code)

    def _echo_reaches_client(self, code: int) -> None:
        self._client_sees_close(code)
        self._up(self._teardown_reaches_server, code)

    def _teardown_reaches_server(self, code: int) -> None:
        if self.server is S_CLOSING:
            self._server_closed(code)

    def _abort_reaches_server(self) -> None:
        if self.server in S_LIVE:
            self._server_closed(int(CloseCode.ABNORMAL))

    def _echo_reaches_server(self, code: int) -> None:
        if self.server is S_CLOSING:
            self._handshake_done(code)

    def _handshake_done(self, code: int) -> None:
        """The server has sent and received a close frame: its end is closed now, or (a
        profile of four trips: legacy uvicorn) once its FIN went down and the page's FIN
        came back."""
        if self.net.server_close_trips > 2:
            self._down(self._up, self._teardown_reaches_server, code)
        else:
            self._server_closed(code)

    # -- server side (called by the server) ------------------------------------------------

    def send(self, message: Message) -> None:
        if self.server is S_OPEN:
            self._down(self._client_receives, message)

    def server_close(self, code: int, reason: str = "") -> None:
        """The server closes: the close frame goes down; if no echo comes back within
        ``close_timeout`` the server gives up and aborts (websockets' behaviour)."""
        if self.net.close_awaits and self.server is not S_CLOSED:  # a handler awaits it:
            self.net.awaited[self.id] = self.server is S_OPEN  # did the page close first?
        if self.server is not S_OPEN:
            return
        self.server = server_step(self.server, "close")
        self.close_code = code
        self._disarm_beat()
        net = self.net
        if net.ping_outlives_close and code != CloseCode.KEEPALIVE_TIMEOUT:
            dead = self._ping_times_out()
            if dead is not None:
                net.post(dead, self._dead_while_closing)
        self._down(self._server_close_reaches_client, code)
        if net.close_at_once:  # the profile: the handler sees its disconnect at once
            net.post(net.now(), self._teardown_reaches_server, code)
            return
        wait = net.close_timeout if code == CloseCode.KEEPALIVE_TIMEOUT else net.give_up
        net.post(net.now() + wait, self._server_gives_up)

    def _unanswered_ping_deadline(self) -> float | None:
        """When the protocol ping already sent (and not answered) times out, or None."""
        for keepalive in self.keepalives:
            if keepalive.kind == "protocol":
                return keepalive.unanswered_deadline()
        return None

    def _ping_times_out(self) -> float | None:
        """When the protocol ping already sent times out, if that is within one close
        timeout from now (the profile's ``ping_outlives_close``); else None."""
        dead = self._unanswered_ping_deadline()
        net = self.net
        return dead if dead is not None and dead < net.now() + net.close_timeout else None

    def _dead_while_closing(self) -> None:
        """The ping sent before the server's close timed out while the server waited for
        the echo: the connection fails (1011) and ends one close timeout later."""
        if self.server is not S_CLOSING or self.close_code == CloseCode.KEEPALIVE_TIMEOUT:
            return
        net = self.net
        dead = self._unanswered_ping_deadline()
        if dead is None or dead > net.now():
            return  # answered meanwhile
        net.census.declared_dead(self.silent_since, net.now(), "protocol", self.tab.deaf_since)
        self.close_code = int(CloseCode.KEEPALIVE_TIMEOUT)
        net.post(net.now() + net.close_timeout, self._server_gives_up)

    def _server_gives_up(self) -> None:
        """The close timeout. Never cancelled: once the server's end is closed it stays
        closed, so a give-up that comes after the handshake finished does nothing."""
        if self.server is S_CLOSING:
            # As the live server reports it: a keepalive timeout's close keeps its 1011 (the
            # peer never answered); any other close that got no echo ended abnormally.
            code = self.close_code if self.close_code == CloseCode.KEEPALIVE_TIMEOUT else None
            self._server_closed(int(CloseCode.ABNORMAL) if code is None else code)
            self._down(self._client_sees_close, int(CloseCode.ABNORMAL))  # the abort (RST)

    def _server_closed(self, code: int) -> None:
        self.server = server_step(self.server, "closed")
        if self.beating:
            self._disarm_beat()
        else:  # what _disarm_beat does here, without the call: drop the keepalives
            self.keepalives = ()
        if self.idle_timer is not None:
            self.idle_timer.cancel()
        net = self.net
        net.open_links.pop(self.id, None)
        if net.close_awaits and self.id in net.awaited:
            self._close_returns(code)
            return
        net.server.on_close(self, code)

    def _close_returns(self, code: int) -> None:
        """This socket is closed: the handler that awaited its ``close()`` wakes together
        with this socket's own handler. After the server's close, the awaiting one runs
        first (it registers, then this handler's blind delete strands it); after the page's
        own close, this handler runs first (the awaiting one's ``del`` raises: self-kill)."""
        net = self.net
        by_server = net.awaited.pop(self.id)
        server = net.server
        waiting = server.waiting_on(self.id)
        if not by_server:
            server.on_close(self, code)
        for new in waiting:
            link = net.open_links.get(new)
            server.close_returned(new, self.user if link is None else link.user)
        if by_server:
            server.on_close(self, code)

    def server_dies(self) -> None:
        """The server process is gone: no handler runs, the OS resets every socket."""
        self.server = server_step(self.server, "closed")
        self._disarm_beat()
        self.net.open_links.pop(self.id, None)
        self.net.census.server_closed(self.id)  # by id: a cluster keeps records of its own
        self._down(self._client_sees_close, int(CloseCode.ABNORMAL))

    def _idle_check(self) -> None:
        """A proxy in the path cuts a socket that carried nothing for ``idle_timeout`` s:
        both ends see TCP close without a close frame (1006)."""
        net = self.net
        if self.server not in S_LIVE:
            return
        idle = net.idle_timeout
        if idle is None:  # never armed without a proxy's idle timeout
            return
        quiet_until = self.last_traffic + idle
        if net.now() < quiet_until:
            self.idle_timer = net.loop.call_at(quiet_until, self._idle_check)
            return
        self.idle_timer = None
        self.silent_since = None
        self._client_sees_close_later()
        self._server_closed(int(CloseCode.ABNORMAL))

    def _client_sees_close_later(self) -> None:
        if self.client is not CLOSED:
            self.net.loop.call_soon(self._client_sees_close, int(CloseCode.ABNORMAL))

    # -- keepalive -------------------------------------------------------------------------

    def _disarm_beat(self) -> None:
        if self.beating:
            self.beating = False
            for keepalive in self.keepalives:
                keepalive.disarm()
        if self.server is S_CLOSED:
            # Its keepalives point back at the link: a cycle only the collector frees, and
            # the virtual runtime collects rarely (a run of 100,000 tabs kept a million
            # closed links). Nothing reads them once the server's end is closed.
            self.keepalives = ()

    def _wake_beat(self) -> None:
        """Whether a ping is answered may change now (see :class:`Keepalive`)."""
        if self.beating:
            for keepalive in self.keepalives:
                keepalive.wake()

    def declared_dead(self, kind: str) -> None:
        net = self.net
        net.census.declared_dead(self.silent_since, net.now(), kind, self.tab.deaf_since)
        self.server_close(int(CloseCode.KEEPALIVE_TIMEOUT))

    # -- events arriving at the client -----------------------------------------------------

    def _client_sees_open(self) -> None:
        if self.client is CONNECTING:
            self.client = client_step(self.client, "open")
            self.tab.on_open(self)

    def _client_receives(self, message: Message) -> None:
        if self.client is OPEN:
            self.tab.on_message(self, message)

    def _server_close_reaches_client(self, code: int) -> None:
        if self.client in LIVE:
            self._up(self._echo_reaches_server, code)
        self._client_sees_close(code)

    def _client_sees_close(self, code: int) -> None:
        if self.client is not CLOSED:
            self.client = client_step(self.client, "closed")
            if self.beating:
                self._wake_beat()
            self.tab.on_close(self, code)


class Keepalive(Heartbeat):
    """One heartbeat rule running on one link (a link may run a protocol and an app rule):
    the rule's :class:`Heartbeat` itself (one object per rule and link, not two), plus its
    timer.

    Protocol pings are answered by the browser's network stack, app pings by the page.
    Its timer is a loop message tagged with a generation: disarming bumps the generation,
    so a stale message does nothing when it comes due. (A cancellable handle per arm
    cost more than the occasional no-op: timers are re-armed far more often than disarmed.)

    **Coasting.** With zero latency and no idle proxy, a protocol ping that was answered
    will be answered again, and again, until the link itself changes: it goes silent, its
    page's end closes, or the server stops the heartbeat. So after an answered ping the
    keepalive posts nothing and *coasts*; the link calls :meth:`wake` when one of those
    changes happens, and the pings skipped before that instant are counted then
    (:meth:`Heartbeat.answered`: the same pings, at the same float times, as the timer's;
    heartbeats were a quarter of a big zero-latency run). A ping due at the very instant of
    the change is left to the timer, after the change."""

    __slots__ = ("coasting", "due", "generation", "kind", "link", "may_coast")

    def __init__(self, link: Link, rule: Liveness) -> None:
        super().__init__(rule, link.net.now())  # the heartbeat's state: rule.start(now)
        self.link = link
        self.kind = rule.kind
        net = link.net
        self.due: float | None = None
        self.generation = 0
        self.coasting = False
        # Only the browser answers protocol pings, whatever the page does (Tab.answers).
        self.may_coast = net.coast and self.kind == "protocol"
        if self.may_coast:
            self.due = self.deadline()  # started once the handshake is done: start()
        else:
            self.arm()

    @property
    def beat(self) -> Heartbeat:
        """The rule's heartbeat state: this keepalive itself."""
        return self

    def arm(self) -> None:
        due = self.due = self.deadline()
        if due is not None:
            self.link.net.post(due, self.fire, self.generation)

    def disarm(self) -> None:
        if self.coasting:
            self._coast_to(self.link.net.now())
        if self.due is not None:
            self.due = None
            self.generation += 1

    def start(self) -> None:
        """The handshake is done (on a network where keepalives may coast): coast from the
        first ping if the page's end can answer it, else run on the timer. (Nothing was
        posted yet: an idle proxy's timer, which a ping due at the same instant must
        precede, rules coasting out altogether.)"""
        link = self.link
        if not self.may_coast:
            return  # armed when made
        if link.silent_since is None and link.client in LIVE:
            self.coasting = True
        else:
            self.arm()

    def wake(self, *, run_ends: bool = False) -> None:
        """The link changed: count the pings skipped until now, then run on the timer. When
        the run ends now, a ping due at this very instant counts too (its timer would have
        run in the iteration that ends the run)."""
        if self.coasting:
            self._coast_to(self.link.net.now(), inclusive=run_ends)
            self.arm()

    def _coast_to(self, now: float, *, inclusive: bool = False) -> None:
        self.coasting = False
        pings = self.answered(now, inclusive=inclusive)
        if pings:
            link = self.link
            answered = len(pings)
            link.net.census.count_pings(answered, answered)
            link.last_traffic = pings[-1]
        self.due = self.deadline()

    def fire(self, generation: int) -> None:
        if generation != self.generation:
            return  # disarmed (or re-armed) since this message was posted
        link = self.link
        net = link.net
        self.due = None
        self.generation += 1
        verdict = self.on_timer(net.now())
        if verdict == "dead":
            link.declared_dead(self.kind)
            return
        if verdict == "ping":
            net.census.count_pings()
            if net.instant_pings and link.silent_since is None:
                if self.answer_at_once(net.now()) and self.may_coast:
                    self.due = self.deadline()
                    self.coasting = True
                    return
            else:
                link._down(self.ping_reaches_client)
        self.arm()

    def answer_at_once(self, now: float) -> bool:
        """With zero latency the ping and its pong both arrive at this same instant, so the
        round trip is settled here rather than as two messages through the loop: two loop
        steps fewer per ping (heartbeats were nearly half the steps of a big zero-latency
        run). The outcome is the same unless another event falls on this very instant after
        the timer (a script that freezes a tab exactly on a ping time): the page is then
        asked before that event, where through the loop it would be asked after it (see
        the module docstring). Returns whether the ping was answered."""
        link = self.link
        link.last_traffic = now
        if link.client in LIVE and link.tab.answers(link, self.kind):
            link.net.census.count_pongs()
            self.on_pong(now)
            return True
        return False

    def ping_reaches_client(self) -> None:
        link = self.link
        if link.client in LIVE and link.tab.answers(link, self.kind):
            link._up(self.pong_reaches_server)

    def pong_reaches_server(self) -> None:
        link = self.link
        if link.server is S_CLOSING and link.net.ping_outlives_close:
            self.on_pong(link.net.now())  # the ping that outlives a close is answered
            return
        if link.server is S_OPEN:
            link.net.census.count_pongs()
            self.on_pong(link.net.now())
            if self.due is not None and self.due == self.deadline():
                return  # the next deadline did not move: keep the armed timer
            self.disarm()
            self.arm()


class MemoryNetwork:
    """Every link of one virtual run, plus the server's keepalive settings."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        census: Census,
        liveness: Liveness,
        latency: Latency,
        close_timeout: float = 10.0,
        idle_timeout: float | None = None,
        profile: TransportProfile | None = None,
    ) -> None:
        self.loop = loop
        # How the server's WebSocket implementation orders a close (simkit.model.transport);
        # the default is the kit's websockets server, the model as it always was.
        self.profile = profile or PROFILES["websockets"]
        self.cleanup_on_frame = self.profile.cleanup == "frame"
        self.close_at_once = self.profile.server_close == "at-once"
        self.give_up = close_timeout * self.profile.give_up
        self.close_awaits = self.profile.close_awaits
        self.ping_outlives_close = self.profile.ping_outlives_close
        self.server_close_trips = self.profile.server_close_trips
        self.awaited: dict[int, bool] = {}  # a socket whose close a handler awaits -> by server?
        self.now: Callable[[], float] = loop.time  # the clock, without a frame of our own
        self.census = census
        self.liveness = liveness
        self.rules = liveness.rules
        self.one_rule: Liveness | None = self.rules[0] if len(self.rules) == 1 else None
        self.latency = latency
        self.close_timeout = close_timeout
        self.idle_timeout = idle_timeout
        self.server: ServerActor  # set by attach(), which the run core calls before any connect
        self.down = False
        self.open_links: dict[int, Link] = {}
        self._next_id = 0
        # With zero latency a round trip ends in the instant it began, so the network settles
        # it in one step (Link.handshake_reaches_server, Link._close_reaches_server). Pings
        # too (Keepalive.answer_at_once), but not with two rules: theirs fire at the same
        # instants, and a pong must not count when the other rule closed the link then.
        self.instant = latency.base == latency.jitter == 0
        self.instant_pings = self.instant and len(self.rules) == 1
        self.coast = self.instant_pings and idle_timeout is None  # see Keepalive
        # Messages in flight are never cancelled: VirtualLoop carries them without handles.
        self.post: Post = getattr(loop, "post_at", loop.call_at)
        # Is nothing else due at this instant? (On another loop: assume something is.)
        self.alone_now: Callable[[], bool] = getattr(loop, "alone_now", bool)

    def attach(self, clock: Clock, server: ServerActor) -> None:
        """The run's server actor (the clock is the loop's: this network reads it directly)."""
        self.server = server

    def connect(self, tab: TabCallbacks, user: str, session: str | None) -> Link:
        self._next_id += 1
        link = Link(self, self._next_id, tab, user, session)
        link._up(link.handshake_reaches_server)
        return link

    def finish(self) -> None:
        """The run is over: count the heartbeats that coasted up to now."""
        for link in self.open_links.values():
            for keepalive in link.keepalives:
                keepalive.wake(run_ends=True)

    def restart_server(self, downtime: float) -> None:
        """Every socket drops at once (the server process died), and for ``downtime`` seconds
        new connections are refused: the reconnect herd."""
        self.down = True
        for link in list(self.open_links.values()):
            link.server_dies()
        self.server.restart()
        self.loop.call_at(self.now() + downtime, self._up_again)

    def _up_again(self) -> None:
        self.down = False
