"""simkit's benchmarks and soak test: not part of the installed package.

They measure simkit against yardsticks written with nothing but the underlying library
(SimPy for the virtual runtime, raw ``websockets`` for the live one), so they need a source
checkout and the ``bench`` extra; the wheel ships none of this. Run them from the
repository root:

- ``python -m benchmarks`` (``make bench``): the full run, written to
  ``benchmarks/results/latest.json``; ``--quick`` (``make bench-quick``) is the development
  run, written to ``benchmarks/results/quick.json``.
- ``python -m benchmarks.live``: only the live half.
- ``python -m benchmarks.soak`` (``make soak``): minutes of live churn, checked for leaks.
- ``python -m benchmarks.calls [tabs] [seconds]``: Python calls per reload cycle of the
  ``reference`` scenario, and where they go (a count the machine's load does not move).

Modules: :mod:`benchmarks.common` (spreads, memory readers, the machine, results files),
:mod:`benchmarks.processes` (fresh processes for timing, line-driven helper processes),
:mod:`benchmarks.virtual` (virtual runtime vs SimPy), :mod:`benchmarks.simpy_reference`
(the SimPy model), :mod:`benchmarks.raw_websockets` (the raw server and clients),
:mod:`benchmarks.live` (live runtime vs raw websockets), :mod:`benchmarks.run` (the whole
bench and its table), :mod:`benchmarks.soak`, :mod:`benchmarks.calls` (calls per reload
cycle).

Nothing here imports simkit at module level: the yardsticks' processes must not pay for it.
"""
