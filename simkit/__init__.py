"""simkit: simulate WebSocket session management across page reloads.

Start with :func:`run` and :func:`compare`, then :func:`sweep` for parameter studies (on
Dask); ``python -m simkit list`` names every scenario, strategy and policy.
"""

from simkit.api import compare, run
from simkit.grade import Grade, grade
from simkit.live import FaultProxy, LocalServer
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
from simkit.results import Comparison, Result
from simkit.scenarios import SCENARIOS, Scenario
from simkit.sweep import Sweep, sweep

__all__ = [
    "SCENARIOS",
    "STRATEGIES",
    "Client",
    "Comparison",
    "ConfigError",
    "FaultProxy",
    "Grade",
    "Latency",
    "Liveness",
    "LocalServer",
    "Registry",
    "Result",
    "Scenario",
    "Strategy",
    "Sweep",
    "compare",
    "grade",
    "make_strategy",
    "run",
    "sweep",
]
