"""The ``live`` runtime: the run's tabs as real ``websockets`` clients on 127.0.0.1.

``LocalServer`` and ``FaultProxy`` live in :mod:`simkit.net` and are re-exported here,
where earlier versions of the kit kept them.
"""

from simkit.net.proxy import FaultProxy, Toxics
from simkit.net.server import LocalServer

__all__ = ["FaultProxy", "LocalServer", "Toxics"]
