"""Load balancers: which server node a new connection lands on, as pure policies.

A balancer is asked once per connection, when its handshake reaches the server side, with
the nodes that are up (a health check that knows at once; real ones take a probe interval
or two, during which connections to a dead node are refused and retried by the page, which
the kit plays the same way). It never does I/O and never reads a clock; a random balancer
draws from the stream it is given, so a run stays reproducible.

The four choices teams actually make (nginx, HAProxy, Envoy, a cloud load balancer):
``round-robin`` (each node in turn), ``random``, ``sticky`` (by user: the same user on the
same node while that node is up; rendezvous hashing, so a node that dies moves only its own
users and gets them back when it returns) and ``least-connections``.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from typing import ClassVar

from simkit.model.errors import ConfigError, choice


class Balancer:
    """Base class: :meth:`pick` one of ``up`` (node indexes, ascending, never empty)."""

    name: ClassVar[str] = "custom"
    summary: ClassVar[str] = ""

    def __init__(self, rng: random.Random | None = None) -> None:
        """``rng``: the run's stream for this balancer (only ``random`` draws from it)."""

    def pick(self, user: str, up: Sequence[int], load: Mapping[int, int]) -> int:
        """The node for a new connection of ``user``; ``load`` maps node -> open sockets."""
        raise NotImplementedError


class RoundRobin(Balancer):
    name = "round-robin"
    summary = "each new connection to the next node that is up, in turn"

    def __init__(self, rng: random.Random | None = None) -> None:
        self.turn = 0

    def pick(self, user: str, up: Sequence[int], load: Mapping[int, int]) -> int:
        node = up[self.turn % len(up)]
        self.turn += 1
        return node


class Random(Balancer):
    name = "random"
    summary = "a node drawn at random (seeded) among those that are up"

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng if rng is not None else random.Random(0)

    def pick(self, user: str, up: Sequence[int], load: Mapping[int, int]) -> int:
        return up[self.rng.randrange(len(up))]


def _weight(user: str, node: int) -> int:
    # SHA-256, not hash(): the same in every process, whatever PYTHONHASHSEED says.
    return int.from_bytes(hashlib.sha256(f"{node}:{user}".encode()).digest()[:8], "big")


class Sticky(Balancer):
    name = "sticky"
    summary = "by user (rendezvous hash): a user stays on one node while it is up"

    def __init__(self, rng: random.Random | None = None) -> None:
        pass

    def pick(self, user: str, up: Sequence[int], load: Mapping[int, int]) -> int:
        return max(up, key=lambda node: (_weight(user, node), -node))


class LeastConnections(Balancer):
    name = "least-connections"
    summary = "the node with the fewest open sockets (ties: the lowest index)"

    def __init__(self, rng: random.Random | None = None) -> None:
        pass

    def pick(self, user: str, up: Sequence[int], load: Mapping[int, int]) -> int:
        return min(up, key=lambda node: (load.get(node, 0), node))


BALANCERS: dict[str, type[Balancer]] = {
    cls.name: cls for cls in (RoundRobin, Random, Sticky, LeastConnections)
}


def balancer(name: str, rng: random.Random | None = None) -> Balancer:
    """A fresh balancer by name (``rng`` feeds ``random``)."""
    if not isinstance(name, str) or name not in BALANCERS:
        raise choice("load balancer", name, list(BALANCERS))
    return BALANCERS[name](rng)


def check_nodes(nodes: object) -> int:
    """``nodes`` must be a whole number from 1 to 64 (the kit's nodes share one machine)."""
    if not isinstance(nodes, int) or isinstance(nodes, bool) or not 1 <= nodes <= 64:
        raise ConfigError(f"nodes must be a whole number from 1 to 64, got {nodes!r}")
    return nodes
