"""A parameter study on the default LocalCluster against the same runs in a plain loop.

The issue's figure: 40 runs at 500 tabs x 300 s (``reload-storm``, ``before`` and
``postmortem-safe``, heartbeat 10/20/40/60 s, 5 seeds) via ``simkit.sweep`` on the default
:class:`distributed.LocalCluster` must finish at least 1.6x faster than
``for ...: simkit.run(...)`` in one process, on this 2-core machine.

The default cluster is started by the first sweep and kept for the next ones, so each
round times two sweeps: the first on a cluster it starts itself (the first sweep of a
session: the cluster's start-up and the workers' first imports counted), then one on the
kept cluster (every later sweep of the session); and, apart, the cluster's shut-down,
which no sweep waits for. Rounds alternate whether the loop goes first, so a load that
drifts during the bench hits both; every round checks that both sweeps produced the loop's
numbers.

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
    from simkit.study import plan  # the very runs the sweep plays

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
    """``simkit.sweep`` on the default LocalCluster (started here if none is kept)."""
    import simkit

    wall = time.perf_counter()
    study = simkit.sweep(
        SCENARIO, STRATEGIES, grid=GRID, seeds=SEEDS, tabs=tabs, duration=duration, progress=False
    )
    return time.perf_counter() - wall, study


def shut_down() -> float:
    """Close the kept default cluster: (wall s)."""
    from simkit.study import close_default_cluster

    wall = time.perf_counter()
    close_default_cluster()
    return time.perf_counter() - wall


def run_sweep_bench(*, quick: bool, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Rounds of loop vs sweep; ratios with min/median/max, load and CPU share per round."""
    size = QUICK if quick else FULL
    tabs, duration = size["tabs"], size["duration"]
    runs = len(STRATEGIES) * len(GRID["heartbeat"]) * SEEDS
    log(f"sweep: {runs} runs of {SCENARIO} at {tabs} tabs x {duration:.0f} s, loop vs LocalCluster")
    rounds, problems = [], []
    shut_down()  # no cluster left over from before: the first sweep of each round starts one

    def sweeps() -> tuple[float, Any, float, Any, float]:
        started, first = on_cluster(tabs, duration)
        kept, second = on_cluster(tabs, duration)
        return started, first, kept, second, shut_down()

    for n in range(size["rounds"]):
        load = loadavg()
        if n % 2 == 0:
            seq_wall, seq_cpu, summaries = sequential(tabs, duration)
            started, first, kept, second, closing = sweeps()
        else:
            started, first, kept, second, closing = sweeps()
            seq_wall, seq_cpu, summaries = sequential(tabs, duration)
        same = all(
            len(study.runs) == runs
            and all(
                study.runs[key].iloc[i] == summary[key]
                for i, summary in enumerate(summaries)
                for key in ("mean_stale", "connects", "heartbeat_pings", "mean_unroutable")
            )
            for study in (first, second)
        )
        if not same:
            problems.append(f"round {n + 1}: a sweep's numbers differ from the loop's")
        row = {
            "sequential_s": seq_wall,
            "sweep_started_s": started,
            "sweep_kept_s": kept,
            "shutdown_s": closing,
            "ratio_started": seq_wall / started,
            "ratio_kept": seq_wall / kept,
            "ratio_with_shutdown": seq_wall / (started + closing),
            "sequential_cpu_share": seq_cpu / seq_wall,
            "loadavg": load,
            "same_numbers": same,
        }
        rounds.append(row)
        log(
            f"  round {n + 1}: loop {seq_wall:.1f} s; sweep starting its cluster {started:.1f} s "
            f"-> {row['ratio_started']:.2f}x; on the kept cluster {kept:.1f} s -> "
            f"{row['ratio_kept']:.2f}x; shut-down {closing:.1f} s (load "
            f"{load[0] if load else '?'}, loop got {row['sequential_cpu_share']:.2f} CPU)"
        )
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "runs": runs,
        "tabs": tabs,
        "duration": duration,
        "workers": cpus,
        "rounds": rounds,
        "ratio_started": spread([r["ratio_started"] for r in rounds]),
        "ratio_kept": spread([r["ratio_kept"] for r in rounds]),
        "ratio_with_shutdown": spread([r["ratio_with_shutdown"] for r in rounds]),
        "sequential_s": spread([r["sequential_s"] for r in rounds]),
        "sweep_started_s": spread([r["sweep_started_s"] for r in rounds]),
        "sweep_kept_s": spread([r["sweep_kept_s"] for r in rounds]),
        "shutdown_s": spread([r["shutdown_s"] for r in rounds]),
        "target": TARGET,
        "problems": problems,
    }


def sweep_table(report: dict[str, Any]) -> list[str]:
    """The sweep's lines of ``make bench``'s table."""
    r = report
    seq = r["sequential_s"]
    loads = [x["loadavg"][0] for x in r["rounds"] if x["loadavg"]]
    busy = f"; load average {min(loads):.1f}-{max(loads):.1f}" if loads else ""

    def ratio(name: str) -> str:
        x = r[name]
        return f"{x['median']:.2f}x (min {x['min']:.2f}, max {x['max']:.2f})"

    return [
        f"sweep: {r['runs']} runs x {r['tabs']} tabs x {r['duration']:.0f} s on the default "
        f"LocalCluster of {r['workers']} workers vs a loop of {seq['median']:.1f} s "
        f"(target {r['target']}x{busy})",
        f"  starting its cluster {r['sweep_started_s']['median']:.1f} s: "
        f"{ratio('ratio_started')}; on the kept cluster {r['sweep_kept_s']['median']:.1f} s: "
        f"{ratio('ratio_kept')}; counting the shut-down "
        f"({r['shutdown_s']['median']:.1f} s): {ratio('ratio_with_shutdown')}"
        + ("" if not r["problems"] else f"; PROBLEMS: {'; '.join(r['problems'])}"),
    ]


if __name__ == "__main__":
    from benchmarks.common import RESULTS, machine, versions, write_json

    report = run_sweep_bench(quick=False)
    report["machine"] = machine()
    report["versions"] = versions(("simkit", "dask", "distributed", "pandas"))
    print("\n".join(sweep_table(report)))
    print("wrote", write_json(report, RESULTS / "sweep.json"))
