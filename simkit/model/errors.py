"""Every error simkit raises on purpose, rooted in :class:`SimkitError`.

Split by blame, as h11 does: the caller misused the kit (a bad name or value, a move a
state machine does not allow), or a run could not be trusted (a script failed, the clock
stopped, a browser or a service misbehaved). ``except SimkitError`` catches all of them;
each also derives from the builtin a caller would expect (``ValueError`` for bad input,
``RuntimeError`` for a failed run), so older ``except`` clauses keep working. The tree::

    SimkitError
    ├── ConfigError (ValueError)          a bad name or value; names it and what is allowed
    │   └── SchedulerUnreachable          a sweep's Dask scheduler does not answer
    ├── NoWorkers (RuntimeError)          a sweep's cluster had no live worker for too long
    ├── TokenError                        a signed identity token that does not verify
    ├── UnsupportedPython (ImportError)   this Python's asyncio lacks an internal the virtual
    │                                     loop relies on
    ├── Nonconforming (AssertionError)    a network broke the link contract (conformance)
    ├── _Failed                           the same, inside one step, before its name is known
    ├── PageMissing                       the kit's page (static HTML/JS) is missing or broken
    ├── StatsUnavailable                  a target's stats route gave no usable answer (the
    │                                     run goes on: those columns are NaN, with why)
    ├── IllegalTransition (RuntimeError)  a state machine refused an event (page, connection)
    │   └── IllegalConnectionTransition   one end of a connection refused an event
    └── RunFailed (RuntimeError)          a run that cannot be trusted returns no numbers
        ├── ScriptFailed                  a scenario's script or control task raised
        ├── ClientFailed                  a real client's task failed (live runtimes)
        ├── SimulationStalled             the virtual clock stopped advancing
        ├── VirtualDeadlock               nothing can ever wake the virtual run again
        ├── UnhandledError                an error nobody awaited, raised on the virtual loop
        ├── BrowserError                  Chromium or its DevTools protocol failed
        │   └── CDPError                  a DevTools call answered with an error
        └── ServiceError                  a server the run needs (uvicorn, Redis, Next.js)
            │                             did not start or went away
            └── NextAppError              a Next.js app failed to build or start (its log tail)

Subclasses defined in other modules (``TokenError`` in :mod:`simkit.model.tokens`,
``VirtualDeadlock`` and ``UnhandledError`` in :mod:`simkit.virtual.loop`,
``SchedulerUnreachable`` and ``NoWorkers`` in :mod:`simkit.study.cluster`,
``Nonconforming`` in :mod:`simkit.conformance.links`, ``NextAppError`` in
:mod:`simkit.net.nextapp`, ``PageMissing``
in :mod:`simkit.net.page`, ``CDPError`` in
:mod:`simkit.browser.cdp`, ``StatsUnavailable`` in :mod:`simkit.net.target.stats`) derive
from the classes here; ``tests/model/test_errors.py`` checks that every exception class
the package defines derives from :class:`SimkitError` and is drawn in this tree.
"""

from __future__ import annotations


class SimkitError(Exception):
    """Base of every error simkit raises on purpose."""


class ConfigError(SimkitError, ValueError):
    """A bad name or value was given to the kit (the message names it and what is allowed)."""


class IllegalTransition(SimkitError, RuntimeError):
    """An event arrived that the state machine does not allow in its current state.

    The state is left unchanged, so the caller can inspect it.
    """

    def __init__(self, machine: str, state: str, event: str) -> None:
        super().__init__(f"{machine}: event {event!r} is not allowed in state {state!r}")
        self.machine, self.state, self.event = machine, state, event


class UnsupportedPython(SimkitError, ImportError):
    """This Python's asyncio lacks (or reshaped) an internal the virtual loop relies on
    (:mod:`simkit.virtual.compat` names each one): raised at import, naming the version and
    every missing piece, instead of a wrong result later."""


def choice(kind: str, value: object, allowed: list[str] | tuple[str, ...]) -> ConfigError:
    """The one way the kit reports an unknown name: the bad value and every valid one."""
    return ConfigError(f"unknown {kind} {value!r}; choose one of: {', '.join(allowed)}")


class RunFailed(SimkitError, RuntimeError):
    """A run that cannot be trusted: it returns no numbers, and says what failed.

    ``scenario`` and ``strategy`` name the run (empty when not known where it was raised),
    ``task`` the part that failed (a tab's script, the control, a client), ``cause`` the
    original exception (also chained as ``__cause__``)."""

    def __init__(
        self,
        message: str,
        *,
        scenario: str = "",
        strategy: str = "",
        task: str = "",
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(message)
        self.scenario, self.strategy, self.task, self.cause = scenario, strategy, task, cause


class ScriptFailed(RunFailed):
    """A scenario's script (one tab's life) or its server-side control raised."""


class ClientFailed(RunFailed):
    """A real client's task failed during a live run (its socket code raised)."""


class SimulationStalled(RunFailed):
    """The virtual clock stopped advancing: something keeps re-scheduling itself at the same
    instant, so the run would never return. Raised instead of hanging a notebook cell.

    ``now`` is the virtual time the clock is stuck at, ``steps`` how many loop steps ran at
    that instant, ``culprits`` a sentence naming what kept waking (tasks and callbacks).
    """

    def __init__(self, message: str, *, now: float, steps: int, culprits: str) -> None:
        super().__init__(message)
        self.now, self.steps, self.culprits = now, steps, culprits


class BrowserError(RunFailed):
    """Chromium did not start, died, or could not do what a tab's verb asked."""


class ServiceError(RunFailed):
    """A server the run needs (uvicorn, redis-server, a Next.js app) did not start in its
    bounded wait, or went away."""


class IllegalConnectionTransition(IllegalTransition):
    """An event that one end of a connection does not allow in its state
    (:mod:`simkit.model.connection`). ``side`` is ``"client"`` or ``"server"``."""

    def __init__(self, side: str, state: str, event: str) -> None:
        super().__init__(f"connection ({side} side)", state, event)
        self.side = side


__all__ = [
    "BrowserError",
    "ClientFailed",
    "ConfigError",
    "IllegalConnectionTransition",
    "IllegalTransition",
    "RunFailed",
    "ScriptFailed",
    "ServiceError",
    "SimkitError",
    "SimulationStalled",
    "UnsupportedPython",
    "choice",
]
