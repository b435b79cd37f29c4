"""Spread over test maps: a mean with its 95% interval, for every table cell.

The interval is Student's t interval of the mean over the maps of a split,
``mean +- t_{(1+level)/2, k-1} * s / sqrt(k)`` with ``s`` the sample standard deviation (ddof 1)
and ``k`` maps. With few maps (the quick preset has a handful) t is the honest choice: a bootstrap
over 5 maps under-covers. With one map there is no interval (NaN).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

LEVEL = 0.95


def mean_interval(values, level: float = LEVEL) -> tuple[float, float, float, int]:
    """(mean, low, high, k) of the finite values; low = high = NaN when k < 2."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    k = v.size
    if k == 0:
        return np.nan, np.nan, np.nan, 0
    mean = float(v.mean())
    if k < 2:
        return mean, np.nan, np.nan, k
    half = float(stats.t.ppf(0.5 + level / 2.0, k - 1)) * float(v.std(ddof=1)) / np.sqrt(k)
    return mean, mean - half, mean + half, k


def interval_by(df: pd.DataFrame, keys: list[str], column: str, level: float = LEVEL):
    """Per group of ``keys``: columns mean, low, high, maps of ``df[column]`` over its rows."""
    rows = []
    for key, sub in df.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        mean, lo, hi, k = mean_interval(sub[column].to_numpy(), level)
        rows.append(
            {**dict(zip(keys, key, strict=True)), "mean": mean, "low": lo, "high": hi, "maps": k}
        )
    return pd.DataFrame(rows)


def format_interval(mean: float, low: float, high: float, fmt: str = "{:.4g}") -> str:
    """'m [lo, hi]' for the .md and .tex tables; just 'm' without an interval, '--' without data."""
    if not np.isfinite(mean):
        return "--"
    if not (np.isfinite(low) and np.isfinite(high)):
        return fmt.format(mean)
    return f"{fmt.format(mean)} [{fmt.format(low)}, {fmt.format(high)}]"
