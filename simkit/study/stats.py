"""A sweep's statistics over seeds: mean, standard deviation, count and the 95 % interval of
the mean (Student's t), per combination and metric.

One seed says little (the spread between seeds is often larger than the effect being looked
for), so every number of a sweep's aggregate comes with its interval.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

__all__ = ["STATS", "aggregate", "t975", "tidy"]

STATS = ("mean", "sd", "n", "ci95", "low", "high")
"""The statistics of each metric, in the order of the summary's columns."""


def aggregate(runs: pd.DataFrame, keys: list[str], skip: Iterable[str] = ()) -> pd.DataFrame:
    """Mean, standard deviation, count and 95 % confidence interval of every numeric
    metric over the seeds of each combination (``scenario``, ``strategy``, grid keys); the
    columns in ``skip`` (besides ``seed`` and the combination's) are no metric."""
    group = ["scenario", "strategy", *keys]
    columns = pd.MultiIndex.from_tuples([], names=["metric", "stat"])
    if runs.empty:
        return pd.DataFrame(columns=columns, index=pd.MultiIndex.from_tuples([], names=group))
    left_out = {"seed", *group, *skip}
    metrics = [
        c
        for c in runs.columns
        if c not in left_out
        and (pd.api.types.is_numeric_dtype(runs[c]) or pd.api.types.is_bool_dtype(runs[c]))
    ]
    values = runs[metrics].astype("float64")
    grouped = values.groupby([runs[g] for g in group], sort=False, dropna=False)
    mean, sd, n = grouped.mean(), grouped.std(ddof=1), grouped.count()
    half = sd.div(n.pow(0.5)).mul(n.map(t975))
    parts = {"mean": mean, "sd": sd, "n": n, "ci95": half, "low": mean - half, "high": mean + half}
    frame = pd.concat(parts, axis=1, names=["stat", "metric"])
    frame = frame.swaplevel(axis=1)[[(m, s) for m in metrics for s in STATS]]
    frame.columns = frame.columns.set_names(["metric", "stat"])
    return frame


def tidy(summary: pd.DataFrame) -> pd.DataFrame:
    """``summary`` (columns ``(metric, stat)``) in long form: one row per combination and
    metric, columns the combination's, ``metric``, then :data:`STATS`. An empty summary
    (every run failed) gives an empty frame with those columns, not an error."""
    names = [*summary.index.names, "metric", *STATS]
    if summary.columns.empty:
        return pd.DataFrame(columns=names)
    frame = summary.stack(level=0, future_stack=True)
    frame.index = frame.index.set_names("metric", level=-1)
    return frame.reset_index()[names]


# Student's t, 97.5 % quantile, by degrees of freedom (n - 1): a 95 % two-sided interval.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t975(n: float) -> float:
    """The factor of the 95 % interval's half-width for ``n`` values (NaN below two)."""
    if not n >= 2:
        return math.nan
    df = int(n) - 1
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964  # beyond 30 degrees of freedom, Cornish-Fisher's expansion is exact to 1e-4
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
