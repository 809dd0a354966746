"""Registry policies against the truth: hypothesis drives arbitrary event orders."""

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from simkit.model import REGISTRIES
from simkit.model.explore import World, counterexample

USERS = st.sampled_from(["alice", "bob"])


def machine_for(policy_name: str) -> type[RuleBasedStateMachine]:
    """A state machine whose rules are the World's events and whose invariant is the truth."""

    class Machine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.world = World(REGISTRIES[policy_name]())

        def _conns(self, state: str, silent: bool | None = None) -> list[int]:
            return [
                c
                for c, r in self.world.conns.items()
                if r.state == state and (silent is None or r.silent == silent)
            ]

        @rule(user=USERS)
        def connect(self, user: str) -> None:
            self.world.connect(user)

        @precondition(lambda self: self._conns("open"))
        @rule(data=st.data())
        def client_close(self, data: st.DataObject) -> None:
            self.world.client_close(data.draw(st.sampled_from(self._conns("open"))))

        @precondition(lambda self: self._conns("closing"))
        @rule(data=st.data())
        def close_arrives(self, data: st.DataObject) -> None:
            self.world.finish(data.draw(st.sampled_from(self._conns("closing"))))

        @precondition(lambda self: self._conns("open", silent=False))
        @rule(data=st.data())
        def go_silent(self, data: st.DataObject) -> None:
            self.world.go_silent(data.draw(st.sampled_from(self._conns("open", silent=False))))

        @precondition(lambda self: self._conns("open", silent=True))
        @rule(data=st.data())
        def heartbeat_timeout(self, data: st.DataObject) -> None:
            self.world.reap(data.draw(st.sampled_from(self._conns("open", silent=True))))

        @invariant()
        def registry_is_true(self) -> None:
            broken = self.world.violations()
            assert not broken, f"{broken}\n" + "\n".join(self.world.log)

    Machine.__name__ = f"{policy_name.title().replace('-', '')}Machine"
    return Machine


RUN = settings(
    max_examples=150,
    stateful_step_count=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


# The two hypothesis searches (150 random programs of 30 steps each) take about 8 s of CPU
# together: slow, so outside `make test-fast`, which keeps the exhaustive search below.
@pytest.mark.slow
@pytest.mark.parametrize("policy", ["kick-old-safe", "multi", "resume", "reject-new"])
def test_correct_policies_keep_the_registry_true(policy: str) -> None:
    machine = machine_for(policy)
    machine.TestCase.settings = RUN
    machine.TestCase().runTest()


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["naive", "kick-old"])
def test_hypothesis_finds_the_known_flaw(policy: str) -> None:
    machine = machine_for(policy)
    machine.TestCase.settings = RUN
    with pytest.raises(AssertionError) as failure:
        machine.TestCase().runTest()
    assert "unroutable" in str(failure.value) or "duplicates" in str(failure.value)
    # The shrunk program is short enough to read aloud in a training session.
    program = "\n".join(getattr(failure.value, "__notes__", []))
    steps = [
        line
        for line in program.splitlines()
        if line.startswith("state.") and "registry_is_true" not in line
    ]
    assert 2 <= len(steps) <= 6, program


def test_kick_old_counterexample_is_the_cleanup_race() -> None:
    found = counterexample(REGISTRIES["kick-old"], "unroutable")
    assert found is not None
    assert found.steps == (
        "c1 opens for user alice",
        "c2 opens for user alice",
        "server closes c1 (replaced 4000)",
        "c1's handler finishes and cleans up for user alice",
    )
    assert found.facts == ("open c2 of user alice is not routed to",)


def test_naive_counterexample_is_the_duplicate() -> None:
    found = counterexample(REGISTRIES["naive"], "duplicates")
    assert found is not None and len(found.steps) == 2
    assert "2 open connections" in found.facts[0]


@pytest.mark.parametrize("policy", ["kick-old-safe", "multi", "resume", "reject-new"])
@pytest.mark.parametrize("invariant", ["unroutable", "dangling", "duplicates"])
def test_exhaustive_search_finds_nothing_for_correct_policies(policy: str, invariant: str) -> None:
    assert counterexample(REGISTRIES[policy], invariant, users=("a", "b"), max_steps=6) is None


def test_unknown_invariant_is_named() -> None:
    with pytest.raises(ValueError, match=r"'stale'.*dangling, unroutable, duplicates"):
        counterexample(REGISTRIES["naive"], "stale")
