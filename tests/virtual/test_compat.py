"""simkit.virtual.compat: the asyncio internals the virtual loop relies on are checked at
import, and a Python that lacks one (or has it in another shape) fails with one clear error
naming the version and the piece; no other module of simkit.virtual reaches into asyncio."""

from __future__ import annotations

import ast
import asyncio
import asyncio.events
import asyncio.format_helpers
import asyncio.futures
import asyncio.tasks
import importlib.util
import platform
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from simkit.model.errors import SimkitError, UnsupportedPython
from simkit.virtual import compat

VIRTUAL = Path(compat.__file__).parent


def fake_asyncio(**replaced: Any) -> types.SimpleNamespace:
    """A stand-in for the asyncio package holding every internal compat relies on, the real
    ones, except ``replaced`` (dotted path with "__" for "."; the value ``None`` drops it)."""
    modules = {
        name: types.SimpleNamespace(**vars(getattr(asyncio, name)))
        for name in ("events", "tasks", "futures", "format_helpers")
    }
    namespace = types.SimpleNamespace(**modules, Future=asyncio.Future)
    for key, value in replaced.items():
        *parents, last = key.split("__")
        owner = namespace
        for parent in parents:
            owner = getattr(owner, parent)
        if value is None:
            delattr(owner, last)
        else:
            setattr(owner, last, value)
    return namespace


def test_this_python_has_every_internal_in_the_expected_shape() -> None:
    compat.check()  # raises UnsupportedPython otherwise
    compat.check(fake_asyncio())  # the stand-in itself is complete
    # ... and the pure-Python future (a Python built without the C accelerator) fits too
    compat.check(fake_asyncio(Future=vars(asyncio.futures)["_PyFuture"]))


@pytest.mark.parametrize(
    "internal",
    [internal for internal in compat.INTERNALS if not internal.path.startswith("Future.")],
    ids=lambda internal: internal.path,
)
def test_a_missing_internal_is_named_with_the_python_version(internal: compat.Internal) -> None:
    namespace = fake_asyncio(**{internal.path.replace(".", "__"): None})
    with pytest.raises(UnsupportedPython) as caught:
        compat.check(namespace, version="3.99.0")
    message = str(caught.value)
    assert "Python 3.99.0" in message
    assert f"asyncio.{internal.path} (missing; used because {internal.why}" in message
    assert message.count("(missing;") == 1  # only the piece taken away is named


def test_the_error_names_this_python_by_default_and_sits_in_the_kit_error_tree() -> None:
    with pytest.raises(UnsupportedPython, match=rf"Python {platform.python_version()}\b"):
        compat.check(fake_asyncio(tasks___enter_task=None))
    assert issubclass(UnsupportedPython, SimkitError)
    assert issubclass(UnsupportedPython, ImportError)  # what a failed import raises


class _FutureWithoutBlockingFlag:
    """A future class whose instances lack ``_asyncio_future_blocking``."""

    def __init__(self, *, loop: object) -> None:
        self._callbacks: list[tuple[object, object]] = []

    def add_done_callback(self, callback: object, *, context: object = None) -> None:
        self._callbacks.append((callback, context))


class _FutureWithBareCallbacks(_FutureWithoutBlockingFlag):
    """Keeps its callbacks bare instead of as (callback, context) pairs."""

    _asyncio_future_blocking = False

    def add_done_callback(self, callback: object, *, context: object = None) -> None:
        self._callbacks.append(callback)  # type: ignore[arg-type]  # the wrong shape, on purpose


class _FutureWithoutCallbacks:
    """Keeps its done-callbacks somewhere else."""

    _asyncio_future_blocking = False

    def __init__(self, *, loop: object) -> None:
        self.done_callbacks: list[object] = []

    def add_done_callback(self, callback: object, *, context: object = None) -> None:
        self.done_callbacks.append(callback)


class _HandleWithoutContext:
    __slots__ = ("_args", "_callback", "_cancelled", "_loop", "_repr", "_source_traceback")


class _TimerHandleThatForgetsTheLoop(asyncio.events.Handle):
    __slots__ = ("_scheduled", "_when")

    def cancel(self) -> None:
        self._cancelled = True


