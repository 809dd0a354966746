"""Parameter studies: one virtual run per combination of scenario, strategy, knobs and seed,
played on a Dask cluster, summarised with a 95 % confidence interval over the seeds.

A design question ("how do stale sockets move with the heartbeat interval, on which network,
and how sure are we?") is hundreds to thousands of independent runs. :func:`sweep` plays
them and returns a :class:`Sweep`, the same frame wherever they played.

- :mod:`simkit.study.knobs`: the knobs a grid turns, each named once (:data:`KNOBS`),
- :mod:`simkit.study.planning`: every run of a sweep, checked before any plays (:func:`plan`),
- :mod:`simkit.study.cluster`: where runs play, the default cluster kept between sweeps
  (:data:`KEEP_IDLE`, :func:`close_default_cluster`, :func:`local_cluster`),
- :mod:`simkit.study.stats`: mean and 95 % interval over seeds (:func:`t975`),
- :mod:`simkit.study.play`: :func:`sweep` and its result, :class:`Sweep`.
"""

from simkit.study.cluster import (
    KEEP_IDLE,
    NO_WORKERS_TIMEOUT,
    NoWorkers,
    SchedulerUnreachable,
    close_default_cluster,
    local_cluster,
)
from simkit.study.knobs import KNOBS, apply_knobs
from simkit.study.planning import Spec, plan
from simkit.study.play import SCHEDULERS, Sweep, SweepWarning, play_one, sweep
from simkit.study.stats import STATS, t975

__all__ = [
    "KEEP_IDLE",
    "KNOBS",
    "NO_WORKERS_TIMEOUT",
    "SCHEDULERS",
    "STATS",
    "NoWorkers",
    "SchedulerUnreachable",
    "Spec",
    "Sweep",
    "SweepWarning",
    "apply_knobs",
    "close_default_cluster",
    "local_cluster",
    "plan",
    "play_one",
    "sweep",
    "t975",
]
