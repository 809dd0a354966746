"""``python -m simkit``: list the kit's names, run or compare strategies, the demo.

The benchmarks and the soak test are not commands of the installed kit: they need a source
checkout (``python -m benchmarks``, ``make bench``, ``make soak``)."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simkit.checks import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    Check,
    evaluate,
    exit_status,
    junit_xml,
    parse_checks,
)
from simkit.model.balancer import BALANCERS
from simkit.model.client import BACKOFFS, GUARDS, IDENTITIES, LIFECYCLES, UNLOADS, VISIBILITIES
from simkit.model.cluster import CLUSTER_POLICIES
from simkit.model.errors import ConfigError, SimkitError
from simkit.model.liveness import LIVENESS
from simkit.model.registry import REGISTRIES
from simkit.model.strategy import STRATEGIES
from simkit.model.transport import PROFILES
from simkit.net.common import STACKS
from simkit.runtimes import RUNTIMES, Live, RuntimeSpec, Target, Virtual, as_runtime
from simkit.scenarios import SCENARIOS
from simkit.study.knobs import KNOBS

if TYPE_CHECKING:  # imported where a figure is drawn
    import pandas as pd
    from matplotlib.figure import Figure, SubFigure

DEMO_STRATEGIES = ("before", "postmortem", "postmortem-safe")


def _sections() -> list[tuple[str, dict[str, str]]]:
    return [
        ("scenarios", {n: s.summary for n, s in SCENARIOS.items()}),
        ("strategies (presets)", {n: s.summary for n, s in STRATEGIES.items()}),
        ("registry policies", {n: c.summary for n, c in REGISTRIES.items()}),
        ("liveness presets", {n: r.summary for n, r in LIVENESS.items()}),
        ("cross-node policies (--nodes N)", {n: p.summary for n, p in CLUSTER_POLICIES.items()}),
        ("load balancers (--balancer)", {n: b.summary for n, b in BALANCERS.items()}),
        ("identity", IDENTITIES),
        ("unload", UNLOADS),
        ("visibility", VISIBILITIES),
        ("connect guard", GUARDS),
        ("on resume / pageshow", LIFECYCLES),
        ("backoff", BACKOFFS),
        ("sweep grid keys (--grid KEY=V1,V2)", KNOBS),
        ("server stacks (--stack S --ws IMPL)", {n: p.summary for n, p in PROFILES.items()}),
    ]


def cmd_list(args: argparse.Namespace) -> int:
    for title, items in _sections():
        print(f"{title}:")
        width = max(map(len, items))
        for name, line in items.items():
            print(f"  {name:<{width}}  {line}")
        print()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from simkit.api import run

    spec = runtime_of(args)
    checks = parse_checks(args.check or [])
    _check_outputs(args.out, args.junit)  # before any work: a bad path fails in a line
    result = run(
        args.scenario,
        args.strategy,
        tabs=args.tabs,
        duration=args.duration,
        seed=args.seed,
        runtime=spec,
        settle=args.settle,
        progress=None,
        on_sample=_live_progress(spec, args),
    )
    out = _outdir(args.out)
    result.timeseries.to_csv(out / "timeseries.csv", index=False)
    (out / "summary.json").write_text(json.dumps(result.summary, indent=2, default=str) + "\n")
    _save(result.plot(), out / "connections.png")
    width = max(map(len, result.summary))
    for key, value in result.summary.items():
        print(f"{key:<{width}}  {value}")
    _say_unknown(result.summary)
    print(f"\nwrote {out}/timeseries.csv, summary.json, connections.png")
    return _verdict(checks, {result.strategy: result.summary}, args.junit)


def cmd_compare(args: argparse.Namespace, strategies: list[str] | None = None) -> int:
    import pandas as pd

    from simkit.api import compare

    names = strategies or [s for s in args.strategies.split(",") if s]
    spec = runtime_of(args)
    checks = parse_checks(getattr(args, "check", None) or [])
    junit = getattr(args, "junit", None)
    _check_outputs(args.out, junit)
    comparison = compare(
        args.scenario,
        names,
        tabs=args.tabs,
        duration=args.duration,
        seed=args.seed,
        runtime=spec,
        settle=getattr(args, "settle", None),
        on_sample=_live_progress(spec, args),
    )
    out = _outdir(args.out)
    table = comparison.table
    table.to_csv(out / "comparison.csv")
    _save(comparison.plot(), out / "comparison.png")
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.T.to_string())
    for result in comparison.results.values():
        _say_unknown(result.summary, f"{result.strategy}: ")
    print(f"\nwrote {out}/comparison.csv and {out}/comparison.png")
    summaries = {name: r.summary for name, r in comparison.results.items()}
    return _verdict(checks, summaries, junit)


def _verdict(checks: list[Check], summaries: dict[str, dict[str, Any]], junit: str | None) -> int:
    """Print whether each run is valid and each check's outcome; write the JUnit report;
    the exit status (:func:`simkit.checks.exit_status`)."""
    several = len(summaries) > 1
    for name, summary in summaries.items():
        prefix = f"{name}: " if several else ""
        for reason in summary.get("invalid_reasons", []):
            print(f"{prefix}INVALID RUN: {reason}")
    outcomes = evaluate(checks, summaries)
    for o in outcomes:
        prefix = f"{o.strategy}: " if several else ""
        print(f"{prefix}check {'PASS' if o.passed else 'FAIL'}: {o.message}")
    if junit is not None:
        path = Path(junit)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(junit_xml(outcomes, summaries))
        print(f"wrote {path}")
    status = exit_status(outcomes, summaries.values())
    if status == EXIT_INVALID:
        print(
            "python -m simkit: the run is invalid (INVALID RUN above): its numbers cannot "
            "be trusted; exit status 2",
            file=sys.stderr,
        )
    elif status == EXIT_FAILED:
        failed = sum(not o.passed for o in outcomes)
        print(f"python -m simkit: {failed} check(s) failed; exit status 1", file=sys.stderr)
    return status


def _check_outputs(out: str, junit: str | None) -> None:
    """The output folder and the JUnit file can be written, checked before the run (a run
    that ends in a traceback when saving has thrown its work away). Nothing is created."""
    _writable_dir(Path(out), "--out")
    if junit is not None:
        path = Path(junit)
        if path.is_dir():
            raise ConfigError(f"--junit {junit!r} is a folder; give a file name, e.g. report.xml")
        if path.exists() and not os.access(path, os.W_OK):
            raise ConfigError(f"--junit {junit!r} exists and is not writable")
        _writable_dir(path.parent if str(path.parent) else Path("."), "--junit's folder")


def _writable_dir(path: Path, what: str) -> None:
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"{what} {str(path)!r} is a file, not a folder; name a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(f"{what} {str(path)!r} is not writable")
        return
    # Made for real and removed again (what os.access says is not what mkdir does: root,
    # read-only mounts, /proc), so that nothing is left if the run is interrupted.
    made: list[Path] = []
    missing = path.absolute()
    while not missing.exists():
        made.append(missing)
        missing = missing.parent
    try:
        for folder in reversed(made):
            folder.mkdir()
    except OSError as error:
        raise ConfigError(
            f"{what} {str(path)!r} cannot be made ({error.strerror or error})"
        ) from None
    finally:
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()


PROGRESS_EVERY = 3.0  # wall seconds between two progress lines of a live run


def _live_progress(
    spec: RuntimeSpec, args: argparse.Namespace
) -> Callable[[dict[str, float]], None] | None:
    """A live or browser run's progress on stderr: a line every few seconds (a tqdm bar
    when stderr is a terminal), so an unattended CI log shows the run is alive. Virtual
    runs are quick and say nothing."""
    if isinstance(spec, Virtual):
        return None
    import time

    last = time.monotonic()
    bar: Any = None  # a tqdm bar, once made (tqdm's types depend on its front end)
    label = spec.name if not isinstance(spec, Target) else "target"

    def on_sample(row: dict[str, float]) -> None:
        nonlocal last, bar
        now = time.monotonic()
        t = row.get("t", 0.0)
        if sys.stderr.isatty():
            from tqdm.auto import tqdm

            if bar is None:
                bar = tqdm(unit="sim-s", desc=f"simkit {label}", leave=False)
            bar.update(max(0, int(t) - bar.n))
            return
        if now - last >= PROGRESS_EVERY:
            last = now
            print(
                f"simkit {label}: t={t:g} s, open sockets {row.get('open_sockets', 0):g}, "
                f"live tabs {row.get('live_tabs', 0):g}, connects {row.get('connects', 0):g}",
                file=sys.stderr,
                flush=True,
            )

    return on_sample


def cmd_demo(args: argparse.Namespace) -> int:
    spec = runtime_of(args)
    where = (
        f"a real local server on 127.0.0.1, time x{spec.scale:g}"
        if isinstance(spec, Live)
        else "virtual time"
    )
    print(
        f"simkit demo: {', '.join(DEMO_STRATEGIES)} on '{args.scenario}' "
        f"({args.tabs} tabs, {args.duration:g} s, seed {args.seed}; {where})\n"
    )
    return cmd_compare(args, list(DEMO_STRATEGIES))


def cmd_serve(args: argparse.Namespace) -> int:
    """A server in the foreground, like a service: SIGTERM (systemd, Docker, CI) and SIGINT
    both close every socket (1001 going away; uvicorn says 1012 service restart) and exit 0.
    A signal the process inherited ignored (a background job's SIGINT) stays ignored."""
    import asyncio
    import contextlib
    import errno
    import signal

    from simkit.net.server import LocalServer

    host, port = _listen_address(args.host, args.port)
    secret = _serve_secret(args.secret, args.secret_file)

    def listening_failed(error: OSError) -> ConfigError:
        if error.errno == errno.EADDRINUSE:
            why = "is already in use (another server listens there); choose another --port"
        elif error.errno == errno.EACCES:
            why = "needs privileges this process lacks (ports below 1024); choose --port >= 1024"
        else:
            why = f"cannot be listened on: {error.strerror or error}"
        return ConfigError(f"{host}:{port} {why}")

    async def until_stopped() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            if signal.getsignal(sig) is not signal.SIG_IGN:
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()

    signed = (
        "; signed identity: a handshake needs ?token= (simkit.model.tokens.TokenSigner with "
        "the same secret)"
        if secret is not None
        else ""
    )

    async def serve() -> None:
        if args.redis is not None:  # node K of N, its own process, the registry in Redis
            from simkit.net.node import NodeProcess

            node = NodeProcess(
                args.strategy, args.redis, args.node, args.nodes, host=host,
                port=port, scale=args.scale, stack=args.stack, ws=args.ws, secret=secret,
            )  # fmt: skip
            try:
                await node.start()
            except OSError as error:
                await node.stop()
                raise listening_failed(error) from None
            except BaseException:
                await node.stop()
                raise
            try:
                print(
                    f"simkit node {args.node} of {args.nodes} serving '{args.strategy}' on "
                    f"{node.local.http_url} (WebSocket {node.url}), registry in "
                    f"{args.redis}{signed}. SIGTERM/Ctrl-C stops cleanly; SIGKILL is a crash.",
                    flush=True,
                )
                await until_stopped()
            finally:
                await node.stop()
            return
        server = LocalServer(
            args.strategy, host=host, port=port, stack=args.stack, ws=args.ws, secret=secret
        )
        try:
            await server.start()
        except OSError as error:
            await server.stop()
            raise listening_failed(error) from None
        except BaseException:
            await server.stop()
            raise
        try:
            print(
                f"simkit serving '{args.strategy}' ({server.stack}, {server.ws_impl}) on "
                f"{server.http_url} (WebSocket "
                f"{server.url}){signed}; open the page, reload it, watch /stats. "
                "Ctrl-C or SIGTERM stops.",
                flush=True,
            )
            await until_stopped()
        finally:
            await server.stop()

    with contextlib.suppress(KeyboardInterrupt):  # a Ctrl-C before the handlers were in place
        asyncio.run(serve())
    print("stopped: every socket closed, port freed", flush=True)
    return 0


def _listen_address(host: str, port: int) -> tuple[str, int]:
    """``serve``'s --host and --port, checked before anything starts."""
    import ipaddress
    import socket

    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be 0..65535, got {port}")
    try:
        ipaddress.ip_address(host)
        return host, port
    except ValueError:
        pass
    if host.replace(".", "").isdigit():  # looks like IPv4 but is not: no name lookup
        raise ConfigError(f"--host {host!r} is not an address (an IP, or a name of this host)")
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise ConfigError(
            f"--host {host!r} is not an address (an IP, or a name of this host): {error}"
        ) from None
    return host, port


SECRET_ENV = "SIMKIT_SECRET"


def _serve_secret(text: str | None, path: str | None) -> bytes | None:
    """The token secret from --secret, else --secret-file, else $SIMKIT_SECRET; None when
    none is given. A file's trailing newline is not part of the secret."""
    import os

    from simkit.model.tokens import TokenSigner

    if text is not None and path is not None:
        raise ConfigError("give --secret or --secret-file, not both")
    if text is not None:
        source, secret = "--secret", text.encode()
    elif path is not None:
        try:
            secret = Path(path).read_bytes().rstrip(b"\r\n")
        except OSError as error:
            raise ConfigError(
                f"--secret-file {path!r} cannot be read: {error.strerror or error}"
            ) from None
        source = f"--secret-file {path!r}"
    elif os.environ.get(SECRET_ENV):
        source, secret = SECRET_ENV, os.environ[SECRET_ENV].encode()
    else:
        return None
    try:
        TokenSigner(secret)
    except ValueError as error:
        raise ConfigError(f"{source}: {error}, got {len(secret)}") from None
    return secret


def cmd_sweep(args: argparse.Namespace) -> int:
    """A parameter study (``simkit.sweep``): runs.csv (one row per run), summary.csv (mean
    and 95 % interval per combination and metric, long form) and sweep.png; failures.csv
    (each failed run's arguments and error) and exit status 1 when any run failed, even all
    of them."""
    from simkit.study import close_default_cluster, sweep

    grid = dict(_grid_item(item) for item in args.grid or [])
    out = _outdir(args.out)
    try:
        study = sweep(
            [s for s in args.scenarios.split(",") if s],
            [s for s in args.strategies.split(",") if s],
            grid=grid,
            seeds=args.seeds,
            tabs=args.tabs,
            duration=args.duration,
            scheduler=args.scheduler,
            workers=args.workers,
            progress=True,
            no_workers_timeout=args.no_workers_timeout,
        )
    finally:
        close_default_cluster()  # one sweep per command: nothing to keep the cluster for
    written = []
    if not study.failures.empty:  # first: whatever fails below, the failures are kept
        study.failures.to_csv(out / "failures.csv", index=False)
        written.append("failures.csv")
    study.runs.to_csv(out / "runs.csv", index=False)
    study.tidy().to_csv(out / "summary.csv", index=False)
    written += ["runs.csv", "summary.csv"]
    if not study.runs.empty:
        if study.keys:
            fig = study.plot(args.metric)
        else:
            fig = _bars(study.metric(args.metric), args.metric)
        _save(fig, out / "sweep.png")
        written.append("sweep.png")
        print(study.metric(args.metric)[["mean", "ci95", "n"]].round(4).to_string())
    done = f"{len(study.runs)} runs, {len(study.failures)} failed"
    print(f"\n{done}; wrote {out}/" + ", ".join(written))
    if study.failures.empty:
        return 0
    errors = study.failures["error"].value_counts()
    for error, count in errors.head(3).items():
        print(f"python -m simkit: {count} run(s) failed: {error}", file=sys.stderr)
    if len(errors) > 3:
        print(f"python -m simkit: ... {len(errors) - 3} more errors", file=sys.stderr)
    return 1


def _grid_item(text: str) -> tuple[str, list[int | float | str | None]]:
    """``heartbeat=10,20,40`` -> ("heartbeat", [10, 20, 40]); numbers become numbers and
    ``none`` None (e.g. ``idle_timeout=none,30``); anything else stays a name."""
    key, sep, values = text.partition("=")
    if not sep or not key or not values:
        raise SimkitError(f"--grid takes KEY=V1,V2,..., got {text!r}")
    return key.strip(), [_grid_value(v.strip()) for v in values.split(",") if v.strip()]


def _grid_value(text: str) -> int | float | str | None:
    if text.lower() == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _bars(stats: pd.DataFrame, metric: str) -> Figure:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(stats)))
    labels = [" / ".join(map(str, key)) for key in stats.index]
    ax.barh(labels, stats["mean"], xerr=stats["ci95"].fillna(0), capsize=3)
    ax.set_xlabel(f"{metric} (mean, 95 % interval over seeds)")
    fig.tight_layout()
    return fig


