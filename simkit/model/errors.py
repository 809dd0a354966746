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
