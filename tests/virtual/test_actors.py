"""Actors (``VirtualLoop(actors=True)``, what the virtual runtime plays on) behave as asyncio
tasks do, in the same event order: the same program logs the same lines either way."""

from __future__ import annotations

import asyncio

import pytest

from simkit.model.errors import SimulationStalled
from simkit.virtual.loop import UnhandledError, run

pytestmark = pytest.mark.timeout(60)


async def busy_world(log: list[tuple]) -> str:
    """Sleeps at colliding instants, bare yields, events, gather, wait_for, a timeout,
    cancellation while sleeping and while waiting, current_task, an error caught."""
    loop = asyncio.get_running_loop()
    sleep = loop.sleep
    event = asyncio.Event()

    async def sleeper(i: int) -> int:
        for k in range(4):
            await sleep(0.5 * ((i + k) % 3 + 1))
            log.append(("woke", i, k, loop.time()))
            await asyncio.sleep(0)
            log.append(("yielded", i, k, loop.time()))
        return i

    async def waiter(i: int) -> None:
        try:
            await event.wait()
            log.append(("event", i, loop.time()))
            await sleep(10)
        except asyncio.CancelledError:
            log.append(("cancelled", i, loop.time()))
            raise

    async def timed() -> None:
        assert asyncio.current_task() is not None
        try:
            async with asyncio.timeout(1.25):
                await sleep(5)
        except TimeoutError:
            log.append(("timeout", loop.time()))
        try:
            await asyncio.wait_for(sleep(3), 0.75)
        except TimeoutError:
            log.append(("wait_for", loop.time()))

    async def fails() -> None:
        await sleep(1)
        raise ValueError("boom")

    def tick(n: int) -> None:
        log.append(("tick", n, loop.time()))
        if n < 8:
            loop.call_at(loop.time() + 0.5, tick, n + 1)

    loop.call_soon(tick, 0)
    sleepers = [loop.create_task(sleeper(i), name=f"s{i}") for i in range(5)]
    waiters = [loop.create_task(waiter(i), name=f"w{i}") for i in range(3)]
    extra = [loop.create_task(timed()), loop.create_task(fails())]
    await sleep(1.0)
    event.set()
    await sleep(0.5)
    waiters[0].cancel()
    done = await asyncio.gather(*sleepers)
    log.append(("gathered", tuple(done), loop.time()))
    for w in waiters[1:]:
        w.cancel()
    outcomes = await asyncio.gather(*waiters, *extra, return_exceptions=True)
    log.append(("outcomes", tuple(type(o).__name__ for o in outcomes), loop.time()))
    return "done"


@pytest.mark.parametrize("seed_offset", [0])
def test_actors_run_the_same_program_in_the_same_order_as_tasks(seed_offset: int) -> None:
    logs = []
    for actors in (False, True):
        log: list[tuple] = []
        assert run(busy_world(log), actors=actors) == "done"
        logs.append(log)
    assert len(logs[0]) > 40
    assert logs[1] == logs[0]


def test_an_actor_error_fails_the_run() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def fails() -> None:
            await loop.sleep(1)
            raise ValueError("boom")

        task = loop.create_task(fails(), name="bad")
        await loop.sleep(2)
        assert task.done() and isinstance(task.exception(), ValueError)
        assert task.get_name() == "bad"
        raise KeyError("main")

    with pytest.raises(KeyError):
        run(main(), actors=True)


def test_a_never_retrieved_actor_error_is_reported() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def fails() -> None:
            raise ValueError("lost")

        loop.create_task(fails())  # noqa: RUF006 (dropped on purpose: nobody retrieves it)
        await loop.sleep(1)

    with pytest.raises((UnhandledError, ValueError)):
        run(main(), actors=True)


def test_a_sleep_awaited_by_an_asyncio_task_still_works() -> None:
    # A sleep made inside an actor but awaited elsewhere (wrapped by ensure_future) takes
    # the future way: same wake time.
    async def main() -> float:
        loop = asyncio.get_running_loop()
        await asyncio.gather(loop.sleep(2.5), loop.sleep(1.0))
        return loop.time()

    assert run(main(), actors=True) == 2.5


def test_spinning_actors_stall_and_are_named() -> None:
    async def spin() -> None:
        while True:
            await asyncio.sleep(0)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await loop.sleep(2.5)
        spinners = [loop.create_task(spin(), name=f"spinner {i}") for i in range(6)]
        assert len(spinners) == 6
        await loop.sleep(1)

    with pytest.raises(SimulationStalled) as caught:
        run(main(), actors=True, stall_steps=10_000)
    assert caught.value.now == 2.5
    assert "6 tasks ('spinner 0'..'spinner 5') keep waking in" in caught.value.culprits
    assert "test_actors.py" in caught.value.culprits


def test_sleeping_actors_woken_at_one_instant_forever_stall() -> None:
    # An actor that keeps sleeping a delay too small to move the clock: a message-woken stall.
    async def creep() -> None:
        loop = asyncio.get_running_loop()
        while True:
            await loop.sleep(1e-300)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await loop.sleep(1e6)
        creeper = loop.create_task(creep(), name="creeper")
        await loop.sleep(1)
        assert creeper.done()  # never: the run stalls first

    with pytest.raises(SimulationStalled) as caught:
        run(main(), actors=True, stall_steps=10_000)
    assert "'creeper'" in caught.value.culprits and "creep" in caught.value.culprits


def test_a_crowded_last_instant_of_finishing_actors_is_no_stall() -> None:
    # The end of a big run: every tab's actor is cancelled and gathered at one instant. The
    # actors are gone from the loop's list by then; the limit still counts them (a run of
    # 1,000,000 tabs was reported stalled at its last instant).
    async def main() -> float:
        loop = asyncio.get_running_loop()

        async def nap() -> None:
            await loop.sleep(1e9)

        actors = [loop.create_task(nap()) for _ in range(30_000)]
        await loop.sleep(1)
        for actor in actors:
            actor.cancel()
        outcomes = await asyncio.gather(*actors, return_exceptions=True)
        assert all(isinstance(o, asyncio.CancelledError) for o in outcomes)
        return loop.time()

    assert run(main(), actors=True, stall_steps=100) == 1.0