def cmd_doctor(args: argparse.Namespace) -> int:
    """The pre-flight check of a course machine (simkit.doctor); 0 when the lessons can run."""
    from simkit.doctor import main as doctor

    return doctor(["--timeout", str(args.timeout)] + (["--no-live"] if args.no_live else []))


def cmd_calibrate(args: argparse.Namespace) -> int:
    if args.stack == "fastapi":
        from simkit.net import calibrate_fastapi

        out = Path(args.out) if args.out else calibrate_fastapi.DEFAULT_OUT
        calibrate_fastapi.calibrate(args.reps, out=out, log=print)
        print(f"wrote {out}")
        return 0
    from simkit.browser import browser_missing
    from simkit.browser.calibrate import DEFAULT_OUT, calibrate

    missing = browser_missing()
    if missing:
        print(f"python -m simkit calibrate: {missing}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else DEFAULT_OUT
    calibrate(args.reps, out=out, log=print)
    print(f"wrote {out}")
    return 0


def _outdir(path: str) -> Path:
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _stack_options(p: argparse.ArgumentParser, default: str | None) -> None:
    p.add_argument(
        "--stack",
        default=default,
        choices=list(STACKS),
        help="the live server: websockets, or fastapi (FastAPI on uvicorn, the post-mortem's); "
        "in virtual time, its measured transport profile"
        + ("" if default else " (default: websockets)"),
    )
    p.add_argument(
        "--ws",
        default=None,
        choices=sorted({impl for impls in STACKS.values() for impl in impls}),
        help="uvicorn's WebSocket implementation with --stack fastapi (default "
        "websockets-sansio, uvicorn's own default)",
    )


def _save(fig: Figure | SubFigure, path: Path) -> None:
    import matplotlib.pyplot as plt

    root = fig.figure  # the figure itself (a plot made here is never a subfigure)
    root.savefig(path, dpi=110)
    plt.close(root)


def _common(
    p: argparse.ArgumentParser, *, scenario: str, tabs: int | None, duration: float | None
) -> None:
    p.add_argument(
        "--scenario",
        default=scenario,
        choices=list(SCENARIOS),
        metavar="NAME",
        help="what the tabs do and when (python -m simkit list names them all)",
    )
    p.add_argument("--tabs", type=int, default=tabs, help="number of tabs (default: scenario's)")
    p.add_argument(
        "--duration", type=float, default=duration, help="workload seconds (default: scenario's)"
    )
    p.add_argument("--seed", type=int, default=0, help="the run's seed (virtual runs are exact)")
    p.add_argument(
        "--runtime",
        default="virtual",
        choices=list(RUNTIMES),
        help="virtual time, real sockets (live) or headless Chromium tabs (browser)",
    )
    p.add_argument(
        "--scale",
        type=float,
        default=None,
        help="live and browser only: wall seconds per scenario second (default: 0.05 live, "
        "0.1 browser; 1 against a target)",
    )
    p.add_argument(
        "--nodes", type=int, default=None, help="server nodes (default: scenario's, mostly 1)"
    )
    p.add_argument(
        "--balancer",
        default=None,
        choices=list(BALANCERS),
        help="load balancer in front of several nodes (default: round-robin)",
    )
    _stack_options(p, None)
    p.add_argument("--out", default="simkit-output", help="folder for csv, json and png files")


def _target_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--page",
        default=None,
        metavar="URL",
        help="load your own front end in the browser runtime's tabs; {ws} in the URL is "
        "the kit's proxy's WebSocket URL (URL-encoded), {user} and {tab} too "
        "(docs/frontend.md)",
    )
    p.add_argument(
        "--target",
        default=None,
        metavar="ws://HOST:PORT/PATH",
        help="play the tabs against your own server (live, scale 1); {user} in the URL is "
        "the claimed id, else ?user= is appended",
    )
    p.add_argument(
        "--target-keepalive",
        type=float,
        default=None,
        metavar="SECONDS",
        help="with --target: how long your server takes to close a silent socket (ping "
        "interval + timeout; default 40, uvicorn's); sets the settle time",
    )
    p.add_argument(
        "--settle",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds to keep watching after the workload (default: long enough for every timeout)",
    )
    p.add_argument(
        "--check",
        action="append",
        metavar="CHECK",
        help="a gate on the summary, repeatable: invariants, valid, or METRIC OP NUMBER with "
        "OP one of == != <= >= < > (e.g. 'final_unroutable==0', 'delivery_ratio>=0.99'); "
        "exit status 1 if one fails (docs/ci.md)",
    )
    p.add_argument(
        "--junit",
        default=None,
        metavar="PATH",
        help="write a JUnit XML report: one testcase per check per strategy, and whether "
        "each run is valid",
    )


