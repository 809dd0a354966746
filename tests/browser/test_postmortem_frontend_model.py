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
BACKEND_PORT = 18613  # a stable port for `next start`: the same build every time


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


def held(mode: str) -> Iterator[PostmortemStack]:
    """A stack for the module; after it, no process of Node's or uvicorn's group is left."""
    # a build bakes the backend's URL in: `next start` gets the stable port (its build is
    # then reused), `next dev` builds nothing and takes a free one
    port = BACKEND_PORT if mode == "start" and nextapp.port_free(BACKEND_PORT) else 0
    groups: list[int] = []
    with PostmortemStack("postmortem", mode=mode, port=port) as running:  # type: ignore[arg-type]
        for process in (running.app.process, running.api.process):
            assert process is not None
            groups.append(process.pid)  # each is its own group's leader
        yield running
    deadline = time.monotonic() + 5
    while any(group_members(g) for g in groups) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [group_members(g) for g in groups] == [[], []]


@pytest.fixture(scope="module")
def dev() -> Iterator[PostmortemStack]:
    """`next dev`: where StrictMode is on."""
    yield from held("dev")


@pytest.fixture(scope="module")
def start() -> Iterator[PostmortemStack]:
    """`next build` (reused while the settings and sources are the same) and `next start`:
    production page loads take about 0.1 s, not the 1-2 s of a dev server compiling and
    serving its development bundles to several tabs on two cores, which a scaled run
    cannot fit between a reload and the next."""
    yield from held("start")


def played(
    stack: PostmortemStack, scenario: object, client: str
) -> tuple[PagePlay, model.Prediction]:
    real = stack.play(scenario, client, **SIZE)  # type: ignore[arg-type]
    prediction = model.predict(scenario, client, **SIZE)  # type: ignore[arg-type]
    check(real)
    return real, prediction


def check(real: PagePlay) -> None:
    summary = real.result.summary
    assert summary["browser_errors"] == 0, summary.get("browser_first_error")
    assert summary["page_tracker_errors"] == []
    assert summary["sockets_not_proxied"] == 0  # every socket went through the kit's proxy
    assert summary["registry_foreign_entries"] == 0  # every registry entry joined a socket


@pytest.mark.parametrize("client", ["prefix", "postfix"])
def test_one_load_opens_one_socket_under_next_dev(dev: PostmortemStack, client: str) -> None:
    """StrictMode under `next dev`: loads far enough apart for each to finish. Every load
    opened one socket (React doubles the effects of components placed on the client; the
    provider is hydrated from the server's HTML), where the kit's strict-mode scenario, as
    the model plays it, opens two per load."""
    real = dev.play(strictmode.reloads(3, 6.0), client, tabs=2, duration=19.0, settle=2.0,
                    scale=0.5)  # fmt: skip
    check(real)
    # loads that opened a socket (a dev load the next reload cuts before its code runs
    # opens none: seen once in 12)
    loads = strictmode.per_load(real.sockets)
    assert len(loads) >= 5, loads.to_string()
    assert set(loads["sockets"]) == {1}, loads.to_string()
    assert loads["first_opened"].sum() >= 4, loads.to_string()
    doubled = strictmode.model_double_mount(client, 0.5)
    assert doubled["sockets"] == 2  # the model's StrictMode load
    scenario = model.predict("strict-mode", client, strict=None, **SIZE)  # type: ignore[arg-type]
    assert model.model_figures(scenario)["sockets_per_load"] == 2.0


@pytest.mark.parametrize("client", ["prefix", "postfix"])
def test_the_model_agrees_on_reloads_hides_and_a_duplicate(
    start: PostmortemStack, client: str
) -> None:
    real, prediction = played(start, RELOAD_AND_HIDE, client)
    table = model.compare(real, prediction)
    assert table["agree"].all(), table.to_string()
