"""``python -m simkit doctor``: can this machine run the course? A pre-flight check.

A trainer runs it on every attendee's laptop before the session (and on their own the day
before): it checks what the lessons need, plays a few seconds of a real live run on
127.0.0.1, and prints, per notebook, what will run, what will not, and the command that
fixes it. It exits 0 when the lessons can run and 1 when something they need is missing,
so a set-up script can stop on it.

What is *required*: the Python version, the packages the lessons import, loopback ports a
live run can bind, and a live run that finishes. What is *optional*: Chromium (notebook 08
only), redis-server (several-node live runs, none in the lessons' cells) and Node (a Next.js
target of your own). Every live cell of the lessons has a fallback in virtual time
(``runtime="virtual"``, or the notebook's own virtual experiment where a cell drives a
server by hand), listed in notebooks/README.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

MIN_PYTHON = (3, 11)
CHROMIUM = os.environ.get("SIMKIT_CHROMIUM", "/usr/bin/chromium")  # as simkit.browser finds it
REDIS_SERVER = os.environ.get("SIMKIT_REDIS_SERVER", "redis-server")  # as simkit.net.redis
INSTALL = 'make course   (or: python -m pip install -e ".[course]" in the checkout)'

# What each lesson imports (the lean ``course`` install gives all of them).
PACKAGES = (
    "pandas",
    "matplotlib",
    "ipywidgets",
    "ipykernel",
    "jupyterlab",
    "websockets",
    "fastapi",
    "uvicorn",
    "wsproto",
)

# The live run the doctor plays: 10 tabs reloading for 40 scenario seconds, which the live
# runtime's default scale (0.05) plays in about 2 s of real time, plus the settle.
LIVE_RUN = (
    "import simkit; "
    "r = simkit.run('reload-storm', 'postmortem-safe', tabs=10, duration=40, settle=20, "
    "runtime='live', progress=False); "
    "print(r.summary['connects'], r.summary['invariants_hold'])"
)
LIVE_NOTEBOOKS = (
    "00_start_here",
    "03_liveness",
    "05_identity_and_tabs",
    "06_restart_and_herds",
    "09_your_own_server",
)
LIVE_TIMEOUT = 30.0  # s: a healthy laptop needs about 5; a stuck run is killed at this bound

# Which checks each notebook needs beyond Python and the packages: ``live``, a cell that
# plays real sockets on 127.0.0.1 (00, 06: a run; 03 section 1, 05 experiment 4: a server by
# hand; 09: two uvicorn processes), each with its fallback in notebooks/README.md ("When a
# live cell fails"); ``chromium``, real tabs (08), which have none.
NOTEBOOKS: dict[str, tuple[str, ...]] = {
    "00_start_here": ("live",),
    "01_the_reload_bug": (),
    "02_the_cleanup_race": (),
    "03_liveness": ("live",),
    "04_page_lifecycle": (),
    "05_identity_and_tabs": ("live",),
    "06_restart_and_herds": ("live",),
    "07_scale": (),
    "08_real_browser": ("chromium",),
    "09_your_own_server": ("live",),
    "10_many_nodes": (),
    "exercises (ex1, ex2, ex3)": (),
}


@dataclass(frozen=True)
class Finding:
    """One check's outcome: ``name`` (python, packages, ports, live, chromium, redis, node),
    ``ok``, what was found (``detail``), what to do when not ok (``fix``), and whether the
    lessons need it (``required``: a failure makes the doctor exit 1)."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True
    notebooks: tuple[str, ...] = field(default=())
    skipped: bool = False  # not checked (``--no-live``): neither passed nor failed


def check_python(version: Sequence[int] = tuple(sys.version_info[:3])) -> Finding:
    """Python 3.11 or newer (the kit's own floor)."""
    shown = ".".join(str(v) for v in version)
    ok = tuple(version[:2]) >= MIN_PYTHON
    return Finding(
        "python",
        ok,
        f"Python {shown} (the course needs 3.11 or newer)",
        ""
        if ok
        else "install Python 3.11 or newer (python.org, or your package manager), then make course",
    )


