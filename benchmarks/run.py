"""``make bench`` (``python -m benchmarks``): both halves, one report, one table.

The virtual runtime against SimPy (:mod:`benchmarks.virtual`), then the live runtime
against raw websockets (:mod:`benchmarks.live`), then a parameter study on a Dask
LocalCluster against a plain loop (:mod:`benchmarks.sweep`), on the same machine in the
same run; every figure with its min/median/max, the machine and its load average
alongside, so a number in the README can be traced to the run that produced it.
``--quick`` is the development run (about half a minute), written apart from the full
figures the README quotes.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import live as live_bench
from benchmarks import sweep as sweep_bench
from benchmarks import virtual
from benchmarks.common import RESULTS, loadavg, machine, versions, write_json

LATEST = RESULTS / "latest.json"  # the full run: the figures the README quotes
QUICK = RESULTS / "quick.json"  # a development run must never overwrite them
SCALE_PLOT = {False: RESULTS / "scale.png", True: RESULTS / "quick-scale.png"}


def run_bench(
    *,
    sizes: tuple[tuple[int, float], ...],
    repeats: int,
    agreement_size: tuple[int, float, int],
    scale: tuple[int, float] | None,
    quick: bool,
    live: bool = False,
    scaling: tuple[tuple[int, float], ...] = (),
    plot: Path | None = None,
    sweep: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The virtual part; with ``live``, the live part after it (the report's ``"live"``);
    with ``sweep``, a parameter study on a LocalCluster against a loop (``"sweep"``)."""
    started = time.perf_counter()
    report: dict[str, Any] = {"machine": machine(), "versions": versions(), "quick": quick}
    if report["machine"]["shared"]:
        log(f"note: load average {report['machine']['loadavg_at_start']} at start: shared")
    report.update(
        virtual.run_virtual_bench(
            sizes=sizes,
            repeats=repeats,
            agreement_size=agreement_size,
            scale=scale,
            scaling=scaling,
            plot=plot,
            log=log,
        )
    )
    if live:
        load = loadavg()
        report["live"] = {**live_bench.run_live_bench(quick=quick, log=log), "loadavg": load}
    if sweep:
        report["sweep"] = sweep_bench.run_sweep_bench(quick=quick, log=log)
    report["loadavg_at_end"] = loadavg()
    seen = [row["loadavg"] for row in report["timing"] + report["scale"] + report["scaling"]]
    if live:
        seen.append(report["live"]["loadavg"])
    if sweep:
        seen.extend(r["loadavg"] for r in report["sweep"]["rounds"])
    seen.append(report["loadavg_at_end"])
    report["machine"]["shared_during"] = any(load and load[0] > 1.0 for load in seen)
    report["bench_wall_s"] = time.perf_counter() - started
    return report


def table(report: dict[str, Any]) -> str:
    """The report as ``make bench`` prints it; says first if the machine was shared."""
    lines = []
    machine_ = report["machine"]
    if machine_["shared"] or machine_.get("shared_during"):
        lines.append(
            f"machine shared: load average {machine_['loadavg_at_start']} at start, "
            f"{report.get('loadavg_at_end')} at the end ({machine_['cpus']} CPUs)"
        )
    lines.extend(virtual.virtual_table(report))
    if "live" in report:
        lines.append(live_bench.live_table(report["live"]))
    if "sweep" in report:
        lines.extend(sweep_bench.sweep_table(report["sweep"]))
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="speed and memory: simkit's virtual runtime vs SimPy, live vs raw websockets",
    )
    p.add_argument("--quick", action="store_true", help="small sizes, about half a minute")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON file (default: benchmarks/results/latest.json, or quick.json with --quick)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the bench, write its JSON, print its table; 1 if the models disagree or the live
    figures cannot be trusted (:func:`benchmarks.live.problems`), else 0."""
    options = parser().parse_args(argv)
    quick = options.quick
    out = options.out or (QUICK if quick else LATEST)
    report = run_bench(
        sizes=virtual.SIZES_QUICK if quick else virtual.SIZES_FULL,
        repeats=virtual.REPEATS,
        agreement_size=virtual.AGREEMENT_QUICK if quick else virtual.AGREEMENT_FULL,
        scale=None if quick else virtual.SCALE,
        scaling=virtual.SCALING_QUICK if quick else virtual.SCALING_FULL,
        plot=out.with_name(out.stem + "-scale.png") if options.out else SCALE_PLOT[quick],
        quick=quick,
        live=True,
        sweep=True,
        log=lambda line: print(line, flush=True),
    )
    write_json(report, out)
    print()
    print(table(report))
    print(f"\nbench took {report['bench_wall_s']:.0f} s; wrote {out}")
    trusted = not report["live"]["problems"] and not report.get("sweep", {}).get("problems")
    return 0 if report["agreement"]["agree"] and trusted else 1
