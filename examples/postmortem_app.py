"""The post-mortem's backend: FastAPI on uvicorn, its WebSocket handler as written.

Run it with ``uvicorn examples.postmortem_app:app --port 8000`` and play the kit's tabs
against it::

    simkit.run("flaky-network", "postmortem-safe", runtime="live",
               target="ws://127.0.0.1:8000/ws", tabs=20, duration=30)

The handler below is the one the post-mortem shipped (kick the old socket, delete its entry,
register; delete again in the disconnect branch). On uvicorn's default WebSocket
implementation ``await old.close()`` returns at once and the old handler's
``WebSocketDisconnect`` branch then deletes the *new* entry: a live tab no push reaches.
Nothing in the handler is changed to make the kit's job easier. Things are added around
it, as an app under test would have them: a notifier that pushes to every registered user
once a second (so a stranded tab is visibly starved); the stats route of the kit's stats
protocol, a few lines reading the same ``conns`` dict; and the HTTP API its front end calls
on every page load (``GET /api/database/select``, ``?delay=`` seconds to answer slowly), with
CORS for a front end on another loopback port.
"""

# ruff: noqa: RUF051  (the handler is kept exactly as the post-mortem wrote it)
from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from fastapi import FastAPI, Query, WebSocket, WebSocketDisconnect
from fastapi.middleware.cors import CORSMiddleware

from simkit.adapters import stats_router

conns: dict[str, WebSocket] = {}


async def notifier() -> None:
    """Push a small update to every registered user once a second."""
    n = 0
    while True:
        await asyncio.sleep(1.0)
        n += 1
        for websocket in list(conns.values()):
            with contextlib.suppress(Exception):
                await websocket.send_text(json.dumps({"t": "update", "n": n}))


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    task = asyncio.create_task(notifier())
    yield
    task.cancel()


app = FastAPI(lifespan=lifespan)
# The front end called directly (its NEXT_PUBLIC_API_URL, the post-mortem's fix) is another
# origin: the browser needs CORS for the HTTP API (WebSockets are not subject to it).
app.add_middleware(CORSMiddleware, allow_origin_regex=r"https?://(127\.0\.0\.1|localhost)(:\d+)?")
# The stats protocol: [[user, the simkit_conn its socket connected with], ...].
app.include_router(
    stats_router(lambda: [(u, ws.query_params.get("simkit_conn")) for u, ws in conns.items()])
)


# The HTTP API the front end calls on every page load. ``delay`` (seconds, 0 to 120) holds
# the answer back, as a slow query would: what a proxy with a timeout in front of it sees.
@app.get("/api/database/select")
async def database_select(delay: float = Query(0.0, ge=0.0, le=120.0)) -> dict[str, object]:
    await asyncio.sleep(delay)
    return {"rows": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}], "delay": delay}


@app.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket, user: str) -> None:
    # -- the post-mortem's handler, as written --
    await websocket.accept()
    user_id = user
    try:
        if user_id in conns:
            old = conns[user_id]
            try:
                await old.close()
            finally:
                del conns[user_id]
        conns[user_id] = websocket
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        if user_id in conns:
            del conns[user_id]
    except Exception:
        if user_id in conns:
            del conns[user_id]
        await websocket.close()
