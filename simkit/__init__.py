"""simkit: simulate WebSocket session management across page reloads.

Start with :func:`run` and :func:`compare`, then :func:`sweep` for parameter studies (on
Dask); ``python -m simkit list`` names every scenario, strategy and policy.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from simkit.model import (
    Client,
    ConfigError,
    Liveness,
    Registry,
    Strategy,
    make_strategy,
)
from simkit.model.latency import Latency
from simkit.model.strategy import STRATEGIES

# The rest is imported on first use (PEP 562), so that importing a light module of the
# package (``simkit.adapters``, inside someone's web app) does not pull pandas, matplotlib
# or the live server with it. ``from simkit import run`` works as before.
_LAZY = {
    "compare": "simkit.api",
    "run": "simkit.api",
    "Grade": "simkit.grading",
    "grade": "simkit.grading",
    "FaultProxy": "simkit.net",
    "LocalServer": "simkit.net",
    "Comparison": "simkit.results",
    "Result": "simkit.results",
    "SCENARIOS": "simkit.scenarios",
    "Scenario": "simkit.scenarios",
    "Sweep": "simkit.study",
    "Browser": "simkit.runtimes",
    "Live": "simkit.runtimes",
    "Target": "simkit.runtimes",
    "Virtual": "simkit.runtimes",
    "sweep": "simkit.study",
    "study": "simkit.study",
    "grading": "simkit.grading",
}

if TYPE_CHECKING:
    from simkit import grading as grading
    from simkit import study as study
    from simkit.api import compare, run
    from simkit.grading import Grade, grade
    from simkit.net import FaultProxy, LocalServer
    from simkit.results import Comparison, Result
    from simkit.runtimes import Browser, Live, Target, Virtual
    from simkit.scenarios import SCENARIOS, Scenario
    from simkit.study import Sweep, sweep


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'simkit' has no attribute {name!r}")
    imported = import_module(module)
    # a submodule (``simkit.study``) is the module itself; anything else is read from it
    value = imported if module == f"{__name__}.{name}" else getattr(imported, name)
    globals()[name] = value
    return value


__all__ = [
    "SCENARIOS",
    "STRATEGIES",
    "Browser",
    "Client",
    "Comparison",
    "ConfigError",
    "FaultProxy",
    "Grade",
    "Latency",
    "Live",
    "Liveness",
    "LocalServer",
    "Registry",
    "Result",
    "Scenario",
    "Strategy",
    "Sweep",
    "Target",
    "Virtual",
    "compare",
    "grade",
    "make_strategy",
    "run",
    "sweep",
]
