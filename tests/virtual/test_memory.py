"""A tab's client stream, dropped after its per-tab token and made again when needed, draws
exactly what it would have drawn had it been kept (the memory saving changes no number)."""

from __future__ import annotations

import asyncio

from simkit.actors.env import Env
from simkit.actors.tab import Tab
from simkit.model.client import Storage
from simkit.model.strategy import make_strategy
from simkit.runtime.census import Census


def _tab(identity: str) -> Tab:
    loop = asyncio.new_event_loop()
    try:
        strategy = make_strategy("t", registry="kick-old-safe", identity=identity)
        env = Env(loop, strategy, Census(one_per_user=True), None, seed=7, duration=10.0)  # type: ignore[arg-type]
        return Tab(env, 3, "u3", Storage({}))
    finally:
        loop.close()


def test_a_dropped_client_stream_comes_back_where_it_was() -> None:
    tab = _tab("per-tab")
    token = tab._claim("per-tab")
    assert tab._client_rng is None and tab._client_skip == 2  # 48 bits: 2 words
    kept = Env.rng(tab.env, "tab", 3, "client")
    assert token == f"{kept.getrandbits(48):012x}"
    later = [tab.client_rng.random() for _ in range(5)]
    assert later == [kept.random() for _ in range(5)]
    tab._client_rng = None  # as before the later draws
    assert tab._claim("per-tab") == token  # the session keeps it: no second draw ...
    assert tab._client_rng is None  # ... and no stream made for nothing


def test_fresh_tokens_keep_their_stream() -> None:
    tab = _tab("fresh-per-load")
    first, second = tab._claim("fresh-per-load"), tab._claim("fresh-per-load")
    kept = Env.rng(tab.env, "tab", 3, "client")
    assert (first, second) == tuple(f"{kept.getrandbits(48):012x}" for _ in range(2))
    assert tab._client_rng is not None
