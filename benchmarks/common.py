"""What every benchmark needs, written once: where results go, min/median/max, memory
readers, the machine a figure was measured on, and writing a report.

Only the standard library: the yardsticks' processes import this and must stay lean.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent
# The repository root: helper processes start here so that ``import benchmarks`` works.
ROOT = PACKAGE.parent
# Results sit next to the benchmarks, never next to wherever simkit is installed.
RESULTS = PACKAGE / "results"


def spread(values: list[float]) -> dict[str, float]:
    """Min, median and max: every figure is reported with its spread, never alone."""
    if not values:
        raise ValueError("spread() needs at least one value, got an empty list")
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def proc_status_kib(field: str, pid: int | str = "self") -> int | None:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``), or None where
    there is no such file or field (not Linux, or the process is gone)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def rss_kib(pid: int | str = "self") -> int:
    """Resident set size of a process now, in KiB (0 where there is no /proc)."""
    return proc_status_kib("VmRSS", pid) or 0


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB. /proc's VmHWM starts afresh at exec,
    whereas Linux carries ``ru_maxrss`` over from the parent (it would read the bench's own
    RSS), so ``ru_maxrss`` is only the fallback."""
    peak = proc_status_kib("VmHWM")
    if peak is not None:
        return peak / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def open_fds() -> int:
    """This process's open file descriptors (from /proc; a leak shows as growth)."""
    return len(os.listdir("/proc/self/fd"))


def loadavg() -> list[float] | None:
    """The 1, 5 and 15 minute load averages: a figure taken on a busy machine says so."""
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


def machine() -> dict[str, Any]:
    """The machine and interpreter a report was measured on, and whether it was shared."""
    load = loadavg()
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "loadavg_at_start": load,
        "shared": load is not None and load[0] > 1.0,
    }


def versions(names: tuple[str, ...] = ("simkit", "simpy", "pandas", "websockets")) -> dict:
    """Installed versions of the packages a figure depends on (``missing`` if absent)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "missing"
    return found


def write_json(report: dict[str, Any], out: Path) -> Path:
    """Write ``report`` as indented JSON (creating the folder), and say where."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return out
