"""Problem 1 reproduced for real, briefly: the post-mortem's exact line ("Failed to proxy
.../api/database/select [Error: socket hang up]", ECONNRESET) from the example front end's
rewrites when the backend dies under requests in flight; and the measuring module end to
end on its cheapest case."""

from __future__ import annotations

import asyncio
import functools
import signal

import pytest

from simkit.net.nextapp import NextApp, http_status
from simkit.net.nextproxy_measure import FRONTEND, measure
from simkit.net.uvicorn_app import UvicornApp

pytestmark = [pytest.mark.node, pytest.mark.timeout(300)]


def sync(test):  # type: ignore[no-untyped-def]
    @functools.wraps(test)
    def run(*args, **kwargs):  # type: ignore[no-untyped-def]
        return asyncio.run(test(*args, **kwargs))

    return run


@sync
async def test_a_backend_killed_mid_answer_gives_the_postmortems_line() -> None:
    backend = UvicornApp()
    app = NextApp(FRONTEND, mode="dev", backend=backend.url)
    async with backend, app:
        url = app.url + "/api/database/select?delay=5"
        waiting = [asyncio.create_task(http_status(url, 30)) for _ in range(3)]
        await asyncio.sleep(2.0)
        assert app.proxy_errors().empty
        await backend.stop(signal.SIGKILL)
        statuses = await asyncio.gather(*waiting)
        await asyncio.sleep(0.5)
        errors = app.proxy_errors()
    assert statuses == [500, 500, 500]
    assert errors[["code", "path", "error", "count"]].values.tolist() == [
        ["ECONNRESET", "/api/database/select", "Error: socket hang up", 3]
    ]


@pytest.mark.browser
@sync
async def test_the_measuring_module_records_a_case() -> None:
    record = await measure(reps=2, cases=("keep-alive",))
    (case,) = record["cases"]
    assert case["case"] == "keep-alive-race" and case["repetitions"] == 2
    assert case["client_status"] == {"200": 2}
    assert record["versions"]["next"].startswith("15.")
