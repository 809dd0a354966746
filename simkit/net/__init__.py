"""Real sockets on 127.0.0.1: what every real-time runtime shares.

The kit's own servers (:class:`LocalServer`: ``websockets``, or FastAPI on uvicorn), the
fault-injecting TCP proxy (:class:`FaultProxy`, with Toxiproxy's names), the real
``websockets`` clients that play tabs (:mod:`simkit.net.network`), the kit's page for real
browsers, a real ``redis-server`` for several nodes, and real front ends and backends run as
processes (:class:`NextApp`: a Next.js app; :class:`UvicornApp`: an ASGI app on uvicorn).
The runtimes (``simkit.live``, ``simkit.browser``) are built from these parts and never
import each other.
"""

from simkit.net.nextapp import NextApp, NextAppError
from simkit.net.proxy import FaultProxy, Toxics
from simkit.net.server import LocalServer
from simkit.net.site import StaticSite
from simkit.net.uvicorn_app import UvicornApp

__all__ = [
    "FaultProxy",
    "LocalServer",
    "NextApp",
    "NextAppError",
    "StaticSite",
    "Toxics",
    "UvicornApp",
]
