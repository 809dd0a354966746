"""A connection's two ends (simkit.model.connection): every move the table lists is taken,
every move it does not list raises naming the side, the state and the event, and leaves the
state alone; random event sequences never leave the table."""

from __future__ import annotations

from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simkit.model.connection import (
    CLIENT_TRANSITIONS,
    SERVER_TRANSITIONS,
    SIDES,
    TRANSITIONS,
    ClientState,
    ServerState,
    client_step,
    diagram,
    events,
    server_step,
    step,
)
from simkit.model.errors import ConfigError, IllegalConnectionTransition, IllegalTransition
from simkit.model.registry import REGISTRIES, CloseAwaitRegister, Hello, Registry

STATES = {"client": ClientState, "server": ServerState}
STEPS = {"client": client_step, "server": server_step}
LEGAL = [
    (side, state, event, dst)
    for side in SIDES
    for state, row in TRANSITIONS[side].items()
    for event, dst in row.items()
]
# The complement of the table: every (state, event) pair of a side that it does not list,
# plus an event no side knows and the other side's events.
ALL_EVENTS = [*events("client"), *(e for e in events("server") if e not in events("client"))]
ILLEGAL = [
    (side, state, event)
    for side in SIDES
    for state in STATES[side]
    for event in [*ALL_EVENTS, "teleport"]
    if event not in TRANSITIONS[side][state]
]


def _id(value: object) -> str:
    return str(getattr(value, "value", value))


def test_the_page_sees_the_old_strings() -> None:
    """Callers compared ``link.client`` with strings: they still can."""
    assert [s.value for s in ClientState] == ["connecting", "open", "closing", "closed"]
    assert [s.value for s in ServerState] == ["none", "open", "closing", "closed"]
    assert ClientState.OPEN == "open" and f"{ClientState.CLOSING}" == "closing"
    assert ClientState.OPEN != "closed"


def test_the_table_covers_every_state_and_the_complement_is_not_empty() -> None:
    assert set(CLIENT_TRANSITIONS) == set(ClientState)
    assert set(SERVER_TRANSITIONS) == set(ServerState)
    assert TRANSITIONS == {"client": CLIENT_TRANSITIONS, "server": SERVER_TRANSITIONS}
    assert CLIENT_TRANSITIONS[ClientState.CLOSED] == SERVER_TRANSITIONS[ServerState.CLOSED] == {}
    assert len(ILLEGAL) > 20


@pytest.mark.parametrize(("side", "state", "event", "dst"), LEGAL, ids=_id)
def test_every_legal_move_lands_where_the_table_says(
    side: str, state: ClientState | ServerState, event: str, dst: ClientState | ServerState
) -> None:
    assert STEPS[side](state, event) is dst
    assert step(side, state, event) is dst
    assert step(side, state.value, event) is dst  # the plain string


@pytest.mark.parametrize(("side", "state", "event"), ILLEGAL, ids=_id)
def test_every_illegal_move_raises_naming_side_state_and_event(
    side: str, state: ClientState | ServerState, event: str
) -> None:
    for move in (STEPS[side], lambda s, e: step(side, s, e)):
        current = state
        with pytest.raises(IllegalConnectionTransition) as caught:
            current = move(current, event)
        assert current is state  # unchanged
        error = caught.value
        assert isinstance(error, IllegalTransition)
        assert (error.side, error.state, error.event) == (side, state.value, event)
        text = str(error)
        assert side in text and repr(state.value) in text and repr(event) in text


def test_a_state_of_the_other_side_or_an_unknown_side_is_refused() -> None:
    with pytest.raises(IllegalConnectionTransition, match="'none'"):
        step("client", "none", "open")
    with pytest.raises(ConfigError, match=r"unknown connection side 'proxy'.*client, server"):
        step("proxy", "open", "close")


@given(
    side=st.sampled_from(SIDES),
    moves=st.lists(st.sampled_from([*ALL_EVENTS, "teleport"]), max_size=12),
)
def test_any_sequence_of_events_follows_the_table(side: str, moves: list[str]) -> None:
    """Whatever arrives, the state only ever moves along the table; closed is final."""
    state = next(iter(STATES[side]))  # the first state: connecting / none
    for event in moves:
        allowed = TRANSITIONS[side][state]
        try:
            after = STEPS[side](state, event)
        except IllegalConnectionTransition:
            assert event not in allowed
            continue
        assert after is allowed[event]
        state = after
    if state.value == "closed":
        assert TRANSITIONS[side][state] == {}


def test_the_diagram_is_the_table() -> None:
    lines = diagram().splitlines()
    assert len(lines) == len(LEGAL)
    for (side, state, event, dst), line in zip(LEGAL, lines, strict=True):
        assert line.split() == [f"{side}:", state.value, f"--{event}-->", dst.value]


# -- the registry's waiting handlers: asked through its API, never its attributes ----------


@pytest.mark.parametrize("name", sorted(set(REGISTRIES) - {"close-await-register"}))
def test_policies_whose_closes_nobody_awaits_report_no_waiting_handler(name: str) -> None:
    registry = REGISTRIES[name]()
    registry.connect(Hello(1, "u"), 0.0)
    registry.connect(Hello(2, "u"), 1.0)
    assert dict(registry.awaiting()) == {}
    assert registry.resumed(2, "u", 2.0) == []


def test_close_await_register_reports_its_waiting_handler_read_only() -> None:
    registry: Registry = CloseAwaitRegister()
    registry.connect(Hello(1, "u"), 0.0)
    registry.connect(Hello(2, "u"), 1.0)  # closes 1 and waits for it
    waiting = registry.awaiting()
    assert isinstance(waiting, MappingProxyType) and dict(waiting) == {2: 1}
    with pytest.raises(TypeError):
        waiting[3] = 1
    assert registry.resumed(2, "u", 2.0) == []  # 1 still registered: 2 replaces it
    assert dict(registry.awaiting()) == {} and registry.route("u") == (2,)
