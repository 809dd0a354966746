"""Which user ids a real page's sockets claimed, read from the sockets themselves.

The post-mortem's first client fix draws a fresh id for every page load, so the server can
no longer tell that two loads are the same person (a push "to the user" finds nobody, two
tabs of one person look like strangers). How much identity a client keeps is a count the
kit can take without the page's help: each socket's URL carries the ``user`` the server
registered it under (the last ``user`` parameter, the one Starlette reads).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pandas as pd


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


__all__ = ["user_of", "users_per_tab"]
