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


class Losing(VirtualRuntime):
    """A runtime that reports something lost during the run (as a dead browser does)."""

    def losses(self) -> list[str]:
        return ["the browser exited during the run"]


def test_a_virtual_run_reports_every_row_on_time_and_nothing_lost() -> None:
    sc, st = simkit.SCENARIOS["reload-storm"], strategy("postmortem-safe")
    runtime = VirtualRuntime(sc, st)
    played = runtime.execute(lambda: play(sc, st, runtime, tabs=5, duration=10, settle=2.5, seed=0))
    health = played.health
    assert health.realtime is False
    assert health.samples_due == health.samples_taken == 13  # t = 0 .. 12
    assert health.samples_late == 0 and health.errors_logged == 0 and health.losses == []


def test_what_a_runtime_lost_makes_the_run_invalid() -> None:
    sc, st = simkit.SCENARIOS["reload-storm"], strategy("postmortem-safe")
    runtime = Losing(sc, st)
    played = runtime.execute(lambda: play(sc, st, runtime, tabs=3, duration=5, settle=0, seed=0))
    assert played.health.losses == ["the browser exited during the run"]
    from simkit.checks import invalid_reasons

    assert invalid_reasons({"duration": 5.0}, played.health) == played.health.losses
