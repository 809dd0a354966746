"""The page lifecycle table (simkit.model.page): every move it lists is taken, every move it
does not list raises, names both the state and the event, and leaves the state alone."""

from __future__ import annotations

import pytest

from simkit.model.errors import IllegalTransition, SimkitError
from simkit.model.page import TRANSITIONS, Page, diagram, step

EVENTS = sorted({event for row in TRANSITIONS.values() for event in row})
LEGAL = [(state, event, dst) for state, row in TRANSITIONS.items() for event, dst in row.items()]
ILLEGAL = [
    (state, event)
    for state in Page
    for event in [*EVENTS, "teleport"]
    if event not in TRANSITIONS[state]
]


def test_the_table_covers_every_state_and_has_illegal_moves() -> None:
    assert set(TRANSITIONS) == set(Page)
    assert len(ILLEGAL) > len(Page)  # the complement is not empty: the test below tests


@pytest.mark.parametrize(("state", "event", "dst"), LEGAL, ids=lambda v: getattr(v, "value", v))
def test_every_legal_move_lands_where_the_table_says(state: Page, event: str, dst: Page) -> None:
    assert step(state, event) is dst


@pytest.mark.parametrize(("state", "event"), ILLEGAL, ids=lambda v: getattr(v, "value", v))
def test_every_illegal_move_raises_naming_state_and_event(state: Page, event: str) -> None:
    current = state
    with pytest.raises(IllegalTransition) as caught:
        current = step(current, event)
    assert current is state  # unchanged: the caller can still read it
    error = caught.value
    assert isinstance(error, SimkitError)
    assert (error.machine, error.state, error.event) == ("page", state.value, event)
    assert repr(event) in str(error) and repr(state.value) in str(error)


def test_gone_is_final() -> None:
    assert TRANSITIONS[Page.GONE] == {}
    for event in EVENTS:
        with pytest.raises(IllegalTransition):
            step(Page.GONE, event)


def test_the_diagram_is_the_table() -> None:
    lines = diagram().splitlines()
    assert len(lines) == len(LEGAL)
    for (state, event, dst), line in zip(LEGAL, lines, strict=True):
        assert line.split() == [state.value, f"--{event}-->", dst.value]
