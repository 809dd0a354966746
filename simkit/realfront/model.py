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
# The backend -> the server side of the model: the post-mortem's handler as written
# (close-delete-register, uvicorn's keepalive not reached in a short run), or the same app
# on SafeRegistry("kick-old-safe") (examples/fixed_app.py).
REGISTRIES: dict[str, str] = {"postmortem": "close-delete-register", "safe": "kick-old-safe"}
STACK = Virtual(stack="fastapi")  # uvicorn's default WebSocket implementation


def model_strategy(client: str, scale: float, backend: str = "postmortem") -> Strategy:
    """The model of ``client``'s code on ``backend`` at a run's ``scale``: the page's timers
    are real seconds, so in scenario seconds they are divided by the scale."""
    if client not in MODELS:
        raise choice("client", client, list(MODELS))
    if backend not in REGISTRIES:
        raise choice("backend", backend, list(REGISTRIES))
    base = MODELS[client]
    c = base.client
    return base.replace(
        name=f"{base.name} on {backend}",
        registry=REGISTRIES[backend],
        guard_wait=c.guard_wait / scale,
        guard_poll=c.guard_poll / scale,
        replace_wait=c.replace_wait / scale,
    )


class CountingTab:
    """A tab that counts the loads its script makes (the census does not), and plays each
    as a StrictMode load when ``strict`` is True (a provider mounted on the client under
    ``next dev``), as a plain load when False (a hydrated provider: this example's), as the
    script says when None."""

    def __init__(self, tab: TabActor, loads: list[int], strict: bool | None) -> None:
        self._tab = tab
        self._loads = loads
        self._strict = strict

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tab, name)

    def _mode(self, asked: bool) -> bool:
        return asked if self._strict is None else self._strict

    def load(self, *, strict_mode: bool = False) -> None:
        self._loads[0] += 1
        self._tab.load(strict_mode=self._mode(strict_mode))

    async def reload(
        self, downtime: float, *, vanish: bool = False, strict_mode: bool = False
    ) -> None:
        self._loads[0] += 1
        await self._tab.reload(downtime, vanish=vanish, strict_mode=self._mode(strict_mode))

    def duplicate(self, index: int) -> Any:
        self._loads[0] += 1  # the twin's first load
        return self._tab.duplicate(index)


def strict_loads(sc: Scenario, loads: list[int], strict: bool | None = True) -> Scenario:
    """``sc`` counting its loads into ``loads[0]``, its StrictMode chosen by ``strict`` (see
    :class:`CountingTab`). Same name, same random streams: the same loads at the same
    times."""
    script = sc.script

    async def played(tab: TabActor, s: Scenario) -> None:
        await script(CountingTab(tab, loads, strict), s)

    return sc.with_(script=played)


BAND_SEEDS = 20  # model runs whose spread bounds a real run's figures


@dataclass(frozen=True)
class Prediction:
    """The virtual run of the same scenario, seed and size (``result``, what it counted),
    and the figures of :data:`BAND_SEEDS` runs on other seeds: the model's spread. A real
    run shares the scenario's draws with the run of its own seed, not the network's (the
    kit's proxy and the model's network jitter from streams of their own), so a chance
    event (one reload's close overtaken by its new socket) is judged against the spread."""

    client: str
    result: Result
    loads: int
    sockets: int  # sockets the pages opened (connect events), reached the server or not
    band: tuple[dict[str, float], ...] = ()


def _one(
    played: Scenario, strategy: Strategy, loads: list[int], **size: Any
) -> tuple[Result, int, int]:
    loads[0] = 0
    result = run(played, strategy, runtime=STACK, trace=True, **size)
    trace = result.trace
    sockets = int((trace["event"] == "connect").sum()) if trace is not None else 0
    return result, loads[0], sockets


