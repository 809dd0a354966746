"""What every runtime and every network must do the same way, in two suites.

- :mod:`simkit.conformance.runs`: scripted runs through :func:`simkit.run` on a runtime,
  asserted from the run's trace and census (:func:`check`, :data:`CHECKS`).
- :mod:`simkit.conformance.links`: the two ends of a link driven directly on a network,
  without scenarios or actors (:func:`check_network`, :data:`STEPS`).
"""

from simkit.conformance.links import (
    HEARTBEAT,
    STEPS,
    Bound,
    Journal,
    Maker,
    Nonconforming,
    RecordingServer,
    RecordingTab,
    check_network,
    check_step,
    live_network,
    memory_network,
)
from simkit.conformance.runs import CHECKS, check_runtime, runner_for

check = check_runtime  # the run-level suite on one runtime

__all__ = [
    "CHECKS",
    "HEARTBEAT",
    "STEPS",
    "Bound",
    "Journal",
    "Maker",
    "Nonconforming",
    "RecordingServer",
    "RecordingTab",
    "check",
    "check_network",
    "check_runtime",
    "check_step",
    "live_network",
    "memory_network",
    "runner_for",
]
