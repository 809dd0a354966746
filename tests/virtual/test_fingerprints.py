"""Every virtual run stays bit-identical: a fingerprint of every scenario under every preset.

The golden file holds, for each scenario x strategy preset (and ``reference`` under its own
strategy), the SHA-256 of the run's time series (CSV) and summary (JSON) at a small size
and two seeds. A refactoring of the run core, the loop or the network must leave each one
unchanged; a deliberate model change regenerates the file
(``python tests/virtual/test_fingerprints.py --write``) and says in the README which
number moved and why.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

import simkit

# Every scenario x every preset, two seeds each: about 20 s of CPU in all, a third of what
# `make test-fast` may spend, so slow (make test runs it; so does pytest on this file).
# The fast subset keeps the same-seed and cross-process determinism checks (test_api.py,
# virtual/test_loop.py).
pytestmark = pytest.mark.slow

GOLDEN = Path(__file__).with_name("fingerprints.json")
TABS, DURATION, SEEDS = 50, 300.0, (0, 7)


def cases() -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for scenario in simkit.SCENARIOS:
        out += [(scenario, strategy) for strategy in simkit.STRATEGIES]
        if simkit.SCENARIOS[scenario].strategy is not None:
            out.append((scenario, None))  # the scenario's own strategy
    return out


def fingerprint(scenario: str, strategy: str | None) -> str:
    digest = hashlib.sha256()
    for seed in SEEDS:
        r = simkit.run(scenario, strategy, tabs=TABS, duration=DURATION, seed=seed)
        # Whether the run is valid is a verdict on its numbers, not one of them: held out
        # of the fingerprint (the numbers it rests on are in it), and every one is valid.
        summary = dict(r.summary)
        assert summary.pop("run_valid") is True, summary["invalid_reasons"]
        assert summary.pop("invalid_reasons") == []
        digest.update(r.timeseries.to_csv(index=False).encode())
        digest.update(json.dumps(summary, default=str, sort_keys=True).encode())
    return digest.hexdigest()


def key(scenario: str, strategy: str | None) -> str:
    return f"{scenario}/{strategy or 'own'}"


@pytest.mark.parametrize(("scenario", "strategy"), cases(), ids=[key(*c) for c in cases()])
def test_virtual_run_is_bit_identical(scenario: str, strategy: str | None) -> None:
    golden = json.loads(GOLDEN.read_text())
    assert fingerprint(scenario, strategy) == golden[key(scenario, strategy)], (
        f"{key(scenario, strategy)} changed: the virtual run is no longer bit-identical"
    )


def test_golden_file_covers_every_case() -> None:
    assert sorted(json.loads(GOLDEN.read_text())) == sorted(key(*c) for c in cases())


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    GOLDEN.write_text(json.dumps({key(*c): fingerprint(*c) for c in cases()}, indent=1) + "\n")
