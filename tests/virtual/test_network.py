"""The in-memory network's shortcuts change nothing but speed."""

import json

import pytest

import simkit
from simkit.model import make_strategy
from simkit.model.latency import Latency
from simkit.virtual import network


def _through_the_loop(monkeypatch):
    """Every message through the loop, even with zero latency: the handshakes, each ping and
    its pong; no coasting heartbeat."""
    original = network.MemoryNetwork.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.instant = self.instant_pings = self.coast = False

    monkeypatch.setattr(network.MemoryNetwork, "__init__", init)


def _fingerprint(result):
    return result.timeseries.to_csv(), json.dumps(result.summary, default=str, sort_keys=True)


@pytest.mark.parametrize(
    ("scenario", "liveness"),
    [
        ("reference", "websockets"),
        ("background-tabs", "app"),
        ("background-tabs", "websockets"),  # frozen pages: protocol pings still answered
        ("flaky-network", "app"),
        ("flaky-network", "websockets"),  # coasting heartbeats on links that go silent
        ("strict-mode", "websockets"),  # sockets closed while they open
    ],
)
def test_zero_latency_shortcuts_give_the_same_run(monkeypatch, scenario, liveness):
    strategy = make_strategy("s", registry="kick-old-safe", liveness=liveness, identity="per-tab")
    sc = simkit.SCENARIOS[scenario].with_(latency=Latency(0.0, 0.0))
    coasted = []
    original = network.Keepalive._coast_to

    def coast_to(self, now, **kwargs):
        coasted.append(self.beat.pings)
        original(self, now, **kwargs)
        coasted[-1] = self.beat.pings - coasted[-1]

    echoes = {"fast": 0, "slow": 0}
    echo = network.Link._echo_reaches_client

    def counted_echo(mode):
        def run_echo(self, code):
            echoes[mode] += 1
            echo(self, code)

        return run_echo

    with monkeypatch.context() as m:
        m.setattr(network.Keepalive, "_coast_to", coast_to)
        m.setattr(network.Link, "_echo_reaches_client", counted_echo("fast"))
        fast = simkit.run(sc, strategy, tabs=30, duration=400, seed=9)
    assert fast.summary["heartbeat_pings"] > 100  # heartbeats really ran
    if liveness == "websockets":
        assert sum(coasted) > 50  # many pings were counted by coasting, not by a timer
    else:
        assert coasted == []  # a page's answer can change without the link knowing
    if liveness != "websockets" or scenario == "flaky-network":
        assert fast.summary["detections"] > 0  # and some went unanswered
    with monkeypatch.context() as m:
        _through_the_loop(m)
        m.setattr(network.Link, "_echo_reaches_client", counted_echo("slow"))
        slow = simkit.run(sc, strategy, tabs=30, duration=400, seed=9)
    assert _fingerprint(fast) == _fingerprint(slow)
    # the close shortcut really replaced the echo's trip through the loop (flaky-network's
    # sockets all die silently: no page there ever sends a close frame)
    assert echoes["fast"] == 0
    assert echoes["slow"] > 0 or scenario == "flaky-network"


@pytest.mark.parametrize(
    ("scenario", "strategy"),
    [
        # pages reconnect the moment they see a close: the old socket's cleanup must still
        # come after the new one registers (kick-old's blind delete then strands the tab)
        ("background-tabs", make_strategy("s", registry="kick-old")),
        ("strict-mode", "postmortem"),
        (
            "strict-mode",
            make_strategy("s", registry="reject-new", guard="single-flight", liveness="websockets"),
        ),
    ],
)
def test_zero_latency_shortcuts_keep_what_a_close_causes_after_it(monkeypatch, scenario, strategy):
    sc = simkit.SCENARIOS[scenario].with_(latency=Latency(0.0, 0.0))
    fast = simkit.run(sc, strategy, tabs=5, duration=120, seed=0)
    with monkeypatch.context() as m:
        _through_the_loop(m)
        slow = simkit.run(sc, strategy, tabs=5, duration=120, seed=0)
    assert _fingerprint(fast) == _fingerprint(slow)


