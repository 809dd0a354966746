"""Python calls per reload cycle of the ``reference`` scenario: the unit the virtual runtime's
cost is paid in (``python -m benchmarks.calls [tabs] [seconds] [top]``).

Wall time on a shared machine is noise and CPU time moves with the machine too; the number
of calls cProfile counts (Python frames and built-in calls) per connect does not, so a
change that removes work shows here exactly, whatever else runs. One connect is one reload
cycle in ``reference`` (a tab's first load is one more connect than reloads). Prints the
total, calls per cycle, the functions called most per cycle and those taking most time.
"""

from __future__ import annotations

import cProfile
import pstats
import sys
from typing import Any


def calls_per_cycle(tabs: int = 1_000, duration: float = 3_600.0, seed: int = 0) -> dict[str, Any]:
    """Profile one run (after a small warm-up run): total calls, connects, calls per connect,
    and per function (``file:line(name)``) its calls per connect and its own time."""
    from simkit.api import run

    run("reference", tabs=200, duration=60.0, seed=seed, progress=False)  # imports, caches
    profile = cProfile.Profile()
    profile.enable()
    result = run("reference", tabs=tabs, duration=duration, seed=seed, progress=False)
    profile.disable()
    stats = pstats.Stats(profile)
    connects = int(result.summary["connects"])
    functions = {
        f"{path.rsplit('/', 1)[-1]}:{line}({name})": (row[1] / connects, row[2])
        for (path, line, name), row in stats.stats.items()  # type: ignore[attr-defined]
    }
    total = stats.total_calls  # type: ignore[attr-defined]
    return {
        "tabs": tabs,
        "duration": duration,
        "seed": seed,
        "calls": total,
        "connects": connects,
        "calls_per_cycle": total / connects,
        "functions": functions,
    }


def main(argv: list[str]) -> None:
    tabs = int(argv[0]) if argv else 1_000
    duration = float(argv[1]) if len(argv) > 1 else 3_600.0
    top = int(argv[2]) if len(argv) > 2 else 25
    out = calls_per_cycle(tabs, duration)
    print(
        f"reference, {tabs:,} tabs x {duration:.0f} s: {out['calls']:,} calls, "
        f"{out['connects']:,} connects: {out['calls_per_cycle']:.1f} calls per reload cycle"
    )
    functions = out["functions"]
    print(f"\nmost calls per cycle (top {top}):")
    for name, (per_cycle, _) in sorted(functions.items(), key=lambda kv: -kv[1][0])[:top]:
        print(f"  {per_cycle:7.2f}  {name}")
    print(f"\nmost own time (top {top}; cProfile's clock, so only the order means much):")
    for name, (per_cycle, own) in sorted(functions.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"  {own:7.3f} s  {per_cycle:7.2f}/cycle  {name}")


if __name__ == "__main__":
    main(sys.argv[1:])
