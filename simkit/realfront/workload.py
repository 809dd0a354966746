"""The workload of the post-mortem's second problem, for real tabs on its real front end:
users who reload and who switch away from the tab and back, mixed.

The kit's ``reload-storm`` reloads and ``hidden-tabs`` hides; the post-mortem's fixes answer
both at once (a fresh id per load, close on ``beforeunload``, close when hidden and reopen
when shown), so a lesson about them plays both on the same tabs: :data:`RELOAD_AND_HIDE`.
Every fourth tab is also duplicated once (the browser's "Duplicate tab" copies its
sessionStorage, so a client that keeps its id there connects twice as the same user: the
post-mortem's "conflicting connections with the same user id").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simkit.model.latency import Latency
from simkit.scenarios import Scenario

if TYPE_CHECKING:
    from simkit.runtime.interfaces import TabActor

MEAN_GAP = 12.0  # scenario seconds between a tab's actions, on average
MEAN_HIDDEN = 6.0  # scenario seconds a hidden tab stays hidden, on average
DUPLICATE_EVERY = 4  # tabs 0, 4, 8... are duplicated once
TWINS = 40  # a twin of tab i is tab TWINS + i (the browser runtime plays at most 60 tabs)


async def reload_and_hide(tab: TabActor, sc: Scenario) -> None:
    """Arrive within 3 s; then about every 12 s either reload (half the time) or go to the
    background for about 6 s and come back; nothing new after ``duration``. Every fourth
    tab is duplicated once, between 30 % and 60 % of ``duration``."""
    rng = tab.work_rng
    await tab.sleep(rng.uniform(0.0, 3.0))
    tab.load()
    twin_at = rng.uniform(0.3, 0.6) * sc.duration if tab.index % DUPLICATE_EVERY == 0 else None
    while True:
        if twin_at is not None and tab.now >= twin_at:
            tab.duplicate(TWINS + tab.index)  # the twin stays open, untouched, to the end
            twin_at = None
        await tab.sleep(rng.expovariate(1.0 / MEAN_GAP))
        if tab.now >= sc.duration:
            return
        if rng.random() < 0.5:
            await tab.reload(rng.uniform(0.05, 0.5))
        else:
            tab.hide()
            await tab.sleep(
                min(rng.expovariate(1.0 / MEAN_HIDDEN), max(0.0, sc.duration - tab.now))
            )
            tab.show()


RELOAD_AND_HIDE = Scenario(
    "reload-and-hide",
    "tabs that reload and go to the background and back, mixed",
    reload_and_hide,
    latency=Latency(0.01, 0.02),
    push_rate=0.0,
)

__all__ = [
    "DUPLICATE_EVERY",
    "MEAN_GAP",
    "MEAN_HIDDEN",
    "RELOAD_AND_HIDE",
    "TWINS",
    "reload_and_hide",
]
