"""The example backends' HTTP API (what the example front end calls on every page load):
the same route on the post-mortem's app and on the fixed one, its delay bounded, and CORS
for a front end on another loopback port (the post-mortem's fix calls the API directly)."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from examples import fixed_app, postmortem_app


@pytest.fixture(params=["postmortem", "fixed"])
def client(request: pytest.FixtureRequest) -> TestClient:
    app = postmortem_app.app if request.param == "postmortem" else fixed_app.app
    return TestClient(app)  # no ``with``: the lifespan's notifier is not needed here


def test_select_answers_rows(client: TestClient) -> None:
    reply = client.get("/api/database/select")
    assert reply.status_code == 200
    assert reply.json()["rows"] and reply.json()["delay"] == 0.0


def test_select_delay_holds_the_answer_back(client: TestClient) -> None:
    start = time.perf_counter()
    reply = client.get("/api/database/select", params={"delay": 0.3})
    assert reply.status_code == 200
    assert time.perf_counter() - start >= 0.3


@pytest.mark.parametrize("delay", ["-1", "121", "abc"])
def test_select_refuses_delays_out_of_bounds(client: TestClient, delay: str) -> None:
    assert client.get("/api/database/select", params={"delay": delay}).status_code == 422


def test_cors_allows_a_loopback_front_end_only(client: TestClient) -> None:
    ok = client.get("/api/database/select", headers={"Origin": "http://127.0.0.1:3000"})
    assert ok.headers.get("access-control-allow-origin") == "http://127.0.0.1:3000"
    other = client.get("/api/database/select", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers
