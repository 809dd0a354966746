"""Which user ids a real page's sockets claimed, read from the sockets themselves.

The post-mortem's first client fix draws a fresh id for every page load, so the server can
no longer tell that two loads are the same person (a push "to the user" finds nobody, two
tabs of one person look like strangers). How much identity a client keeps is a count the
kit can take without the page's help: each socket's URL carries the ``user`` the server
registered it under (the last ``user`` parameter, the one Starlette reads).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pandas as pd

if TYPE_CHECKING:
    from simkit.realfront.stack import PagePlay


def user_of(url: str) -> str:
    """The user a socket URL registers under: its last ``user`` parameter ("" if none)."""
    values = parse_qs(urlsplit(url).query).get("user", [""])
    return values[-1]


def users_per_tab(sockets: pd.DataFrame) -> pd.DataFrame:
    """Per tab: its page loads, the distinct user ids its sockets claimed, and the sockets
    (app sockets only, from :attr:`PagePlay.sockets <simkit.realfront.stack.PagePlay>`)."""
    columns = ["loads", "users", "sockets"]
    if sockets.empty:
        return pd.DataFrame(columns=columns)
    app = sockets[sockets["app"]] if "app" in sockets else sockets
    users = app["url"].map(user_of)
    frame = app.assign(user=users)
    return frame.groupby("tab").agg(
        loads=("load", "nunique"), users=("user", "nunique"), sockets=("id", "size")
    )[columns]


def identities(sockets: pd.DataFrame) -> dict[str, int]:
    """The whole run: tabs, page loads that opened a socket, sockets, and distinct user ids
    (a client that keeps its id has one per tab, twins of a duplicated tab sharing it; one
    that draws an id per load has one per load)."""
    if sockets.empty:
        return {"tabs": 0, "loads": 0, "sockets": 0, "users": 0}
    app = sockets[sockets["app"]] if "app" in sockets else sockets
    return {
        "tabs": int(app["tab"].nunique()),
        "loads": int(app["load"].nunique()),
        "sockets": len(app),
        "users": int(app["url"].map(user_of).nunique()),
    }


def play_facts(play: PagePlay) -> dict[str, float]:
    """What a lesson asserts of one real play: :func:`identities`, who closed its sockets
    (the server: a handler's kick; the page: its own close), and its unroutable tabs."""
    summary = play.result.summary
    closed_by = summary["page_sockets"]["closed_by"]
    return {
        **identities(play.sockets),
        "closed by the server": closed_by.get("server", 0),
        "closed by the page": closed_by.get("page", 0),
        "peak unroutable": summary["peak_unroutable"],
        "final unroutable": summary["final_unroutable"],
    }


__all__ = ["identities", "play_facts", "user_of", "users_per_tab"]
