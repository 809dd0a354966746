"""Cross-node policies against arbitrary event orders, and their shortest failures."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simkit.model.cluster import CLUSTER_POLICIES, Entry, Store, cluster_policy, counterexample
from simkit.model.errors import ConfigError


def test_store_commands_are_redis_like() -> None:
    store = Store()
    assert store.set("a", Entry(0, 1, expires=10.0), now=0.0) is None
    assert store.set("a", Entry(1, 2, expires=10.0), now=1.0) == Entry(0, 1, 10.0)
    assert not store.delete_if("a", 0, 1, now=2.0)  # not c1's any more
    assert store.get("a", now=2.0) == Entry(1, 2, 10.0)
    assert store.get("a", now=10.0) is None  # expired (lazily)
    store.set("b", Entry(0, 3, expires=5.0), now=0.0)
    assert store.refresh(0, [("b", 3), ("c", 4)], ttl=5.0, now=4.0) == ["b", "c"]
    store.set("d", Entry(1, 5), now=4.0)
    assert store.refresh(0, [("d", 6)], ttl=5.0, now=4.0) == []  # another socket's entry
    assert store.expire(9.5) == ["b", "c"]
    assert store.delete("d", now=9.5) and store.data == {}
    assert store.ops == 11


def test_the_blind_delete_race_crosses_nodes_in_three_steps() -> None:
    found = counterexample("shared-kick-old", "unroutable")
    assert found is not None and "in 3 steps" in found
    assert "cleans up" in found and "is not routed to" in found
    assert counterexample("shared-kick-old-safe", "unroutable") is None
    assert counterexample("presence-ttl", "unroutable") is None


def test_only_a_ttl_clears_a_dead_nodes_entries() -> None:
    for name in ("shared-kick-old", "shared-kick-old-safe"):
        found = counterexample(name, "dead-node-entry")
        assert found is not None and "dies" in found and "in 3 steps" in found
    assert counterexample("presence-ttl", "dead-node-entry") is None


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown cross-node policy 'gossip'.*presence-ttl"):
        cluster_policy("gossip")
    with pytest.raises(ConfigError, match="unknown invariant"):
        counterexample("presence-ttl", "fast")


# Arbitrary orders over 3 nodes and 3 users: ("open", node, user), ("cleanup", k) of the
# k-th socket opened (if its handler has not run), ("crash", node), ("tick", seconds).
events = st.lists(
    st.one_of(
        st.tuples(st.just("open"), st.integers(0, 2), st.sampled_from("abc")),
        st.tuples(st.just("cleanup"), st.integers(0, 30)),
        st.tuples(st.just("crash"), st.integers(0, 2)),
        st.tuples(st.just("tick"), st.floats(0.1, 40.0)),
    ),
    max_size=40,
)


def play(name: str, order: list[tuple]) -> tuple[Store, dict, dict, set, float]:
    """Apply ``order`` as the cluster actor would, with the store answering at once. A
    node's heartbeat refreshes every ``refresh`` seconds while time passes."""
    policy = CLUSTER_POLICIES[name]
    store = Store()
    opened: list[tuple[int, int, str]] = []
    open_: dict[int, tuple[int, str]] = {}  # handlers not yet finished
    held: dict[int, tuple[int, str]] = {}  # registered, not kicked
    dead: set[int] = set()
    now = 0.0
    for event in order:
        if event[0] == "open" and event[1] not in dead:
            node, user = event[1], event[2]
            conn = len(opened) + 1
            opened.append((node, conn, user))
            open_[conn] = held[conn] = (node, user)
            old = policy.on_open(store, node, conn, user, now)
            if old is not None:
                held.pop(old.conn, None)
        elif event[0] == "cleanup" and event[1] < len(opened):
            node, conn, user = opened[event[1]]
            if conn in open_:
                del open_[conn]
                held.pop(conn, None)
                policy.on_close(store, node, conn, user, now)
        elif event[0] == "crash":
            dead.add(event[1])
            for conn in [c for c, (n, _) in open_.items() if n == event[1]]:
                del open_[conn]
                held.pop(conn, None)
        elif event[0] == "tick":
            end = now + event[1]
            step = policy.refresh or event[1]
            while now < end:
                now = min(end, now + step)
                if policy.refresh is not None:
                    for node in {n for n, _ in held.values()} - dead:
                        mine = [(u, c) for c, (n, u) in held.items() if n == node]
                        store.refresh(node, mine, policy.ttl or 0.0, now)
                store.expire(now)
    return store, open_, held, dead, now


@settings(max_examples=300, deadline=None)
@given(events)
def test_compare_and_delete_never_strands_the_newest_socket(order: list[tuple]) -> None:
    for name in ("shared-kick-old-safe", "presence-ttl"):
        store, _, held, _, now = play(name, order)
        newest: dict[str, int] = {}
        for conn, (_, user) in held.items():
            newest[user] = max(conn, newest.get(user, 0))
        for user, conn in newest.items():
            entry = store.get(user, now)
            # a socket still served and not replaced is what a push to its user finds
            assert entry is not None and entry.conn == conn, (name, user, conn, entry)


@settings(max_examples=300, deadline=None)
@given(events)
def test_entries_never_point_at_a_cleaned_up_socket_under_compare_and_delete(
    order: list[tuple],
) -> None:
    for name in ("shared-kick-old-safe", "presence-ttl"):
        store, open_, _, dead, _ = play(name, order)
        for entry in store.data.values():
            # an entry's socket is open, or its node died (no handler ran to clean up)
            assert entry.conn in open_ or entry.node in dead, (name, entry)


@settings(max_examples=300, deadline=None)
@given(events)
def test_presence_ttl_forgets_dead_nodes_once_the_ttl_passes(order: list[tuple]) -> None:
    store, _, _, dead, _ = play("presence-ttl", [*order, ("tick", 16.0)])
    assert not [e for e in store.data.values() if e.node in dead]


def test_the_blind_delete_strands_sockets_under_arbitrary_orders_too() -> None:
    # The property above is not vacuous: the blind delete fails it on the shortest order.
    order = [("open", 0, "a"), ("open", 1, "a"), ("cleanup", 0)]
    store, _, held, _, now = play("shared-kick-old", order)
    assert 2 in held and store.get("a", now) is None
