"""NextApp against the real example front end (Node.js, Next.js, uvicorn): it starts in both
modes, reaches the backend both ways, counts its proxy's failures from a real "socket hang
up", fails clearly, and leaves no process behind, even when its parent is SIGKILLed."""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simkit.model.errors import ConfigError
from simkit.net import nextapp
from simkit.net.nextapp import NextApp, NextAppError, free_port, http_status
from simkit.net.uvicorn_app import UvicornApp

pytestmark = [pytest.mark.node, pytest.mark.timeout(300)]

FRONTEND = Path(__file__).resolve().parents[2] / "examples" / "postmortem_frontend"
# The backend's port is baked into a `next build`: a stable one lets builds be reused.
BACKEND_PORT = 18611


def sync(test):  # type: ignore[no-untyped-def]
    """Run an async test body in its own event loop (the suite has no asyncio plugin)."""

    @functools.wraps(test)
    def run(*args, **kwargs):  # type: ignore[no-untyped-def]
        return asyncio.run(test(*args, **kwargs))

    return run


def group_members(pgid: int) -> list[int]:
    """Live processes in the process group ``pgid``."""
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


async def gone_within(pgid: int, seconds: float = 5.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := group_members(pgid)) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return left


def backend_port() -> int:
    return BACKEND_PORT if nextapp.port_free(BACKEND_PORT) else 0


@sync
async def test_dev_through_rewrites_answers_and_leaves_nothing(children) -> None:
    async with UvicornApp(port=backend_port()) as backend:
        async with NextApp(FRONTEND, mode="dev", backend=backend.url) as app:
            assert app.process is not None
            pgid = app.process.pid
            assert len(group_members(pgid)) >= 2  # the sh leader and Node (and its children)
            assert await http_status(app.url + "/") == 200
            # the HTTP API reaches uvicorn through the rewrite
            assert await http_status(app.url + "/api/database/select") == 200
            log = app.log
            assert {"t", "stream", "line"} <= set(log.columns)
            assert log["line"].str.contains("Ready in").any()
            assert app.proxy_errors().empty
            own = FRONTEND / f".next-dev-{app.port}"
            assert own.is_dir()
        assert await gone_within(pgid) == []
        assert children("simkit-next") == []
        assert not own.exists()  # a dev server's directory goes with it


@sync
async def test_direct_has_no_rewrite() -> None:
    backend = UvicornApp(port=backend_port())
    async with backend, NextApp(FRONTEND, mode="dev", backend=backend.url, via="direct") as app:
        assert app.settings() == {"NEXT_PUBLIC_API_URL": backend.url}
        assert await http_status(app.url + "/api/database/select") == 404


@pytest.mark.timeout(900)
@sync
async def test_start_builds_once_then_reuses_the_build() -> None:
    async with UvicornApp(port=backend_port()) as backend:
        async with NextApp(FRONTEND, mode="start", backend=backend.url, build_timeout=800) as app:
            assert await http_status(app.url + "/api/database/select") == 200
            first_key = app.build_key()
            assert app.log["stream"].eq("build").any() == app.built
        async with NextApp(FRONTEND, mode="start", backend=backend.url) as again:
            assert again.build_key() == first_key
            assert again.built is False  # same settings, same sources: no second build
            assert not again.log["stream"].eq("build").any()
            assert await http_status(again.url + "/") == 200


@sync
async def test_a_slow_answer_past_the_proxy_timeout_is_counted_as_a_hang_up() -> None:
    backend = UvicornApp(port=backend_port())
    app = NextApp(FRONTEND, mode="dev", backend=backend.url, proxy_timeout=1.0)
    async with backend, app:
        statuses = await asyncio.gather(
            *(http_status(app.url + "/api/database/select?delay=3", 10) for _ in range(3))
        )
        assert await http_status(app.url + "/api/database/select") == 200  # fast: fine
        deadline = time.monotonic() + 5
        while app.proxy_errors()["count"].sum() < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        errors = app.proxy_errors()
    assert all(s is not None and s >= 500 for s in statuses), statuses
    assert errors["count"].sum() == 3, app.tail()
    row = errors.iloc[0]
    assert (row["code"], row["path"]) == ("ECONNRESET", "/api/database/select")
    assert "socket hang up" in row["error"]


