"""``python -m simkit serve`` behaves like a service: SIGTERM (what systemd, Docker and CI
send) and SIGINT both close every socket with 1001 (going away) or 1012 (service restart)
and exit 0, on both stacks; ``--secret``, ``--secret-file`` and ``SIMKIT_SECRET`` turn on
signed identity; a bad or busy address is one line on stderr and exit 2.

Before: SIGTERM exited 143 and the clients saw 1006 (no close frame); there was no flag for
signed identity; ``--port`` busy, ``--port 99999`` and ``--host 256.1.1.1`` were tracebacks.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from simkit.model.tokens import TokenSigner

SECRET = b"0123456789abcdef-serve-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    """``python -m simkit serve ARGS`` as a subprocess, stopped on exit whatever happens."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "simkit", "serve", "--port", str(self.port), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            # as from a terminal: a job started in the background inherits SIGINT ignored
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )

    def __enter__(self) -> Serve:
        lines: list[str] = []
        reader = threading.Thread(
            target=lambda: lines.append(self.proc.stdout.readline()), daemon=True
        )
        reader.start()
        reader.join(30)
        if not lines or f":{self.port}" not in lines[0]:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            raise AssertionError(f"serve did not start: {lines} {err}")
        self.banner = lines[0]
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        if not self.proc.stdout.closed:  # the test did not read the output itself
            self.proc.communicate(timeout=10)
        self.proc.wait(timeout=10)

    def url(self, query: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws?{query}"


async def close_code_of(ws) -> int | None:
    """Read until the server closes; the code it sent (None: no close frame, i.e. 1006)."""
    try:
        while True:
            await ws.recv()
    except ConnectionClosed:
        pass
    return ws.protocol.close_rcvd.code if ws.protocol.close_rcvd is not None else None


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
@pytest.mark.parametrize("stack", ["websockets", "fastapi"])
def test_a_stop_signal_closes_every_socket_with_going_away_and_exits_0(stack, sig) -> None:
    with Serve("--stack", stack) as serve:

        async def main() -> list[int | None]:
            sockets = [await connect(serve.url(f"user=u{i}")) for i in range(3)]
            readers = [asyncio.ensure_future(close_code_of(ws)) for ws in sockets]
            await asyncio.sleep(0.3)
            serve.proc.send_signal(sig)
            return list(await asyncio.wait_for(asyncio.gather(*readers), 20))

        codes = asyncio.run(main())
        out, err = serve.proc.communicate(timeout=20)
    assert codes and all(code in (1001, 1012) for code in codes), codes
    assert serve.proc.returncode == 0, err
    assert "stopped" in out and "Traceback" not in err


async def handshake(url: str) -> int:
    """101 when the server accepts the WebSocket, else the HTTP status it refused with."""
    try:
        ws = await connect(url)
    except InvalidStatus as refused:
        return refused.response.status_code
    await ws.close()
    return 101


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["flag", "file", "env"])
def test_a_secret_makes_identity_signed(how, tmp_path: Path) -> None:
    args: list[str] = []
    env: dict[str, str] = {}
    if how == "flag":
        args = ["--secret", SECRET.decode()]
    elif how == "file":
        (tmp_path / "secret").write_bytes(SECRET + b"\n")  # as `echo ... > file` writes it
        args = ["--secret-file", str(tmp_path / "secret")]
    else:
        env = {"SIMKIT_SECRET": SECRET.decode()}
    signer, wrong = TokenSigner(SECRET), TokenSigner(b"another secret, 16+ bytes")
    with Serve(*args, env=env) as serve:

        async def main() -> list[int]:
            return [
                await handshake(serve.url(f"token={signer.issue('alice', time.time())}")),
                await handshake(serve.url("user=alice")),  # its say-so is not enough
                await handshake(serve.url(f"token={wrong.issue('alice', time.time())}")),
            ]

        statuses = asyncio.run(main())
        serve.proc.send_signal(signal.SIGTERM)
        out, _ = serve.proc.communicate(timeout=20)
    assert statuses == [101, 401, 403]
    assert "signed identity" in serve.banner
    assert SECRET.decode() not in serve.banner + out  # the banner never prints the secret


def serve_fails(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "simkit", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    return done.returncode, done.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--port", "99999"], {}, "--port must be 0..65535, got 99999"),
        (["--port", "-1"], {}, "--port must be 0..65535, got -1"),
        (["--host", "256.1.1.1"], {}, "--host '256.1.1.1' is not an address"),
        (["--secret", "short"], {}, "--secret: the token secret must be at least 16 bytes, got 5"),
        (["--secret-file", "/nonexistent/secret"], {}, "--secret-file '/nonexistent/secret'"),
        (
            [],
            {"SIMKIT_SECRET": "short"},
            "SIMKIT_SECRET: the token secret must be at least 16 bytes",
        ),
    ],
)
def test_a_bad_address_or_secret_is_one_line_and_exit_2(args, env, message) -> None:
    code, err = serve_fails(*args, env=env)
    assert code == 2, err
    assert message in err
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("stack", ["websockets", "fastapi"])
def test_a_busy_port_is_one_line_and_exit_2(stack) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code, err = serve_fails("--stack", stack, "--port", str(port))
    assert code == 2, err
    assert f"127.0.0.1:{port} is already in use" in err
    assert len(err.strip().splitlines()) == 1, err
