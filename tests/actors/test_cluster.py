"""Several nodes in virtual time: the Cluster actor behind the one run core."""

from __future__ import annotations

import functools
import json

import pytest

import simkit
from simkit.actors import play
from simkit.model.errors import ConfigError
from simkit.runtime.census import Census

SMALL = {"tabs": 60, "duration": 200}


@pytest.mark.parametrize("scenario", ["reload-storm", "server-restart", "multi-tab"])
def test_one_node_is_the_run_without_nodes_bit_for_bit(scenario: str) -> None:
    plain = simkit.run(scenario, "postmortem-safe", tabs=30, duration=100, seed=3)
    one = simkit.run(scenario, "postmortem-safe", tabs=30, duration=100, seed=3, nodes=1)
    assert plain.timeseries.to_csv() == one.timeseries.to_csv()
    assert json.dumps(plain.summary, default=str) == json.dumps(one.summary, default=str)
    assert "nodes" not in one.summary and "node0_open" not in one.timeseries


def test_cluster_runs_are_deterministic_and_add_their_columns() -> None:
    a = simkit.run("node-crash", "presence-ttl", seed=5, **SMALL)
    b = simkit.run("node-crash", "presence-ttl", seed=5, **SMALL)
    assert a.timeseries.to_csv() == b.timeseries.to_csv()
    assert a.summary == b.summary
    ts = a.timeseries
    assert {"node0_open", "node1_open", "node2_open", "dead_node_entries"} <= set(ts)
    # every open socket is on exactly one node
    assert (ts[["node0_open", "node1_open", "node2_open"]].sum(axis=1) == ts["open_sockets"]).all()
    s = a.summary
    assert s["nodes"] == 3 and s["cross_node_policy"] == "presence-ttl"
    assert s["node_crashes"] == 1 and s["store_ops_per_second"] > 0


@pytest.fixture
def checked(monkeypatch):
    """Every sample also walks the merged registry and compares with the incremental audit."""
    monkeypatch.setattr(play, "Census", functools.partial(Census, check=True))


@pytest.mark.parametrize("strategy", ["local", "broadcast", "shared-kick-old", "presence-ttl"])
@pytest.mark.parametrize("scenario", ["node-crash", "rolling-deploy", "redis-blip"])
def test_the_census_audit_stays_true_across_nodes(checked, scenario: str, strategy: str) -> None:
    r = simkit.run(scenario, strategy, tabs=40, duration=150)
    assert len(r.timeseries) > 100


def test_a_node_crash_leaves_entries_only_a_ttl_clears() -> None:
    safe = simkit.run("node-crash", "shared-kick-old-safe", **SMALL).summary
    ttl = simkit.run("node-crash", "presence-ttl", **SMALL).summary
    assert safe["peak_dead_node_entries"] > 0 and ttl["peak_dead_node_entries"] > 0
    assert safe["final_dangling"] > 0 and not safe["invariants_hold"]  # closed while frozen
    assert ttl["final_dangling"] == 0 and ttl["invariants_hold"]
    assert ttl["mean_dead_node_entries"] < safe["mean_dead_node_entries"]


def test_the_reload_race_crosses_nodes_and_compare_and_delete_fixes_it() -> None:
    blind = simkit.run("multi-node-reload", "shared-kick-old", **SMALL).summary
    safe = simkit.run("multi-node-reload", "shared-kick-old-safe", **SMALL).summary
    assert blind["cross_node_kicks"] > 0 and safe["cross_node_kicks"] > 0
    assert blind["final_unroutable"] > 0 and not blind["invariants_hold"]
    assert safe["invariants_hold"] and safe["delivery_ratio"] > blind["delivery_ratio"]


def test_sticky_sessions_keep_kicks_on_one_node() -> None:
    sticky = simkit.run("multi-node-reload", "shared-kick-old", balancer="sticky", **SMALL)
    assert sticky.summary["cross_node_kicks"] == 0
    assert sticky.summary["balancer"] == "sticky"


def test_local_registries_miss_pushes_that_enter_elsewhere() -> None:
    local = simkit.run("multi-node-reload", "postmortem-safe", **SMALL).summary
    fanout = simkit.run("multi-node-reload", "broadcast", **SMALL).summary
    assert local["cross_node_policy"] == "local"
    assert 0.2 < local["delivery_ratio"] < 0.5  # about one node in three
    assert fanout["delivery_ratio"] > 0.95 and fanout["invariants_hold"]


def test_a_store_blip_is_counted_and_the_run_finishes() -> None:
    r = simkit.run("redis-blip", "presence-ttl", **SMALL).summary
    assert r["store_errors"] > 0
    assert r["invariants_hold"]  # the next heartbeat refresh writes back what was lost


def test_resume_sessions_do_not_follow_a_user_to_another_node() -> None:
    one = simkit.run("multi-node-reload", "resume", nodes=1, **SMALL).summary
    three = simkit.run("multi-node-reload", "resume", **SMALL).summary
    for s in (one, three):  # every push accounted for once
        assert s["pushes_sent"] == s["pushes_delivered"] + s["pushes_lost"] + s["pushes_pending"]
    assert three["pushes_expired"] > one["pushes_expired"]


def test_bad_cluster_input_names_what_is_allowed() -> None:
    with pytest.raises(ConfigError, match="nodes must be a whole number from 1 to 64, got 0"):
        simkit.run("reload-storm", "postmortem-safe", nodes=0, **SMALL)
    with pytest.raises(ConfigError, match=r"unknown load balancer 'ip-hash'.*sticky"):
        simkit.run("reload-storm", "postmortem-safe", nodes=2, balancer="ip-hash", **SMALL)
    with pytest.raises(ConfigError, match="virtual and live runtimes, not 'browser'"):
        simkit.run("reload-storm", "postmortem-safe", nodes=2, runtime="browser", **SMALL)
    with pytest.raises(ConfigError, match="unknown cross-node policy"):
        simkit.make_strategy("x", cluster="gossip")


def test_cli_nodes_one_writes_the_same_timeseries(tmp_path) -> None:
    from simkit.cli import main

    args = ["run", "--scenario", "reload-storm", "--strategy", "before", "--tabs", "20"]
    args += ["--duration", "60"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--nodes", "1", "--out", str(tmp_path / "b")]) == 0
    a = (tmp_path / "a" / "timeseries.csv").read_bytes()
    assert a == (tmp_path / "b" / "timeseries.csv").read_bytes()