def test_a_ping_due_with_the_idle_check_goes_first() -> None:
    """The heartbeat is armed before a proxy's idle timer, so a ping due at the very instant
    the proxy would cut an idle socket (Phoenix: 30 s, against a 30 s proxy) keeps it."""
    strategy = make_strategy("s", registry="kick-old-safe", liveness="phoenix", identity="per-tab")
    result = simkit.run("proxy-idle", strategy, tabs=1, duration=120, seed=3)
    assert result.summary["heartbeat_pings"] >= 3
    assert result.summary["connects"] == 1  # never cut


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reference_runs_equal_with_and_without_shortcuts(monkeypatch, seed):
    """The benchmark's own configuration, at a size where every path (kicks of half-open
    sockets, pings they leave unanswered, coasting to the end of the run) is taken often."""
    fast = simkit.run("reference", tabs=200, duration=900, seed=seed)
    with monkeypatch.context() as m:
        _through_the_loop(m)
        slow = simkit.run("reference", tabs=200, duration=900, seed=seed)
    assert fast.summary["heartbeat_pings"] - fast.summary["heartbeat_pongs"] > 20
    assert _fingerprint(fast) == _fingerprint(slow)


def test_two_heartbeat_rules_never_take_the_shortcut(monkeypatch) -> None:
    strategy = make_strategy("s", registry="kick-old-safe", liveness="websockets+app")
    sc = simkit.SCENARIOS["background-tabs"].with_(latency=Latency(0.0, 0.0))
    seen = []
    original = network.MemoryNetwork.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen.append(self.instant_pings)

    monkeypatch.setattr(network.MemoryNetwork, "__init__", init)
    simkit.run(sc, strategy, tabs=5, duration=60, seed=1)
    assert seen == [False]


def test_the_links_move_only_along_the_connection_table(monkeypatch):
    """Every state change of a virtual link goes through simkit.model.connection's table,
    and a few scenarios between them take every move it lists (so the table is what the
    network does, not a drawing beside it)."""
    from simkit.model.connection import TRANSITIONS, client_step, server_step

    taken = set()

    def recording(side, step):
        def move(state, event):
            after = step(state, event)  # raises on a move the table does not list
            taken.add((side, state, event))
            return after

        return move

    monkeypatch.setattr(network, "client_step", recording("client", client_step))
    monkeypatch.setattr(network, "server_step", recording("server", server_step))
    for scenario in ("reload-storm", "strict-mode", "server-restart", "proxy-idle"):
        simkit.run(scenario, "postmortem-safe", tabs=30, duration=120, seed=1)

    async def die(tab, sc):  # the page's process dies with its socket open, or closing
        await tab.sleep(0.5)
        tab.load()
        await tab.sleep(2.0)
        if tab.index == 1:
            tab.link.close(1000)
        tab.process_dies()

    dying = simkit.Scenario("dying", "processes die", die, push_rate=0.0)
    simkit.run(dying, "postmortem-safe", tabs=2, duration=5, seed=1)
    table = {
        (side, state, event)
        for side, rows in TRANSITIONS.items()
        for state, row in rows.items()
        for event in row
    }
    assert taken == table, f"never taken: {sorted(table - taken)}"


def test_a_move_the_table_forbids_raises_in_the_network():
    """A server end that is closed twice is a bug in the network, and says so."""
    from simkit.model.connection import ServerState
    from simkit.model.errors import IllegalConnectionTransition

    link = object.__new__(network.Link)
    link.server = ServerState.CLOSED
    with pytest.raises(
        IllegalConnectionTransition, match=r"server side.*'closed' is not allowed in state 'closed'"
    ):
        link._server_closed(1000)
    assert link.server is ServerState.CLOSED