def predict(
    scenario: str | Scenario,
    client: str,
    *,
    tabs: int = 4,
    duration: float = 30.0,
    settle: float = 10.0,
    scale: float = 0.2,
    seed: int = 0,
    strict: bool | None = False,
    backend: str = "postmortem",
    band: int = BAND_SEEDS,
) -> Prediction:
    """The model's run of what :meth:`PostmortemStack.play
    <simkit.realfront.stack.PostmortemStack.play>` plays for real with the same arguments
    (``strict``: every load a StrictMode load if True, none if False, as the scenario says
    if None; see the module's docstring), and its spread over ``band`` other seeds."""
    loads = [0]
    played = strict_loads(scenario_of(scenario), loads, strict)
    strategy = model_strategy(client, scale, backend)
    size = {"tabs": tabs, "duration": duration, "settle": settle}
    result, n_loads, sockets = _one(played, strategy, loads, seed=seed, **size)
    spread = []
    for other in range(seed + 1, seed + 1 + band):
        r, n, k = _one(played, strategy, loads, seed=other, **size)
        spread.append(figures(r, n, k))
    return Prediction(client, result, n_loads, sockets, tuple(spread))


# -- the comparison ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    """How far a real figure may be outside the model's spread (the seed-matched run's
    figure and those of the other seeds): ``absolute`` plus ``relative`` times the model's
    figure. Why each is what it is goes with it."""

    absolute: float
    relative: float = 0.0
    why: str = ""

    def bound(self, model: float) -> float:
        return self.absolute + self.relative * abs(model)


TOLERANCES: dict[str, Tolerance] = {
    "connects": Tolerance(
        2,
        0.1,
        "handshakes that reach the server: a load the run ends before its socket opens "
        "(the page's load time is real, not scaled) is one fewer",
    ),
    "sockets_per_load": Tolerance(
        0.15, 0.0, "sockets the page created per load (CDP): the page's code decides it"
    ),
    "peak_duplicates": Tolerance(0, 0.0, "two open for one user, at the sampled instants"),
    "final_stale": Tolerance(0, 0.0, "after the settle every socket has had its close"),
    "final_unroutable": Tolerance(0, 0.0, "after the settle the registry holds still"),
}
METRICS = tuple(TOLERANCES)


def figures(result: Result, loads: int, sockets: int) -> dict[str, float]:
    """A run's figures, by the names of :data:`METRICS` (``sockets`` the pages created)."""
    ts = result.timeseries
    return {
        "connects": float(ts["connects"].iloc[-1]),
        "sockets_per_load": sockets / loads if loads else math.nan,
        "peak_duplicates": float(ts["duplicates"].max()),
        "final_stale": float(ts["stale"].iloc[-1]),
        "final_unroutable": float(ts["unroutable"].iloc[-1]),
    }


def real_figures(play: PagePlay) -> dict[str, float]:
    """The figures of a real play (sockets and loads as CDP saw them)."""
    sockets = play.result.summary["page_sockets"]
    return figures(play.result, sockets["loads"], sockets["sockets"])


def model_figures(prediction: Prediction) -> dict[str, float]:
    """The figures of the model's seed-matched run."""
    return figures(prediction.result, prediction.loads, prediction.sockets)


def compare(
    play: PagePlay,
    prediction: Prediction,
    tolerances: dict[str, Tolerance] | None = None,
) -> pd.DataFrame:
    """One row per metric: ``real``, ``model`` (the seed-matched run), the model's ``low``
    and ``high`` over every seed run, the ``tolerance`` beyond them, ``agree`` (real within
    [low - tolerance, high + tolerance]) and why the tolerance is what it is."""
    bounds = TOLERANCES if tolerances is None else tolerances
    real, model = real_figures(play), model_figures(prediction)
    rows = []
    for metric, tol in bounds.items():
        r, m = real[metric], model[metric]
        values = [m, *(f[metric] for f in prediction.band)]
        low, high = min(values), max(values)
        slack = tol.bound(m)
        agree = not math.isnan(r) and low - slack <= r <= high + slack
        rows.append(
            {
                "metric": metric,
                "real": r,
                "model": m,
                "low": low,
                "high": high,
                "tolerance": slack,
                "agree": agree,
                "why": tol.why,
            }
        )
    return pd.DataFrame(rows).set_index("metric")


__all__ = [
    "BAND_SEEDS",
    "METRICS",
    "MODELS",
    "POSTFIX",
    "PREFIX",
    "REGISTRIES",
    "STACK",
    "TOLERANCES",
    "CountingTab",
    "Prediction",
    "Tolerance",
    "compare",
    "figures",
    "model_figures",
    "model_strategy",
    "predict",
    "real_figures",
    "strict_loads",
]
