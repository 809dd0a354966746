"""Run a coroutine on an event loop of its own, from any caller.

A notebook cell already runs inside an event loop, and ``asyncio.run`` refuses to start a
second one in the same thread. The live and browser runtimes therefore play on a fresh
loop in a worker thread and hand back its result (or re-raise its exception, Ctrl-C
included) in the caller's thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def in_thread(main: Callable[[], Coroutine[Any, Any, T]], name: str = "simkit-live") -> T:
    """``asyncio.run(main())`` in a worker thread; its outcome, in this one."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(main())
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error

    worker = threading.Thread(target=target, name=name, daemon=True)
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value
