"""The tab actor: one browser tab, a sequence of page loads, each with its own socket.

A page's JavaScript is event-driven (``onopen``, ``onclose``, ``visibilitychange``), so the
tab is too: the network calls :meth:`Tab.on_open`, :meth:`Tab.on_close` and
:meth:`Tab.on_message`; a scenario's script (a coroutine, one per tab) calls the lifecycle
verbs (:meth:`Tab.load`, :meth:`Tab.reload`, :meth:`Tab.hide`, :meth:`Tab.crash`, ...), and
the client policy of the strategy decides the rest. The verbs are the story's vocabulary,
so a scenario reads like what a user does.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable
from collections.abc import Set as AbstractSet

from simkit.actors.env import Env
from simkit.model.client import REPLACED_CODES, Storage, claim
from simkit.model.codes import CloseCode
from simkit.model.connection import ClientState
from simkit.model.errors import RunFailed
from simkit.model.page import Page, step
from simkit.runtime.interfaces import ClientEnd, Message

_EMPTY: frozenset[int] = frozenset()  # stands for an empty set until one is needed
# The page's socket states (simkit.model.connection) as module names: faster than an Enum's
# attribute, and compared by identity.
CONNECTING, OPEN = ClientState.CONNECTING, ClientState.OPEN


@functools.cache
def _token_words() -> int:
    """How many 32-bit words a per-tab token draws from a fresh stream (the state's index
    after the draw), measured once: reading a stream's state costs 9 us, a tab's setup."""
    rng = random.Random("probe")
    claim("per-tab", "probe", Storage({}), rng)
    drawn = int(rng.getstate()[1][-1])
    if not 0 < drawn < 624:  # (one block, no second twist: a plain skip reproduces it)
        raise RunFailed(f"a per-tab token drew {drawn} words; the skip needs 1-623")
    return drawn


class Tab:
    """One tab. ``person`` is who uses it; the id it claims depends on the identity policy."""

    # Slots: a run of a million tabs holds a million of these (a dict each was ~0.5 kB).
    __slots__ = (
        "_client_rng",
        "_client_skip",
        "_net_rng",
        "attempt",
        "close_when_open",
        "closed_while_deaf",
        "deaf_since",
        "elsewhere",
        "env",
        "index",
        "link",
        "orphans",
        "page",
        "person",
        "policy",
        "received",
        "retry",
        "seen",
        "storage",
        "truth",
        "user",
        "waiting_since",
        "want",
        "work_rng",
    )

    def __init__(self, env: Env, index: int, person: str, storage: Storage) -> None:
        self.env = env
        self.index = index
        self.person = person
        self.storage = storage
        self.policy = env.strategy.client
        self.work_rng = env.rng("tab", index, "work")
        self.truth = env.census.add_tab(index, person)
        self.page = Page.UNLOADED
        self.user = ""
        self.link: ClientEnd | None = None  # the current page load's socket
        # sockets of this load the page forgot (a StrictMode mount with no cleanup)
        self.orphans: tuple[ClientEnd, ...] = ()
        self.want = False  # the page wants a connection now
        self.elsewhere = False  # replaced, and showing "opened elsewhere" (on_replaced="stop")
        self.attempt = 0
        self.retry: asyncio.TimerHandle | None = None
        self.waiting_since: float | None = None  # single-flight: a connect() is waiting
        # Sets made on first use: most tabs never need them (216 bytes each when empty).
        self.close_when_open: AbstractSet[int] = _EMPTY  # a set once one is added
        self.deaf_since: float | None = None  # page runs no code (frozen, bfcached) since
        self.closed_while_deaf = False  # its socket closed while the page ran no code
        self.received = 0
        self.seen: AbstractSet[int] = _EMPTY  # push ids its pages received (a set once one is)
        self._client_skip = 0  # words the client stream drew before it was dropped
        self._net_rng: random.Random | None = None
        self._client_rng: random.Random | None = None

    # Streams made on first use: each is derived from the seed and its key alone, so when it
    # is made changes no draw; a policy or network that never draws costs no 2.9 kB state.
    @property
    def net_rng(self) -> random.Random:
        rng = self._net_rng
        if rng is None:
            rng = self._net_rng = self.env.rng("tab", self.index, "net")
        return rng

    @property
    def client_rng(self) -> random.Random:
        rng = self._client_rng
        if rng is None:
            rng = self._client_rng = self.env.rng("tab", self.index, "client")
            if self._client_skip:  # it drew a per-tab token and was dropped: draw as far
                rng.getrandbits(32 * self._client_skip)
        return rng

    def _claim(self, identity: str) -> str:
        """The id this load claims. A per-tab token is usually the client stream's only draw
        (a policy that closes on unload or backs off draws more, later): the stream is made,
        drawn from and dropped, remembering how many 32-bit words it gave, and made again
        and advanced as far if it is ever needed (a Mersenne Twister is 2.5 kB a tab; half
        of a big ``reference`` run's memory was random streams)."""
        if identity == "shared" or (identity == "per-tab" and "tab_id" in self.storage.session):
            return claim(identity, self.person, self.storage, None)  # no draw: no stream
        if (
            identity == "per-tab"
            and self._client_rng is None
            and "tab_id" not in self.storage.session
            and not self._client_skip
        ):
            rng = self.env.rng("tab", self.index, "client")
            user = claim(identity, self.person, self.storage, rng)
            self._client_skip = _token_words()
            return user
        return claim(identity, self.person, self.storage, self.client_rng)

    # -- lifecycle verbs (called by scenario scripts) --------------------------------------

    def load(self, *, strict_mode: bool = False) -> None:
        """A new page load: claim an id, then connect. React StrictMode in development runs
        the connect effect, its cleanup and the effect again."""
        self.page = step(self.page, "load")
        self.user = self._claim(self.policy.identity)
        self.env.census.page_loaded(self.truth, self.user)
        self.elsewhere = False
        self.want = True
        self.attempt = 0
        self.connect()
        if strict_mode:
            self._remount()

    def _remount(self) -> None:
        """StrictMode's unmount and second mount, as the client's code plays them: its
        cleanup disconnects (or, with none, the first socket is forgotten, still open),
        then the effect runs again (claiming the id again when it claims it per mount)."""
        policy = self.policy
        if policy.cleanup == "none":
            link = self.link
            if link is not None:
                self.orphans = (*self.orphans, link)
                self.link = None
                self.env.census.set_current(self.truth, None)
            self._forget_connection()
        else:
            self.disconnect()
        if policy.claim_per == "mount":
            self.user = self._claim(policy.identity)
            self.env.census.page_loaded(self.truth, self.user)
        self.want = True
        self.connect()

    def _drop_orphans(self, action: str) -> None:
        """The page load ends: the browser closes the sockets its page forgot (1001), or
        they vanish or abort with the page (``action`` is ``close``, ``vanish``, ``abort``,
        ``crash``)."""
        orphans, self.orphans = self.orphans, ()
        for link in orphans:
            if action == "vanish":
                link.silence()
            elif action == "abort":
                link.abort()
            elif action == "crash":
                self.env.after(
                    self.env.timing.crash_close, link.browser_close, int(CloseCode.GOING_AWAY)
                )
            else:
                self.env.after(
                    self.env.timing.unload_close, link.browser_close, int(CloseCode.GOING_AWAY)
                )

    def unload(self, *, vanish: bool = False, page_close: bool = False) -> None:
        """The page goes away. Its handler may close the socket (1000); otherwise the browser
        does (1001) a moment later (``env.timing``, measured in Chromium: about as soon on a
        reload, 37 ms later when the tab is closed); if the tab ``vanish``-es, nothing
        reaches the server."""
        self.page = step(self.page, "close" if page_close else "unload")
        if self.retry is not None:  # _forget_connection(), inline: every reload unloads
            self.retry.cancel()
            self.retry = None
        self.waiting_since = None
        link = self.link
        self.link = None
        self.env.census.page_ended(self.truth)
        if self.orphans:
            self._drop_orphans("vanish" if vanish else "close")
        if link is None:
            return
        if vanish:
            link.silence()
        elif self.policy.unload != "none" and self.policy.closes_on_unload(
            self.client_rng, page_close=page_close
        ):
            if self.env.trace is not None:  # "page starts closing" on 02's timeline
                self.env.log("client-closing", link.id, self.user, int(CloseCode.NORMAL))
            link.close(int(CloseCode.NORMAL))
        else:
            if self.env.trace is not None:  # the browser will close it (1001) in a moment
                self.env.log("client-closing", link.id, self.user, int(CloseCode.GOING_AWAY))
            timing = self.env.timing
            delay = timing.tab_close if page_close else timing.unload_close
            self.env.after(delay, link.browser_close, int(CloseCode.GOING_AWAY))

    async def reload(
        self, downtime: float, *, vanish: bool = False, strict_mode: bool = False
    ) -> None:
        """Unload, wait ``downtime`` seconds (the new page loading), load again."""
        self.unload(vanish=vanish)
        await self.env.sleeper(downtime)
        self.load(strict_mode=strict_mode)

    def close(self) -> None:
        """The user closes the tab (pagehide runs; beforeunload does not, as with page.close())."""
        self.unload(page_close=True)

    def crash(self) -> None:
        """The tab's renderer dies. No page handler runs, but in Chromium the socket lives
        in the browser's network service, which closes it with 1001 (calibration: 20/20,
        26 ms median), just as on a reload without a handler."""
        self._die(abort=False)

    def process_dies(self) -> None:
        """The whole browser (or its network service) dies: TCP ends without a close
        frame and the server sees 1006 (calibration: 20/20)."""
        self._die(abort=True)

    def _die(self, *, abort: bool) -> None:
        self.page = step(self.page, "crash")
        self._forget_connection()
        link, self.link = self.link, None
        self.env.census.page_ended(self.truth)
        if self.orphans:
            self._drop_orphans("abort" if abort else "crash")
        if link is None:
            return
        if abort:
            link.abort()
        else:
            self.env.after(
                self.env.timing.crash_close, link.browser_close, int(CloseCode.GOING_AWAY)
            )

    def hide(self) -> None:
        self.page = step(self.page, "hide")
        if self.policy.visibility == "disconnect-when-hidden":
            self.disconnect()

    def show(self) -> None:
        self.page = step(self.page, "show")
        if self.policy.visibility == "disconnect-when-hidden" and not self.elsewhere:
            self.want = True
            self.attempt = 0
            self.connect()

    def freeze(self) -> None:
        """The browser freezes the page (background tab, CDP lifecycle ``frozen``): its
        socket stays open and protocol pings are still answered, but no page code runs, so
        every message to it is lost. Chromium hides a visible page before it freezes it
        (measured), so the visibility policy runs first."""
        if self.page is Page.ACTIVE:
            self.hide()
        self.page = step(self.page, "freeze")
        self._go_deaf()

    def resume(self) -> None:
        """The page runs again and is shown. Chromium closes the socket that lived through
        the freeze (see :meth:`_wake`)."""
        self.page = step(self.page, "resume")
        self._wake(self.policy.on_resume)

    def enter_bfcache(self) -> None:
        """The user navigates away and the page is kept in the back/forward cache.
        ``pagehide`` runs (persisted) and the page becomes hidden: an unload handler or a
        disconnect-when-hidden policy closes the socket; otherwise it stays open, answering
        protocol pings for a page that runs no code (Chromium keeps such a page cached)."""
        self.page = step(self.page, "enter_bfcache")
        self._forget_connection()
        if self.link is not None and self.policy.closes_on_unload(self.client_rng):
            link, self.link = self.link, None
            self.want = False
            self.env.census.set_current(self.truth, None)
            link.close(int(CloseCode.NORMAL))
        if self.policy.visibility == "disconnect-when-hidden":
            self.disconnect()
        self.env.census.page_away(self.truth)
        self._go_deaf()

    def restore(self) -> None:
        """The user comes back: the page is restored from the cache without re-running its
        scripts; only ``pageshow`` (persisted) fires (see :meth:`_wake`)."""
        self.page = step(self.page, "restore")
        self.env.census.page_back(self.truth)
        self._wake(self.policy.on_pageshow)

    def evict(self) -> None:
        """The page leaves the back/forward cache for good (after up to 600 s in Chromium)."""
        self.page = step(self.page, "evict")
        self._forget_connection()
        link, self.link = self.link, None
        self.env.census.page_ended(self.truth)
        if self.orphans:
            self._drop_orphans("close")
        if link is not None:
            link.close(int(CloseCode.GOING_AWAY))

    def _go_deaf(self) -> None:
        self.deaf_since = self.now
        self.env.census.page_frozen(self.truth)

    def _wake(self, handler: str) -> None:
        """A frozen or cached page runs again, visible. Chromium closes the socket that
        lived through it: the server sees 1001, the page an unclean close (1006), so the
        page's ordinary retry reconnects after its backoff, handler or not (measured with
        Chromium 156 in the browser runtime). A ``reconnect`` handler does it at once; a
        page that disconnects when hidden reconnects because it is visible again."""
        self.deaf_since = None
        self.env.census.page_woke(self.truth)
        link = self.link
        if self.elsewhere:
            pass  # it stays offline until reloaded, frozen or not
        elif handler == "reconnect" or self.policy.visibility == "disconnect-when-hidden":
            self._forget_connection()
            if link is not None:
                self.link = None
                self.env.census.set_current(self.truth, None)
                link.close(int(CloseCode.GOING_AWAY))
            self.want = True
            self.attempt = 0
            self.connect()
        elif link is not None and link.client is OPEN:
            # Stays the page's socket until the page sees it close: on_close retries.
            link.close(int(CloseCode.GOING_AWAY))
        elif link is not None:  # still connecting (or closing): it fails, the page retries
            link.close(int(CloseCode.GOING_AWAY))
            self.on_close(link, int(CloseCode.ABNORMAL))
        elif self.want and self.retry is None:
            # What the page could not run while it slept runs now (Chromium queues it): the
            # close event it missed schedules its retry; a retry that came due connects.
            if self.closed_while_deaf:
                self._schedule_retry()
            else:
                self.connect()
        self.closed_while_deaf = False

    def lose_network(self) -> None:
        """The network dies silently (a phone in a tunnel): no event fires anywhere."""
        if self.link is not None:
            self.link.silence()

    def regain_network(self) -> None:
        """The network is back; the socket that died with it fails on the page (1006)."""
        if self.link is not None:
            self.link.restore()

    def duplicate(self, index: int) -> Tab:
        """Duplicate this tab: the copy gets a copy of sessionStorage (per-tab ids clash)."""
        twin = Tab(self.env, index, self.person, self.storage.duplicate())
        twin.load()
        return twin

    @property
    def now(self) -> float:
        return self.env.now()

    def sleep(self, seconds: float) -> Awaitable[None]:
        return self.env.sleeper(seconds)

    # -- the page's connection manager -----------------------------------------------------

    def connect(self) -> None:
        if not self.want or self.page not in (Page.ACTIVE, Page.HIDDEN):
            return
        link = self.link
        if link is not None and link.client is OPEN:
            return
        if (
            link is not None  # one in flight:
            and (link.client is CONNECTING or link.id in self.close_when_open)
            and self.policy.guard == "single-flight"
        ):
            if self.waiting_since is None:
                self.waiting_since = self.now
                self.env.after(self.policy.guard_wait, self._guard_expired, link)
            return
        self._open()

    def disconnect(self) -> None:
        """The page closes its socket on purpose (effect cleanup, hidden tab)."""
        self.want = False
        self._forget_connection()
        link = self.link
        if link is None:
            return
        if (
            link.client is CONNECTING
            and self.policy.guard == "single-flight"
            and self.policy.cancel == "when-open"
        ):
            # A connection manager closes a socket only once it is open; until then it is
            # still "in flight" and a new connect() waits for it.
            self._close_when_open(link.id)
            return
        self.link = None
        self.env.census.set_current(self.truth, None)
        link.close(int(CloseCode.NORMAL))

    def _polled(self) -> None:
        """The polling guard's next look: the connection in flight is gone, so open."""
        if self.waiting_since is not None and self.link is None:
            self._open()

    def _open(self) -> None:
        wait = self.policy.replace_wait
        link = self.link
        if wait > 0 and link is not None and link.client in (CONNECTING, OPEN):
            # the post-mortem's manager: close any existing connection, wait, then connect
            if link.client is CONNECTING and self.policy.cancel == "when-open":
                self._close_when_open(link.id)
            else:
                link.close(int(CloseCode.NORMAL))
            self.link = None
            self.waiting_since = None  # no longer waiting for that one: it is replaced
            self.env.census.set_current(self.truth, None)
            self.env.after(wait, self.connect)
            return
        self.waiting_since = None
        link = self.env.network.connect(self, self.user, self.storage.session.get("session"))
        self.link = link
        self.env.census.set_current(self.truth, link.id)
        if self.env.trace is not None:
            self.env.log("connect", link.id, self.user)

    def _guard_expired(self, link: ClientEnd) -> None:
        if self.waiting_since is None:
            return
        current = self.link
        if current is None or (current is link and link.client is not OPEN):
            if current is not None:  # then it is ``link``, the slow one: never orphan it
                self._close_when_open(current.id)
            self._open()  # waited guard_wait seconds: give up on the one in flight

    def _close_when_open(self, conn: int) -> None:
        pending = self.close_when_open
        if isinstance(pending, set):
            pending.add(conn)
        else:  # still the shared empty frozenset
            self.close_when_open = {conn}

    def _forget_connection(self) -> None:
        if self.retry is not None:
            self.retry.cancel()
            self.retry = None
        self.waiting_since = None

    # -- network callbacks -----------------------------------------------------------------

    def on_open(self, link: ClientEnd) -> None:
        pending = self.close_when_open
        if link.id in pending and isinstance(pending, set):  # (in it: a set of its own)
            pending.discard(link.id)
            if self.link is link:
                self.link = None
                self.env.census.set_current(self.truth, None)
            link.close(int(CloseCode.NORMAL))
            return
        if link is not self.link:
            return
        self.attempt = 0
        self.waiting_since = None
        self.env.census.set_connected(self.truth, True)

    def on_close(self, link: ClientEnd, code: int) -> None:
        if self.env.trace is not None:
            self.env.log("client-close", link.id, self.user, code)
        if link is self.link:
            self.link = None
            self.env.census.set_current(self.truth, None)
            if code in REPLACED_CODES and self.policy.on_replaced == "stop" and self.want:
                self._opened_elsewhere()
                return
        elif self.waiting_since is None or self.link is not None:
            return
        if self.waiting_since is not None:
            if self.policy.guard_poll > 0:  # a polling guard notices at its next poll
                waited = self.now - self.waiting_since
                poll = self.policy.guard_poll
                self.env.after(poll * (waited // poll + 1) - waited, self._polled)
                return
            self._open()
            return
        if self.want and self.retry is None:
            if self.page in (Page.ACTIVE, Page.HIDDEN):
                self._schedule_retry()
            elif self.deaf_since is not None:
                self.closed_while_deaf = True  # the page's close handler runs when it wakes

    def _opened_elsewhere(self) -> None:
        """Replaced by another connection of the user: say so and stay offline until the
        user reloads (``on_replaced="stop"``): no retry, so no kick war."""
        self.want = False
        self.elsewhere = True
        if self.retry is not None:
            self.retry.cancel()
            self.retry = None
        self.env.census.page_gave_up(self.truth)

    def _schedule_retry(self) -> None:
        if self.policy.reconnect == "never":
            return
        self.attempt += 1
        delay = self.policy.backoff.delay(self.attempt, self.client_rng)
        self.retry = self.env.call_later(delay, self._retry)

    def _retry(self) -> None:
        self.retry = None
        self.connect()

    def on_message(self, link: ClientEnd, message: Message) -> None:
        if self.deaf_since is not None:
            return  # a frozen page runs no code: the message is lost
        kind, value = message[0], message[1]
        if kind == "welcome" and isinstance(value, str):
            self.storage.session["session"] = value
        elif kind == "push" and isinstance(value, int):
            if value in self.seen:
                self.env.census.count_duplicate_push()  # resume must deliver exactly once
            elif isinstance(self.seen, set):
                self.seen.add(value)
            else:  # still the shared empty frozenset
                self.seen = {value}
        self.received += 1

    def answers(self, link: ClientEnd, kind: str) -> bool:
        """Does this tab answer a heartbeat of ``kind``? The browser answers protocol pings
        while the page is frozen; an app-level ping needs the page to run."""
        return kind == "protocol" or self.deaf_since is None
