"""Load balancers: each picks a node that is up; sticky moves only a dead node's users."""

from __future__ import annotations

import random

import pytest

from simkit.model.balancer import BALANCERS, balancer, check_nodes
from simkit.model.errors import ConfigError


@pytest.mark.parametrize("name", list(BALANCERS))
def test_every_pick_is_a_node_that_is_up(name: str) -> None:
    chosen = balancer(name, random.Random(1))
    for i in range(200):
        up = [n for n in range(5) if (i + n) % 3]  # never empty, varies
        assert chosen.pick(f"u{i}", up, {n: n for n in range(5)}) in up


def test_round_robin_takes_turns() -> None:
    rr = balancer("round-robin")
    assert [rr.pick("u", [0, 1, 2], {}) for _ in range(6)] == [0, 1, 2, 0, 1, 2]


def test_random_is_reproducible_from_its_stream() -> None:
    a = [balancer("random", random.Random(7)).pick("u", [0, 1, 2], {}) for _ in range(1)]
    r1, r2 = balancer("random", random.Random(7)), balancer("random", random.Random(7))
    assert [r1.pick("u", [0, 1, 2], {}) for _ in range(50)] == [
        r2.pick("u", [0, 1, 2], {}) for _ in range(50)
    ]
    assert a[0] in (0, 1, 2)


def test_sticky_keeps_a_user_and_moves_only_a_dead_nodes_users() -> None:
    sticky = balancer("sticky")
    users = [f"u{i}" for i in range(300)]
    before = {u: sticky.pick(u, [0, 1, 2], {}) for u in users}
    assert {u: sticky.pick(u, [0, 1, 2], {}) for u in users} == before  # stable
    assert set(before.values()) == {0, 1, 2}  # spread over every node
    after = {u: sticky.pick(u, [0, 2], {}) for u in users}  # node 1 died
    for u in users:
        if before[u] != 1:
            assert after[u] == before[u], u  # only node 1's users moved
        else:
            assert after[u] in (0, 2)


def test_least_connections_picks_the_emptiest_lowest_first() -> None:
    lc = balancer("least-connections")
    assert lc.pick("u", [0, 1, 2], {0: 5, 1: 2, 2: 2}) == 1
    assert lc.pick("u", [0, 2], {0: 5, 1: 0, 2: 9}) == 0


def test_bad_names_and_sizes_list_what_is_allowed() -> None:
    with pytest.raises(ConfigError, match=r"unknown load balancer 'nginx'.*round-robin"):
        balancer("nginx")
    for bad in (0, -1, 65, 2.0, True, "3"):
        with pytest.raises(ConfigError, match="nodes must be a whole number from 1 to 64"):
            check_nodes(bad)
    assert check_nodes(3) == 3
