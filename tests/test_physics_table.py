"""table_physics: variants paired with their base models, checked against hand computations."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fesr.model_names import training_variant_base
from fesr.report.physics_table import physics_rows, table_physics, variant_pairs


def test_training_variant_base_strips_training_tokens_only():
    assert training_variant_base("nhcsr-energy") == "nhcsr"
    assert training_variant_base("liif-hom") == "liif"
    assert training_variant_base("nhcsr-pe_ipe-h1") == "nhcsr-pe_ipe"
    assert training_variant_base("liif-energy-hom") == "liif"
    assert training_variant_base("nhcsr-edsr") is None
    assert training_variant_base("liif") is None
    with pytest.raises(ValueError, match="seed replica"):
        training_variant_base("nhcsr-energy-seed1")
    with pytest.raises(ValueError, match="unknown method"):
        training_variant_base("foo-energy")


def test_variant_pairs_need_the_base_in_the_table():
    assert variant_pairs(["liif", "liif-energy", "nhcsr-hom", "metasr"]) == [
        ("liif-energy", "liif")
    ]


def _rows(method, split, scale, values, norm_scale=(1.0, 10.0, 5.0)):
    return pd.DataFrame(
        {
            "split": split,
            "method": method,
            "scale": scale,
            "sample": np.arange(len(values)),
            "rel_l2": np.asarray(values) * norm_scale[0],
            "rel_energy": np.asarray(values) * norm_scale[1],
            "rel_h1": np.asarray(values) * norm_scale[2],
        }
    )


def test_paired_difference_interval_and_lr_field_by_hand(tmp_path):
    base = np.array([0.30, 0.25, 0.40, 0.35, 0.28])
    base_seed1 = np.array([0.34, 0.27, 0.38, 0.31, 0.30])
    variant = np.array([0.20, 0.22, 0.41, 0.30, 0.20])
    lr = np.array([0.90, 0.80, 0.85, 0.95, 0.70])
    metrics = pd.concat(
        [
            _rows("liif", "test_random", 8, base),
            _rows("liif-seed1", "test_random", 8, base_seed1),
            _rows("liif-energy", "test_random", 8, variant),
        ]
    )
    lr_rows = _rows("fe_x1_interp", "test_random", 8, lr)
    t = physics_rows(metrics, lr_rows, ["liif", "liif-energy"], [8])
    assert list(t["norm"]) == ["rel_l2", "rel_energy", "rel_h1"]
    row = t[t["norm"] == "rel_energy"].iloc[0]
    base_mean = (base + base_seed1) / 2 * 10.0
    d = variant * 10.0 - base_mean
    half = stats.t.ppf(0.975, 4) * d.std(ddof=1) / np.sqrt(5)
    assert row["variant_mean"] == pytest.approx(variant.mean() * 10.0)
    assert row["base_mean"] == pytest.approx(base_mean.mean())
    assert row["diff"] == pytest.approx(d.mean())
    assert (row["diff_lo"], row["diff_hi"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert row["variant_win_fraction"] == pytest.approx(np.mean(d < 0))
    assert row["seeds_base"] == 2 and row["seeds_variant"] == 1
    assert row["seed_std_base"] == pytest.approx(
        np.std([base.mean() * 10, base_seed1.mean() * 10], ddof=1)
    )
    assert np.isnan(row["seed_std_variant"])
    dl = (variant - lr) * 10.0
    assert row["diff_lr_field"] == pytest.approx(dl.mean())
    assert bool(row["resolved_lr_field"])  # every map improves on its LR field by a wide margin


def test_unpaired_maps_are_refused():
    metrics = pd.concat(
        [
            _rows("liif", "test_random", 8, [0.3, 0.2, 0.4]),
            _rows("liif-hom", "test_random", 8, [0.3, 0.2]),
        ]
    )
    lr_rows = _rows("fe_x1_interp", "test_random", 8, [0.9, 0.8, 0.7])
    with pytest.raises(ValueError, match="same maps"):
        physics_rows(metrics, lr_rows, ["liif", "liif-hom"], [8])


def test_written_table_without_variants_says_so(tmp_path):
    metrics = _rows("liif", "test_random", 4, [0.3, 0.2])
    metrics_file = tmp_path / "m.csv"
    metrics.to_csv(metrics_file, index=False)
    base = _rows("fe_x1_interp", "test_random", 4, [0.9, 0.8]).rename(
        columns={"method": "approach"}
    )
    base = base.assign(mse=0.1, ssim=0.5)
    base_file = tmp_path / "b.csv"
    base.to_csv(base_file, index=False)
    table_physics([metrics_file], [base_file], ["liif"], [4], tmp_path / "table_physics")
    text = (tmp_path / "table_physics.md").read_text()
    assert "no physics-aware variant" in text
    assert pd.read_csv(tmp_path / "table_physics.csv").empty
