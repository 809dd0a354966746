import random

import pytest

from simkit.model import BACKOFF_PRESETS, Backoff, Client, ConfigError, Storage, claim


@pytest.mark.parametrize("name", list(BACKOFF_PRESETS))
def test_every_backoff_stays_within_its_bounds(name: str) -> None:
    backoff = BACKOFF_PRESETS[name]
    rng = random.Random(7)
    for attempt in range(1, 12):
        low, high = backoff.bounds(attempt)
        delays = [backoff.delay(attempt, rng) for _ in range(300)]
        assert all(low <= d <= high for d in delays), (attempt, low, high)
        assert high <= max(backoff.max_delay, backoff.first_max)


def test_exponential_doubles_to_its_cap_with_fifty_percent_jitter() -> None:
    backoff = BACKOFF_PRESETS["exponential"]
    assert [backoff.bounds(a) for a in (1, 2, 3, 4)] == [
        (0.5, 1.5),
        (1.0, 3.0),
        (2.0, 5.0),
        (2.5, 5.0),
    ]
    rng = random.Random(1)
    first = [backoff.delay(1, rng) for _ in range(2000)]
    # The jitter really spreads: both halves of the range are used, the mean sits near 1 s.
    assert min(first) < 0.6 and max(first) > 1.4
    assert abs(sum(first) / len(first) - 1.0) < 0.03


def test_full_jitter_and_rfc6455_shapes() -> None:
    assert BACKOFF_PRESETS["full-jitter"].bounds(1) == (0.5, 0.5)
    assert BACKOFF_PRESETS["full-jitter"].bounds(10) == (0.5, 20.0)
    rfc = BACKOFF_PRESETS["rfc6455"]
    assert rfc.bounds(1) == (0.0, 5.0)
    assert [rfc.delay(a, random.Random(0)) for a in (2, 3, 4)] == [1.0, 2.0, 4.0]
    assert rfc.delay(30, random.Random(0)) == 60.0
    assert BACKOFF_PRESETS["immediate"].delay(5, random.Random(0)) == 0.0


def test_backoff_is_a_function_of_the_seed() -> None:
    backoff = BACKOFF_PRESETS["exponential"]
    a = [backoff.delay(n, random.Random(3)) for n in range(1, 6)]
    b = [backoff.delay(n, random.Random(3)) for n in range(1, 6)]
    assert a == b


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "linear"}, r"unknown backoff 'linear'; choose one of: immediate, exponential"),
        ({"factor": 0.5}, r"factor must be >= 1, got 0.5"),
        ({"max_delay": -1.0}, r"max_delay must be >= 0 seconds, got -1.0"),
        ({"randomization": 2.0}, r"randomization must be in \[0, 1\], got 2.0"),
    ],
)
def test_bad_backoff_values_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Backoff(**kwargs)


def test_attempts_count_from_one() -> None:
    with pytest.raises(ConfigError, match="count from 1, got 0"):
        BACKOFF_PRESETS["exponential"].delay(0, random.Random(0))


def test_per_tab_identity_survives_reload_but_not_a_new_tab() -> None:
    rng = random.Random(0)
    tab = Storage(local={})
    first = claim("per-tab", "u1", tab, rng)
    assert claim("per-tab", "u1", tab.reload(), rng) == first
    assert claim("per-tab", "u1", tab.new_tab(), rng) != first


def test_duplicated_tab_copies_the_per_tab_id() -> None:
    rng = random.Random(0)
    tab = Storage(local={})
    first = claim("per-tab", "u1", tab, rng)
    copy = tab.duplicate()
    assert claim("per-tab", "u1", copy, rng) == first
    copy.session["tab_id"] = "changed"
    assert tab.session["tab_id"] == first  # a copy, not the same storage


def test_shared_identity_is_the_user_in_every_tab_and_fresh_is_new_each_load() -> None:
    rng = random.Random(0)
    tab = Storage(local={})
    assert claim("shared", "u1", tab, rng) == "u1"
    assert claim("shared", "u1", tab.new_tab(), rng) == "u1"
    loads = {claim("fresh-per-load", "u1", tab.reload(), rng) for _ in range(50)}
    assert len(loads) == 50 and "u1" not in loads


def test_unknown_identity_and_client_values_are_named() -> None:
    with pytest.raises(ConfigError, match=r"unknown identity 'cookie'; choose one of: fresh"):
        claim("cookie", "u", Storage(local={}), random.Random(0))
    with pytest.raises(ConfigError, match=r"unknown unload 'unload'; choose one of: none"):
        Client(unload="unload")
    with pytest.raises(ConfigError, match=r"unload_runs is a probability in \[0, 1\], got 1.5"):
        Client(unload_runs=1.5)


def test_unload_handler_rules() -> None:
    rng = random.Random(0)
    assert not Client(unload="none").closes_on_unload(rng)
    assert Client(unload="pagehide").closes_on_unload(rng, page_close=True)
    assert not Client(unload="beforeunload").closes_on_unload(rng, page_close=True)
    sometimes = Client(unload="pagehide", unload_runs=0.3)
    ran = sum(sometimes.closes_on_unload(rng) for _ in range(4000))
    assert 1000 < ran < 1400


def test_only_token_identities_need_a_random_stream() -> None:
    # The tab makes its client stream on first use; "shared" never asks for one.
    assert claim("shared", "alice", Storage({}), None) == "alice"
    with pytest.raises(ValueError, match="need a random stream"):
        claim("per-tab", "alice", Storage({}), None)
