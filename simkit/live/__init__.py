"""The live runtime: the same actors over real WebSockets on 127.0.0.1.

``LocalServer`` is a real ``websockets`` server applying a strategy; ``FaultProxy`` sits
between tabs and server to delay, blackhole or cut traffic; ``LiveNetwork`` gives the tab
actors the same link interface the in-memory network gives them.
"""

from simkit.live.proxy import FaultProxy, Toxics
from simkit.live.server import LocalServer

__all__ = ["FaultProxy", "LocalServer", "Toxics"]