@sync
async def test_node_missing_is_a_config_error_saying_how_to_install(monkeypatch) -> None:
    monkeypatch.setenv("SIMKIT_NODE", "/nonexistent/node")
    with pytest.raises(ConfigError, match="apt-get install nodejs npm"):
        async with NextApp(FRONTEND, backend="http://127.0.0.1:9"):
            pass


@sync
async def test_a_busy_port_is_refused_before_anything_starts(children) -> None:
    port = free_port()
    with __import__("socket").socket() as held:
        held.bind(("127.0.0.1", port))
        held.listen()
        with pytest.raises(ConfigError, match=f"port {port} .* already in use"):
            async with NextApp(FRONTEND, backend="http://127.0.0.1:9", port=port):
                pass
    assert children("simkit-next") == []


def test_bad_arguments_name_the_value() -> None:
    with pytest.raises(ConfigError, match="mode must be one of"):
        NextApp(FRONTEND, mode="prod")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="via must be one of"):
        NextApp(FRONTEND, via="proxy")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="backend must be an http"):
        NextApp(FRONTEND, backend="ws://127.0.0.1:1/ws")
    with pytest.raises(ConfigError, match=r"no package\.json"):
        NextApp(FRONTEND / "app")


def broken_copy(tmp_path: Path, file: str, text: str) -> Path:
    """A copy of the example with one file replaced, sharing its node_modules."""
    app = tmp_path / "app"
    shutil.copytree(FRONTEND, app, ignore=shutil.ignore_patterns("node_modules", ".next*"))
    (app / "node_modules").symlink_to(FRONTEND / "node_modules")
    (app / file).write_text(text)
    return app


@sync
async def test_a_start_failure_names_its_cause_with_the_log(tmp_path, children) -> None:
    app_dir = broken_copy(
        tmp_path, "next.config.ts", 'throw new Error("config is broken on purpose");\n'
    )
    with pytest.raises(NextAppError, match="exited at start") as failure:
        async with NextApp(app_dir, mode="dev", backend="http://127.0.0.1:9", start_timeout=60):
            pass
    assert "config is broken on purpose" in str(failure.value)
    assert "its log ends" in str(failure.value)
    assert children("simkit-next") == []


@pytest.mark.timeout(600)
@sync
async def test_a_build_failure_names_its_cause_with_the_log(tmp_path, children) -> None:
    app_dir = broken_copy(tmp_path, "app/page.tsx", "export default function Page( {\n")
    with pytest.raises(NextAppError, match=r"next build .* failed") as failure:
        async with NextApp(app_dir, mode="start", backend="http://127.0.0.1:9"):
            pass
    assert "page.tsx" in str(failure.value)
    assert children("simkit-next") == []


@sync
async def test_cancel_during_start_leaves_nothing(children) -> None:
    app = NextApp(FRONTEND, mode="dev", backend="http://127.0.0.1:9")
    task = asyncio.create_task(app.start())
    deadline = time.monotonic() + 30
    while app.process is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert app.process is not None
    pgid = app.process.pid
    await asyncio.sleep(1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await gone_within(pgid) == []
    assert children("simkit-next") == []


HOLDER = """
import asyncio, sys
from simkit.net.nextapp import NextApp
async def main():
    async with NextApp(sys.argv[1], mode="dev", backend="http://127.0.0.1:9") as app:
        print(app.process.pid, app.port, flush=True)
        await asyncio.sleep(300)
asyncio.run(main())
"""


@sync
async def test_sigkill_of_the_parent_takes_next_and_its_children_along() -> None:
    env = {**os.environ, "PYTHONPATH": str(FRONTEND.parents[1])}
    port = 0
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(FRONTEND)], stdout=subprocess.PIPE, env=env
    )
    try:
        assert holder.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(holder.stdout.readline), 120)
        pgid, port = map(int, line.split())
        members = group_members(pgid)
        assert len(members) >= 3, members  # sh, `next dev` and the server it forks
        holder.send_signal(signal.SIGKILL)
        holder.wait(5)
        assert await gone_within(pgid, 5.0) == []
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(5)
        # what a killed parent cannot clean (a later NextApp prunes it after 10 minutes)
        shutil.rmtree(FRONTEND / f".next-dev-{port}", ignore_errors=True)
        (FRONTEND / f"tsconfig.next-dev-{port}.json").unlink(missing_ok=True)