def runtime_of(args: argparse.Namespace) -> RuntimeSpec:
    """The runtime value the options describe, read in one place (``--target`` implies the
    live runtime); a bad combination is the same ConfigError ``simkit.run`` gives."""
    target, page = getattr(args, "target", None), getattr(args, "page", None)
    if target is None and getattr(args, "target_keepalive", None) is not None:
        raise ConfigError("--target-keepalive needs --target")
    implied = "browser" if page is not None else "live" if target is not None else "virtual"
    return as_runtime(
        implied if args.runtime == "virtual" else args.runtime, page=page,
        stack=args.stack, ws=args.ws, scale=args.scale, target=target,
        target_keepalive=getattr(args, "target_keepalive", None), nodes=args.nodes,
        balancer=args.balancer,
    )  # fmt: skip


def _say_unknown(summary: dict[str, Any], prefix: str = "") -> None:
    """What a target run could not measure, and what to look at first, in sentences."""
    for note in summary.get("notes", []):
        print(f"{prefix}note: {note}")
    unknown = summary.get("unknown_metrics", {})
    if unknown:
        print(f"{prefix}unknown (NaN, not guessed): {', '.join(unknown)}")


class Help(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if "default" in text or default is None or default is False or default == argparse.SUPPRESS:
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return f"{text} (default: %(default)s)"
        return text


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m simkit",
        description="Simulate WebSocket session management across page reloads.",
        formatter_class=Help,
    )
    sub = root.add_subparsers(dest="command", required=True)
    sub.add_parser = functools.partial(  # type: ignore[method-assign]  # every command too
        sub.add_parser, formatter_class=Help
    )
    sub.add_parser("list", help="every scenario, strategy and policy, one line each")
    p = sub.add_parser("run", help="one scenario under one strategy")
    _common(p, scenario="reload-storm", tabs=None, duration=None)
    _target_options(p)
    p.add_argument(
        "--strategy",
        default=None,
        choices=list(STRATEGIES),
        metavar="NAME",
        help="the design to run (python -m simkit list); default: the scenario's own, if any",
    )
    p = sub.add_parser("compare", help="one scenario under several strategies")
    _common(p, scenario="reload-storm", tabs=None, duration=None)
    _target_options(p)
    p.add_argument("--strategies", default=",".join(DEMO_STRATEGIES), help="comma-separated")
    p = sub.add_parser("demo", help="the README's first command")
    _common(p, scenario="reload-storm", tabs=100, duration=200.0)
    p.set_defaults(out="demo-output", runtime="live")
    p = sub.add_parser("serve", help="a LocalServer in the foreground until Ctrl-C or SIGTERM")
    p.add_argument(
        "--strategy",
        default="postmortem-safe",
        choices=list(STRATEGIES),
        metavar="NAME",
        help="the registry policy and heartbeat the server applies",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8765, help="port to listen on")
    _stack_options(p, "websockets")
    p.add_argument(
        "--redis",
        default=None,
        help="redis://HOST:PORT: serve one node of several, its registry in this Redis "
        "(a shared strategy: shared-kick-old, shared-kick-old-safe, presence-ttl)",
    )
    p.add_argument("--node", type=int, default=0, help="with --redis: this node's index K")
    p.add_argument("--nodes", type=int, default=2, help="with --redis: how many nodes in all")
    p.add_argument(
        "--scale", type=float, default=1.0, help="with --redis: time scale (0.1: TTLs x0.1)"
    )
    p.add_argument(
        "--secret",
        default=None,
        help="signed identity: handshakes need ?token= signed with this secret (16+ bytes; "
        "visible to other users in the process list: prefer --secret-file or SIMKIT_SECRET)",
    )
    p.add_argument(
        "--secret-file",
        default=None,
        metavar="PATH",
        help="signed identity with the secret in this file (its trailing newline ignored)",
    )
    p = sub.add_parser("sweep", help="a parameter study: every combination x seeds, on Dask")
    p.add_argument("--scenarios", default="reload-storm", help="comma-separated")
    p.add_argument("--strategies", default=",".join(DEMO_STRATEGIES), help="comma-separated")
    p.add_argument(
        "--grid",
        action="append",
        metavar="KEY=V1,V2",
        help="a knob and its values, e.g. heartbeat=10,20,40 (repeatable; python -m simkit "
        "list names the knobs)",
    )
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 for every combination")
    p.add_argument("--tabs", type=int, default=None, help="tabs per run (default: scenario's)")
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="workload seconds per run (default: scenario's)",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        help="tcp://host:8786 for an existing Dask cluster, or synchronous (this process); "
        "default: a LocalCluster here, one worker per core",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="the LocalCluster's workers (default: one per core)",
    )
    p.add_argument(
        "--no-workers-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds the cluster may have no live worker before the runs not yet played "
        "fail (default: 60)",
    )
    p.add_argument("--metric", default="mean_stale", help="what sweep.png plots")
    p.add_argument("--out", default="sweep-output", help="folder for the csv and png files")
    p = sub.add_parser("doctor", help="can this machine run the course? what to install")
    p.add_argument("--no-live", action="store_true", help="skip the few-second live run")
    p.add_argument("--timeout", type=float, default=30.0, help="bound on the live run (s)")
    p = sub.add_parser("calibrate", help="measure real Chromium's closes; write calibration")
    p.add_argument("--reps", type=int, default=20, help="repetitions of each case")
    p.add_argument(
        "--stack",
        default="chromium",
        choices=["chromium", "fastapi"],
        help="what to measure: real Chromium's closes, or FastAPI on uvicorn under the "
        "post-mortem's handler (per WebSocket implementation)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="JSON file (default: simkit/calibration.json, with --stack fastapi "
        "simkit/calibration_fastapi.json)",
    )
    return root


COMMANDS = {
    "list": cmd_list,
    "run": cmd_run,
    "compare": cmd_compare,
    "demo": cmd_demo,
    "serve": cmd_serve,
    "calibrate": cmd_calibrate,
    "doctor": cmd_doctor,
    "sweep": cmd_sweep,
}


def _warn_in_a_line(
    message: Warning | str, category: type[Warning], *rest: object, **kw: object
) -> None:
    print(f"python -m simkit: warning: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    import warnings

    args = parser().parse_args(argv)
    if argv is None:  # the command line (not a test calling main): warnings in a line
        warnings.showwarning = _warn_in_a_line
    if args.command == "compare":
        unknown = [s for s in args.strategies.split(",") if s and s not in STRATEGIES]
        if unknown:
            parser().error(
                f"unknown strategy {unknown[0]!r}; choose one of: {', '.join(STRATEGIES)}"
            )
    try:
        return COMMANDS[args.command](args)
    except SimkitError as error:
        print(f"python -m simkit: error: {error}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        if args.command not in ("run", "compare", "demo"):
            raise
        # The output folder is made only once the run is over: nothing was written.
        print("python -m simkit: interrupted; nothing written", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
