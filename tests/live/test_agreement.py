"""Live runs against virtual runs of the same scenario: same story, within tolerances.

Live timings differ from the model's (real handshakes, the proxy's own delay, websockets
running a handler's cleanup only after the TCP teardown), so exact counts differ; what must
agree is the settled state (both true or both broken in the same way) and the volumes of
work (connects, mean open sockets) within a few percent. See README "Live runtime".
"""

import pytest

import simkit

SIZE = {"tabs": 30, "duration": 120, "seed": 5}


SCENARIOS = [name for name in simkit.SCENARIOS if name != "reference"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_live_agrees_with_virtual(scenario: str) -> None:
    # multi-tab: a shared id under kick-old-safe makes tabs fight; use the multi design there
    strategy = "multi-heartbeat" if scenario == "multi-tab" else "postmortem-safe"
    live = simkit.run(scenario, strategy, runtime="live", **SIZE).summary
    virtual = simkit.run(scenario, strategy, **SIZE).summary
    for key in ("final_stale", "final_dangling", "final_unroutable"):
        assert live[key] == virtual[key] == 0, (key, live, virtual)
    assert live["final_open_sockets"] == live["final_connected_tabs"] == SIZE["tabs"]
    assert live["connects"] == pytest.approx(virtual["connects"], rel=0.05)
    assert live["mean_open_sockets"] == pytest.approx(virtual["mean_open_sockets"], rel=0.05)
    assert live["scale"] == 0.05 and live["runtime"] == "live"


def test_live_shows_the_flaws_the_virtual_model_predicts() -> None:
    live = simkit.run("reload-storm", "before", runtime="live", **SIZE).summary
    virtual = simkit.run("reload-storm", "before", **SIZE).summary
    assert live["final_stale"] == virtual["final_stale"] > 0  # vanished sockets never reaped
    assert live["mean_unroutable"] > 0 and virtual["mean_unroutable"] > 0
    assert not live["invariants_hold"] and not virtual["invariants_hold"]


def test_app_level_heartbeat_finds_frozen_tabs_live_as_in_the_model() -> None:
    resume = simkit.STRATEGIES["resume"]
    app = resume.replace(name="resume-app", liveness="app")
    size = {"tabs": 30, "duration": 200, "seed": 3}
    live = simkit.run("background-tabs", app, runtime="live", **size).summary
    virtual = simkit.run("background-tabs", app, **size).summary
    protocol = simkit.run("background-tabs", resume, runtime="live", **size).summary
    assert virtual["detections_app"] > 5
    assert live["detections_app"] == pytest.approx(virtual["detections_app"], rel=0.2)
    assert live["detection_delay_mean_app"] == pytest.approx(
        virtual["detection_delay_mean_app"], rel=0.15
    )
    assert protocol["detections"] == 0  # the browser answers protocol pings for frozen pages
    assert live["pushes_lost_frozen"] < protocol["pushes_lost_frozen"]
    assert live["invariants_hold"] and protocol["invariants_hold"]


def test_finished_links_are_forgotten_without_losing_attribution(monkeypatch) -> None:
    # A long live run made hundreds of thousands of links, each kept (with its closed
    # connection) until the end. Sweeping the finished ones must not cost the server its
    # attribution of the live ones: the census would then see outsiders and stale sockets.
    from simkit.live.network import LiveNetwork

    swept: list[int] = []
    original = LiveNetwork._prune

    def prune(self) -> None:
        before = len(self.links)
        original(self)
        swept.append(before - len(self.links))

    monkeypatch.setattr(LiveNetwork, "PRUNE_FLOOR", 8)
    monkeypatch.setattr(LiveNetwork, "_prune", prune)
    live = simkit.run("reload-storm", "postmortem-safe", tabs=12, duration=60, runtime="live")
    assert sum(swept) > 10  # finished links were swept during the run
    assert live.summary["invariants_hold"]
    assert live.summary["final_open_sockets"] == live.summary["final_connected_tabs"] == 12
