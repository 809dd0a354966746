"""The post-mortem's handler as pure policies: close, delete, register.

``close-delete-register`` is the handler where ``await old.close()`` returns at once
(uvicorn's sansio and wsproto): the strand, every time. ``close-await-register`` is the same
handler where ``close()`` waits for the handshake (uvicorn's legacy implementation): the new
socket waits unregistered, then either strands or is closed by its own handler's
``except Exception`` (the self-kill). The exhaustive search finds each as a shortest story.
"""

from __future__ import annotations

import pytest

from simkit.model.explore import counterexample
from simkit.model.registry import REGISTRIES, Close, CloseAwaitRegister, Hello
from simkit.model.strategy import STRATEGIES


def test_search_finds_the_blocked_registration():
    found = counterexample(REGISTRIES["close-await-register"], "blocked")
    assert found is not None and len(found.steps) == 3
    assert found.steps[-1] == "server closes c1 (normal 1000)"
    assert found.facts == (
        "open c2 of user alice is not registered: its handler waits for c1's close",
    )


def test_search_finds_the_self_kill():
    found = counterexample(REGISTRIES["close-await-register"], "self-kill")
    assert found is not None
    assert found.steps[3:6] == (
        "c1's handler finishes and cleans up for user alice",  # the old handler first
        "c2's handler returns from closing the old connection",  # del raises KeyError
        "server closes c2 (normal 1000)",  # except Exception: await websocket.close()
    )
    assert "c2, the newest connection of user alice" in found.facts[0]


def test_search_finds_the_strand_where_close_returns_at_once():
    found = counterexample(REGISTRIES["close-delete-register"], "unroutable")
    assert found is not None
    assert found.steps == (
        "c1 opens for user alice",
        "c2 opens for user alice",
        "server closes c1 (normal 1000)",
        "c1's handler finishes and cleans up for user alice",
    )
    # and it never kills its own socket, nor blocks: close() returned at once
    assert counterexample(REGISTRIES["close-delete-register"], "self-kill") is None
    assert counterexample(REGISTRIES["close-delete-register"], "blocked") is None


@pytest.mark.parametrize("policy", ["kick-old-safe", "multi", "resume", "reject-new"])
@pytest.mark.parametrize("invariant", ["self-kill", "blocked"])
def test_correct_policies_neither_kill_their_own_nor_block(policy, invariant):
    assert counterexample(REGISTRIES[policy], invariant, users=("a", "b"), max_steps=6) is None


def test_the_two_orders_after_the_old_close_ends():
    # server's close first: the new handler registers, the old one deletes it (strand)
    strand = CloseAwaitRegister()
    strand.connect(Hello(1, "u"), 0)
    assert strand.connect(Hello(2, "u"), 1) == [Close(1, 1000, "")]
    assert strand.route("u") == (1,) and strand.blocked == {2: 1}
    assert strand.resumed(2, "u", 2) == []
    assert strand.route("u") == (2,)
    strand.disconnect(1, "u", 2)
    assert strand.route("u") == ()
    # the old page's close in flight: the old handler deletes first, the new one kills itself
    kill = CloseAwaitRegister()
    kill.connect(Hello(1, "u"), 0)
    kill.connect(Hello(2, "u"), 1)
    kill.disconnect(1, "u", 2)
    assert kill.resumed(2, "u", 2) == [Close(2, 1000, "")]
    assert kill.route("u") == () and kill.blocked == {}


def test_seed_presets_run_the_post_mortems_client_and_handler():
    for name, keepalive in (("seed", None), ("seed-uvicorn-defaults", 20.0)):
        seed = STRATEGIES[name]
        assert seed.registry is REGISTRIES["close-delete-register"]
        client = seed.client
        assert (client.identity, client.unload, client.visibility, client.guard) == (
            "fresh-per-load",
            "beforeunload",
            "disconnect-when-hidden",
            "single-flight",
        )
        assert (client.guard_wait, client.guard_poll, client.replace_wait) == (3.0, 0.1, 0.1)
        assert seed.liveness.interval == keepalive


def test_the_post_mortems_guard_polls_every_100_ms():
    """A double mount under the post-mortem's client: the second connect() waits for the
    first socket; its guard polls every 100 ms, so it opens at the first poll after the
    first socket closed (0.80 s), not the moment it closed (0.70 s)."""
    import simkit
    from simkit.model.latency import Latency
    from simkit.scenarios import Scenario

    async def double_mount(tab, sc):
        await tab.sleep(0.5)
        tab.load(strict_mode=True)

    scenario = Scenario(
        "double-mount", "one StrictMode load", double_mount, tabs=1, duration=3.0,
        latency=Latency(0.05, 0.0), push_rate=0.0,
    )  # fmt: skip
    woken = STRATEGIES["seed"].replace(name="woken", guard_poll=0.0)
    opens = {}
    for strategy in (STRATEGIES["seed"], woken):
        trace = simkit.run(scenario, strategy, trace=True, settle=2.0).trace
        closed = trace[trace.event == "client-close"].time.min()
        second = trace[(trace.event == "connect") & (trace.conn == 2)].time.min()
        opens[strategy.name] = round(second - closed, 6)
    assert opens == {"seed": 0.1, "woken": 0.0}
