"""The virtual half of ``make bench``: simkit's virtual runtime against a plain SimPy model
of the same scenario (the live half is :mod:`benchmarks.live`, the whole run
:mod:`benchmarks.run`).

The yardstick is :mod:`benchmarks.simpy_reference`, the ``reference`` scenario written as
carefully as we can in plain SimPy (a keepalive costs nothing until its peer goes silent);
the naive SimPy model it replaced (:mod:`benchmarks.simpy_ticking`, a keepalive process per
connection ticking every 20 s) is timed alongside, labelled for what it is. For each size
the engines run alternately (SimPy, simkit, ticking SimPy, SimPy, ..., seed = round number),
every run in a fresh process that first does a small warm-up run; the figure that matters is
the median of the per-pair ratios simkit / SimPy, in-process wall time (``ratio``) and CPU
time (``cpu_ratio``: other jobs on a shared machine move wall time more than CPU time), which
cancels most of the drift of a shared machine. Each run also records the wall time of its
whole process (interpreter start, imports, warm-up and run: ``process_wall_s``).
:func:`scaling_runs` runs both engines once per size from 1,000 to 1,000,000 tabs and draws
run time and peak memory against tabs (``benchmarks/results/scale.png``).

A fresh process per run also gives honest memory figures: the process's peak RSS, and how
far it grew during the timed run (tracemalloc would slow the run down and miss allocations
outside Python's allocators).
The agreement check holds the two models against each other (:func:`agreement`).

Events are each engine's own unit: SimPy events processed (``Environment.step`` calls) and
VirtualLoop steps (handles and messages run). They do not count the same things (simkit
settles zero-latency round trips inside one step and lets answered heartbeats coast, and a
sleeping tab costs it one heap entry and a step of its actor); connects per second is the
same unit for both.

Targets live here, never in unit tests. simkit and SimPy are imported inside the functions
that use them: a timed SimPy process must not import simkit (pandas alone is ~60 MB of RSS).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import math
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

from benchmarks.common import loadavg, peak_rss_mb, spread
from benchmarks.processes import run_once, say

SIZES_FULL = ((1_000, 3_600.0), (10_000, 600.0))
SIZES_QUICK = ((200, 600.0), (1_000, 300.0))
# The scaling runs: run time and peak memory against tabs, one run per engine and size.
SCALING_FULL = ((1_000, 60.0), (10_000, 60.0), (100_000, 60.0), (1_000_000, 60.0))
SCALING_QUICK = ((1_000, 60.0), (10_000, 60.0))
SCALING_ENGINES = ("simpy", "simkit")
REPEATS = 5  # timed pairs per size, full and quick
WARMUP = (200, 60.0)
AGREEMENT_FULL = (500, 1_200.0, 10)  # tabs, seconds, seeds
AGREEMENT_QUICK = (200, 1_200.0, 10)
SCALE = (100_000, 600.0)
# simkit only: the memory bar (under 1 GB); SimPy at this size is in the scaling
# runs' neighbourhood and would add two minutes to a bench that must stay under fifteen.
SCALE_ENGINES = ("simkit",)
Z_LIMIT = 3.0  # agreement: |difference of the means| <= 3 standard errors
METRICS = ("mean_open_sockets", "mean_stale", "connects")


# --- the two engines ----------------------------------------------------------------------


def reference_model(name: str = "simpy_reference") -> ModuleType:
    """:mod:`benchmarks.simpy_reference` (or ``simpy_ticking``), imported on first use (it
    imports SimPy, which only the ``bench`` extra installs)."""
    return importlib.import_module(f"benchmarks.{name}")


def simkit_streams(seed: int) -> Callable[[int], Any]:
    """Tab i's workload stream exactly as simkit draws it (``Env.rng("tab", i, "work")``)."""
    from simkit.actors.env import Env

    owner = SimpleNamespace(seed=seed)
    return lambda index: Env.rng(owner, "tab", index, "work")  # type: ignore[arg-type]


