"""Public callables show their real parameters in ``help()``, and the CLI's ``--help``
gives every option a line and its default: a newcomer reads them before any page."""

from __future__ import annotations

import argparse
import inspect

import pytest

import simkit
from simkit.cli import parser


@pytest.mark.parametrize(
    ("callable_", "names"),
    [
        (simkit.LocalServer, {"strategy", "host", "port", "stack", "ws", "scale", "secret"}),
        (simkit.compare, {"scenario", "strategies", "tabs", "duration", "seed", "runtime"}),
        (simkit.run, {"scenario", "strategy", "tabs", "duration", "seed", "runtime"}),
        (simkit.sweep, {"scenarios", "strategies", "grid", "seeds"}),
        (simkit.grade, {"strategy_or_registry", "scenarios", "tabs", "limits"}),
    ],
    ids=["LocalServer", "compare", "run", "sweep", "grade"],
)
def test_public_callables_show_their_parameters(callable_, names) -> None:
    params = inspect.signature(callable_).parameters
    assert names <= set(params), f"missing in help(): {sorted(names - set(params))}"
    # Only grade's documented ``max_<measure>=``/``min_<measure>=`` limits are free keywords.
    free = [p.name for p in params.values() if p.kind is p.VAR_KEYWORD]
    assert free in ([], ["limits"]), f"help() shows **{free[0]}"


def subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", sorted(subparsers()))
def test_every_cli_option_has_a_line_and_its_default(command: str) -> None:
    sub = subparsers()[command]
    text = sub.format_help()
    for action in sub._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{command} {action.option_strings[0]} has no help line"
        if action.default not in (None, False):
            expanded = sub._get_formatter()._expand_help(action)
            assert "default" in expanded, f"{command} {action.option_strings[0]} hides its default"
    assert text.startswith(f"usage: python -m simkit {command}")
