"""A parameter study on the default LocalCluster against the same runs in a plain loop.

The issue's figure: 40 runs at 500 tabs x 300 s (``reload-storm``, ``before`` and
``postmortem-safe``, heartbeat 10/20/40/60 s, 5 seeds) via ``simkit.sweep`` on a fresh
default :class:`distributed.LocalCluster` (its start-up and shut-down counted) must finish
at least 1.6x faster than ``for ...: simkit.run(...)`` in one process, on this 2-core
machine. Rounds alternate which goes first, so a load that drifts during the bench hits
both; every round checks that both produced the same numbers.

Other jobs may share the machine, and a parallel speed-up is only as large as the cores
that are free: each round records the load average and the CPU time the sequential loop
got per wall second (1.0 on an idle core), and the report says how many cores were busy.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from benchmarks.common import loadavg, spread

SCENARIO = "reload-storm"
STRATEGIES = ("before", "postmortem-safe")
GRID = {"heartbeat": [10, 20, 40, 60]}
SEEDS = 5  # 2 strategies x 4 values x 5 seeds = 40 runs
FULL = {"tabs": 500, "duration": 300.0, "rounds": 3}
QUICK = {"tabs": 150, "duration": 300.0, "rounds": 1}
TARGET = 1.6


def sequential(tabs: int, duration: float) -> tuple[float, float, list[dict[str, Any]]]:
    """The loop a person writes without a cluster: (wall s, CPU s, summaries)."""
    import simkit
    from simkit.sweep import plan  # the very runs the sweep plays

    specs, _ = plan(SCENARIO, STRATEGIES, GRID, SEEDS, tabs, duration, None)
    wall, cpu = time.perf_counter(), time.process_time()
    summaries = [
        simkit.run(
            s.scenario,
            s.strategy,
            tabs=s.tabs,
            duration=s.duration,
            seed=s.seed,
            settle=s.settle,
            progress=False,
        ).summary
        for s in specs
    ]
    return time.perf_counter() - wall, time.process_time() - cpu, summaries


def on_cluster(tabs: int, duration: float) -> tuple[float, Any]:
    """``simkit.sweep`` on a new default LocalCluster, start-up and shut-down included."""
    import simkit

    wall = time.perf_counter()
    study = simkit.sweep(
        SCENARIO, STRATEGIES, grid=GRID, seeds=SEEDS, tabs=tabs, duration=duration, progress=False
    )
    return time.perf_counter() - wall, study


def run_sweep_bench(*, quick: bool, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Rounds of loop vs sweep; ratios with min/median/max, load and CPU share per round."""
    size = QUICK if quick else FULL
    tabs, duration = size["tabs"], size["duration"]
    runs = len(STRATEGIES) * len(GRID["heartbeat"]) * SEEDS
    log(f"sweep: {runs} runs of {SCENARIO} at {tabs} tabs x {duration:.0f} s, loop vs LocalCluster")
    rounds, problems = [], []
    for n in range(size["rounds"]):
        load = loadavg()
        if n % 2 == 0:
            seq_wall, seq_cpu, summaries = sequential(tabs, duration)
            dask_wall, study = on_cluster(tabs, duration)
        else:
            dask_wall, study = on_cluster(tabs, duration)
            seq_wall, seq_cpu, summaries = sequential(tabs, duration)
        same = len(study.runs) == runs and all(
            study.runs[key].iloc[i] == summary[key]
            for i, summary in enumerate(summaries)
            for key in ("mean_stale", "connects", "heartbeat_pings", "mean_unroutable")
        )
        if not same:
            problems.append(f"round {n + 1}: the sweep's numbers differ from the loop's")
        row = {
            "sequential_s": seq_wall,
            "sweep_s": dask_wall,
            "ratio": seq_wall / dask_wall,
            "sequential_cpu_share": seq_cpu / seq_wall,
            "loadavg": load,
            "same_numbers": same,
        }
        rounds.append(row)
        log(
            f"  round {n + 1}: loop {seq_wall:.1f} s, sweep {dask_wall:.1f} s -> "
            f"{row['ratio']:.2f}x (load {load[0] if load else '?'}, loop got "
            f"{row['sequential_cpu_share']:.2f} CPU)"
        )
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "runs": runs,
        "tabs": tabs,
        "duration": duration,
        "workers": cpus,
        "rounds": rounds,
        "ratio": spread([r["ratio"] for r in rounds]),
        "sequential_s": spread([r["sequential_s"] for r in rounds]),
        "sweep_s": spread([r["sweep_s"] for r in rounds]),
        "target": TARGET,
        "problems": problems,
    }


def sweep_table(report: dict[str, Any]) -> list[str]:
    """The sweep's lines of ``make bench``'s table."""
    r = report
    ratio, seq, dask = r["ratio"], r["sequential_s"], r["sweep_s"]
    loads = [x["loadavg"][0] for x in r["rounds"] if x["loadavg"]]
    busy = f", load average {min(loads):.1f}-{max(loads):.1f}" if loads else ""
    return [
        f"sweep: {r['runs']} runs x {r['tabs']} tabs x {r['duration']:.0f} s on a LocalCluster "
        f"of {r['workers']} workers vs a loop: loop {seq['median']:.1f} s, sweep "
        f"{dask['median']:.1f} s, {ratio['median']:.2f}x (min {ratio['min']:.2f}, max "
        f"{ratio['max']:.2f}; target {r['target']}x{busy})"
        + ("" if not r["problems"] else f"; PROBLEMS: {'; '.join(r['problems'])}")
    ]


if __name__ == "__main__":
    report = run_sweep_bench(quick=False)
    print("\n".join(sweep_table(report)))
