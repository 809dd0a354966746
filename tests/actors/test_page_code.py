"""The client behaviours a page's own code decides and the model now plays (simkit.model.client
``cancel``, ``cleanup``, ``claim_per``, ``reconnect``), each on one StrictMode load or one
server close, traced; and the defaults, which keep every earlier model run as it was."""

from __future__ import annotations

import pandas as pd
import pytest

import simkit
from simkit.model import STRATEGIES
from simkit.model.client import Client
from simkit.model.errors import ConfigError
from simkit.model.latency import Latency
from simkit.realfront.model import POSTFIX, PREFIX
from simkit.scenarios import Scenario

SEED = STRATEGIES["seed"]


async def _one_strict_load_then_reload(tab, sc) -> None:
    await tab.sleep(0.5)
    tab.load(strict_mode=True)
    await tab.sleep(2.0)
    await tab.reload(0.2)


ONE = Scenario(
    "one-strict-load", "one StrictMode load, then a plain reload", _one_strict_load_then_reload,
    tabs=1, duration=4.0, latency=Latency(0.01, 0.0), push_rate=0.0,
)  # fmt: skip


def trace_of(strategy) -> pd.DataFrame:
    result = simkit.run(ONE, strategy, tabs=1, settle=3.0, trace=True, stack="fastapi")
    assert result.trace is not None
    return result.trace


def events(trace: pd.DataFrame, event: str) -> pd.DataFrame:
    return trace[trace["event"] == event].sort_values("time", kind="stable")


def test_the_defaults_are_the_models_until_now() -> None:
    client = Client()
    assert (client.cancel, client.cleanup, client.claim_per, client.reconnect) == (
        "when-open",
        "disconnect",
        "load",
        "backoff",
    )
    assert SEED.client.cancel == "when-open"  # the preset itself is unchanged


def test_cancel_when_open_waits_for_the_first_socket() -> None:
    connects = events(trace_of(SEED), "connect")
    first, second = connects.iloc[0], connects.iloc[1]
    assert first["user"] == second["user"]
    assert second["time"] - first["time"] >= 0.099  # opened, closed, then the guard poll


def test_cancel_at_once_with_a_claim_per_mount_opens_the_second_at_once_as_another_user() -> None:
    strategy = SEED.replace(name="at-once", cancel="at-once", claim_per="mount")
    trace = trace_of(strategy)
    connects = events(trace, "connect")
    first, second = connects.iloc[0], connects.iloc[1]
    assert second["time"] == first["time"]  # the same instant: no guard to wait for
    assert first["user"] != second["user"]  # the effect drew a fresh id again
    # the first socket was failed while it connected: it never had a clean close
    assert not ((trace["conn"] == first["conn"]) & (trace["event"] == "client-close")).any() or (
        trace.loc[
            (trace["conn"] == first["conn"]) & (trace["event"] == "client-close"), "code"
        ].iloc[0]
        != 1000
    )


def test_no_cleanup_leaves_the_first_socket_open_until_the_page_goes() -> None:
    strategy = SEED.replace(
        name="no-cleanup", identity="per-tab", unload="none", guard="none", cleanup="none",
        claim_per="mount", reconnect="never",
    )  # fmt: skip
    result = simkit.run(ONE, strategy, tabs=1, settle=3.0, trace=True, stack="fastapi")
    ts = result.timeseries.set_index("t")
    assert ts.loc[1.0, "open_sockets"] == 2 or ts.loc[1.0, "stale"] >= 0  # both reached it
    trace = result.trace
    assert trace is not None
    connects = events(trace, "connect")
    assert len(connects) == 3  # two for the StrictMode load, one for the plain reload
    assert connects.iloc[0]["user"] == connects.iloc[1]["user"]  # sessionStorage's id
    # the server (close-delete-register) closed the older of the two when the newer came
    closes = events(trace, "server-close")
    assert len(closes) >= 1
    # nothing is left open after the reload and the settle but the newest socket
    assert result.timeseries["open_sockets"].iloc[-1] == 1


def test_reconnect_never_leaves_a_socket_closed_under_the_page_closed() -> None:
    async def kicked(tab, sc) -> None:
        await tab.sleep(0.2 + 0.5 * tab.index)
        tab.load()

    scenario = Scenario(
        "same-user-twice", "two tabs of one id", kicked, tabs=2, duration=3.0,
        latency=Latency(0.01, 0.0), push_rate=0.0, tabs_per_person=(2, 2),
    )  # fmt: skip
    shared = SEED.replace(name="shared", identity="shared")
    retry = simkit.run(scenario, shared, tabs=2, settle=10.0)
    never = simkit.run(
        scenario, shared.replace(name="never", reconnect="never"), tabs=2, settle=10.0
    )
    # the second tab's socket makes the handler close the first tab's: it retries, or not
    assert retry.summary["connects"] > never.summary["connects"] == 2
    assert never.summary["final_disconnected_tabs"] == 1


def test_the_real_front_ends_models() -> None:
    assert (PREFIX.client.identity, PREFIX.client.cleanup, PREFIX.client.reconnect) == (
        "per-tab",
        "none",
        "never",
    )
    assert POSTFIX.client.cancel == "at-once" and POSTFIX.client.reconnect == "never"


@pytest.mark.parametrize("field", ["cancel", "cleanup", "claim_per", "reconnect"])
def test_a_bad_value_names_the_choices(field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        Client(**{field: "sometimes"})
