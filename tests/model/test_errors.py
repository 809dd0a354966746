"""One error tree: every exception class simkit defines derives from SimkitError and is
drawn in the tree of ``simkit.model.errors``'s docstring, so ``except SimkitError`` catches
every error the kit raises on purpose and the docs cannot drift from the code."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import simkit
from simkit.model import errors
from simkit.model.errors import RunFailed, ScriptFailed, SimkitError

SKIP = {"simkit.__main__"}  # runs the CLI when imported


def exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(simkit.__path__, "simkit."):
        if info.name in SKIP:
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and not issubclass(value, Warning)
                and value.__module__ == info.name
            ):
                found[f"{info.name}.{name}"] = value
    return found


def test_every_exception_class_is_in_the_tree() -> None:
    classes = exception_classes()
    assert len(classes) >= 15, sorted(classes)  # the walk found the package's errors
    outside = [name for name, cls in classes.items() if not issubclass(cls, SimkitError)]
    assert not outside, f"outside the SimkitError tree: {outside}"
    tree = errors.__doc__ or ""
    drawn = [line.split("── ")[-1].split()[0] for line in tree.splitlines() if "── " in line]
    undrawn = [
        n for n, cls in classes.items() if cls is not SimkitError and cls.__name__ not in drawn
    ]
    assert not undrawn, f"not drawn in simkit.model.errors's tree: {undrawn}"


def test_a_failed_script_fails_the_run_with_its_names() -> None:
    error = ScriptFailed("boom", scenario="s", strategy="p", task="tab 3", cause=KeyError("x"))
    assert isinstance(error, RunFailed) and isinstance(error, RuntimeError)
    assert (error.scenario, error.strategy, error.task) == ("s", "p", "tab 3")
    assert isinstance(error.cause, KeyError)
