"""Liveness: when does the server declare a silent connection dead?

A closed tab usually says so (a close frame), but a tab whose network silently died, whose
process was killed behind a proxy, or whose page is frozen says nothing: only a heartbeat
finds it. The policy here is the rule; :class:`Heartbeat` is one connection's state under
that rule. Drive it like websockets' protocol objects: ask :meth:`Heartbeat.deadline`, call
:meth:`Heartbeat.on_timer` when it is due and do what it returns (send a ping, or declare
the connection dead), and call :meth:`Heartbeat.on_pong` when an answer arrives. It reads no
clock; ``now`` is passed in.

The rule is websockets' keepalive generalised so every upstream preset fits: a ping every
``interval`` seconds; the connection is dead when a ping has gone unanswered for
``timeout`` seconds. A pong answers every earlier ping too. With ``timeout > interval``
(SignalR, Phoenix) several pings are outstanding before the verdict. A silent peer is
therefore found between ``timeout`` and ``interval + timeout`` after it went silent.

``kind`` says who answers: ``protocol`` pings are answered by the browser's network stack
even when the page runs no code (frozen, back/forward cache); ``app`` pings must be
answered by the page itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from simkit.model.errors import ConfigError, choice

LivenessKind = Literal["protocol", "app"]
CLOSE_TIMEOUT = 10.0  # websockets' default: how long a closing server waits for the peer


@dataclass(frozen=True, slots=True)
class Liveness:
    """A heartbeat rule: ping every ``interval`` s, dead after ``timeout`` s without answer.

    ``interval=None`` switches the heartbeat off: a silent peer is never found.
    """

    name: str
    interval: float | None
    timeout: float | None
    kind: LivenessKind = "protocol"
    summary: str = ""
    also: Liveness | None = None  # a second rule of the other kind, run side by side

    def __post_init__(self) -> None:
        if (self.interval is None) != (self.timeout is None):
            raise ConfigError(
                f"liveness {self.name!r}: interval and timeout must both be set or both be "
                f"None, got interval={self.interval!r}, timeout={self.timeout!r}"
            )
        for label, value in (("interval", self.interval), ("timeout", self.timeout)):
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ConfigError(
                    f"liveness {self.name!r}: {label} must be a positive number of "
                    f"seconds, got {value!r}"
                )
        if self.kind not in ("protocol", "app"):
            raise choice("liveness kind", self.kind, ["protocol", "app"])
        if self.also is not None and (self.also.kind == self.kind or self.also.also):
            raise ConfigError(
                f"liveness {self.name!r}: 'also' must be one rule of the other kind, "
                f"got {self.also!r}"
            )

    @property
    def rules(self) -> tuple[Liveness, ...]:
        """Every enabled rule: this one and its companion, if any."""
        both = (self, self.also) if self.also is not None else (self,)
        return tuple(rule for rule in both if rule.interval is not None)

    def both(self, other: Liveness, name: str | None = None) -> Liveness:
        """This rule and ``other`` (of the other kind) together."""
        return Liveness(
            name or f"{self.name}+{other.name}",
            self.interval,
            self.timeout,
            self.kind,
            f"{self.summary}; and {other.summary}",
            other,
        )

    @property
    def enabled(self) -> bool:
        return bool(self.rules)

    @property
    def worst_detection(self) -> float:
        """The longest a silent peer can stay undetected (inf when the heartbeat is off).

        With two rules, the later of the two verdicts: a frozen page is found only by the
        app-level rule, a dead network by both."""
        rules = self.rules
        if not rules:
            return math.inf
        return max(
            rule.interval + rule.timeout
            for rule in rules
            if rule.interval is not None and rule.timeout is not None  # every rule: enabled
        )

    def scaled(self, factor: float) -> Liveness:
        """The same rule with every duration multiplied by ``factor`` (live time scaling)."""
        if self.interval is None or self.timeout is None:
            return self
        also = None if self.also is None else self.also.scaled(factor)
        return Liveness(
            self.name,
            self.interval * factor,
            self.timeout * factor,
            self.kind,
            self.summary,
            also,
        )

    def start(self, now: float) -> Heartbeat:
        """The heartbeat state of a connection that opened at ``now``."""
        return Heartbeat(self, now)


class Heartbeat:
    """One connection's heartbeat under a :class:`Liveness` rule."""

    __slots__ = ("_interval", "_timeout", "next_ping", "oldest_unanswered", "pings", "pongs")

    def __init__(self, rule: Liveness, now: float) -> None:
        # Read only while a ping is due (next_ping set), so never for a rule that is off,
        # whose interval and timeout are both None.
        self._interval: float = 0.0 if rule.interval is None else rule.interval
        self._timeout: float = 0.0 if rule.timeout is None else rule.timeout
        self.next_ping: float | None = None if rule.interval is None else now + rule.interval
        self.oldest_unanswered: float | None = None
        self.pings = 0
        self.pongs = 0

    def deadline(self) -> float | None:
        """When :meth:`on_timer` must next be called (None: never)."""
        if self.next_ping is None:
            return None
        if self.oldest_unanswered is None:
            return self.next_ping
        return min(self.next_ping, self.oldest_unanswered + self._timeout)

    def on_timer(self, now: float) -> Literal["ping", "dead", None]:
        """Advance to ``now``: returns "dead" (declare the peer dead), "ping" (send one),
        or None (nothing due yet)."""
        if self.next_ping is None:
            return None
        if self.oldest_unanswered is not None and now >= self.oldest_unanswered + self._timeout:
            self.next_ping = None
            return "dead"
        if now >= self.next_ping:
            if self.oldest_unanswered is None:
                self.oldest_unanswered = now
            self.next_ping = now + self._interval
            self.pings += 1
            return "ping"
        return None

    def answered(self, until: float, *, inclusive: bool = False) -> list[float]:
        """Every ping due before ``until`` (or at it, if ``inclusive``), each answered at
        once: what :meth:`on_timer` then :meth:`on_pong` at each deadline would do, in one
        call. Returns the ping times. Only while no ping is outstanding; a caller that knows
        every ping will be answered (see ``Keepalive`` in the virtual network) settles a
        stretch of time this way."""
        times: list[float] = []
        if self.oldest_unanswered is not None:
            return times
        due, interval = self.next_ping, self._interval
        while due is not None and (due < until or (inclusive and due == until)):
            times.append(due)
            due = due + interval  # as on_timer(due) computes it
        self.next_ping = due
        self.pings += len(times)
        self.pongs += len(times)
        return times

    def unanswered_deadline(self) -> float | None:
        """When the ping sent and not yet answered times out (None: none outstanding)."""
        if self.oldest_unanswered is None or self.next_ping is None:
            return None
        return self.oldest_unanswered + self._timeout

    def on_pong(self, now: float) -> None:
        """An answer arrived: it acknowledges every ping sent so far."""
        if self.oldest_unanswered is not None:
            self.pongs += 1
            self.oldest_unanswered = None


_APP = Liveness(
    "app",
    20.0,
    20.0,
    "app",
    summary="application-level heartbeat the page itself must answer, 20 s / 20 s",
)

LIVENESS: dict[str, Liveness] = {
    rule.name: rule
    for rule in (
        Liveness("websockets", 20.0, 20.0, summary="websockets' default: ping 20 s, timeout 20 s"),
        Liveness("socketio", 25.0, 20.0, summary="Socket.IO: ping every 25 s, 20 s timeout"),
        Liveness("signalr", 15.0, 30.0, summary="SignalR: keepalive every 15 s, 30 s timeout"),
        Liveness("phoenix", 30.0, 60.0, summary="Phoenix: heartbeat every 30 s, 60 s timeout"),
        Liveness("off", None, None, summary="no heartbeat: a silent peer is never found"),
        _APP,
        Liveness(
            "websockets+app",
            20.0,
            20.0,
            summary="websockets' protocol ping 20 s/20 s and the app-level heartbeat "
            "20 s/20 s, side by side",
            also=_APP,
        ),
    )
}


def liveness(name: str) -> Liveness:
    """A liveness preset by name."""
    try:
        return LIVENESS[name]
    except KeyError:
        raise choice("liveness preset", name, list(LIVENESS)) from None
