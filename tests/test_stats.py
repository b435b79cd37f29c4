"""The 95% intervals of the tables, against hand-computed values."""

import math

import numpy as np
import pandas as pd
import pytest

from fesr.report.stats import format_interval, interval_by, mean_interval
from fesr.report.tables import wide_metric_table

# t_{0.975, 3} from a printed t table; s of [1, 2, 3, 4] is sqrt(5/3).
T_0975_3 = 3.182446305


def test_t_interval_matches_a_hand_computation():
    mean, lo, hi, k = mean_interval([1.0, 2.0, 3.0, 4.0])
    half = T_0975_3 * math.sqrt(5.0 / 3.0) / 2.0  # t * s / sqrt(4)
    assert (mean, k) == (2.5, 4)
    assert lo == pytest.approx(2.5 - half, rel=1e-8)
    assert hi == pytest.approx(2.5 + half, rel=1e-8)
    assert lo == pytest.approx(0.445739, abs=1e-6)


def test_two_maps_use_the_wide_t_quantile():
    # t_{0.975, 1} = 12.7062; s of [0, 2] is sqrt(2); half = 12.7062 * sqrt(2) / sqrt(2)
    mean, lo, hi, _ = mean_interval([0.0, 2.0])
    assert (lo, hi) == (pytest.approx(1 - 12.7062047, rel=1e-7), pytest.approx(1 + 12.7062047))


def test_one_map_has_no_interval_and_nan_is_ignored():
    mean, lo, hi, k = mean_interval([3.0, np.nan])
    assert (mean, k) == (3.0, 1) and math.isnan(lo) and math.isnan(hi)
    assert format_interval(mean, lo, hi) == "3"
    assert format_interval(2.5, 0.4457, 4.554) == "2.5 [0.4457, 4.554]"


def test_identical_maps_give_a_zero_width_interval():
    assert mean_interval([0.2] * 5)[1:3] == (pytest.approx(0.2), pytest.approx(0.2))


def test_interval_by_groups():
    df = pd.DataFrame({"m": ["a"] * 4 + ["b"] * 2, "v": [1, 2, 3, 4, 5, 5]})
    out = interval_by(df, ["m"], "v").set_index("m")
    assert out.loc["a", "mean"] == 2.5 and out.loc["a", "maps"] == 4
    assert out.loc["b", "low"] == pytest.approx(5.0)


def test_table_cells_carry_the_interval_over_maps():
    rows = [
        {"split": "test_random", "method": "liif", "scale": 4, "sample": k, "mse": v}
        for k, v in enumerate([1e-3, 2e-3, 3e-3, 4e-3])
    ]
    numbers, display = wide_metric_table(
        pd.DataFrame(rows), ["liif"], [4], [("mse_e3", "mse", 1e3)]
    )
    row = numbers.iloc[0]
    assert row["mse_e3_x4"] == pytest.approx(2.5)
    assert row["mse_e3_x4_lo"] == pytest.approx(0.445739, abs=1e-6)
    assert row["maps_x4"] == 4
    assert display.iloc[0]["mse_e3_x4"] == "2.5 [0.4457, 4.554]"
