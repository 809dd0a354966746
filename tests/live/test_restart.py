"""A server restart under the resume design: every push is delivered once or counted lost,
with its reason; none silently dropped, none duplicated."""

import pytest

import simkit

REASONS = ("pushes_lost_stale", "pushes_lost_frozen", "pushes_no_route", "pushes_expired")


@pytest.mark.parametrize("runtime", ["virtual", "live"])
def test_every_push_is_accounted_for_across_a_restart(runtime: str) -> None:
    s = simkit.run(
        "server-restart", "resume", tabs=60, duration=120, seed=4, runtime=runtime
    ).summary
    assert s["server_restarts"] == 1 and s["pushes_sent"] > 100
    assert s["pushes_sent"] == s["pushes_delivered"] + s["pushes_lost"] + s["pushes_pending"]
    assert s["pushes_lost"] == sum(s[reason] for reason in REASONS)
    assert s["pushes_duplicated"] == 0
    assert s["invariants_hold"]


def test_duplicates_would_be_counted() -> None:
    # A registry that delivers every push twice: the census must notice.
    class Twice(simkit.Registry):
        name = "twice"
        one_per_user = False

        def __init__(self) -> None:
            self.map: dict[str, dict[int, None]] = {}

        def connect(self, hello, now):
            self.map.setdefault(hello.user, {})[hello.conn] = None
            return []

        def disconnect(self, conn, user, now):
            self.map.get(user, {}).pop(conn, None)
            return []

        def route(self, user):
            conns = tuple(self.map.get(user, ()))
            return conns + conns

        def entries(self):
            return [(u, c) for u, cs in self.map.items() for c in cs]

    twice = simkit.make_strategy("twice", registry=Twice, identity="shared")
    s = simkit.run("hidden-tabs", twice, tabs=20, duration=60).summary
    assert s["pushes_duplicated"] > 0
