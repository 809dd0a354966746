"""The model against the post-mortem's real front end: its Next.js app (``next dev``) in real
Chromium tabs, against its real FastAPI handler on uvicorn, pre-fix and post-fix, beside the
virtual runtime's prediction for the same scenario, seed and size.

One stack for the module (one ``next dev`` start, no build); each play is a few seconds of
wall time (``scale`` 0.2) with four tabs. The tolerances are :data:`simkit.realfront.model.
TOLERANCES`, each with its reason; a real difference is asserted as measured, with its cause
(StrictMode's double mount, which this app's hydrated provider does not get).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from simkit.net import nextapp
from simkit.realfront import model, strictmode
from simkit.realfront.stack import PagePlay, PostmortemStack
from simkit.realfront.workload import RELOAD_AND_HIDE

pytestmark = [pytest.mark.node, pytest.mark.timeout(240)]

SIZE = {"tabs": 4, "duration": 30.0, "settle": 10.0, "scale": 0.2, "seed": 0}
BACKEND_PORT = 18613  # a stable port: the same settings every time


def group_members(pgid: int) -> list[int]:
    """Live processes of the process group ``pgid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def stack() -> Iterator[PostmortemStack]:
    """The stack for the module; after it, no process of Node's or uvicorn's group is left."""
    port = BACKEND_PORT if nextapp.port_free(BACKEND_PORT) else 0
    groups: list[int] = []
    with PostmortemStack("postmortem", mode="dev", port=port) as running:
        for process in (running.app.process, running.api.process):
            assert process is not None
            groups.append(process.pid)  # each is its own group's leader
        yield running
    deadline = time.monotonic() + 5
    while any(group_members(g) for g in groups) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [group_members(g) for g in groups] == [[], []]


def played(
    stack: PostmortemStack, scenario: object, client: str
) -> tuple[PagePlay, model.Prediction]:
    real = stack.play(scenario, client, **SIZE)  # type: ignore[arg-type]
    prediction = model.predict(scenario, client, **SIZE)  # type: ignore[arg-type]
    summary = real.result.summary
    assert summary["browser_errors"] == 0, summary.get("browser_first_error")
    assert summary["page_tracker_errors"] == []
    assert summary["sockets_not_proxied"] == 0  # every socket went through the kit's proxy
    assert summary["registry_foreign_entries"] == 0  # every registry entry joined a socket
    return real, prediction


@pytest.mark.parametrize("client", ["prefix", "postfix"])
def test_one_load_opens_one_socket_under_next_dev(stack: PostmortemStack, client: str) -> None:
    """StrictMode under `next dev`: the kit's strict-mode scenario on the real page. Every
    load opened one socket (React doubles the effects of components placed on the client;
    the provider is hydrated from the server's HTML); the model's StrictMode load opens
    two, so the prediction that matches is the one with plain loads."""
    real, plain = played(stack, "strict-mode", client)
    loads = strictmode.per_load(real.sockets)
    assert len(loads) >= 6
    assert set(loads["sockets"]) == {1}, loads.to_string()
    assert loads["first_opened"].all()
    doubled = model.predict("strict-mode", client, strict=None, **SIZE)  # type: ignore[arg-type]
    assert model.model_figures(doubled)["sockets_per_load"] >= 1.9  # the kit's double mount
    table = model.compare(real, plain)
    assert table["agree"].all(), table.to_string()


@pytest.mark.parametrize("client", ["prefix", "postfix"])
def test_the_model_agrees_on_reloads_and_hides(stack: PostmortemStack, client: str) -> None:
    real, prediction = played(stack, RELOAD_AND_HIDE, client)
    table = model.compare(real, prediction)
    assert table["agree"].all(), table.to_string()
