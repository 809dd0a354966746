"""``make bench``: wall time, events and peak memory of the virtual runtime.

Targets live here, never in unit tests. This first version measures simkit alone on the
``reference`` scenario; the side-by-side runs against SimPy and raw websockets are the
benchmark issue's work and will extend this file.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
import tracemalloc
from pathlib import Path

SIZES_FULL = ((1_000, 3_600.0), (10_000, 600.0))
SIZES_QUICK = ((200, 600.0), (1_000, 300.0))
REPEATS_FULL, REPEATS_QUICK = 5, 3


def measure(tabs: int, duration: float, repeats: int) -> dict:
    from simkit.api import run

    run("reference", tabs=min(tabs, 100), duration=60.0)  # warm-up
    walls = []
    for seed in range(repeats):
        start = time.perf_counter()
        result = run("reference", tabs=tabs, duration=duration, seed=seed, progress=False)
        walls.append(time.perf_counter() - start)
    tracemalloc.start()
    run("reference", tabs=tabs, duration=duration, seed=0, progress=False)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "tabs": tabs,
        "duration": duration,
        "wall_s": {"min": min(walls), "median": statistics.median(walls), "max": max(walls)},
        "connects": result.summary["connects"],
        "connects_per_s": result.summary["connects"] / statistics.median(walls),
        "peak_traced_mb": peak / 2**20,
        "bytes_per_tab": peak / tabs,
    }


def main(*, quick: bool, out: Path) -> int:
    import pandas
    import websockets

    sizes, repeats = (SIZES_QUICK, REPEATS_QUICK) if quick else (SIZES_FULL, REPEATS_FULL)
    rows = [measure(tabs, duration, repeats) for tabs, duration in sizes]
    report = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.machine(),
        },
        "versions": {"pandas": pandas.__version__, "websockets": websockets.__version__},
        "quick": quick,
        "reference": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'tabs':>7} {'seconds':>8} {'wall median':>12} {'connects/s':>11} {'peak MB':>8}")
    for row in rows:
        print(
            f"{row['tabs']:>7} {row['duration']:>8.0f} {row['wall_s']['median']:>11.2f}s "
            f"{row['connects_per_s']:>11.0f} {row['peak_traced_mb']:>8.1f}"
        )
    print(f"\nwrote {out}")
    return 0
