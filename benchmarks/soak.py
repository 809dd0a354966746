"""``make soak``: minutes of live churn, checked for invariants and for leaks.

Back-to-back live runs of ``reload-storm`` (a few hundred real tabs reloading against a real
``LocalServer`` through the fault proxy, time-scaled), each about 30 s of wall time. After
every round it records the settled invariants, this process's open file descriptors and its
resident memory. It passes when every round ends with a true registry and neither file
descriptors nor memory grow between the first round and the last. Not part of ``make test``.

``python -m benchmarks.soak [--minutes M] [--tabs N] [--out FILE]``; it plays at least two
rounds (``--minutes 0 --tabs 20`` is a one-minute check that it works).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks.common import RESULTS, open_fds, rss_kib, write_json

SOAK = RESULTS / "soak.json"
FD_GROWTH = 2  # file descriptors the last round may hold beyond the first
RSS_GROWTH = 0.10  # and resident memory, as a fraction of the first round's


def soak(
    minutes: float = 3.0,
    tabs: int = 300,
    strategy: str = "postmortem-safe",
    out: Path = SOAK,
) -> bool:
    """Play rounds for about ``minutes`` (at least two), write the report to ``out``, and
    say whether every round held its invariants without leaking."""
    from simkit.api import run

    scale = 0.05
    duration = 30.0 / scale - 70.0  # about 30 s of wall time per round, settling included
    rounds = max(2, round(minutes * 2))
    rows = []
    start = time.monotonic()
    for number in range(1, rounds + 1):
        result = run(
            "reload-storm",
            strategy,
            tabs=tabs,
            duration=duration,
            seed=number,
            runtime="live",
            scale=scale,
        )
        s = result.summary
        rows.append(
            {
                "round": number,
                "wall_s": round(time.monotonic() - start, 1),
                "connects": s["connects"],
                "final_stale": s["final_stale"],
                "final_dangling": s["final_dangling"],
                "final_unroutable": s["final_unroutable"],
                "invariants_hold": s["invariants_hold"],
                "open_fds": open_fds(),
                "rss_mib": round(rss_kib() / 1024, 1),
            }
        )
        row = rows[-1]
        print(
            f"round {number}/{rounds}: {row['connects']} connects, invariants "
            f"{'hold' if row['invariants_hold'] else 'BROKEN'}, {row['open_fds']} fds, "
            f"{row['rss_mib']} MiB",
            flush=True,
        )
    first, last = rows[0], rows[-1]
    fd_growth = last["open_fds"] - first["open_fds"]
    rss_growth = (last["rss_mib"] - first["rss_mib"]) / first["rss_mib"]
    passed = (
        all(r["invariants_hold"] for r in rows)
        and fd_growth <= FD_GROWTH
        and rss_growth <= RSS_GROWTH
    )
    report = {
        "tabs": tabs,
        "strategy": strategy,
        "scale": scale,
        "rounds": rows,
        "fd_growth": fd_growth,
        "rss_growth": round(rss_growth, 4),
        "passed": passed,
        "limits": {"fd_growth": FD_GROWTH, "rss_growth": RSS_GROWTH},
    }
    write_json(report, out)
    total = sum(r["connects"] for r in rows)
    print(
        f"\n{len(rows)} rounds, {total} connections over {last['wall_s']:.0f} s; fds "
        f"{first['open_fds']} -> {last['open_fds']}, memory {first['rss_mib']} -> "
        f"{last['rss_mib']} MiB ({rss_growth:+.1%}): {'PASS' if passed else 'FAIL'}"
    )
    print(f"wrote {out}")
    return passed


def main(argv: list[str] | None = None) -> int:
    """``make soak``: 0 when the soak passed, 1 when it did not."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.soak",
        description="minutes of live churn, checked for invariants and leaks",
    )
    p.add_argument("--minutes", type=float, default=3.0, help="about how long (default 3)")
    p.add_argument("--tabs", type=int, default=300, help="real tabs per round (default 300)")
    p.add_argument(
        "--out", type=Path, default=SOAK, help="JSON report (default: benchmarks/results/soak.json)"
    )
    options = p.parse_args(argv)
    if options.minutes < 0:
        p.error(f"--minutes must be >= 0, got {options.minutes}")
    from simkit.model.errors import SimkitError

    try:
        passed = soak(minutes=options.minutes, tabs=options.tabs, out=options.out)
    except SimkitError as error:  # a bad --tabs, as simkit.run words it
        p.error(str(error))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