def check_packages(packages: Sequence[str] = PACKAGES) -> Finding:
    """The packages the lessons import, found without importing them (fast)."""
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    if missing:
        return Finding("packages", False, f"missing: {', '.join(missing)}", INSTALL)
    return Finding("packages", True, f"found: {', '.join(packages)}")


def check_ports(count: int = 4) -> Finding:
    """``count`` free loopback ports at once (a live run binds a server and a proxy per
    strategy on 127.0.0.1)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(s)
            s.bind(("127.0.0.1", 0))
            s.listen()
        ports = sorted(s.getsockname()[1] for s in sockets)
    except OSError as error:
        return Finding(
            "ports",
            False,
            f"cannot listen on 127.0.0.1: {error}",
            "allow local servers on 127.0.0.1 (a firewall or sandbox blocks them); until "
            'then use the live cells\' fallback (runtime="virtual"; notebooks/README.md)',
            notebooks=LIVE_NOTEBOOKS,
        )
    finally:
        for s in sockets:
            s.close()
    return Finding("ports", True, f"{count} free loopback ports, e.g. {ports[0]}")


def check_live(timeout: float = LIVE_TIMEOUT, python: str = sys.executable) -> Finding:
    """A short real run on 127.0.0.1 (:data:`LIVE_RUN`) in a child process, killed with its
    whole process group if it takes longer than ``timeout`` seconds."""
    start = time.monotonic()
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])  # this checkout's simkit, not another
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    fallback = (
        'the live cells\' fallback: runtime="virtual" (the same experiment in virtual time; '
        'notebooks/README.md, "When a live cell fails")'
    )
    proc = subprocess.Popen(
        [python, "-c", LIVE_RUN],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return Finding(
            "live",
            False,
            f"a 10-tab live run did not finish within {timeout:g} s (a slow or busy machine)",
            "close other programs and run the doctor again; meanwhile " + fallback,
            notebooks=LIVE_NOTEBOOKS,
        )
    took = time.monotonic() - start
    words = out.split()
    if proc.returncode != 0 or len(words) != 2:
        last = (err.strip().splitlines() or ["no output"])[-1]
        return Finding(
            "live",
            False,
            f"the live run failed: {last}",
            "read the error above; a busy port or a blocked loopback shows here; " + fallback,
            notebooks=LIVE_NOTEBOOKS,
        )
    connects, healthy = words
    return Finding(
        "live",
        healthy == "True",
        f"a 10-tab live run took {took:.1f} s: {connects} connections, "
        + ("every invariant held" if healthy == "True" else "invariants broken (see below)"),
        "" if healthy == "True" else "run it again; if it persists, " + fallback,
    )


def check_chromium(path: str = CHROMIUM) -> Finding:
    """Chromium and the playwright package (notebook 08 drives real tabs with them)."""
    has_binary = Path(path).exists()
    has_playwright = importlib.util.find_spec("playwright") is not None
    if has_binary and has_playwright:
        return Finding("chromium", True, f"{path} and playwright found", required=False)
    missing = [f"{path}" if not has_binary else "", "" if has_playwright else "playwright"]
    fixes = []
    if not has_binary:
        fixes.append("apt-get install -y chromium (Debian/Ubuntu; as root: make browser)")
    if not has_playwright:
        fixes.append("python -m pip install playwright (never `playwright install`)")
    return Finding(
        "chromium",
        False,
        f"missing: {', '.join(m for m in missing if m)} (only notebook 08 needs them)",
        "; ".join(fixes),
        required=False,
        notebooks=("08_real_browser",),
    )


def check_redis(binary: str = REDIS_SERVER) -> Finding:
    """redis-server: several-node live runs (``nodes=3, runtime="live"``), none in the
    lessons' cells (notebook 10 plays its nodes in virtual time)."""
    found = shutil.which(binary)
    if found:
        return Finding("redis", True, f"{found} found", required=False)
    return Finding(
        "redis",
        False,
        f"{binary} not found (only several-node live runs need it; no lesson cell does)",
        "apt-get install -y redis-server (Debian/Ubuntu; as root: make redis)",
        required=False,
    )


