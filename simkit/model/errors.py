"""Errors split by blame, as h11 does: the caller misused the kit, or a peer misbehaved."""


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


def choice(kind: str, value: object, allowed: "list[str] | tuple[str, ...]") -> ConfigError:
    """The one way the kit reports an unknown name: the bad value and every valid one."""
    return ConfigError(f"unknown {kind} {value!r}; choose one of: {', '.join(allowed)}")


class SimulationStalled(SimkitError, RuntimeError):
    """The virtual clock stopped advancing: something keeps re-scheduling itself at the same
    instant, so the run would never return. Raised instead of hanging a notebook cell.

    ``now`` is the virtual time the clock is stuck at, ``steps`` how many loop steps ran at
    that instant, ``culprits`` a sentence naming what kept waking (tasks and callbacks).
    """

    def __init__(self, message: str, *, now: float, steps: int, culprits: str) -> None:
        super().__init__(message)
        self.now, self.steps, self.culprits = now, steps, culprits


class UnsupportedPython(SimkitError, ImportError):
    """This Python's asyncio lacks an internal the virtual loop relies on (or has it in
    another shape): raised when ``simkit.virtual`` is imported, naming the Python version
    and each missing piece, rather than letting a run go wrong later."""
