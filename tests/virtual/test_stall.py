"""The virtual loop never hangs silently: a clock that stops advancing is reported, with what
keeps re-scheduling itself, instead of spinning forever (a notebook cell that never returns)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from simkit.model.errors import ConfigError, SimkitError, SimulationStalled
from simkit.virtual.loop import STALL_STEPS, STALL_STEPS_PER_TASK, VirtualLoop, run

pytestmark = pytest.mark.timeout(60)


def _stalled(main: Any, **kwargs: Any) -> tuple[SimulationStalled, float]:
    """Run ``main`` expecting a stall; return the error and the wall time it took."""
    began = time.perf_counter()
    with pytest.raises(SimulationStalled) as caught:
        run(main, **kwargs)
    return caught.value, time.perf_counter() - began


# -- what a stall looks like -----------------------------------------------------------------
async def spin_forever() -> None:
    while True:
        await asyncio.sleep(0)


def test_tasks_yielding_forever_stall_quickly_and_are_named() -> None:
    spinners: list[asyncio.Task[None]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(2.5)
        for i in range(12):
            spinners.append(loop.create_task(spin_forever(), name=f"spinner {i}"))
        await asyncio.sleep(1)  # never: the spinners keep the clock at 2.5

    error, wall = _stalled(main(), stall_steps=10_000)
    assert isinstance(error, SimkitError) and isinstance(error, RuntimeError)
    assert wall < 5
    assert error.now == 2.5 and error.steps > 10_000
    assert "t=2.5" in str(error) and f"{error.steps:,} loop steps" in str(error)
    assert "12 tasks ('spinner 0'..'spinner 11') keep waking in spin_forever" in error.culprits
    assert "(tests/virtual/test_stall.py:" in error.culprits  # where their code waits
    assert error.culprits in str(error)
    # The run cleaned up: every spinner was cancelled and awaited, none left pending.
    assert len(spinners) == 12 and all(task.cancelled() for task in spinners)


def test_a_few_tasks_are_listed_by_name() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        spinners = [loop.create_task(spin_forever(), name=name) for name in "ba"]
        await asyncio.sleep(1)
        del spinners

    error, _ = _stalled(main(), stall_steps=5_000)
    assert "2 tasks ('a', 'b') keep waking in spin_forever" in error.culprits


class Pinger:
    """An actor whose bound method re-schedules itself at the same instant."""

    def __init__(self, loop: VirtualLoop, index: int) -> None:
        self.loop, self.index = loop, index

    def ping(self) -> None:
        self.loop.call_at(self.loop.time(), self.ping)


def test_callbacks_rescheduling_at_the_same_instant_are_named_with_their_owners() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualLoop)
        await asyncio.sleep(7)
        for index in range(3):
            Pinger(loop, index).ping()
        await asyncio.sleep(1)

    async def one() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualLoop)
        Pinger(loop, 5).ping()
        await asyncio.sleep(1)

    error, _ = _stalled(main(), stall_steps=5_000)
    assert error.now == 7.0
    assert re.search(
        r"callback Pinger\.ping \(tests/virtual/test_stall\.py:\d+\) keeps running for "
        r"3 Pinger objects \('Pinger 0', 'Pinger 1', 'Pinger 2'\)",
        error.culprits,
    ), error.culprits
    error, _ = _stalled(one(), stall_steps=5_000)
    assert "keeps running for 1 Pinger object ('Pinger 5')" in error.culprits


def test_a_plain_function_posted_again_and_again_is_named() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualLoop)

        def again() -> None:
            loop.post_at(loop.time(), again)  # a message: no handle on the heap

        loop.post_at(0.5, again)
        await asyncio.sleep(1)

    error, _ = _stalled(main(), stall_steps=5_000)
    assert error.now == 0.5
    assert "callback test_a_plain_function_posted_again_and_again_is_named.<locals>.main" in (
        error.culprits
    )
    assert ".again (tests/virtual/test_stall.py:" in error.culprits
    assert "keeps running" in error.culprits


def test_a_task_woken_by_a_message_is_named_not_the_message() -> None:
    """A task that waits on a future a message completes (as tabs sleep on the
    VirtualLoop) is the culprit, not the message that wakes it."""

    def complete(future: asyncio.Future[None]) -> None:
        future.set_result(None)

    async def ping_pong() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualLoop)
        while True:
            future = loop.create_future()
            loop.post_at(loop.time(), complete, future)
            await future

    async def main() -> None:
        loop = asyncio.get_running_loop()
        players = [loop.create_task(ping_pong(), name=f"pp {i}") for i in range(3)]
        await asyncio.sleep(1)
        del players

    error, _ = _stalled(main(), stall_steps=5_000)
    assert "3 tasks ('pp 0', 'pp 1', 'pp 2') keep waking in " in error.culprits
    assert "ping_pong (tests/virtual/test_stall.py:" in error.culprits
    assert "complete" not in error.culprits


def test_context_prefixes_the_message() -> None:
    error, _ = _stalled(spin_forever(), stall_steps=1_000, context="scenario 'x', strategy 'y'")
    assert str(error).startswith("scenario 'x', strategy 'y': the simulation stalled at ")


async def stubborn() -> None:
    """Spins at one instant and shrugs off cancellation."""
    while True:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0)


def test_a_task_that_ignores_cancellation_does_not_hang_the_clean_up() -> None:
    async def main() -> None:
        task = asyncio.get_running_loop().create_task(stubborn(), name="stubborn")
        await asyncio.sleep(1)
        del task

    error, wall = _stalled(main(), stall_steps=2_000)
    assert "1 task ('stubborn') keeps waking in " in error.culprits
    assert wall < 5


def test_a_stall_in_the_clean_up_of_a_finished_run_is_reported() -> None:
    async def main() -> int:
        task = asyncio.get_running_loop().create_task(stubborn(), name="stubborn")
        await asyncio.sleep(0)
        del task
        return 1  # returns, but cancelling the leftover task never ends

    error, _ = _stalled(main(), stall_steps=2_000)
    assert "'stubborn'" in error.culprits


# -- what is not a stall -----------------------------------------------------------------------
def test_a_busy_run_whose_clock_advances_never_trips() -> None:
    """900 steps per instant, 100 instants, with a limit of 1,000: the count restarts each
    time the clock moves."""

    async def worker() -> None:
        for _ in range(100):
            await asyncio.sleep(0.25)

    async def main() -> float:
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.create_task(worker()) for _ in range(900)))
        return loop.time()

    assert run(main(), stall_steps=1_000) == 25.0


def test_a_crowded_instant_of_a_big_run_is_allowed_per_task() -> None:
    """Every task's first step, at one instant: 3,000 tasks are more steps than the limit
    of 100, not a stall (STALL_STEPS_PER_TASK steps per task are allowed)."""

    async def main() -> float:
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(asyncio.sleep(1)) for _ in range(3_000)]
        await asyncio.gather(*tasks)
        return loop.time()

    assert STALL_STEPS_PER_TASK * 3_000 > 3 * 3_000  # each task takes ~3 steps here
    assert run(main(), stall_steps=100) == 1.0


def _spin(steps: int) -> Callable[[], Any]:
    async def main() -> int:
        for _ in range(steps):
            await asyncio.sleep(0)
        return steps

    return main


def test_the_default_limit_is_on_and_none_turns_it_off() -> None:
    steps = STALL_STEPS + 50_000
    assert run(_spin(steps)(), stall_steps=None) == steps
    error, _ = _stalled(_spin(steps)())
    assert error.steps > STALL_STEPS
    assert f"limit: {STALL_STEPS:,} steps" in str(error)


@pytest.mark.parametrize("bad", [0, -5, 1.5, True, "100"])
def test_bad_stall_steps_are_refused_with_what_is_allowed(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"stall_steps must be a whole number >= 1.*got"):
        VirtualLoop(stall_steps=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=re.escape(repr(bad))):
        run(_spin(1)(), stall_steps=bad)  # type: ignore[arg-type]  # and no RuntimeWarning


# -- the issue's case ---------------------------------------------------------------------------
@functools.cache  # one run for both tests below
def _issue_run() -> tuple[SimulationStalled, float]:
    import simkit
    from simkit import SCENARIOS, Latency

    scenario = SCENARIOS["server-restart"].with_(latency=Latency(0, 0))
    began = time.perf_counter()
    with pytest.raises(SimulationStalled) as caught:
        simkit.run(scenario, "before", tabs=10, duration=60)
    return caught.value, time.perf_counter() - began


@pytest.mark.timeout(30)
def test_zero_latency_server_restart_under_before_stalls_and_names_the_tabs() -> None:
    """The issue: the server restarts at half time; `before` retries a refused handshake
    with no delay and, at zero latency, the refusal comes back in the same instant, so the
    clock never reaches the end of the downtime. This hung; now it fails within seconds."""
    error, wall = _issue_run()
    assert wall < 15
    assert error.now == 30.0 and "t=30.0" in str(error)
    assert "Tab._retry (simkit/actors/tab.py:" in error.culprits
    assert "10 Tab objects ('Tab 0'..'Tab 9')" in error.culprits


@pytest.mark.timeout(30)
def test_the_issue_stall_names_its_scenario_and_strategy() -> None:
    """simkit.run passes the scenario and strategy to the loop as the message's context."""
    error, _ = _issue_run()
    message = str(error)
    assert re.search(r"['\"]server-restart['\"]", message), message
    assert re.search(r"['\"]before['\"]", message), message
    assert message.index("server-restart") < message.index("the simulation stalled")
