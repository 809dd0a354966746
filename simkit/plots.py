"""Plots of a run's event trace: the race timeline that notebook 02 draws.

A race is a question of order between a few connections, which a time series sampled once a
second cannot show; the trace (``simkit.run(..., trace=True)``) has every event at its
exact time, so the timeline draws one lane per connection and one marker per event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from simkit.model.errors import ConfigError

# Every colour and marker means one kind of event; the legend says which, in these words.
EVENT_STYLE: dict[str, tuple[str, str, str]] = {
    "connect": ("tab:blue", "o", "page opens the socket"),
    "client-closing": ("tab:purple", "v", "page starts closing it"),
    "server-open": ("tab:green", "s", "server registers it"),
    "server-close": ("tab:orange", "X", "server closes it"),
    "client-close": ("tab:brown", "^", "page sees it closed"),
    "server-cleanup": ("tab:red", "D", "handler's cleanup runs"),
}
OTHER_STYLE = ("black", "*", "other event")


def timeline(
    trace: pd.DataFrame,
    conns: Sequence[int],
    *,
    labels: Sequence[str] | None = None,
    shade: tuple[float, float] | None = None,
    shade_label: str = "",
    xlim: tuple[float, float] | None = None,
    title: str | None = None,
    ax: Any = None,
) -> Any:
    """One lane per connection in ``conns`` (bottom to top), one marker per traced event,
    coloured by kind and annotated with its close code; returns the Figure.

    ``shade`` = (start, end) marks a span (e.g. the time a live tab was unroutable), named
    in the legend by ``shade_label``; ``xlim`` zooms on the race. A ``client-closing`` event
    (the page starts closing its socket), when the trace has it, is drawn like the others.
    """
    import matplotlib.pyplot as plt

    conns = [int(c) for c in conns]
    if not conns:
        raise ConfigError("timeline needs at least one connection id in conns")
    known = set(trace["conn"].dropna().astype(int))
    missing = [c for c in conns if c not in known]
    if missing:
        raise ConfigError(
            f"connection(s) {missing} are not in the trace; it has {len(known)} connections"
            + (f", ids {min(known)} to {max(known)}" if known else "")
        )
    if labels is None:
        labels = [f"c{c}" for c in conns]
    elif len(labels) != len(conns):
        raise ConfigError(f"labels must name each of the {len(conns)} conns, got {len(labels)}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(10, 1.4 + 1.0 * len(conns)))
    else:
        fig = ax.figure
    seen: dict[str, Any] = {}
    lane_handle = None
    for lane, conn in enumerate(conns):
        events = trace[trace["conn"] == conn]
        (lane_handle,) = ax.plot(
            [events["time"].min(), events["time"].max()], [lane, lane], color="grey", lw=1
        )
        rows = zip(
            events["time"].tolist(),
            events["event"].astype(str).tolist(),
            events["code"].tolist(),
            strict=True,
        )
        for k, (time, event, code) in enumerate(rows):
            colour, marker, meaning = EVENT_STYLE.get(event, OTHER_STYLE)
            (handle,) = ax.plot(time, lane, marker, color=colour, ms=7, ls="none")
            key = event if event in EVENT_STYLE else "other"
            seen.setdefault(key, (handle, f"{event}: {meaning}"))
            if code is not None and code is not pd.NA:
                # Codes alternate above and below the lane: events a few ms apart stay legible.
                ax.annotate(
                    str(int(code)),
                    (time, lane),
                    (0, 9 if k % 2 == 0 else -9),
                    textcoords="offset points",
                    ha="center",
                    va="bottom" if k % 2 == 0 else "top",
                    fontsize=7,
                    color=colour,
                )
    order = [e for e in EVENT_STYLE if e in seen] + (["other"] if "other" in seen else [])
    handles = [seen[e][0] for e in order]
    names = [seen[e][1] for e in order]
    if lane_handle is not None:
        handles.append(lane_handle)
        names.append("a connection, first to last event")
    if shade is not None:
        handles.append(ax.axvspan(*shade, color="tab:red", alpha=0.12))
        names.append(shade_label or "marked span")
    if xlim is not None:
        ax.set_xlim(*xlim)
    ax.set_yticks(range(len(conns)), list(labels))
    ax.set_ylim(-0.6, len(conns) - 0.4)
    ax.set_xlabel("time (s)")
    if title:
        ax.set_title(title)
    ax.legend(handles, names, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    fig.tight_layout()
    return fig
