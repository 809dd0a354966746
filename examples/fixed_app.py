"""The post-mortem's backend fixed with :class:`simkit.adapters.SafeRegistry`.

The same app as ``examples/postmortem_app.py`` (same route, same notifier), with the
registry replaced by the kit's adapter: kick-old-safe (the old socket is closed in the
background, its handler deletes only its own entry), sends with a timeout, and the stats
route from the adapter. Run it with ``uvicorn examples.fixed_app:app --port 8001``; its
keepalive is uvicorn's (``--ws-ping-interval``/``--ws-ping-timeout``, 20 s/20 s by default),
which reaps sockets whose network died.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from fastapi import FastAPI, Query, WebSocket
from fastapi.middleware.cors import CORSMiddleware

from simkit.adapters import SafeRegistry, stats_router

registry = SafeRegistry("kick-old-safe", send_timeout=2.0, kick_timeout=2.0)


async def notifier() -> None:
    """Push a small update to every registered user once a second."""
    n = 0
    while True:
        await asyncio.sleep(1.0)
        n += 1
        text = json.dumps({"t": "update", "n": n})
        await asyncio.gather(*(registry.push(user, text) for user in registry.users()))


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    task = asyncio.create_task(notifier())
    yield
    task.cancel()
    await registry.aclose()


app = FastAPI(lifespan=lifespan)
# The front end called directly (its NEXT_PUBLIC_API_URL, the post-mortem's fix) is another
# origin: the browser needs CORS for the HTTP API (WebSockets are not subject to it).
app.add_middleware(CORSMiddleware, allow_origin_regex=r"https?://(127\.0\.0\.1|localhost)(:\d+)?")
app.include_router(stats_router(registry))


# The HTTP API the front end calls on every page load. ``delay`` (seconds, 0 to 120) holds
# the answer back, as a slow query would: what a proxy with a timeout in front of it sees.
@app.get("/api/database/select")
async def database_select(delay: float = Query(0.0, ge=0.0, le=120.0)) -> dict[str, object]:
    await asyncio.sleep(delay)
    return {"rows": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}], "delay": delay}


@app.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket, user: str) -> None:
    await websocket.accept()
    async with registry.connection(user, websocket) as conn:
        async for _message in conn.messages():
            pass  # the app's own messages would be handled here