@contextlib.contextmanager
def _counting_loops() -> Iterator[list[Any]]:
    """Collect the VirtualLoop a run creates, to read its ``steps`` afterwards. A subclass
    that only records itself: nothing runs per step."""
    from simkit.virtual import loop as module

    original = module.VirtualLoop
    seen: list[Any] = []

    class Counting(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            seen.append(self)

    module.VirtualLoop = Counting  # type: ignore[misc]
    try:
        yield seen
    finally:
        module.VirtualLoop = original  # type: ignore[misc]


def run_simkit(tabs: int, duration: float, seed: int) -> dict[str, Any]:
    from simkit.api import run

    with _counting_loops() as loops:
        result = run("reference", tabs=tabs, duration=duration, seed=seed, progress=False)
    ts = result.timeseries
    return {
        "mean_open_sockets": float(ts["open_sockets"].mean()),
        "mean_stale": float(ts["stale"].mean()),
        "connects": int(result.summary["connects"]),
        "events": sum(loop.steps for loop in loops),
        "samples": len(ts),
    }


def run_simpy(tabs: int, duration: float, seed: int, *, streams: str = "own") -> dict[str, Any]:
    model = reference_model()
    rng = simkit_streams(seed) if streams == "simkit" else None
    return model.simulate(tabs, duration, seed, rng=rng)


def run_simpy_ticking(tabs: int, duration: float, seed: int) -> dict[str, Any]:
    return reference_model("simpy_ticking").simulate(tabs, duration, seed)


ENGINES: dict[str, Callable[[int, float, int], dict[str, Any]]] = {
    "simpy": run_simpy,
    "simkit": run_simkit,
    "simpy_ticking": run_simpy_ticking,
}
LABELS = {
    "simpy": "SimPy (careful: the yardstick)",
    "simkit": "simkit",
    "simpy_ticking": "SimPy, ticking keepalive (naive, the old yardstick)",
}


def timed_run(engine: str, tabs: int, duration: float, seed: int) -> None:
    """One timed run in this fresh process (see :func:`run_in_child`); prints JSON."""
    reference_model("simpy_ticking" if engine == "simpy_ticking" else "simpy_reference")
    ENGINES[engine](*WARMUP, 0)  # imports done, code paths warm
    gc.collect()
    baseline = peak_rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    out = ENGINES[engine](tabs, duration, seed)
    out["wall_s"] = time.perf_counter() - wall
    out["cpu_s"] = time.process_time() - cpu
    out.update(baseline_rss_mb=baseline, peak_rss_mb=peak_rss_mb())
    say(out)


def run_in_child(engine: str, tabs: int, duration: float, seed: int) -> dict[str, Any]:
    """One run of ``engine`` in a fresh process, after a warm-up run there: wall and CPU
    time, events, connects, and memory: ``peak_rss_mb`` is the process's peak RSS
    (interpreter, imports and run: what it takes to run it), ``rss_grown_mb`` how far that
    grew during the timed run (a lower bound on the run's own footprint: it first reuses
    memory the imports freed, so it reads ~0 for small runs)."""
    # The SimPy process imports no simkit; the simkit process imports it in its warm-up.
    began = time.perf_counter()
    out = run_once("benchmarks.virtual:timed_run", engine, tabs, duration, seed)
    out["process_wall_s"] = time.perf_counter() - began
    out["rss_grown_mb"] = out["peak_rss_mb"] - out["baseline_rss_mb"]
    out["bytes_per_tab"] = out["rss_grown_mb"] * 2**20 / tabs
    out.update(engine=engine, tabs=tabs, duration=duration, seed=seed)
    return out


# --- measurements -------------------------------------------------------------------------


def time_pairs(tabs: int, duration: float, repeats: int, log: Callable[[str], None]) -> dict:
    """``repeats`` rounds, SimPy then simkit then ticking SimPy, seed = round number, each
    run in its own process; ratios per pair (simkit / SimPy, simkit / ticking SimPy)."""
    runs: dict[str, list[dict[str, Any]]] = {engine: [] for engine in ENGINES}
    for seed in range(repeats):
        for engine in ENGINES:
            runs[engine].append(run_in_child(engine, tabs, duration, seed))
        a, b, c = runs["simpy"][-1], runs["simkit"][-1], runs["simpy_ticking"][-1]
        log(
            f"  {tabs} x {duration:.0f} s, seed {seed}: SimPy {a['wall_s']:.2f} s "
            f"(cpu {a['cpu_s']:.2f}), simkit {b['wall_s']:.2f} s (cpu {b['cpu_s']:.2f}): "
            f"{b['wall_s'] / a['wall_s']:.2f}x; ticking SimPy {c['wall_s']:.2f} s"
        )
    row: dict[str, Any] = {"tabs": tabs, "duration": duration, "seeds": list(range(repeats))}
    for engine, done in runs.items():
        row[engine] = {
            "label": LABELS[engine],
            "wall_s": spread([r["wall_s"] for r in done]),
            "cpu_s": spread([r["cpu_s"] for r in done]),
            "process_wall_s": spread([r["process_wall_s"] for r in done]),
            "events": [r["events"] for r in done],
            "events_per_s": spread([r["events"] / r["wall_s"] for r in done]),
            "connects": [r["connects"] for r in done],
            "connects_per_s": spread([r["connects"] / r["wall_s"] for r in done]),
            "peak_rss_mb": spread([r["peak_rss_mb"] for r in done]),
            "rss_grown_mb": spread([r["rss_grown_mb"] for r in done]),
            "bytes_per_tab": spread([r["bytes_per_tab"] for r in done]),
            "runs": done,
        }

    def ratios(over: str, key: str) -> dict[str, Any]:
        pairs = zip(runs[over], runs["simkit"], strict=True)
        values = [b[key] / a[key] for a, b in pairs]
        return {**spread(values), "per_pair": values}

    row["ratio_simkit_over_simpy"] = ratios("simpy", "wall_s")
    row["cpu_ratio_simkit_over_simpy"] = ratios("simpy", "cpu_s")
    row["process_ratio_simkit_over_simpy"] = ratios("simpy", "process_wall_s")
    row["ratio_simkit_over_simpy_ticking"] = ratios("simpy_ticking", "wall_s")
    return row


def scaling_runs(
    sizes: tuple[tuple[int, float], ...], log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """One run per engine and size (each in a fresh process): time and peak memory."""
    rows = []
    for tabs, duration in sizes:
        for engine in SCALING_ENGINES:
            log(f"scaling: {engine}, {tabs:,} tabs x {duration:.0f} s ...")
            rows.append({**run_in_child(engine, tabs, duration, seed=0), "loadavg": loadavg()})
    return rows


def plot_scaling(rows: list[dict[str, Any]], out: Path) -> Path:
    """Run time and peak memory against tabs, log-log, one line per engine (small PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2), dpi=80)
    for engine in SCALING_ENGINES:
        mine = sorted((r for r in rows if r["engine"] == engine), key=lambda r: r["tabs"])
        tabs = [r["tabs"] for r in mine]
        label = "SimPy (careful)" if engine == "simpy" else engine
        left.plot(tabs, [r["cpu_s"] for r in mine], "o-", label=label)
        right.plot(tabs, [r["peak_rss_mb"] for r in mine], "o-", label=label)
    duration = rows[0]["duration"] if rows else 0
    for ax, title in ((left, "run time (CPU s)"), (right, "peak memory (RSS MB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"tabs ({duration:.0f} simulated s)")
        ax.set_title(title)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def agreement(tabs: int, duration: float, seeds: int) -> dict[str, Any]:
    """Do SimPy and simkit play the same model?

    Statistical: each engine runs ``seeds`` seeds with its own random streams (independent
    samples); for mean open sockets, mean stale sockets and connects the difference of the
    two means must lie within ``Z_LIMIT`` standard errors, SE = sqrt(s1^2/n + s2^2/n).
    Exact: SimPy fed simkit's own per-tab streams must reproduce simkit's trajectory, so
    connects are equal and the means equal up to float rounding; this catches deviations
    far too small for the statistical test.
    """
    own = [run_simpy(tabs, duration, seed) for seed in range(seeds)]
    same = [run_simpy(tabs, duration, seed, streams="simkit") for seed in range(seeds)]
    sim = [run_simkit(tabs, duration, seed) for seed in range(seeds)]
    metrics: dict[str, Any] = {}
    for metric in METRICS:
        a = [float(r[metric]) for r in own]
        b = [float(r[metric]) for r in sim]
        se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
        diff = statistics.fmean(b) - statistics.fmean(a)
        z = diff / se if se > 0 else (0.0 if diff == 0 else math.inf)
        worst = max(abs(x[metric] - y[metric]) for x, y in zip(same, sim, strict=True))
        metrics[metric] = {
            "simpy_mean": statistics.fmean(a),
            "simkit_mean": statistics.fmean(b),
            "difference": diff,
            "standard_error": se,
            "z": z,
            "agree": abs(z) <= Z_LIMIT,
            "same_streams_max_abs_difference": worst,
            "same_streams_exact": worst <= 1e-9 * max(1.0, abs(statistics.fmean(b))),
        }
    return {
        "tabs": tabs,
        "duration": duration,
        "seeds": seeds,
        "tolerance": f"|mean(simkit) - mean(SimPy)| <= {Z_LIMIT:g} standard errors "
        "(independent streams); identical trajectories with simkit's streams",
        "metrics": metrics,
        "agree": all(m["agree"] and m["same_streams_exact"] for m in metrics.values()),
    }


# --- the virtual half of the report -------------------------------------------------------


def run_virtual_bench(
    *,
    sizes: tuple[tuple[int, float], ...],
    repeats: int,
    agreement_size: tuple[int, float, int],
    scale: tuple[int, float] | None,
    scaling: tuple[tuple[int, float], ...] = (),
    plot: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Agreement, then timed pairs per size, then (``scale``) one large simkit run, then
    (``scaling``) one run per engine and size, drawn to ``plot``: the report's ``scenario``,
    ``method``, ``agreement``, ``timing``, ``scale`` and ``scaling`` entries. Each timing row
    and run records the load average it started under."""
    report: dict[str, Any] = {
        "scenario": "reference",
        "method": {
            "order": "alternating rounds SimPy (careful), simkit, SimPy (ticking); seed = "
            "round number",
            "process": "every timed run in a fresh process, after a warm-up run of "
            f"{WARMUP[0]} tabs x {WARMUP[1]:.0f} s and gc.collect() there",
            "events": "SimPy: Environment.step calls; simkit: VirtualLoop.steps (handles run)",
            "memory": "peak RSS (/proc VmHWM) of the run's process (peak_rss_mb) and its "
            "growth during the timed run (rss_grown_mb, bytes_per_tab = grown / tabs)",
            "ratio": "median over pairs of simkit / SimPy (careful): in-process wall time "
            "(ratio), CPU time (cpu_ratio), whole-process wall time (process_ratio); and "
            "simkit / ticking SimPy (wall)",
            "repeats": repeats,
        },
    }
    log(f"model agreement, {agreement_size[0]} tabs x {agreement_size[1]:.0f} s ...")
    report["agreement"] = agreement(*agreement_size)
    report["timing"] = []
    for tabs, duration in sizes:
        log(f"timing {tabs} tabs x {duration:.0f} s ...")
        load = loadavg()
        report["timing"].append({**time_pairs(tabs, duration, repeats, log), "loadavg": load})
    report["scale"] = []
    if scale is not None:
        for engine in SCALE_ENGINES:
            log(f"scale: {engine}, {scale[0]:,} tabs x {scale[1]:.0f} s ...")
            load = loadavg()
            report["scale"].append({**run_in_child(engine, *scale, seed=0), "loadavg": load})
    report["scaling"] = scaling_runs(scaling, log) if scaling else []
    if report["scaling"] and plot is not None:
        report["scaling_plot"] = str(plot_scaling(report["scaling"], plot))
    return report


def virtual_table(report: dict[str, Any]) -> list[str]:
    """The virtual half of ``make bench``'s table: timing per size, scale, scaling, agreement."""
    lines = [
        f"{'tabs':>7} {'sim s':>6} | {'SimPy wall':>10} {'cpu':>6} {'MB':>5} | "
        f"{'simkit wall':>11} {'cpu':>6} {'MB':>5} | {'ratio':>5} {'cpu':>5} {'proc':>5} | "
        f"{'ticking SimPy':>13} {'simkit/ticking':>14}"
    ]
    for row in report["timing"]:
        cells = [f"{row['tabs']:>7} {row['duration']:>6.0f}"]
        for engine, width in (("simpy", 10), ("simkit", 11)):
            r = row[engine]
            cells.append(
                f"{r['wall_s']['median']:>{width - 1}.2f}s {r['cpu_s']['median']:>5.2f}s "
                f"{r['peak_rss_mb']['median']:>5.0f}"
            )
        cells.append(
            f"{row['ratio_simkit_over_simpy']['median']:>4.2f}x "
            f"{row['cpu_ratio_simkit_over_simpy']['median']:>4.2f}x "
            f"{row['process_ratio_simkit_over_simpy']['median']:>4.2f}x"
        )
        cells.append(
            f"{row['simpy_ticking']['wall_s']['median']:>12.2f}s "
            f"{row['ratio_simkit_over_simpy_ticking']['median']:>13.2f}x"
        )
        lines.append(" | ".join(cells))
    lines.append(
        "wall: median of the timed runs (in-process); ratio: median of per-pair simkit/SimPy "
        "(careful) wall, cpu and whole-process wall times; MB: peak RSS of the run's process"
    )
    for s in report.get("scale", []):
        lines.append(
            f"scale, {s['engine']}: {s['tabs']:,} tabs x {s['duration']:.0f} s in one process: "
            f"{s['wall_s']:.1f} s (cpu {s['cpu_s']:.1f} s), peak RSS {s['peak_rss_mb']:.0f} MB "
            f"({s['rss_grown_mb']:.0f} MB grown during the run: {s['bytes_per_tab']:,.0f} B/tab)"
        )
    for s in report.get("scaling", []):
        lines.append(
            f"scaling, {s['engine']:>6}: {s['tabs']:>9,} tabs x {s['duration']:.0f} s: "
            f"cpu {s['cpu_s']:>7.1f} s, wall {s['wall_s']:>7.1f} s, "
            f"peak RSS {s['peak_rss_mb']:>6.0f} MB ({s['bytes_per_tab']:,.0f} B/tab grown)"
        )
    agree = report["agreement"]
    lines.append(
        f"agreement, {agree['tabs']} tabs x {agree['duration']:.0f} s x {agree['seeds']} seeds "
        f"({agree['tolerance']}): {'AGREE' if agree['agree'] else 'DISAGREE'}"
    )
    for name, m in agree["metrics"].items():
        lines.append(
            f"  {name:<18} SimPy {m['simpy_mean']:>10.2f}  simkit {m['simkit_mean']:>10.2f}  "
            f"z {m['z']:+.2f}  same streams: max |diff| {m['same_streams_max_abs_difference']:.2g}"
        )
    return lines
