"""The page lifecycle of one tab as an explicit transition table (h11 style).

A tab is a sequence of page loads. Within a load the page is ``active`` (visible), ``hidden``,
``frozen`` (the browser stopped its code) or ``bfcached`` (the user navigated away and the
page waits in the back/forward cache); between loads it is ``unloaded`` (a reload is in
progress); at the end it is
``gone`` (closed or crashed). An event that the table does not allow raises
:class:`~simkit.model.errors.IllegalTransition` naming the event and state, and the state is
unchanged. Notebook 04 prints :func:`diagram`, drawn from this same table, so the lifecycle
a learner reads is the one every tab plays.
"""

from __future__ import annotations

from enum import Enum

from simkit.model.errors import IllegalTransition


class Page(Enum):
    UNLOADED = "unloaded"
    ACTIVE = "active"
    HIDDEN = "hidden"
    FROZEN = "frozen"
    BFCACHED = "bfcached"
    GONE = "gone"


TRANSITIONS: dict[Page, dict[str, Page]] = {
    Page.UNLOADED: {"load": Page.ACTIVE, "close": Page.GONE, "crash": Page.GONE},
    Page.ACTIVE: {
        "unload": Page.UNLOADED,
        "hide": Page.HIDDEN,
        "freeze": Page.FROZEN,
        "enter_bfcache": Page.BFCACHED,
        "close": Page.GONE,
        "crash": Page.GONE,
    },
    Page.HIDDEN: {
        "show": Page.ACTIVE,
        "unload": Page.UNLOADED,
        "freeze": Page.FROZEN,
        "enter_bfcache": Page.BFCACHED,
        "close": Page.GONE,
        "crash": Page.GONE,
    },
    Page.FROZEN: {"resume": Page.ACTIVE, "close": Page.GONE, "crash": Page.GONE},
    Page.BFCACHED: {"restore": Page.ACTIVE, "evict": Page.GONE, "crash": Page.GONE},
    Page.GONE: {},
}


# Each state's row by the member's identity: hashing an Enum member runs Enum.__hash__, a
# Python frame, and a tab steps its page twice per reload.
_ROWS: dict[int, dict[str, Page]] = {id(state): row for state, row in TRANSITIONS.items()}


def step(state: Page, event: str) -> Page:
    """The state after ``event``; raises IllegalTransition (state unchanged) if not allowed."""
    try:
        return _ROWS[id(state)][event]
    except KeyError:
        raise IllegalTransition("page", state.value, event) from None


def diagram() -> str:
    """The table as Graphviz-free text, one ``state --event--> state`` transition per line
    (notebook 04 prints it)."""
    return "\n".join(
        f"{src.value:>8} --{event}--> {dst.value}"
        for src, row in TRANSITIONS.items()
        for event, dst in row.items()
    )
