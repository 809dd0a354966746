"""Every runtime passes the same conformance suite (``simkit.conformance``).

Virtual runs are exact; live runs are real sockets at the live runtime's scale; browser
runs are real Chromium pages at scale 0.5 (Chromium's own page operations take tens to
hundreds of milliseconds, so a smaller scale would test the driver, not the contract).
FastAPI on uvicorn joins as the live runtime with ``stack="fastapi"``, once per WebSocket
implementation. A later server, target or set of nodes joins by adding its runtime here.
"""

from __future__ import annotations

from typing import Any

import pytest

from simkit.conformance import CHECKS, runner_for
from simkit.model.strategy import strategy as strategy_of

LEGACY_WARNING = "remove second argument of ws_handler:DeprecationWarning"
RUNTIMES = [
    pytest.param("virtual", {}, id="virtual"),
    pytest.param("live", {}, id="live", marks=pytest.mark.live),
    # the post-mortem's own stack, under each of uvicorn's WebSocket implementations
    *(
        pytest.param(
            "live",
            {"stack": "fastapi", "ws": ws},
            id=f"fastapi-{ws}",
            # websockets' legacy server (under uvicorn's legacy implementation) warns per socket
            marks=[pytest.mark.live, pytest.mark.filterwarnings(f"ignore:{LEGACY_WARNING}")],
        )
        for ws in ("websockets-sansio", "websockets", "wsproto")
    ),
    pytest.param("browser", {"scale": 0.5}, id="browser", marks=pytest.mark.browser),
    # several nodes: the suite's designs with a cross-node policy, 3 nodes, round-robin
    pytest.param("virtual", {"nodes": 3, "cross_node": "presence-ttl"}, id="virtual-3-nodes"),
    pytest.param(
        "virtual", {"nodes": 3, "cross_node": "shared-kick-old-safe"}, id="virtual-3-nodes-cad"
    ),
    pytest.param(
        "live",
        {"nodes": 3, "cross_node": "presence-ttl"},
        id="live-3-nodes-redis",
        marks=[pytest.mark.live, pytest.mark.redis],
    ),
]


def nodes_runner(runtime: str, cross_node: str, **options: Any) -> Any:
    """The suite's runner with each of its strategies made a design for several nodes."""
    base = runner_for(runtime, **options)

    def run(scenario: Any, strategy: Any = None, **kwargs: Any) -> Any:
        return base(scenario, strategy_of(strategy).replace(cluster=cross_node), **kwargs)

    return run


@pytest.mark.timeout(90)
@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize(("runtime", "options"), RUNTIMES)
def test_runtime_conforms(runtime: str, options: dict[str, Any], check: str) -> None:
    if "cross_node" in options:
        CHECKS[check](nodes_runner(runtime, **options))
        return
    CHECKS[check](runner_for(runtime, **options))


def test_a_broken_network_fails_the_suite(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite can fail: a virtual network that reports every close as 1006 (as the
    virtual runtime once did for a keepalive timeout) is caught by name."""
    from simkit.virtual.network import Link

    real = Link._server_closed

    def always_abnormal(self: Link, code: int) -> None:
        real(self, 1006)

    monkeypatch.setattr(Link, "_server_closed", always_abnormal)
    with pytest.raises(AssertionError, match="1011"):
        CHECKS["silent-link"](runner_for("virtual"))
    with pytest.raises(AssertionError, match="1000"):
        CHECKS["page-close-handler"](runner_for("virtual"))
