"""The run core's promises that no single runtime shows: rows handed to ``on_sample``
carry NaN where the runtime says it cannot know a column."""

from __future__ import annotations

import math

import simkit
from simkit.actors.play import play
from simkit.model.strategy import strategy
from simkit.virtual.runtime import VirtualRuntime


class Blind(VirtualRuntime):
    """A runtime that cannot see the registry (as a foreign server without stats)."""

    def unknown_columns(self) -> tuple[str, ...]:
        return ("registry_entries", "dangling", "unroutable")


def test_on_sample_rows_carry_nan_where_the_runtime_cannot_know() -> None:
    sc, st = simkit.SCENARIOS["reload-storm"], strategy("postmortem-safe")
    seen: dict[str, list[dict[str, float]]] = {"blind": [], "sighted": []}
    for name, runtime in (("blind", Blind(sc, st)), ("sighted", VirtualRuntime(sc, st))):
        rows = seen[name]
        runtime.execute(
            lambda r=runtime, rows=rows: play(
                sc, st, r, tabs=5, duration=10, settle=0, seed=0, on_sample=rows.append
            )
        )
    blind, sighted = seen["blind"], seen["sighted"]
    assert len(blind) == len(sighted) == 11
    for mine, truth in zip(blind, sighted, strict=True):
        for column, value in mine.items():
            if column in Blind.unknown_columns(Blind(sc, st)):
                assert math.isnan(value), column
            else:  # what it can know is handed on unchanged
                assert value == truth[column], column


def test_a_runtime_that_knows_everything_hands_on_plain_numbers() -> None:
    rows: list[dict[str, float]] = []
    simkit.run("reload-storm", "postmortem-safe", tabs=5, duration=10, on_sample=rows.append)
    assert rows and not any(math.isnan(v) for row in rows for v in row.values())