@pytest.mark.parametrize(
    ("replaced", "named"),
    [
        (
            {"Future": _FutureWithoutBlockingFlag},
            "asyncio.Future._asyncio_future_blocking (missing;",
        ),
        (
            {"Future": _FutureWithBareCallbacks},
            "asyncio.Future._callbacks (not (callback, context)",
        ),
        ({"Future": _FutureWithoutCallbacks}, "asyncio.Future._callbacks (missing;"),
        ({"events__Handle": _HandleWithoutContext}, "asyncio.events.Handle (no slot(s) _context;"),
        (
            {"events__TimerHandle": _TimerHandleThatForgetsTheLoop},
            "asyncio.events.TimerHandle (its cancel() does not call loop._timer_handle_cancelled()",
        ),
        ({"events__TimerHandle": dict}, "asyncio.events.TimerHandle (not a subclass of"),
        ({"tasks___leave_task": 42}, "asyncio.tasks._leave_task (not callable;"),
    ],
    ids=[
        "no-blocking-flag",
        "bare-callbacks",
        "no-callbacks",
        "handle-slots",
        "timer-cancel",
        "timer-class",
        "42",
    ],
)
def test_an_internal_in_another_shape_is_named(replaced: dict[str, Any], named: str) -> None:
    with pytest.raises(UnsupportedPython) as caught:
        compat.check(fake_asyncio(**replaced), version="3.99.0")
    assert named in str(caught.value)


def test_the_check_runs_when_compat_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fresh copy of the module, imported while asyncio lacks a piece: the import fails.
    monkeypatch.delattr(asyncio.futures, "_get_loop")
    spec = importlib.util.spec_from_file_location("compat_copy", compat.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "compat_copy", module)  # as an import does
    with pytest.raises(UnsupportedPython, match=r"asyncio\.futures\._get_loop \(missing"):
        spec.loader.exec_module(module)


def asyncio_internals_used(source: str) -> list[str]:
    """Every ``asyncio.x._y`` chain (any part private, dunders aside: ``asyncio.__file__``
    is public) and ``from asyncio... import _y``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            parts, value = [node.attr], node.value
            while isinstance(value, ast.Attribute):
                parts.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id == "asyncio":
                dotted = ".".join(["asyncio", *reversed(parts)])
                if any(part.startswith("_") and not part.endswith("__") for part in parts):
                    found.append(dotted)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("asyncio"):
            found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    return found


def test_only_compat_reaches_into_asyncio() -> None:
    # The scanner sees both spellings (so the check below could fail).
    sample = "import asyncio\nasyncio.tasks._enter_task(1, 2)\nfrom asyncio.events import _x\n"
    assert sorted(asyncio_internals_used(sample)) == [
        "asyncio.events._x",
        "asyncio.tasks._enter_task",
    ]
    for path in sorted(VIRTUAL.glob("*.py")):
        if path.name != "compat.py":
            assert asyncio_internals_used(path.read_text(encoding="utf-8")) == [], path.name


def test_the_handles_made_without_init_equal_those_made_with_it() -> None:
    loop = asyncio.new_event_loop()
    try:
        context = compat.new_handle(print, (1,), loop, None)._context  # type: ignore[attr-defined]
        made = [
            (
                compat.new_handle(print, (1,), loop, context),
                asyncio.Handle(print, (1,), loop, context),
            ),
            (
                compat.new_timer(2.0, print, (1,), loop, context),
                asyncio.TimerHandle(2.0, print, (1,), loop, context),
            ),
        ]
        for fast, slow in made:
            timer = isinstance(slow, asyncio.TimerHandle)
            for slot in compat.HANDLE_SLOTS + (compat.TIMER_SLOTS if timer else ()):
                expected = getattr(slow, slot)
                if slot == "_scheduled":
                    expected = True  # new_timer's handle is on the heap already
                if slot == "_source_traceback":
                    expected = None  # the loop is not in debug mode
                assert getattr(fast, slot) == expected, slot
            assert type(fast) is type(slow)
            fast.cancel()
            assert fast.cancelled()
    finally:
        loop.close()
