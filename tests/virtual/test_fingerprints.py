"""Every virtual run stays bit-identical: a fingerprint of every scenario under every preset.

The golden file holds, for each scenario x strategy preset (and ``reference`` under its own
strategy), at a small size and two seeds, one hash per time-series column and one per
summary key. Each hash is taken from the values' exact bits (floats as IEEE-754 doubles,
ints as ints, see :func:`column_hash` and :func:`value_bytes`), never from a text rendering,
so a change in how pandas or json format numbers moves nothing, and a failure names the
scenario, preset, seed and every column or key that moved.

A refactoring of the run core, the loop or the network must leave each one unchanged; a
deliberate model change regenerates the file (``python tests/virtual/test_fingerprints.py
--write``) and says in the README which number moved and why.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import simkit

# Every scenario x every preset, two seeds each: about 20 s of CPU in all, a third of what
# `make test-fast` may spend, so slow (make test runs it; so does pytest on this file).
# The fast subset keeps the same-seed and cross-process determinism checks (test_api.py,
# virtual/test_loop.py).
pytestmark = pytest.mark.slow

GOLDEN = Path(__file__).with_name("fingerprints.json")
TABS, DURATION, SEEDS = 50, 300.0, (0, 7)
DIGITS = 12  # hex digits kept of each SHA-256: 48 bits, ample to see a value move

Fingerprint = dict[str, dict[str, dict[str, str]]]  # seed -> "timeseries"/"summary" -> name


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))  # framed: no two splits hash alike
        h.update(part)
    return h.hexdigest()[:DIGITS]


def value_bytes(value: Any) -> bytes:
    """One summary value's exact content, tagged with its type: ints as ints, floats by
    their bits (``float.hex``: NaN, -0.0 and the last bit all count), containers item by
    item. A type it does not know raises rather than hash a text rendering."""
    if value is None:
        return b"n"
    if isinstance(value, bool | np.bool_):
        return b"b1" if value else b"b0"
    if isinstance(value, int | np.integer):
        return b"i" + str(int(value)).encode()
    if isinstance(value, float | np.floating):
        return b"f" + float(value).hex().encode()
    if isinstance(value, str):
        return b"s" + value.encode()
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: str(kv[0]))
        return b"d" + b"".join(value_bytes(str(k)) + value_bytes(v) for k, v in items)
    if isinstance(value, list | tuple):
        return b"l" + b"".join(value_bytes(v) for v in value)
    raise TypeError(f"no exact fingerprint for a {type(value).__name__}: {value!r}")


def column_hash(column: pd.Series) -> str:
    """One column's hash from its values' bits: a numeric column as its little-endian
    machine array (int64, float64), anything else value by value."""
    kind = column.dtype.kind
    if kind == "f":
        data = np.ascontiguousarray(column.to_numpy(dtype="<f8")).tobytes()
    elif kind in "iu":
        data = np.ascontiguousarray(column.to_numpy(dtype="<i8")).tobytes()
    elif kind == "b":
        data = column.to_numpy(dtype="u1").tobytes()
    else:
        data = b"".join(value_bytes(v) for v in column.tolist())
    return _digest(kind.encode(), struct.pack("<q", len(column)), data)


def fingerprint_of(timeseries: pd.DataFrame, summary: dict[str, Any]) -> dict[str, dict[str, str]]:
    """One run's hashes: every column (under ``timeseries``), every summary key, and under
    ``order`` one hash of the order both come in."""
    names = [str(name) for name in timeseries.columns]
    return {
        "timeseries": {str(name): column_hash(timeseries[name]) for name in timeseries.columns},
        "summary": {key: _digest(value_bytes(summary[key])) for key in summary},
        "order": {"order": _digest("\0".join(names).encode(), "\0".join(summary).encode())},
    }


def fingerprint(scenario: str, strategy: str | None) -> Fingerprint:
    out: Fingerprint = {}
    for seed in SEEDS:
        r = simkit.run(scenario, strategy, tabs=TABS, duration=DURATION, seed=seed)
        # Whether the run is valid is a verdict on its numbers, not one of them: held out
        # of the fingerprint (the numbers it rests on are in it), and every run is valid.
        summary = dict(r.summary)
        assert summary.pop("run_valid") is True, summary["invalid_reasons"]
        assert summary.pop("invalid_reasons") == []
        out[str(seed)] = fingerprint_of(r.timeseries, summary)
    return out


def moved(golden: dict[str, dict[str, str]], got: dict[str, dict[str, str]]) -> list[str]:
    """Every column and summary key whose hash differs, or that appeared or vanished."""
    out = []
    for part in ("timeseries", "summary"):
        was, now = golden.get(part, {}), got.get(part, {})
        names = list(was) + [name for name in now if name not in was]
        changed = [name for name in names if was.get(name) != now.get(name)]
        if changed:
            out.append(f"{part} {', '.join(changed)}")
    if not out and golden.get("order") != got.get("order"):
        out.append("the order of the columns or summary keys")
    return out


def differences(case: str, golden: Fingerprint, got: Fingerprint) -> list[str]:
    """One line per seed that moved: ``case``, the seed and what moved in it."""
    scenario, _, preset = case.partition("/")
    lines = []
    for seed in sorted(set(golden) | set(got), key=int):
        what = moved(golden.get(seed, {}), got.get(seed, {}))
        if what:
            lines.append(f"{scenario} under {preset}, seed {seed}: {'; '.join(what)}")
    return lines


# -- the golden file -------------------------------------------------------------------------
# Written compactly: the column and key names once, in ``names``; per case and seed, one
# comma-separated string of hashes per part, aligned with those names ("-": the run has no
# such column or key). About a third of the size of a name -> hash mapping per run.

PARTS = ("timeseries", "summary", "order")


def encode(golden: dict[str, Fingerprint]) -> dict[str, Any]:
    names: dict[str, dict[str, None]] = {part: {} for part in PARTS}
    for entry in golden.values():
        for run in entry.values():
            for part in PARTS:
                names[part].update(dict.fromkeys(run[part]))
    cases = {
        case: {
            seed: {part: ",".join(run[part].get(n, "-") for n in names[part]) for part in PARTS}
            for seed, run in entry.items()
        }
        for case, entry in golden.items()
    }
    return {"names": {part: list(names[part]) for part in PARTS}, "cases": cases}


def decode(stored: dict[str, Any]) -> dict[str, Fingerprint]:
    names = stored["names"]
    return {
        case: {
            seed: {
                part: {
                    n: h for n, h in zip(names[part], run[part].split(","), strict=True) if h != "-"
                }
                for part in PARTS
            }
            for seed, run in entry.items()
        }
        for case, entry in stored["cases"].items()
    }


def load() -> dict[str, Fingerprint]:
    return decode(json.loads(GOLDEN.read_text()))


def write() -> None:
    """Regenerate the golden file: one line per case, so a diff shows which case moved."""
    stored = encode({key(*c): fingerprint(*c) for c in cases()})
    lines = [
        f" {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}"
        for k, v in stored["cases"].items()
    ]
    GOLDEN.write_text(
        '{\n "names": '
        + json.dumps(stored["names"])
        + ',\n "cases": {\n'
        + ",\n".join(lines)
        + "\n }\n}\n"
    )


def key(scenario: str, strategy: str | None) -> str:
    return f"{scenario}/{strategy or 'own'}"


def cases() -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for scenario in simkit.SCENARIOS:
        out += [(scenario, strategy) for strategy in simkit.STRATEGIES]
        if simkit.SCENARIOS[scenario].strategy is not None:
            out.append((scenario, None))  # the scenario's own strategy
    return out


@pytest.mark.parametrize(("scenario", "strategy"), cases(), ids=[key(*c) for c in cases()])
def test_virtual_run_is_bit_identical(scenario: str, strategy: str | None) -> None:
    case = key(scenario, strategy)
    lines = differences(case, load()[case], fingerprint(scenario, strategy))
    assert not lines, "the virtual run is no longer bit-identical:\n" + "\n".join(lines)


def test_golden_file_covers_every_case() -> None:
    golden = load()
    assert sorted(golden) == sorted(key(*c) for c in cases())
    assert all(sorted(entry) == sorted(str(s) for s in SEEDS) for entry in golden.values())


def test_a_moved_column_or_key_is_named_and_nothing_else() -> None:
    r = simkit.run("reload-storm", "postmortem-safe", tabs=10, duration=60.0, seed=3)
    base = {"3": fingerprint_of(r.timeseries, r.summary)}
    ts = r.timeseries.copy()
    ts.loc[ts.index[5], "stale"] += 1
    ts["t"] = ts["t"] + 1e-12  # one ulp-scale change: invisible at to_csv's usual widths
    summary = dict(r.summary, delivery_ratio=math.nextafter(r.summary["delivery_ratio"], 2.0))
    summary["extra"] = 1
    got = {"3": fingerprint_of(ts, summary)}
    assert differences("reload-storm/postmortem-safe", base, got) == [
        "reload-storm under postmortem-safe, seed 3: timeseries t, stale; "
        "summary delivery_ratio, extra"
    ]
    assert differences("reload-storm/postmortem-safe", base, base) == []
    swapped = {"3": fingerprint_of(r.timeseries[r.timeseries.columns[::-1]], r.summary)}
    assert differences("reload-storm/postmortem-safe", base, swapped) == [
        "reload-storm under postmortem-safe, seed 3: the order of the columns or summary keys"
    ]
    # The compact golden form gives back exactly what was stored, absent names included.
    golden = {"a/b": base, "c/d": got}
    assert decode(json.loads(json.dumps(encode(golden)))) == golden


def test_the_hashes_are_of_values_not_of_how_they_print() -> None:
    """Equal values in another dtype width or another float format hash alike; the int 1
    and the float 1.0, or 0.0 and -0.0, do not."""
    ints = pd.Series([1, 2, 3], dtype="int32")
    assert column_hash(ints) == column_hash(ints.astype("int64"))
    assert column_hash(ints) != column_hash(ints.astype("float64"))
    assert column_hash(pd.Series([0.0])) != column_hash(pd.Series([-0.0]))
    assert value_bytes(1) != value_bytes(1.0) and value_bytes(True) != value_bytes(1)
    assert value_bytes(float("nan")) == value_bytes(np.float64("nan"))
    assert column_hash(pd.Series([0.1 + 0.2])) != column_hash(pd.Series([0.3]))
    with pytest.raises(TypeError, match="no exact fingerprint for a set"):
        value_bytes({1})


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    write()
