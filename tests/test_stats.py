"""The 95% intervals of the tables, against hand-computed values."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fesr.model_names import replica_of
from fesr.report.accuracy_tables import wide_metric_table
from fesr.report.cost_table import pareto_front
from fesr.report.stats import (
    format_interval,
    interval_by,
    mean_interval,
    paired_difference,
    seed_spread,
)
from fesr.report.tidy import average_seeds

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


# t_{0.975, 4} from a printed t table
T_0975_4 = 2.776445105


def test_paired_difference_matches_a_hand_computation():
    a, b = [1.0, 3.0, 2.0, 5.0, 1.0], [2.0, 2.0, 4.0, 4.0, 3.0]
    # d = a - b = [-1, 1, -2, 1, -2]: mean -0.6, s^2 = 9.2 / 4 = 2.3
    d = paired_difference(a, b)
    half = T_0975_4 * math.sqrt(2.3) / math.sqrt(5.0)
    assert (d.mean, d.maps) == (pytest.approx(-0.6), 5)
    assert (d.low, d.high) == (pytest.approx(-0.6 - half), pytest.approx(-0.6 + half))
    # the same interval from scipy's paired t test, computed another way
    ci = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert (d.low, d.high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert d.win_fraction == pytest.approx(3 / 5)  # a < b on maps 0, 2, 4
    assert not d.resolved
    # a score (higher is better): a wins on maps 1 and 3
    assert paired_difference(a, b, lower_is_better=False).win_fraction == pytest.approx(2 / 5)


def test_paired_difference_resolved_ties_and_missing_maps():
    d = paired_difference([1.0, 2.0, 3.0, np.nan], [2.0, 3.5, 4.0, 0.0])
    # the NaN map is dropped from both: d = [-1, -1.5, -1], interval below 0
    assert d.maps == 3 and d.mean == pytest.approx(-7 / 6) and d.high < 0 and d.resolved
    same = paired_difference([0.5, 0.7], [0.5, 0.7])
    assert same.win_fraction == 0.0 and not same.resolved  # ties are no win; zero difference
    with pytest.raises(ValueError, match=r"same maps, got \(3,\) and \(2,\)"):
        paired_difference([1.0, 2.0, 3.0], [1.0, 2.0])


def test_seed_spread_of_the_per_seed_means():
    # per-seed means 2, 3, 6: mean 11/3, sum of squares 78/9, std sqrt(13/3), range 4
    spread = seed_spread({0: [1.0, 2.0, 3.0], 1: [2.0, 3.0, 4.0], 2: [6.0, 6.0, 6.0]})
    assert spread.means == {0: 2.0, 1: 3.0, 2: 6.0}
    assert spread.std == pytest.approx(math.sqrt(13 / 3)) and spread.range == 4.0
    assert spread.seeds == 3
    one = seed_spread({0: [1.0, 2.0]})
    assert one.seeds == 1 and math.isnan(one.std) and math.isnan(one.range)


def test_seed_names_and_per_map_average():
    assert replica_of("nhcsr-seed2") == ("nhcsr", 2)
    assert replica_of("nhcsr-no_scs") == ("nhcsr-no_scs", 0)
    assert replica_of("nhcsr-seed0") == ("nhcsr-seed0", 0)  # seed 0 is the plain name
    rows = [
        {"split": "t", "method": m, "scale": 2, "sample": k, "mse": v}
        for m, vals in (("liif", [1.0, 2.0]), ("liif-seed1", [3.0, 6.0]))
        for k, v in enumerate(vals)
    ]
    out = average_seeds(pd.DataFrame(rows))
    assert list(out["method"]) == ["liif", "liif"] and list(out["seeds"]) == [2, 2]
    assert list(out["mse"]) == [2.0, 4.0]
    with pytest.raises(ValueError, match="'liif' and 'liif-seed1' cover different maps"):
        average_seeds(pd.DataFrame(rows[:-1]))


def test_pareto_front_on_a_hand_made_table():
    #        A    B    C (dominated by B)  D (= B)  E (direct)  F (dominated by A)  G (no time)
    cost = [1.0, 2.0, 3.0, 2.0, 10.0, 1.0, np.nan]
    error = [0.5, 0.3, 0.4, 0.3, 0.0, 0.6, 0.1]
    assert list(pareto_front(cost, error)) == [True, True, False, True, True, False, False]
