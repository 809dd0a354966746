"""``python -m simkit``: list the kit's names, run or compare strategies, the demo.

The benchmarks and the soak test are not commands of the installed kit: they need a source
checkout (``python -m benchmarks``, ``make bench``, ``make soak``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from simkit.api import RUNTIMES
from simkit.model.client import BACKOFFS, GUARDS, IDENTITIES, LIFECYCLES, UNLOADS, VISIBILITIES
from simkit.model.errors import SimkitError
from simkit.model.liveness import LIVENESS
from simkit.model.registry import REGISTRIES
from simkit.model.strategy import STRATEGIES
from simkit.scenarios import SCENARIOS

DEMO_STRATEGIES = ("before", "postmortem", "postmortem-safe")


def _sections() -> list[tuple[str, dict[str, str]]]:
    return [
        ("scenarios", {n: s.summary for n, s in SCENARIOS.items()}),
        ("strategies (presets)", {n: s.summary for n, s in STRATEGIES.items()}),
        ("registry policies", {n: c.summary for n, c in REGISTRIES.items()}),
        ("liveness presets", {n: r.summary for n, r in LIVENESS.items()}),
        ("identity", IDENTITIES),
        ("unload", UNLOADS),
        ("visibility", VISIBILITIES),
        ("connect guard", GUARDS),
        ("on resume / pageshow", LIFECYCLES),
        ("backoff", BACKOFFS),
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

    result = run(
        args.scenario,
        args.strategy,
        tabs=args.tabs,
        duration=args.duration,
        seed=args.seed,
        runtime=args.runtime,
        progress=None,
        scale=args.scale,
    )
    out = _outdir(args.out)
    result.timeseries.to_csv(out / "timeseries.csv", index=False)
    (out / "summary.json").write_text(json.dumps(result.summary, indent=2, default=str) + "\n")
    _save(result.plot(), out / "connections.png")
    width = max(map(len, result.summary))
    for key, value in result.summary.items():
        print(f"{key:<{width}}  {value}")
    print(f"\nwrote {out}/timeseries.csv, summary.json, connections.png")
    return 0


def cmd_compare(args: argparse.Namespace, strategies: list[str] | None = None) -> int:
    import pandas as pd

    from simkit.api import compare

    names = strategies or [s for s in args.strategies.split(",") if s]
    comparison = compare(
        args.scenario,
        names,
        tabs=args.tabs,
        duration=args.duration,
        seed=args.seed,
        runtime=args.runtime,
        scale=args.scale,
    )
    out = _outdir(args.out)
    table = comparison.table
    table.to_csv(out / "comparison.csv")
    _save(comparison.plot(), out / "comparison.png")
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.T.to_string())
    print(f"\nwrote {out}/comparison.csv and {out}/comparison.png")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    where = (
        "a real local server on 127.0.0.1, time x" + f"{args.scale or 0.05:g}"
        if args.runtime == "live"
        else "virtual time"
    )
    print(
        f"simkit demo: {', '.join(DEMO_STRATEGIES)} on '{args.scenario}' "
        f"({args.tabs} tabs, {args.duration:g} s, seed {args.seed}; {where})\n"
    )
    return cmd_compare(args, list(DEMO_STRATEGIES))


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    from simkit.live.server import LocalServer

    async def serve() -> None:
        async with LocalServer(args.strategy, host=args.host, port=args.port) as server:
            print(
                f"simkit serving '{args.strategy}' on {server.http_url} (WebSocket "
                f"{server.url}); open the page, reload it, watch /stats. Ctrl-C stops.",
                flush=True,
            )
            await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        print("stopped: every socket closed, port freed", flush=True)
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
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


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)


def _common(p: argparse.ArgumentParser, *, scenario: str, tabs: int | None, duration: float | None):
    p.add_argument("--scenario", default=scenario, choices=list(SCENARIOS))
    p.add_argument("--tabs", type=int, default=tabs, help="number of tabs (default: scenario's)")
    p.add_argument(
        "--duration", type=float, default=duration, help="workload seconds (default: scenario's)"
    )
    p.add_argument("--seed", type=int, default=0)
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
        help="live and browser only: wall seconds per scenario second",
    )
    p.add_argument("--out", default="simkit-output", help="folder for csv, json and png files")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m simkit",
        description="Simulate WebSocket session management across page reloads.",
    )
    sub = root.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every scenario, strategy and policy, one line each")
    p = sub.add_parser("run", help="one scenario under one strategy")
    _common(p, scenario="reload-storm", tabs=None, duration=None)
    p.add_argument("--strategy", default=None, choices=list(STRATEGIES))
    p = sub.add_parser("compare", help="one scenario under several strategies")
    _common(p, scenario="reload-storm", tabs=None, duration=None)
    p.add_argument("--strategies", default=",".join(DEMO_STRATEGIES), help="comma-separated")
    p = sub.add_parser("demo", help="the README's first command")
    _common(p, scenario="reload-storm", tabs=100, duration=200.0)
    p.set_defaults(out="demo-output", runtime="live")
    p = sub.add_parser("serve", help="a LocalServer in the foreground until Ctrl-C")
    p.add_argument("--strategy", default="postmortem-safe", choices=list(STRATEGIES))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p = sub.add_parser("calibrate", help="measure real Chromium's closes; write calibration")
    p.add_argument("--reps", type=int, default=20, help="repetitions of each case")
    p.add_argument("--out", default=None, help="JSON file (default: simkit/calibration.json)")
    return root


COMMANDS = {
    "list": cmd_list,
    "run": cmd_run,
    "compare": cmd_compare,
    "demo": cmd_demo,
    "serve": cmd_serve,
    "calibrate": cmd_calibrate,
}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
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
        return 2


if __name__ == "__main__":
    sys.exit(main())
