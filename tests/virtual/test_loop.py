"""Tests for simkit.virtual.loop: virtual clock, ordering, asyncio compatibility, errors."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import hashlib
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simkit.virtual.loop import UnhandledError, VirtualDeadlock, VirtualLoop, run

ROOT = Path(__file__).resolve().parents[2]


def now() -> float:
    return asyncio.get_running_loop().time()


# -- virtual clock ---------------------------------------------------------------------------
def test_hour_of_sleep_is_instant_and_reads_no_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    real_clock = time.perf_counter

    def forbidden(*_args: object) -> float:
        raise AssertionError("the virtual loop read a wall clock")

    async def main() -> float:
        await asyncio.sleep(3600)
        assert isinstance(asyncio.get_running_loop(), VirtualLoop)
        return now()

    began = real_clock()
    for name in ("time", "monotonic", "perf_counter", "monotonic_ns", "time_ns"):
        monkeypatch.setattr(time, name, forbidden)
    result = run(main())
    monkeypatch.undo()
    assert result == 3600.0
    assert real_clock() - began < 1.0


def test_start_time_and_stats() -> None:
    loop = VirtualLoop(start=100.0)

    async def main() -> None:
        for _ in range(3):
            await asyncio.sleep(1)
        # The 5 s timeout timer is cancelled when sleep(1) wins; it must not cost a jump.
        await asyncio.wait_for(asyncio.sleep(1), 5)
        await asyncio.sleep(10)

    loop.run_until_complete(main())
    assert loop.time() == 114.0
    assert loop.jumps == 5
    assert loop.steps > 5
    loop.close()
    assert loop.is_closed()


def test_run_forever_until_stop_and_deadlock_without_work() -> None:
    loop = VirtualLoop()
    loop.call_later(5, loop.stop)
    loop.run_forever()
    assert loop.time() == 5.0 and not loop.is_running()
    with pytest.raises(VirtualDeadlock, match="0 task"):
        loop.run_forever()
    loop.close()


# -- ordering ----------------------------------------------------------------------------------
def test_equal_deadlines_fire_in_scheduling_order() -> None:
    loop = VirtualLoop()
    names = [f"cb{i}" for i in range(1000)]
    random.Random(42).shuffle(names)
    log: list[str] = []
    for name in names:
        loop.call_at(5.0, log.append, name)
    done = loop.create_future()
    loop.call_at(5.0, done.set_result, None)
    loop.run_until_complete(done)
    assert log == names
    assert loop.time() == 5.0
    loop.close()


def test_mixed_deadlines_fire_by_time_then_scheduling_order() -> None:
    loop = VirtualLoop()
    rng = random.Random(7)
    plan = [(float(rng.randint(1, 5)), i) for i in range(500)]
    log: list[tuple[float, int]] = []
    for when, i in plan:
        loop.call_at(when, lambda i=i: log.append((loop.time(), i)))
    loop.run_until_complete(asyncio.sleep(6))
    assert log == sorted(plan)  # stable: ties keep scheduling order
    loop.close()


def test_reverse_scheduled_timers_fire_in_time_order() -> None:
    loop = VirtualLoop()
    log: list[tuple[float, float]] = []
    for t in range(50, 0, -1):
        loop.call_later(t / 10, lambda t=t: log.append((t / 10, loop.time())))
    loop.run_until_complete(asyncio.sleep(10))
    assert [due for due, _ in log] == [t / 10 for t in range(1, 51)]
    assert all(due == seen for due, seen in log)  # never early, never rounded
    loop.close()


def test_iteration_semantics_match_asyncio() -> None:
    """Handles scheduled during an iteration wait for the next one; due timers join each one."""

    def scenario(loop: asyncio.AbstractEventLoop) -> list[str]:
        log: list[str] = []

        def step(name: str, *then: tuple[str, str]) -> None:
            log.append(name)
            for how, child in then:
                if how == "soon":
                    loop.call_soon(step, child, *(("soon", f"{child}'"),) * (len(child) < 3))
                else:
                    loop.call_later(0, step, child)

        loop.call_soon(step, "a", ("soon", "b"), ("later", "c"), ("soon", "d"))
        loop.call_soon(step, "e", ("later", "f"))
        loop.run_until_complete(asyncio.sleep(0.01))
        loop.close()
        return log

    expected = scenario(asyncio.new_event_loop())
    assert expected == ["a", "e", "b", "d", "c", "f", "b'", "d'", "b''", "d''"]
    assert scenario(VirtualLoop()) == expected


def test_an_interrupt_mid_iteration_loses_no_timer_and_no_count() -> None:
    """Ctrl-C in a notebook cell stops the run; running it again finds every timer, even one
    scheduled for a past time during the interrupted iteration (it waits aside meanwhile)."""
    loop = VirtualLoop()
    log: list[str] = []

    def interrupt() -> None:
        raise KeyboardInterrupt

    loop.call_at(5.0, lambda: loop.call_at(loop.time() - 1.0, log.append, "past"))
    loop.call_at(5.0, interrupt)
    loop.call_at(9.0, lambda: (log.append("t9"), loop.stop()))
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    assert loop.steps == 2  # both callbacks that ran are counted
    loop.run_forever()
    assert log == ["past", "t9"]
    assert loop.steps == 4
    loop.close()


def test_cancelled_timers_are_skipped_and_purged() -> None:
    loop = VirtualLoop()
    log: list[int] = []
    handles = [loop.call_at(float(t), log.append, t) for t in range(1, 1001)]
    for t, handle in enumerate(handles, start=1):
        if t % 10:
            handle.cancel()
    loop.run_until_complete(asyncio.sleep(0.5))
    assert len(loop._timers) <= 101  # lazy deletion, then rebuilt once mostly cancelled
    loop.run_until_complete(asyncio.sleep(1000))
    assert log == list(range(10, 1001, 10))
    assert loop._cancelled_timers == 0
    loop.close()


def test_timers_never_fire_early() -> None:
    loop = VirtualLoop()
    deadlines = [1.0, math.nextafter(1.0, 2.0), 1.0 + 1e-9, 1.0005, 2.0]
    seen: list[float] = []
    for when in deadlines:
        loop.call_at(when, lambda: seen.append(loop.time()))
    loop.run_until_complete(asyncio.sleep(3))
    assert seen == deadlines
    assert loop.jumps == 6
    loop.close()


def test_sleep_deadlines_are_not_rounded() -> None:
    async def main() -> list[float]:
        times = []
        for delay in (1e-9, 0.1, 0.1, 0.1, 1 / 3):
            await asyncio.sleep(delay)
            times.append(now())
        return times

    expected, t = [], 0.0
    for delay in (1e-9, 0.1, 0.1, 0.1, 1 / 3):
        t += delay
        expected.append(t)
    assert run(main()) == expected  # plain float sums, no clock resolution, no rounding


def test_time_never_goes_backwards() -> None:
    async def main() -> list[tuple[str, float]]:
        await asyncio.sleep(10)
        loop = asyncio.get_running_loop()
        seen: list[tuple[str, float]] = []
        loop.call_at(3.0, lambda: seen.append(("past call_at", loop.time())))
        loop.call_later(-5, lambda: seen.append(("negative delay", loop.time())))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert now() == 10.0
        return seen

    assert run(main()) == [("past call_at", 10.0), ("negative delay", 10.0)]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_delays_are_rejected(bad: float) -> None:
    loop = VirtualLoop()
    with pytest.raises(ValueError, match=repr(bad)):
        loop.call_later(bad, print)
    with pytest.raises(ValueError, match=repr(bad)):
        loop.call_at(bad, print)
    assert loop._timers == []
    loop.close()


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("run_in_executor", (None, print)),
        ("create_connection", (asyncio.Protocol, "localhost", 80)),
        ("getaddrinfo", ("localhost", 80)),
        ("sock_recv", (None, 10)),
        ("add_reader", (0, print)),
        ("add_signal_handler", (2, print)),
        ("subprocess_exec", (asyncio.SubprocessProtocol, "true")),
    ],
)
def test_real_io_is_not_implemented(method: str, args: tuple[object, ...]) -> None:
    loop = VirtualLoop()
    with pytest.raises(NotImplementedError, match="no real I/O"):
        getattr(loop, method)(*args)
    loop.close()


def test_to_thread_fails_clearly() -> None:
    async def main() -> None:
        await asyncio.to_thread(print, "never")

    with pytest.raises(NotImplementedError, match=r"run_in_executor.*no real I/O"):
        run(main())


# -- asyncio primitives ------------------------------------------------------------------------
def test_event_queue_and_lock() -> None:
    async def main() -> list[tuple[float, str]]:
        log: list[tuple[float, str]] = []
        event, queue, lock = asyncio.Event(), asyncio.Queue[int](), asyncio.Lock()

        async def waiter() -> None:
            await event.wait()
            log.append((now(), "event"))

        async def producer() -> None:
            for item in range(3):
                await asyncio.sleep(2)
                await queue.put(item)

        async def consumer() -> None:
            for _ in range(3):
                item = await queue.get()
                log.append((now(), f"got {item}"))

        async def locker(name: str, hold: float) -> None:
            async with lock:
                log.append((now(), f"{name} locked"))
                await asyncio.sleep(hold)

        tasks = [asyncio.create_task(c) for c in (waiter(), producer(), consumer())]
        tasks += [asyncio.create_task(locker("a", 1.5)), asyncio.create_task(locker("b", 1))]
        await asyncio.sleep(5)
        event.set()
        await asyncio.gather(*tasks)
        return sorted(log)

    assert run(main()) == [
        (0.0, "a locked"),
        (1.5, "b locked"),
        (2.0, "got 0"),
        (4.0, "got 1"),
        (5.0, "event"),
        (6.0, "got 2"),
    ]


def test_wait_for_and_timeout_expire_at_exact_virtual_time() -> None:
    async def main() -> list[float]:
        times = []
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.sleep(10), timeout=2.5)
        times.append(now())
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(3):
                await asyncio.Event().wait()
        times.append(now())
        assert await asyncio.wait_for(asyncio.sleep(1, result="ok"), timeout=1.5) == "ok"
        times.append(now())
        return times

    assert run(main()) == [2.5, 5.5, 6.5]


def test_gather_taskgroup_and_wait() -> None:
    async def job(delay: float, value: str) -> str:
        await asyncio.sleep(delay)
        return value

    async def main() -> tuple[list[str], list[str], set[str], float]:
        gathered = await asyncio.gather(job(3, "a"), job(1, "b"))
        assert now() == 3.0
        async with asyncio.TaskGroup() as group:
            grouped = [group.create_task(job(d, str(d))) for d in (2, 4, 1)]
        assert now() == 7.0
        pending_jobs = {asyncio.create_task(job(d, str(d))) for d in (5, 1, 3)}
        done, pending = await asyncio.wait(pending_jobs, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return gathered, [t.result() for t in grouped], {t.result() for t in done}, now()

    assert run(main()) == (["a", "b"], ["2", "4", "1"], {"1"}, 8.0)


def test_cancelling_a_sleeping_task() -> None:
    async def main() -> list[tuple[str, float]]:
        log: list[tuple[str, float]] = []

        async def sleeper() -> None:
            try:
                await asyncio.sleep(100)
            except asyncio.CancelledError:
                log.append(("cancelled", now()))
                raise
            finally:
                log.append(("finally", now()))

        task = asyncio.create_task(sleeper())
        await asyncio.sleep(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()
        await asyncio.sleep(0)
        log.append(("main", now()))
        return log

    assert run(main()) == [("cancelled", 1.0), ("finally", 1.0), ("main", 1.0)]


def test_current_task_and_contextvars() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def child() -> tuple[str, str]:
        seen = var.get()
        var.set("child")  # a task runs in a copy of the context: the parent never sees this
        return asyncio.current_task().get_name(), seen  # type: ignore[union-attr]

    async def main() -> list[object]:
        var.set("parent")
        task = asyncio.create_task(child(), name="worker")
        results: list[object] = [await task, var.get()]
        ctx = contextvars.copy_context()
        ctx.run(var.set, "explicit")
        results.append(await asyncio.get_running_loop().create_task(child(), context=ctx))
        results.append(ctx[var])
        results.append(asyncio.current_task() is asyncio.current_task())
        return results

    name = "Task-3"  # unnamed tasks are numbered per loop: Task-1 is main, Task-2 is "worker"
    assert run(main()) == [("worker", "parent"), "parent", (name, "explicit"), "child", True]


def test_run_cleans_up_leftover_tasks_and_async_generators() -> None:
    log: list[str] = []
    generators = []  # keeps the generator alive past main(), for shutdown_asyncgens() to close

    async def forever(name: str) -> None:
        try:
            await asyncio.sleep(1e9)
        finally:
            log.append(f"{name} cancelled at {now()}")

    async def ticks():  # type: ignore[no-untyped-def]
        try:
            while True:
                yield now()
                await asyncio.sleep(1)
        finally:
            log.append("generator closed")

    async def main() -> float:
        tasks = [asyncio.create_task(forever(name)) for name in ("b", "a", "c")]
        gen = ticks()
        generators.append(gen)
        assert [await anext(gen) for _ in range(3)] == [7.0, 8.0, 9.0]
        assert not any(task.done() for task in tasks)
        return now()

    assert run(main(), start=7.0) == 9.0
    assert log == [
        "b cancelled at 9.0",
        "a cancelled at 9.0",
        "c cancelled at 9.0",
        "generator closed",
    ]


# -- determinism -------------------------------------------------------------------------------
def simulate(seed: int) -> str:
    """200 actors with seeded random sleeps (many ties), a shared queue and a cancelled tail."""

    async def actor(i: int, queue: asyncio.Queue[str], log: list[str]) -> None:
        rng = random.Random(seed * 1000 + i)
        name = asyncio.current_task().get_name()  # type: ignore[union-attr]
        try:
            for step in range(20):
                await asyncio.sleep(rng.choice((0.5, 1.0, 1.5, 2.5)))
                log.append(f"{now()} {name} {i} {step}")
                if rng.random() < 0.3:
                    queue.put_nowait(f"{i}:{step}")
            await asyncio.sleep(1e6)
        finally:
            log.append(f"{now()} {name} {i} done")

    async def main() -> list[str]:
        log: list[str] = []
        queue: asyncio.Queue[str] = asyncio.Queue()

        async def consumer() -> None:
            while True:
                item = await queue.get()
                log.append(f"{now()} consumed {item}")

        tasks = [asyncio.create_task(consumer())]
        tasks += [asyncio.create_task(actor(i, queue, log)) for i in range(200)]
        await asyncio.sleep(60)
        assert not any(task.done() for task in tasks)  # run() must cancel them, in order
        return log

    log = run(main())
    assert len(log) > 4000
    return f"{len(log)} {hashlib.sha256(chr(10).join(log).encode()).hexdigest()}"


def test_simulation_is_reproducible_in_process() -> None:
    assert simulate(3) == simulate(3)
    assert simulate(3) != simulate(4)


def test_simulation_is_reproducible_across_hash_seeds() -> None:
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        "from test_loop import simulate; print(simulate(3))"
    )
    outputs = []
    for hash_seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout.strip())
    assert outputs[0] == outputs[1] == simulate(3)


# -- errors ------------------------------------------------------------------------------------
def test_deadlock_names_pending_tasks() -> None:
    log: list[str] = []

    async def stuck() -> None:
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            log.append(f"stuck cleaned up at {now()}")

    async def main() -> None:
        task = asyncio.create_task(stuck(), name="stuck-worker")
        await asyncio.sleep(2)
        assert not task.done()
        await asyncio.Event().wait()

    with pytest.raises(VirtualDeadlock, match=r"t=2\.0.*2 task\(s\).*Task-1, stuck-worker") as exc:
        run(main())
    assert exc.value.pending == ["Task-1", "stuck-worker"]
    assert log == ["stuck cleaned up at 2.0"]  # run() still cancelled the leftovers


def test_exception_in_callback_stops_the_run() -> None:
    original = KeyError("boom")

    def explode() -> None:
        raise original

    reached: list[float] = []

    async def main() -> None:
        asyncio.get_running_loop().call_soon(explode)
        await asyncio.sleep(10)
        reached.append(now())

    with pytest.raises(
        UnhandledError, match=r"Exception in callback .*explode.*KeyError\('boom'\)"
    ) as exc:
        run(main())
    assert exc.value.__cause__ is original
    assert exc.value.contexts[0]["exception"] is original
    assert reached == []  # the run stopped at the error, not when main() finished


def test_never_retrieved_task_exception_is_raised() -> None:
    async def fail() -> None:
        raise ValueError("lost?")

    async def main() -> None:
        asyncio.create_task(fail())  # noqa: RUF006 - dropped on purpose
        await asyncio.sleep(1)
        gc.collect()  # the dropped task reports from __del__, through call_exception_handler
        await asyncio.sleep(10)

    with pytest.raises(UnhandledError, match=r"never retrieved.*ValueError\('lost\?'\)") as exc:
        run(main())
    assert isinstance(exc.value.__cause__, ValueError)


def test_custom_exception_handler_and_idle_recording() -> None:
    loop = VirtualLoop()
    seen: list[str] = []
    loop.set_exception_handler(lambda _loop, ctx: seen.append(repr(ctx["exception"])))
    assert loop.get_exception_handler() is not None
    loop.call_soon(int, "not a number")
    loop.run_until_complete(asyncio.sleep(1))
    assert seen and "ValueError" in seen[0] and loop.time() == 1.0

    loop.set_exception_handler(None)
    loop.call_exception_handler({"message": "late report"})  # e.g. from __del__: only recorded
    assert [ctx["message"] for ctx in loop.unhandled] == ["late report"]
    with pytest.raises(UnhandledError, match="late report"):
        loop.run_until_complete(asyncio.sleep(1))
    loop.close()


# -- nesting (Jupyter) -------------------------------------------------------------------------
def test_run_inside_a_running_asyncio_loop() -> None:
    async def inner() -> float:
        assert isinstance(asyncio.get_running_loop(), VirtualLoop)
        assert asyncio.get_event_loop() is asyncio.get_running_loop()
        await asyncio.sleep(100)
        return now()

    async def failing() -> None:
        await asyncio.sleep(1)
        raise LookupError("inner failure")

    def interrupt() -> None:
        raise KeyboardInterrupt

    async def outer() -> float:
        outer_loop, outer_task = asyncio.get_running_loop(), asyncio.current_task()
        hooks = sys.get_asyncgen_hooks()
        result = run(inner())
        assert asyncio.get_running_loop() is outer_loop
        assert asyncio.current_task() is outer_task
        with pytest.raises(LookupError):
            run(failing())
        assert asyncio.get_running_loop() is outer_loop
        virtual = VirtualLoop()
        virtual.call_later(3, interrupt)
        with pytest.raises(KeyboardInterrupt):
            virtual.run_until_complete(asyncio.sleep(10))
        assert asyncio.get_running_loop() is outer_loop and not virtual.is_running()
        assert virtual.time() == 3.0
        virtual.close()
        assert sys.get_asyncgen_hooks() == hooks
        await asyncio.sleep(0)
        await asyncio.sleep(0.001)
        return result

    assert asyncio.run(outer()) == 100.0


def test_posted_messages_share_the_timer_order() -> None:
    # post_at() entries and call_at() timers interleave by (when, scheduling order), so
    # switching the network to messages changed no run's event order.
    loop = VirtualLoop()
    seen: list[str] = []
    loop.call_at(2.0, seen.append, "timer@2")
    loop.post_at(1.0, seen.append, "message@1")
    loop.post_at(2.0, seen.append, "message@2")
    cancelled = loop.call_at(2.0, seen.append, "cancelled")
    loop.call_at(2.0, seen.append, "timer@2 again")
    loop.call_soon(seen.append, "soon")
    cancelled.cancel()
    loop.call_at(3.0, loop.stop)
    loop.run_forever()
    assert seen == ["soon", "message@1", "timer@2", "message@2", "timer@2 again"]
    assert loop.time() == 3.0


def test_a_failing_message_stops_the_run_with_its_callback_named() -> None:
    def deliver() -> None:
        raise KeyError("no such link")

    async def main() -> None:
        asyncio.get_running_loop().post_at(0.5, deliver)  # type: ignore[attr-defined]
        await asyncio.sleep(10)

    with pytest.raises(UnhandledError, match=r"deliver.*KeyError") as caught:
        run(main())
    assert caught.value.contexts[0]["message"].startswith("Exception in callback")


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_post_at_refuses_non_finite_times(bad: float) -> None:
    with pytest.raises(ValueError, match="finite virtual time"):
        VirtualLoop().post_at(bad, print)


def test_loop_sleep_wakes_in_asyncio_sleeps_order_and_cancels_cleanly() -> None:
    # The handle-free sleep the actors use must interleave exactly as asyncio.sleep does.
    def story(sleeper: str) -> list[tuple[str, float]]:
        log: list[tuple[str, float]] = []

        async def worker(name: str, delays: list[float]) -> None:
            loop = asyncio.get_running_loop()
            for delay in delays:
                if sleeper == "loop":
                    await loop.sleep(delay)  # type: ignore[attr-defined]
                else:
                    await asyncio.sleep(delay)
                log.append((name, loop.time()))

        async def main() -> None:
            victim = asyncio.get_running_loop().create_task(worker("victim", [5.0, 5.0]))
            await asyncio.gather(
                worker("a", [1.0, 2.0, 0.5]), worker("b", [3.0, 0.5, 1.0]), worker("c", [0, 3.0])
            )
            victim.cancel()
            with pytest.raises(asyncio.CancelledError):
                await victim
            await asyncio.sleep(10)  # the cancelled sleep's message finds its future done

        run(main())
        return log

    assert story("loop") == story("asyncio")
    names = [name for name, _ in story("loop")]
    assert names.count("a") == 3 and "victim" not in names  # cancelled at 4.5 s, mid-sleep


def test_loop_sleep_of_zero_is_one_bare_yield_as_in_asyncio() -> None:
    def story(sleeper: str) -> tuple[list[str], str]:
        log: list[str] = []

        async def a() -> None:
            loop = asyncio.get_running_loop()
            await (loop.sleep(0) if sleeper == "loop" else asyncio.sleep(0))  # type: ignore[attr-defined]
            log.append("A")

        async def b() -> None:
            for i in range(4):
                log.append(f"B{i}")
                await asyncio.sleep(0)

        async def main() -> str:
            await asyncio.gather(a(), b())
            return asyncio.get_running_loop().create_task(asyncio.sleep(0)).get_name()

        return log, run(main())

    assert story("loop") == story("asyncio")
    assert story("loop")[0] == ["B0", "A", "B1", "B2", "B3"]