def check_node() -> Finding:
    """Node.js: only to serve a Next.js app of your own as a target; no lesson needs it."""
    found = shutil.which("node")
    if found:
        return Finding("node", True, f"{found} found", required=False)
    return Finding(
        "node",
        False,
        "node not found (only a Next.js target of your own needs it; no lesson does)",
        "apt-get install -y nodejs (Debian/Ubuntu), or nodejs.org",
        required=False,
    )


def check(*, live: bool = True, timeout: float = LIVE_TIMEOUT) -> list[Finding]:
    """Every check, in the order the report prints them; ``live=False`` skips the live run
    (a few seconds) and reports it as not checked."""
    findings = [check_python(), check_packages(), check_ports()]
    if live:
        findings.append(check_live(timeout))
    else:
        findings.append(Finding("live", True, "not run (--no-live)", required=False, skipped=True))
    findings += [check_chromium(), check_redis(), check_node()]
    return findings


def notebook_lines(findings: Sequence[Finding]) -> list[str]:
    """Per notebook: runs, runs with its live cells' fallback, or will not run."""
    failed = {f.name for f in findings if not f.ok}
    base = {"python", "packages"} & failed
    lines = []
    for name, needs in NOTEBOOKS.items():
        if base:
            verdict = f"will not run: fix {', '.join(sorted(base))} first"
        elif "live" in needs and ({"live", "ports"} & failed):
            verdict = "live cells will fail: use their fallback (notebooks/README.md)"
        elif "chromium" in needs and "chromium" in failed:
            verdict = "will not run: needs Chromium and playwright (fix below)"
        else:
            verdict = "runs"
        lines.append(f"  {name:<28} {verdict}")
    return lines


def report(findings: Sequence[Finding]) -> str:
    """The doctor's printout: each check, then each notebook, then the verdict."""
    out = ["simkit doctor: can this machine run the course?", ""]
    for f in findings:
        mark = "skip" if f.skipped else "ok  " if f.ok else ("FAIL" if f.required else "--  ")
        out.append(f"  {mark}  {f.name:<9} {f.detail}")
        if not f.ok and f.fix:
            out += textwrap.wrap(f"fix: {f.fix}", 88, initial_indent=" " * 17,
                                 subsequent_indent=" " * 22)  # fmt: skip
    out += ["", "Notebooks:", *notebook_lines(findings), ""]
    if ready(findings):
        out.append("Verdict: the lessons can run here (exit 0).")
    else:
        bad = ", ".join(f.name for f in findings if f.required and not f.ok)
        out.append(f"Verdict: the lessons cannot all run here: fix {bad} (exit 1).")
    return "\n".join(out)


def ready(findings: Sequence[Finding]) -> bool:
    """True when every required check passed."""
    return all(f.ok for f in findings if f.required)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m simkit doctor [--no-live] [--timeout S]``: print the report; 0 when the
    lessons can run, 1 otherwise."""
    parser = argparse.ArgumentParser(
        prog="python -m simkit doctor",
        description="Check that this machine can run the course, and say what to fix.",
    )
    parser.add_argument(
        "--no-live", action="store_true", help="skip the few-second live run on 127.0.0.1"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=LIVE_TIMEOUT,
        help=f"seconds the live run may take before it is killed (default {LIVE_TIMEOUT:g})",
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.timeout <= 0:
        parser.error(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    findings = check(live=not args.no_live, timeout=args.timeout)
    print(report(findings))
    return 0 if ready(findings) else 1


if __name__ == "__main__":
    sys.exit(main())
