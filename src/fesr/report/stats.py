"""Spread over test maps: a mean with its 95% interval, for every table cell.

The interval is Student's t interval of the mean over the maps of a split,
``mean +- t_{(1+level)/2, k-1} * s / sqrt(k)`` with ``s`` the sample standard deviation (ddof 1)
and ``k`` maps. With few maps (the quick preset has a handful) t is the honest choice: a bootstrap
over 5 maps under-covers. With one map there is no interval (NaN).

Between methods the comparison is paired (the same maps): the same t interval of the mean of the
per-map differences, and the fraction of maps one method wins. Across training seeds the spread
is the std of the per-seed means over maps, to set next to a difference between methods.
"""

from __future__ import annotations

from typing import NamedTuple

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


class PairedDifference(NamedTuple):
    """Mean of ``a - b`` over the maps, its t interval, and on what fraction of maps ``a`` wins."""

    mean: float
    low: float
    high: float
    win_fraction: float
    maps: int

    @property
    def resolved(self) -> bool:
        """The interval excludes 0 (False without an interval)."""
        return bool(self.low > 0 or self.high < 0)


def paired_difference(a, b, level: float = LEVEL, lower_is_better: bool = True):
    """``a`` against ``b`` on the same maps (element i of both is map i): the t interval of the
    mean of the per-map differences ``a - b`` (``mean_interval``) and the fraction of maps on
    which ``a`` is strictly better (lower error, or higher for a score such as SSIM; a tie is no
    win). Maps where either value is not finite are left out of both."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"paired values: expected two 1-D arrays over the same maps, got {a.shape} and "
            f"{b.shape}"
        )
    both = np.isfinite(a) & np.isfinite(b)
    a, b = a[both], b[both]
    mean, lo, hi, k = mean_interval(a - b, level)
    wins = (a < b) if lower_is_better else (a > b)
    return PairedDifference(mean, lo, hi, float(wins.mean()) if k else np.nan, k)


class SeedSpread(NamedTuple):
    """Per training seed the mean over maps; the std (ddof 1) and range of those means."""

    means: dict
    std: float
    range: float
    seeds: int


def seed_spread(values_by_seed: dict) -> SeedSpread:
    """Seed-to-seed spread of a method: ``values_by_seed`` maps each seed to its per-map values.
    With fewer than two seeds there is no spread (std and range NaN)."""
    means = {seed: mean_interval(v)[0] for seed, v in values_by_seed.items()}
    m = np.array([v for v in means.values() if np.isfinite(v)])
    if m.size < 2:
        return SeedSpread(means, np.nan, np.nan, int(m.size))
    return SeedSpread(means, float(m.std(ddof=1)), float(m.max() - m.min()), int(m.size))
