"""The model's prediction for the post-mortem's real front end, and the comparison.

The ``seed`` preset claims to be the post-mortem's client and handler as written; the
example front end (``examples/postmortem_frontend``) *is* that client (``?client=postfix``)
and the one before it (``?client=prefix``). This module says what the virtual runtime
predicts for a run of that page and sets prediction and measurement side by side, so that
a difference is a number with a tolerance, not an impression.

Three things make the prediction the same experiment as the real run, and each is a fact
about the real run, not a fudge:

- **the page's own timers run in real time** while the scenario is scaled (``scale`` wall
  seconds per scenario second): the manager's 3 s guard, 100 ms poll and 100 ms wait are
  ``3/scale``, ``0.1/scale`` and ``0.1/scale`` scenario seconds (:func:`model_strategy`);
- **which loads StrictMode doubles**: React StrictMode (``next dev``) mounts, unmounts and
  mounts again only components placed on the client; a tree hydrated from the server's
  HTML is not placed, so its effects run once. The post-mortem's provider sits in the root
  layout and is hydrated: measured with Chromium, one socket per load under ``next dev``
  too (:mod:`simkit.realfront.strictmode`). So the prediction plays the scenario's loads as
  they are (``strict=False``); ``strict=True`` plays each as a StrictMode load, the case of
  a provider mounted on the client (:func:`strict_loads`);
- **the backend is FastAPI on uvicorn's default WebSocket implementation**: the virtual
  runtime plays its measured transport profile (``Virtual(stack="fastapi")``).

The pre-fix client is ``seed`` with the client before the fix: an id kept in sessionStorage
(``per-tab``), no unload or visibility handler, no guard, and no effect cleanup (StrictMode's
first mount leaves its socket open) (:data:`PREFIX`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from simkit.api import run
from simkit.model.errors import choice
from simkit.model.strategy import STRATEGIES, Strategy
from simkit.runtimes import Virtual
from simkit.scenarios import Scenario
from simkit.scenarios import scenario as scenario_of

if TYPE_CHECKING:
    from simkit.realfront.stack import PagePlay
    from simkit.results import Result
    from simkit.runtime.interfaces import TabActor

# The page's client code -> the model's strategy for it (before scaling its timers).
# The post-mortem's client as its code runs (examples/postmortem_frontend/lib): ``seed``,
# plus what its manager does that the preset does not say: disconnect() closes a socket
# still connecting at once (and clears the guard), the effect draws the id (per mount), and
# nothing reconnects a socket closed under the page (only load and show open one).
POSTFIX = STRATEGIES["seed"].replace(
    name="seed-as-run",
    cancel="at-once",
    claim_per="mount",
    reconnect="never",
    summary="seed as the example front end's code runs it: disconnect() fails a socket "
    "still connecting, the id is drawn in the effect, no retry after a close",
)
PREFIX = POSTFIX.replace(
    name="seed-prefix",
    identity="per-tab",
    unload="none",
    visibility="keep",
    guard="none",
    guard_poll=0.0,
    replace_wait=0.0,
    cleanup="none",
    claim_per="mount",
    summary="the post-mortem's client before its fix (an id kept in sessionStorage, no "
    "listeners, no effect cleanup) on its handler as written",
)
MODELS: dict[str, Strategy] = {"prefix": PREFIX, "postfix": POSTFIX}
STACK = Virtual(stack="fastapi")  # uvicorn's default WebSocket implementation


def model_strategy(client: str, scale: float) -> Strategy:
    """The model of ``client``'s code at a run's ``scale``: the page's timers are real
    seconds, so in scenario seconds they are divided by the scale."""
    if client not in MODELS:
        raise choice("client", client, list(MODELS))
    base = MODELS[client]
    c = base.client
    return base.replace(
        guard_wait=c.guard_wait / scale,
        guard_poll=c.guard_poll / scale,
        replace_wait=c.replace_wait / scale,
    )


class CountingTab:
    """A tab that counts the loads its script makes (the census does not), and plays each
    as a StrictMode load when ``strict`` (a provider mounted on the client under ``next
    dev``); otherwise as the script says."""

    def __init__(self, tab: TabActor, loads: list[int], strict: bool) -> None:
        self._tab = tab
        self._loads = loads
        self._strict = strict

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tab, name)

    def load(self, *, strict_mode: bool = False) -> None:
        self._loads[0] += 1
        self._tab.load(strict_mode=strict_mode or self._strict)

    async def reload(
        self, downtime: float, *, vanish: bool = False, strict_mode: bool = False
    ) -> None:
        self._loads[0] += 1
        await self._tab.reload(downtime, vanish=vanish, strict_mode=strict_mode or self._strict)


def strict_loads(sc: Scenario, loads: list[int], strict: bool = True) -> Scenario:
    """``sc`` counting its loads into ``loads[0]``, each a StrictMode load when ``strict``.
    Same name, same random streams: the same loads at the same times."""
    script = sc.script

    async def played(tab: TabActor, s: Scenario) -> None:
        await script(CountingTab(tab, loads, strict), s)

    return sc.with_(script=played)


@dataclass(frozen=True)
class Prediction:
    """The virtual run of the same scenario, seed and size, and what it counted."""

    client: str
    result: Result
    loads: int
    sockets: int  # sockets the pages opened (connect events), reached the server or not


def predict(
    scenario: str | Scenario,
    client: str,
    *,
    tabs: int = 4,
    duration: float = 30.0,
    settle: float = 10.0,
    scale: float = 0.2,
    seed: int = 0,
    strict: bool = False,
) -> Prediction:
    """The model's run of what :meth:`PostmortemStack.play
    <simkit.realfront.stack.PostmortemStack.play>` plays for real with the same arguments
    (``strict``: every load a StrictMode load, see the module's docstring)."""
    loads = [0]
    played = strict_loads(scenario_of(scenario), loads, strict)
    strategy = model_strategy(client, scale)
    result = run(
        played, strategy, tabs=tabs, duration=duration, settle=settle, seed=seed,
        runtime=STACK, trace=True,
    )  # fmt: skip
    trace = result.trace
    sockets = int((trace["event"] == "connect").sum()) if trace is not None else 0
    return Prediction(client, result, loads[0], sockets)


# -- the comparison ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    """How far a real figure may be from the model's: ``absolute`` plus ``relative`` times
    the model's figure. Why each is what it is goes with it."""

    absolute: float
    relative: float = 0.0
    why: str = ""

    def allows(self, real: float, model: float) -> bool:
        if math.isnan(real) or math.isnan(model):
            return False
        return abs(real - model) <= self.absolute + self.relative * abs(model)


TOLERANCES: dict[str, Tolerance] = {
    "connects": Tolerance(
        2,
        0.1,
        "handshakes that reach the server: a close at the very start of one can "
        "beat its request to the wire, or not",
    ),
    "sockets_per_load": Tolerance(
        0.15, 0.0, "sockets the page created per load (CDP): the page's code decides it"
    ),
    "peak_duplicates": Tolerance(1, 0.0, "two open for one user, at the sampled instants"),
    "final_stale": Tolerance(0, 0.0, "after the settle every socket has had its close"),
    "final_unroutable": Tolerance(0, 0.0, "after the settle the registry holds still"),
}
METRICS = tuple(TOLERANCES)


def real_figures(play: PagePlay) -> dict[str, float]:
    """The figures of a real play, by the names of :data:`METRICS`."""
    ts = play.result.timeseries
    sockets = play.result.summary["page_sockets"]
    loads = sockets["loads"]
    return {
        "connects": float(ts["connects"].iloc[-1]),
        "sockets_per_load": sockets["sockets"] / loads if loads else math.nan,
        "peak_duplicates": float(ts["duplicates"].max()),
        "final_stale": float(ts["stale"].iloc[-1]),
        "final_unroutable": float(ts["unroutable"].iloc[-1]),
    }


def model_figures(prediction: Prediction) -> dict[str, float]:
    """The same figures from the model's run."""
    ts = prediction.result.timeseries
    loads = prediction.loads
    return {
        "connects": float(ts["connects"].iloc[-1]),
        "sockets_per_load": prediction.sockets / loads if loads else math.nan,
        "peak_duplicates": float(ts["duplicates"].max()),
        "final_stale": float(ts["stale"].iloc[-1]),
        "final_unroutable": float(ts["unroutable"].iloc[-1]),
    }


def compare(
    play: PagePlay,
    prediction: Prediction,
    tolerances: dict[str, Tolerance] | None = None,
) -> pd.DataFrame:
    """One row per metric: ``real``, ``model``, the ``tolerance`` (absolute bound for this
    model figure), ``agree`` and why the tolerance is what it is."""
    bounds = TOLERANCES if tolerances is None else tolerances
    real, model = real_figures(play), model_figures(prediction)
    rows = []
    for metric, tol in bounds.items():
        r, m = real[metric], model[metric]
        rows.append(
            {
                "metric": metric,
                "real": r,
                "model": m,
                "tolerance": tol.absolute + tol.relative * abs(m),
                "agree": tol.allows(r, m),
                "why": tol.why,
            }
        )
    return pd.DataFrame(rows).set_index("metric")


__all__ = [
    "METRICS",
    "MODELS",
    "POSTFIX",
    "PREFIX",
    "STACK",
    "TOLERANCES",
    "CountingTab",
    "Prediction",
    "Tolerance",
    "compare",
    "model_figures",
    "model_strategy",
    "predict",
    "real_figures",
    "strict_loads",
]
