"""A sweep's plan: every run it will play, checked and in the order of its frame.

The plan is pure (no cluster, nothing played), so a study's size can be counted and its
values checked before any worker starts: ``len(plan(...)[0])`` is the number of runs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simkit.api import default_settle
from simkit.model.errors import ConfigError, choice
from simkit.model.strategy import Strategy
from simkit.model.strategy import strategy as strategy_of
from simkit.scenarios import Scenario, check_size
from simkit.scenarios import scenario as scenario_of
from simkit.study.knobs import KNOBS, RUN_KNOBS, apply_knobs

__all__ = ["SIZE", "Spec", "plan"]

SIZE: tuple[str, ...] = (*RUN_KNOBS, "settle")
"""A run's size: the frame has them as columns, but they are no metric and no knob shown
in a failed run's arguments."""


@dataclass(frozen=True)
class Spec:
    """One run of a sweep: what the sweep plays, and what the frame records of it."""

    index: int
    scenario: Scenario
    strategy: Strategy
    seed: int
    tabs: int
    duration: float
    settle: float
    params: dict[str, Any] = field(default_factory=dict)  # knob values (see study.knobs)

    def label(self) -> str:
        """The run's arguments as a person would type them (a failure is reported so)."""
        knobs = "".join(f", {k}={v!r}" for k, v in self.params.items() if k not in SIZE)
        return (
            f"scenario={self.scenario.name!r}, strategy={self.strategy.name!r}, "
            f"seed={self.seed}, tabs={self.tabs}, duration={self.duration:g}{knobs}"
        )


def _as_list(value: Any, kind: str) -> list[Any]:
    if isinstance(value, str | Scenario | Strategy):
        return [value]
    items = list(value)
    if not items:
        raise ConfigError(f"sweep needs at least one {kind}")
    return items


def plan(
    scenarios: str | Scenario | Iterable[str | Scenario],
    strategies: str | Strategy | Iterable[str | Strategy],
    grid: Mapping[str, Sequence[Any]] | None,
    seeds: int | Iterable[int],
    tabs: int | None,
    duration: float | None,
    settle: float | None,
) -> tuple[list[Spec], list[str]]:
    """Every run's :class:`Spec` (checked, in the frame's order) and the grid keys: what
    :func:`simkit.sweep` will play, without playing it (``len(plan(...)[0])`` counts the
    runs)."""
    scs = [scenario_of(s) for s in _as_list(scenarios, "scenario")]
    strats = [strategy_of(s) for s in _as_list(strategies, "strategy")]
    for kind, names in (
        ("scenario", [s.name for s in scs]),
        ("strategy", [s.name for s in strats]),
    ):
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(f"{kind} names must differ within a sweep; {twice} appear twice")
    lists: dict[str, list[Any]] = {}
    for key, values in (grid or {}).items():
        if key not in KNOBS:
            raise choice("grid key", key, list(KNOBS))
        if isinstance(values, str) or not isinstance(values, Iterable):
            raise ConfigError(f"grid[{key!r}] must be a list of values, got {values!r}")
        lists[key] = list(values)
        if not lists[key]:
            raise ConfigError(f"grid[{key!r}] is empty; give at least one value")
    for key, given in (("tabs", tabs), ("duration", duration)):
        if key in lists and given is not None:
            raise ConfigError(f"{key} is both a grid key and an argument; give it once")
    seed_list = _seeds(seeds)
    keys = list(lists)
    combos = [dict(zip(keys, values, strict=True)) for values in itertools.product(*lists.values())]
    planned: list[tuple[Scenario, Strategy, int, int, float, dict[str, Any]]] = []
    for sc, strat, params in itertools.product(scs, strats, combos):
        run_sc, run_strat = apply_knobs(sc, strat, params)
        n = params.get("tabs", sc.tabs if tabs is None else tabs)
        length = params.get("duration", sc.duration if duration is None else duration)
        check_size(n, length)
        for seed in seed_list:
            planned.append((run_sc, run_strat, seed, n, float(length), params))
    if settle is None:
        settle = max(default_settle(strat) for _, strat, *_ in planned)
    elif not (settle >= 0 and math.isfinite(settle)):
        raise ConfigError(f"settle must be >= 0 seconds, got {settle!r}")
    specs = [
        Spec(i, sc, strat, seed, n, length, float(settle), params)
        for i, (sc, strat, seed, n, length, params) in enumerate(planned)
    ]
    return specs, keys


def _seeds(seeds: int | Iterable[int]) -> list[int]:
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ConfigError(f"seeds must be a number >= 1 or a list of seeds, got {seeds!r}")
        return list(range(seeds))
    if isinstance(seeds, bool):
        raise ConfigError(f"seeds must be a number >= 1 or a list of seeds, got {seeds!r}")
    seed_list = list(seeds)
    bad = [s for s in seed_list if not isinstance(s, int) or isinstance(s, bool)]
    if bad or not seed_list or len(set(seed_list)) != len(seed_list):
        raise ConfigError(f"seeds must be distinct whole numbers, got {seed_list!r}")
    return seed_list
