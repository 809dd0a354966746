"""Client policies: what a page does about identity, unloading, visibility and reconnects.

Pure rules a tab actor consults; randomness comes in as a ``random.Random`` the caller owns
(one stream per tab, so one tab's draws never shift another's).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Literal

from simkit.model.errors import ConfigError, choice

IdentityMode = Literal["fresh-per-load", "per-tab", "shared"]
UnloadMode = Literal["none", "beforeunload", "pagehide"]
VisibilityMode = Literal["keep", "disconnect-when-hidden"]
GuardMode = Literal["none", "single-flight"]
BackoffMode = Literal["immediate", "exponential", "full-jitter", "rfc6455"]

IDENTITIES: dict[str, str] = {
    "fresh-per-load": "a new random id on every page load (post-mortem fix 1): pushes "
    "addressed to the user find nothing",
    "per-tab": "an id kept in sessionStorage: survives reload, new per tab, copied when a tab "
    "is duplicated",
    "shared": "the user's own id (localStorage or a cookie): every tab of a user claims it",
}
UNLOADS: dict[str, str] = {
    "none": "no handler: the browser closes the socket itself (1001) when the page goes",
    "beforeunload": "close(1000) in beforeunload: cancellable, absent on iOS Safari, not run "
    "by page.close(), blocks bfcache in Firefox",
    "pagehide": "close(1000) in pagehide: the lifecycle-friendly event, also on page.close()",
}
VISIBILITIES: dict[str, str] = {
    "keep": "keep the socket when the tab is hidden",
    "disconnect-when-hidden": "close on visibilitychange hidden, reconnect on visible",
}
LIFECYCLES: dict[str, str] = {
    "reconnect": "reconnect from the page's resume / pageshow(persisted) handler",
    "none": "no handler: after a freeze or a bfcache restore the browser closes the socket "
    "(1001, a clean close the page does not retry) and the page stays disconnected",
}
GUARDS: dict[str, str] = {
    "none": "every connect() opens a socket (a StrictMode double mount opens two)",
    "single-flight": "a connect() waits (up to guard_wait s) for one already in flight",
}
CANCELS: dict[str, str] = {
    "when-open": "disconnect() closes a socket still connecting once it opens; until then "
    "a single-flight connect() waits for it",
    "at-once": "disconnect() closes it at once (the handshake fails) and forgets it: the "
    "next connect() opens a new socket without waiting (the post-mortem's manager)",
}
CLEANUPS: dict[str, str] = {
    "disconnect": "the connect effect's cleanup disconnects (StrictMode's unmount included)",
    "none": "no cleanup: StrictMode's first mount leaves its socket open, forgotten by the "
    "page until the page goes (the post-mortem's client before its fix)",
}
RECONNECTS: dict[str, str] = {
    "backoff": "a socket closed under the page is retried after the backoff",
    "never": "no retry: only the page's code opens a socket (load, show); one the server "
    "or the network closes stays closed (the post-mortem's managers, before and after)",
}
CLAIMS: dict[str, str] = {
    "load": "the id is claimed once per page load",
    "mount": "the id is claimed in the connect effect: StrictMode's second mount claims "
    "again (a new id under fresh-per-load, as the post-mortem's context does)",
}


# --- identity -----------------------------------------------------------------------------


@dataclass(slots=True)
class Storage:
    """Browser storage as the identity rules see it.

    ``session`` is one tab's sessionStorage (kept across reloads, copied when the tab is
    duplicated); ``local`` is the profile's localStorage, the same object for every tab of
    one browser.
    """

    local: dict[str, str]
    session: dict[str, str] = field(default_factory=dict)

    def reload(self) -> Storage:
        """A new page load in the same tab keeps both storages."""
        return self

    def new_tab(self) -> Storage:
        return Storage(self.local, {})

    def duplicate(self) -> Storage:
        return Storage(self.local, dict(self.session))


def claim(mode: str, user: str, storage: Storage, rng: random.Random | None) -> str:
    """The id a page load claims for ``user`` under identity ``mode`` (``rng`` draws the
    tokens of ``per-tab`` and ``fresh-per-load``; ``shared`` needs none).

    ``shared`` claims the user's id itself, so pushes addressed to the user can find the
    tab. ``per-tab`` and ``fresh-per-load`` claim an opaque token, as the post-mortem's
    ``crypto.randomUUID()`` did: the server can no longer tell which user a tab is.
    """
    if mode == "shared":
        return storage.local.setdefault("user_id", user)
    if mode == "per-tab":
        if "tab_id" not in storage.session:
            storage.session["tab_id"] = _token(rng)
        return storage.session["tab_id"]
    if mode == "fresh-per-load":
        return _token(rng)
    raise choice("identity", mode, list(IDENTITIES))


def _token(rng: random.Random | None) -> str:
    if rng is None:
        raise ValueError("per-tab and fresh-per-load identities need a random stream")
    return f"{rng.getrandbits(48):012x}"


# --- backoff ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long a tab waits before reconnect attempt number ``attempt`` (1, 2, ...).

    ``immediate``: 0. ``exponential``: ``base * factor**(attempt-1)`` capped at ``max_delay``,
    then randomised by +-``randomization`` (Socket.IO: 1 s doubling to 5 s, 0.5).
    ``full-jitter``: uniform in [``base``, min(``max_delay``, base * factor**(attempt-1))]
    (Centrifugo's 0.5-20 s). ``rfc6455``: RFC 6455 section 7.2.3, a random first delay in
    [0, ``first_max``], then truncated exponential growth from ``base``.
    The attempt counter resets when a connection succeeds; that is the tab's job.
    """

    mode: str = "exponential"
    base: float = 1.0
    factor: float = 2.0
    max_delay: float = 5.0
    randomization: float = 0.5
    first_max: float = 5.0

    def __post_init__(self) -> None:
        if self.mode not in BACKOFFS:
            raise choice("backoff", self.mode, list(BACKOFFS))
        for label in ("base", "max_delay", "first_max"):
            value = getattr(self, label)
            if not (value >= 0 and math.isfinite(value)):
                raise ConfigError(f"backoff {label} must be >= 0 seconds, got {value!r}")
        if not self.factor >= 1:
            raise ConfigError(f"backoff factor must be >= 1, got {self.factor!r}")
        if not 0 <= self.randomization <= 1:
            raise ConfigError(
                f"backoff randomization must be in [0, 1], got {self.randomization!r}"
            )

    def delay(self, attempt: int, rng: random.Random) -> float:
        if attempt < 1:
            raise ConfigError(f"reconnect attempts count from 1, got {attempt!r}")
        if self.mode == "immediate":
            return 0.0
        grown = min(self.max_delay, self.base * self.factor ** min(attempt - 1, 64))
        if self.mode == "exponential":
            spread = grown * self.randomization
            return max(0.0, min(self.max_delay, grown + rng.uniform(-spread, spread)))
        if self.mode == "full-jitter":
            return rng.uniform(min(self.base, grown), grown)
        # rfc6455
        if attempt == 1:
            return rng.uniform(0.0, self.first_max)
        return min(self.max_delay, self.base * self.factor ** min(attempt - 2, 64))

    def bounds(self, attempt: int) -> tuple[float, float]:
        """The smallest and largest delay :meth:`delay` can return for ``attempt``."""
        if self.mode == "immediate":
            return (0.0, 0.0)
        grown = min(self.max_delay, self.base * self.factor ** min(attempt - 1, 64))
        if self.mode == "exponential":
            spread = grown * self.randomization
            return (max(0.0, grown - spread), min(self.max_delay, grown + spread))
        if self.mode == "full-jitter":
            return (min(self.base, grown), grown)
        if attempt == 1:
            return (0.0, self.first_max)
        fixed = min(self.max_delay, self.base * self.factor ** min(attempt - 2, 64))
        return (fixed, fixed)


