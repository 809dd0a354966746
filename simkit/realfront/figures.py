"""The figure of a lesson on the real front end: each real play beside its prediction.

One column per play (a client on a backend), one row per metric; the real tabs' count as a
solid line, the model's as a dashed one, both in the course colour of the play's design
(:func:`simkit.plots.colour`), so a reader sees at once where the two agree and where not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from simkit.plots import colour, layout, legend, mark_workload_end, style_axes

if TYPE_CHECKING:
    import pandas as pd

    from simkit.realfront.model import Prediction
    from simkit.realfront.stack import PagePlay


def real_and_model(
    plays: Mapping[str, tuple[PagePlay, Prediction]],
    metrics: Sequence[str] = ("open_sockets", "unroutable"),
    *,
    colours: Mapping[str, str] | None = None,
) -> Any:
    """A grid of panels, one column per entry of ``plays`` (title: its key), one row per
    metric; ``colours`` maps a key to the preset whose colour it takes (default: the
    key itself). Returns the Figure."""
    import matplotlib.pyplot as plt

    names = list(plays)
    fig, axes = plt.subplots(
        len(metrics), len(names), figsize=(4.2 * len(names), 2.6 * len(metrics)),
        squeeze=False, sharex=True, sharey="row", layout="constrained",
    )  # fmt: skip
    for column, name in enumerate(names):
        real, prediction = plays[name]
        tint = colour((colours or {}).get(name, name))
        duration = float(real.result.summary["duration"])
        for row, metric in enumerate(metrics):
            ax = axes[row][column]
            r, m = real.result.timeseries, prediction.result.timeseries
            ax.plot(r["t"], r[metric], color=tint, lw=2, label="real Chromium tabs")
            ax.plot(m["t"], m[metric], color=tint, ls="--", lw=1.5, label="virtual model")
            mark_workload_end(ax, duration)
            style_axes(ax, xlabel="t" if row == len(metrics) - 1 else None, ylabel=metric)
            if row == 0:
                ax.set_title(name)
    legend(axes[0][-1])
    layout(fig)
    return fig


def problem1_shares(cases: pd.DataFrame) -> Any:
    """The share of repetitions in which each condition made the rewrites proxy log its
    line (:func:`simkit.realfront.problem1.cases`): a bar per condition, red where the line
    came every time, orange where sometimes, green where never. Returns the Figure."""
    import matplotlib.pyplot as plt

    def tint(share: float) -> str:
        if share >= 1.0:
            return colour("before")
        return colour("postmortem") if share > 0 else colour("postmortem-safe")

    fig, ax = plt.subplots(figsize=(9, 0.3 * len(cases) + 1.2), layout="constrained")
    ax.barh(list(cases.index), cases["share"], color=[tint(s) for s in cases["share"]])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    style_axes(ax, xlabel="share of the repetitions that logged the line")
    ax.set_title('which conditions make the rewrites proxy log "socket hang up"')
    layout(fig)
    return fig


__all__ = ["problem1_shares", "real_and_model"]
