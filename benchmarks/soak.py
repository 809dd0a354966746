"""``make soak``: minutes of live churn, checked for invariants and for leaks.

Back-to-back live runs of ``reload-storm`` (a few hundred real tabs reloading against a real
``LocalServer`` through the fault proxy, time-scaled), each about 30 s of wall time. After
every round it records the settled invariants, this process's open file descriptors and its
resident memory. It passes when every round ends with a true registry and neither file
descriptors nor memory grow between the first round and the last. Not part of ``make test``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def soak(
    minutes: float = 3.0,
    tabs: int = 300,
    strategy: str = "postmortem-safe",
    out: Path = Path("benchmarks/results/soak.json"),
) -> bool:
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
                "open_fds": len(os.listdir("/proc/self/fd")),
                "rss_mib": round(_rss_kib() / 1024, 1),
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
    passed = all(r["invariants_hold"] for r in rows) and fd_growth <= 2 and rss_growth <= 0.10
    report = {
        "tabs": tabs,
        "strategy": strategy,
        "scale": scale,
        "rounds": rows,
        "fd_growth": fd_growth,
        "rss_growth": round(rss_growth, 4),
        "passed": passed,
        "limits": {"fd_growth": 2, "rss_growth": 0.10},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    total = sum(r["connects"] for r in rows)
    print(
        f"\n{len(rows)} rounds, {total} connections over {last['wall_s']:.0f} s; fds "
        f"{first['open_fds']} -> {last['open_fds']}, memory {first['rss_mib']} -> "
        f"{last['rss_mib']} MiB ({rss_growth:+.1%}): {'PASS' if passed else 'FAIL'}"
    )
    print(f"wrote {out}")
    return passed