BACKOFFS: dict[str, str] = {
    "immediate": "reconnect at once, every time (the herd's best friend)",
    "exponential": "Socket.IO: 1 s doubling to 5 s, randomised +-50 %",
    "full-jitter": "Centrifugo: uniform between 0.5 s and an exponentially growing cap (20 s)",
    "rfc6455": "RFC 6455 7.2.3: random first delay 0-5 s, then truncated exponential",
}

BACKOFF_PRESETS: dict[str, Backoff] = {
    "immediate": Backoff("immediate"),
    "exponential": Backoff("exponential", 1.0, 2.0, 5.0, 0.5),
    "full-jitter": Backoff("full-jitter", 0.5, 2.0, 20.0),
    "rfc6455": Backoff("rfc6455", 1.0, 2.0, 60.0, first_max=5.0),
}


# --- the whole client policy --------------------------------------------------------------


ON_REPLACED = ("retry", "stop")
REPLACED_CODES = frozenset({4000, 4001})  # CloseCode.REPLACED, CloseCode.REFUSED


@dataclass(frozen=True, slots=True)
class Client:
    """Everything a page decides about its connection.

    ``unload_runs`` is the probability that the unload handler actually runs when the page
    goes (beforeunload is skipped on iOS Safari and by page.close(); pagehide is more
    reliable but a crash runs nothing). ``on_resume`` and ``on_pageshow`` say whether the
    page reconnects at once after a freeze (``resume`` event) or a back/forward-cache
    restore (``pageshow`` with ``persisted``). Without one the page is not stranded: Chromium
    closes the socket that survived (the server sees 1001, the page an unclean 1006), and
    the page's ordinary retry reconnects after its backoff.
    """

    identity: str = "shared"
    unload: str = "none"
    unload_runs: float = 1.0
    visibility: str = "keep"
    guard: str = "none"
    guard_wait: float = 3.0
    on_resume: str = "reconnect"
    on_pageshow: str = "reconnect"
    backoff: Backoff = field(default_factory=lambda: BACKOFF_PRESETS["exponential"])
    # The post-mortem's connection manager: its guard polls for the connection in flight
    # every ``guard_poll`` s (0: woken at once), and before opening a socket it closes any
    # existing one and waits ``replace_wait`` s (0: no wait).
    guard_poll: float = 0.0
    replace_wait: float = 0.0
    # What a page does when the server closes its socket because another connection of the
    # same user replaced it (4000) or was there first (4001): ``retry`` (reconnect after its
    # backoff, and replace the other tab in turn: a kick war) or ``stop`` (show "opened
    # elsewhere" and stay offline until the user reloads it, as chat and trading apps do).
    on_replaced: str = "retry"
    # What React StrictMode's double mount does with this page's code (measured on the
    # post-mortem's front end under `next dev`, simkit.realfront): how disconnect() treats
    # a socket still connecting, whether the effect has a cleanup, when the id is claimed.
    cancel: str = "when-open"
    cleanup: str = "disconnect"
    claim_per: str = "load"
    reconnect: str = "backoff"

    def __post_init__(self) -> None:
        for kind, value, allowed in (
            ("identity", self.identity, IDENTITIES),
            ("unload", self.unload, UNLOADS),
            ("visibility", self.visibility, VISIBILITIES),
            ("guard", self.guard, GUARDS),
            ("on_resume", self.on_resume, LIFECYCLES),
            ("on_pageshow", self.on_pageshow, LIFECYCLES),
            ("on_replaced", self.on_replaced, ON_REPLACED),
            ("cancel", self.cancel, CANCELS),
            ("cleanup", self.cleanup, CLEANUPS),
            ("claim_per", self.claim_per, CLAIMS),
            ("reconnect", self.reconnect, RECONNECTS),
        ):
            if value not in allowed:
                raise choice(kind, value, list(allowed))
        if not 0 <= self.unload_runs <= 1:
            raise ConfigError(f"unload_runs is a probability in [0, 1], got {self.unload_runs!r}")
        if not (self.guard_wait >= 0 and math.isfinite(self.guard_wait)):
            raise ConfigError(f"guard_wait must be >= 0 seconds, got {self.guard_wait!r}")
        for label in ("guard_poll", "replace_wait"):
            value = getattr(self, label)
            if not (value >= 0 and math.isfinite(value)):
                raise ConfigError(f"{label} must be >= 0 seconds, got {value!r}")

    def closes_on_unload(self, rng: random.Random, *, page_close: bool = False) -> bool:
        """Does this page load's unload handler close the socket itself (code 1000)?

        Draws from ``rng`` only when a handler exists, so adding one does not shift the
        random stream of policies without it more than necessary.
        """
        if self.unload == "none":
            return False
        if self.unload == "beforeunload" and page_close:
            return False  # page.close() / tab discard does not run beforeunload
        return self.unload_runs >= 1.0 or rng.random() < self.unload_runs
