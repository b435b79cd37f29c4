"""Predictions, tables and modulo colouring on small real files.

The prediction test runs the real ``fesr.evaluate.predict`` CLI with a real (parameter-free)
bicubic checkpoint on small NetCDF inputs and checks the streamed output against the bicubic
interpolant computed independently with ``grid_sample``.
"""

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from fesr.checkpoint import save_checkpoint
from fesr.coords import node_positions
from fesr.evaluate.io import FieldFileError
from fesr.evaluate.metrics import prediction_metrics
from fesr.evaluate.predict import main as predict_main
from fesr.models.registry import resolve_model_config
from fesr.report.colouring import modulo_values
from fesr.report.cost_table import cost_table
from fesr.report.tables import main as tables_main

N, E, SAMPLES, U_SCALE = 32, 64, 2, 0.004


def write_split(root, rng):
    """Small LR field and coefficient files in the layout of SPEC 1."""
    x = node_positions(N)
    u = rng.random((SAMPLES, N + 1, N + 1)) * U_SCALE
    xr.Dataset(
        {"u": (("sample", "y", "x"), u), "solve_time": ("sample", np.full(SAMPLES, 0.01))},
        coords={"sample": np.arange(SAMPLES), "y": x, "x": x},
    ).to_netcdf(root / "u_x1.nc")
    A = np.where(rng.random((SAMPLES, E, E)) < 0.5, 100.0, 1.0)
    xr.Dataset({"A": (("sample", "cy", "cx"), A)}, coords={"sample": np.arange(SAMPLES)}).to_netcdf(
        root / "coefficient.nc"
    )
    return u


@pytest.fixture
def bicubic_run(tmp_path, tiny_config):
    rng = np.random.default_rng(0)
    u_lr = write_split(tmp_path, rng)
    ckpt = save_checkpoint(
        tmp_path / "checkpoint.pt",
        model_name="bicubic",
        model_cfg=resolve_model_config("bicubic", tiny_config),
        state_dict={},
        iteration=0,
        u_scale=U_SCALE,
        contrast=[1.0, 100.0],
    )
    out = tmp_path / "pred" / "u_x4.nc"
    predict_main(
        [
            "--model",
            "bicubic",
            "--checkpoint",
            str(ckpt),
            "--lr-data",
            str(tmp_path / "u_x1.nc"),
            "--coefficient",
            str(tmp_path / "coefficient.nc"),
            "--alpha",
            "4",
            "--chunk",
            "1000",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    return tmp_path, u_lr, out


def test_prediction_file_is_bicubic_in_physical_units(bicubic_run):
    _, u_lr, out = bicubic_run
    m = 4 * N
    with xr.open_dataset(out) as ds:
        assert ds["u"].shape == (SAMPLES, m + 1, m + 1)
        np.testing.assert_allclose(ds["x"].values, node_positions(m))
        assert ds.attrs["model"] == "bicubic" and ds.attrs["u_scale"] == U_SCALE
        assert (ds["seconds"].values > 0).all() and np.isfinite(ds["peak_mb"].values).all()
        c = torch.as_tensor(2 * node_positions(m) - 1)
        yy, xx = torch.meshgrid(c, c, indexing="ij")
        grid = torch.stack([xx, yy], -1)[None].float()
        for k in range(SAMPLES):
            lr = torch.as_tensor(u_lr[k] / U_SCALE).float()[None, None]
            ref = torch.nn.functional.grid_sample(
                lr, grid, mode="bicubic", align_corners=True, padding_mode="border"
            )
            np.testing.assert_allclose(
                ds["u"].values[k], ref[0, 0].numpy() * U_SCALE, rtol=1e-4, atol=1e-6 * U_SCALE
            )
    assert not list(out.parent.glob(".*tmp*")), "temporary file left behind"


def test_metrics_against_reference_with_other_grid_is_an_error(bicubic_run):
    root, _, out = bicubic_run
    # the LR file is a valid field file on a different grid: the error must name both files
    with pytest.raises(FieldFileError, match="coordinate 'x'.*differs"):
        prediction_metrics(
            out, root / "u_x1.nc", root / "coefficient.nc", "bicubic", "test_random", 4
        )


def test_prediction_file_without_u_is_named(tmp_path):
    path = tmp_path / "u_x2.nc"
    xr.Dataset({"v": ("sample", np.zeros(2))}).to_netcdf(path)
    with pytest.raises(FieldFileError, match=f"{path}.*lacks variable"):
        prediction_metrics(path, path, path, "m", "test_random", 2)


def test_predict_with_missing_checkpoint_names_it(tmp_path):
    write_split(tmp_path, np.random.default_rng(1))
    missing = tmp_path / "models" / "liif" / "checkpoint.pt"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        predict_main(
            [
                "--model",
                "liif",
                "--checkpoint",
                str(missing),
                "--lr-data",
                str(tmp_path / "u_x1.nc"),
                "--coefficient",
                str(tmp_path / "coefficient.nc"),
                "--alpha",
                "2",
                "--out",
                str(tmp_path / "p.nc"),
            ]
        )
    assert not (tmp_path / "p.nc").exists()


def test_modulo_colouring_values():
    field = np.array([0.0, 0.25, 0.5, 1.0])
    vals = modulo_values(field, 0.0, 1.0, 8)
    np.testing.assert_allclose(vals, np.mod(field * 255 * 8, 255))
    assert modulo_values(field, 0.0, 1.0, 1)[1] == pytest.approx(63.75)
    with pytest.raises(ValueError, match="vmax > vmin"):
        modulo_values(field, 1.0, 1.0, 8)


def parts(tmp_path, methods, scales, splits=("test_random",), samples=2):
    rows = []
    for sp in splits:
        for i, m in enumerate(methods):
            for s in scales:
                for k in range(samples):
                    rows.append(
                        {
                            "method": m,
                            "split": sp,
                            "scale": s,
                            "sample": k,
                            "mse": 1e-3 * (i + 1) * s,
                            "mae": 0.01,
                            "psnr": 30.0,
                            "ssim": 0.9,
                            "rel_l2": 0.01 * (i + 1),
                            "rel_energy": 0.1,
                            "rel_h1": 0.1,
                            "seconds": 0.5,
                            "peak_mb": 10.0,
                        }
                    )
    path = tmp_path / "parts.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_table1_has_a_row_per_method_and_a_column_per_scale(tmp_path):
    methods, scales = ["bicubic", "liif", "nhcsr"], [2, 4, 8]
    p = parts(tmp_path, methods, scales, splits=("test_random", "test_deterministic"))
    tables_main(
        [
            "table1",
            "--metrics",
            str(p),
            "--methods",
            *methods,
            "--scales",
            "2",
            "4",
            "8",
            "--train-scales",
            "2",
            "4",
            "--out-prefix",
            str(tmp_path / "table1"),
        ]
    )
    t = pd.read_csv(tmp_path / "table1.csv")
    assert list(t["method"]) == methods * 2
    means = [f"mse_e3_x{s}" for s in scales] + [f"ssim_x{s}" for s in scales]
    assert means == list(t.columns[2 : 2 + len(means)])
    assert {"mse_e3_x4_lo", "mse_e3_x4_hi", "maps_x4"} <= set(t.columns)
    liif = t[(t["split"] == "test_random") & (t["method"] == "liif")].iloc[0]
    assert liif["mse_e3_x4"] == pytest.approx(2 * 4)  # mean of 2e-3 * 4, shown in 1e-3
    md = (tmp_path / "table1.md").read_text()
    assert "out of distribution" in md and "95% t interval" in md
    assert "\\begin{tabular}" in (tmp_path / "table1.tex").read_text()


def test_ablation_table_pairs_each_variant_with_nhcsr(tmp_path):
    # per-map MSE x1e-3: nhcsr [1, 2, 3], variant [2, 2, 5]; differences [-1, 0, -2]: mean -1,
    # sd 1, so the 95% t interval is -1 +- t(0.975, 2) / sqrt(3) = -1 +- 4.302653 / 1.732051
    rows = [
        {"method": m, "split": "test_random", "scale": 4, "sample": k, "mse": v * 1e-3,
         "mae": 0.01, "ssim": 0.9}
        for m, vals in {"nhcsr-pe_plain": [2, 2, 5], "nhcsr": [1, 2, 3]}.items()
        for k, v in enumerate(vals)
    ]  # fmt: skip
    path = tmp_path / "parts.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    args = ["--metrics", str(path), "--methods", "nhcsr-pe_plain", "nhcsr", "--scales", "4"]
    tables_main(["table2", *args, "--out-prefix", str(tmp_path / "table2")])
    p = pd.read_csv(tmp_path / "table2_paired.csv")
    assert list(p["method"]) == ["nhcsr-pe_plain"]
    half = 4.302653 / np.sqrt(3)
    assert p["mse_e3_diff"].iloc[0] == pytest.approx(-1.0)
    assert p["mse_e3_diff_lo"].iloc[0] == pytest.approx(-1 - half, rel=1e-6)
    assert p["mse_e3_diff_hi"].iloc[0] == pytest.approx(-1 + half, rel=1e-6)
    assert p["nhcsr_win_fraction"].iloc[0] == pytest.approx(2 / 3)
    assert not p["resolved"].iloc[0]
    body = [ln for ln in (tmp_path / "table2.md").read_text().splitlines() if ln.startswith("| t")]
    assert len(body) == 2 and not any("*" in ln for ln in body)
    # nhcsr [1, 2, 3], the variant worse by exactly 1 on every map: resolved, its cell marked
    rows = [dict(r, mse=(r["sample"] + 1 + (r["method"] != "nhcsr")) * 1e-3) for r in rows]
    pd.DataFrame(rows).to_csv(path, index=False)
    tables_main(["table3", *args, "--out-prefix", str(tmp_path / "table3")])
    p = pd.read_csv(tmp_path / "table3_paired.csv")
    assert p["resolved"].iloc[0] and p["mse_e3_diff"].iloc[0] == pytest.approx(-1.0)
    body = [ln for ln in (tmp_path / "table3.md").read_text().splitlines() if ln.startswith("| t")]
    assert "nhcsr-pe_plain" in body[0] and "] *" in body[0] and "*" not in body[1]


def test_table_with_a_missing_method_is_an_error(tmp_path):
    p = parts(tmp_path, ["liif"], [4])
    with pytest.raises(ValueError, match="nhcsr"):
        tables_main(
            [
                "table2",
                "--metrics",
                str(p),
                "--methods",
                "liif",
                "nhcsr",
                "--scales",
                "4",
                "--out-prefix",
                str(tmp_path / "t2"),
            ]
        )


def test_cost_table_times_and_speedup():
    sr = pd.DataFrame(
        {
            "method": ["liif", "liif"],
            "split": ["s", "s"],
            "scale": [4, 4],
            "sample": [0, 1],
            "rel_l2": [0.1, 0.3],
            "rel_energy": [0.2, 0.2],
            "rel_h1": [0.2, 0.2],
            "mse": [1e-3, 3e-3],
            "seconds": [0.5, 1.5],
        }
    )
    fe = pd.DataFrame(
        {
            "approach": ["fe_direct", "fe_direct", "fe_x2_interp", "fe_x2_interp"],
            "split": ["s"] * 4,
            "scale": [4] * 4,
            "sample": [0, 1, 0, 1],
            "rel_l2": [0, 0, 0.05, 0.05],
            "rel_energy": [0, 0, 0.1, 0.1],
            "rel_h1": [0, 0, 0.1, 0.1],
            "mse": [0, 0, 1e-4, 1e-4],
            "seconds": [4.0, 4.0, 1.0, 1.0],
            "setup_seconds": [1.0, 1.0, 0.25, 0.25],
            "solve_seconds": [3.0, 3.0, 0.75, 0.75],
            "cores": [2, 2, 1, 1],
        }
    )
    t = cost_table(sr, fe, {"s": np.array([1.0, 2.0])}).set_index("approach")
    # SR time = LR solve time of the same sample + inference: mean(1.5, 3.5) = 2.5
    assert t.loc["liif", "seconds"] == pytest.approx(2.5)
    assert t.loc["liif", "rel_l2"] == pytest.approx(0.2)
    assert t.loc["liif", "speedup_vs_direct"] == pytest.approx(4.0 / 2.5)
    assert t.loc["fe_x2_interp", "speedup_vs_direct"] == pytest.approx(4.0)
    assert t.loc["fe_direct", "rel_l2"] == 0
    # SR has no per-map set-up: all of its time is per right-hand side, on one core
    assert (t.loc["liif", "setup_seconds"], t.loc["liif", "solve_seconds"]) == (0.0, 2.5)
    assert t.loc["liif", "cores"] == 1 and t.loc["liif", "core_seconds"] == pytest.approx(2.5)
    # the direct solve ran decomposed over 2 ranks: 4 s wall are 8 core-seconds
    assert t.loc["fe_direct", "cores"] == 2 and t.loc["fe_direct", "core_seconds"] == 8.0
    assert t.loc["fe_direct", "setup_seconds"] == 1.0


def test_lod_break_even_and_corrected_sr_times():
    from fesr.report.cost_table import break_even, cost_answer

    def rows(key, points):
        return [
            {key: name, "split": "s", "scale": 8, "sample": k, "rel_l2": e, "rel_energy": e,
             "rel_h1": e, "mse": e * 1e-3, "seconds": su + so, "setup_seconds": su,
             "solve_seconds": so, "cores": 1}
            for name, (su, so, e) in points.items()
            for k in range(2)
        ]  # fmt: skip

    # direct: 0.2 s set-up + 0.1 s per solve; LOD: 1.0 s + 0.002 s: it saves 0.098 s per
    # right-hand side after paying 0.8 s more, so it is cheaper from the 9th (8.16 rounded up)
    fe = rows("approach", {
        "fe_direct": (0.2, 0.1, 0.0), "fe_x4_interp": (0.05, 0.03, 0.3),
        "fe_x2_interp": (0.01, 0.01, 0.6), "lod_k2": (1.0, 0.002, 0.295),
        "liif+cg1": (0.15, 0.05, 0.2),
    })  # fmt: skip
    sr = [{k: v for k, v in r.items() if "_seconds" not in k and k != "cores"}
          for r in rows("method", {"liif": (0.0, 0.5, 0.8)})]  # fmt: skip
    t = cost_table(pd.DataFrame(sr), pd.DataFrame(fe), {"s": np.array([1.0, 1.0])})
    t = t.set_index("approach")
    assert break_even(t.loc["lod_k2"], t.loc["fe_direct"]) == 9
    # more set-up and no saving per solve: never; cheaper in both: from the first
    assert break_even(t.loc["fe_direct"], t.loc["fe_x4_interp"]) == np.inf
    assert break_even(t.loc["fe_x2_interp"], t.loc["fe_direct"]) == 1
    assert t.loc["lod_k2", "kind"] == "PG-LOD"
    # a corrected SR field pays the LR solve too (1 s), on top of SR, set-up and correction
    assert t.loc["liif+cg1", "seconds"] == pytest.approx(1.2)
    assert t.loc["liif+cg1", "solve_seconds"] == pytest.approx(1.05)
    text = cost_answer(t.reset_index())
    # fe_x4_interp (0.3) is within 2% of LOD's energy error 0.295: the same accuracy; it pays
    # 0.95 s less set-up and 0.028 s more per solve: 34 right-hand sides
    assert "lod_k2 (set-up 1 s, 2 ms per solve) breaks even with fe_direct after 9" in text
    assert "fe_x4_interp after 34 right-hand sides" in text
    assert "In the relative H1 seminorm the front is" in text


def test_validation_curve_summary_and_figure(tmp_path):
    from fesr.report.figures_training import curve_summary
    from fesr.report.figures_training import main as figures_main

    # val 1.0 at 0, ... 0.12 at iteration 80 (the last at or before 80% of 100), 0.1 at 100
    h = pd.DataFrame(
        {
            "iteration": [0, 20, 40, 60, 80, 90, 100],
            "loss": np.nan,
            "val_loss": [1.0, 0.5, 0.3, 0.2, 0.12, np.nan, 0.1],
            "lr": 1e-3,
            "seconds": 0.0,
        }
    )
    path = tmp_path / "history.csv"
    h.to_csv(path, index=False)
    fall, last = curve_summary(h.dropna(subset=["val_loss"]))
    assert fall == pytest.approx(10.0)
    assert last == pytest.approx((0.12 - 0.1) / 0.12)
    figures_main(
        [
            "fig_training",
            "--histories",
            str(path),
            str(path),
            "--labels",
            "a",
            "b",
            "--out-prefix",
            str(tmp_path / "fig_training"),
        ]
    )
    assert (tmp_path / "fig_training.png").stat().st_size > 0
    summary = pd.read_csv(tmp_path / "fig_training.csv")
    assert list(summary["model"]) == ["a", "b"]
    assert summary["iterations"].tolist() == [100, 100]
    assert summary["last_fifth_change"].iloc[0] == pytest.approx((0.12 - 0.1) / 0.12)
    assert summary["fall"].iloc[0] == pytest.approx(10.0)
    assert not summary["flat"].any()  # 17% > 5%


def test_last_fifth_change_is_the_fitted_trend_not_two_noisy_points():
    from fesr.report.figures_training import curve_summary

    # Last fifth of a 100-iteration run: iterations 80..100 (t = -2..2 in steps of 5). log val =
    # log 0.1 + d with d = [.05, -.05, 0, .05, -.05]: least squares slope per step
    # sum(t d) / sum(t^2) = -0.1 / 10, so the line falls by 0.04 in log over the 4 steps:
    # change 1 - exp(-0.04). The two end values alone differ by 1 - exp(-0.1) (9.5%).
    d = np.array([0.05, -0.05, 0.0, 0.05, -0.05])
    h = pd.DataFrame(
        {
            "iteration": [0, 40, 80, 85, 90, 95, 100],
            "val_loss": np.r_[1.0, 0.3, 0.1 * np.exp(d)],
        }
    )
    fall, last = curve_summary(h)
    assert fall == pytest.approx(1.0 / (0.1 * np.exp(-0.05)))
    assert last == pytest.approx(1 - np.exp(-0.04))
    # a flat run with one validation value is flat
    assert curve_summary(pd.DataFrame({"iteration": [0], "val_loss": [0.5]})) == (1.0, 0.0)


def tidy_rows(split, scale, values, key="method"):
    """Rows of a metrics part (``key`` method) or fe_baselines part (``key`` approach) from
    ``{name: per-sample mse in units of 1e-3}``."""
    return [
        {key: name, "split": split, "scale": scale, "sample": k, "mse": v * 1e-3, "ssim": 0.9}
        for name, vals in values.items()
        for k, v in enumerate(vals)
    ]


def test_table1_averages_seeds_adds_baselines_and_pairs_with_nhcsr(tmp_path):
    # NH-CSR's three seeds average per map to [2, 3, 4, 5] (per-seed means 2.5, 4.5, 3.5: std 1)
    sr = {
        "nhcsr": [1, 2, 3, 4],
        "nhcsr-seed1": [3, 4, 5, 6],
        "nhcsr-seed2": [2, 3, 4, 5],
        "liif": [3, 5, 4, 9],
    }
    fe = {"fe_direct": [0] * 4, "fe_x1_interp": [12, 14, 13, 16], "fe_x2_interp": [1] * 4}
    metrics, baselines = tmp_path / "metrics.csv", tmp_path / "fe.csv"
    pd.DataFrame(tidy_rows("test_random", 4, sr)).to_csv(metrics, index=False)
    pd.DataFrame(tidy_rows("test_random", 4, fe, key="approach")).to_csv(baselines, index=False)
    args = ["table1", "--metrics", str(metrics), "--methods", "liif", "nhcsr"]
    args += ["--scales", "4", "--train-scales", "2", "--out-prefix", str(tmp_path / "table1")]
    tables_main([*args, "--baselines", str(baselines)])

    t = pd.read_csv(tmp_path / "table1.csv").set_index("method")
    assert list(t.index) == ["liif", "nhcsr", "fe_x1_interp"]  # LR-solve baselines only
    assert t.loc["nhcsr", "seeds"] == 3 and t.loc["liif", "seeds"] == 1
    # t interval of [2, 3, 4, 5]: 3.5 -+ t_{0.975,3} sqrt(5/3) / 2 (test_stats: 2.054261)
    assert t.loc["nhcsr", "mse_e3_x4"] == pytest.approx(3.5)
    assert t.loc["nhcsr", "mse_e3_x4_lo"] == pytest.approx(3.5 - 2.054261, abs=1e-6)

    p = pd.read_csv(tmp_path / "table1_paired.csv").set_index("method")
    assert list(p.index) == ["liif", "fe_x1_interp"]
    # liif: d = [-1, -2, 0, -4], mean -1.75, s^2 = 8.75 / 3; NH-CSR lower on 3 of 4 maps
    half = 3.182446305 * np.sqrt(8.75 / 3) / 2
    assert p.loc["liif", "mse_e3_diff"] == pytest.approx(-1.75)
    assert p.loc["liif", "mse_e3_diff_hi"] == pytest.approx(-1.75 + half)
    assert p.loc["liif", "nhcsr_win_fraction"] == pytest.approx(0.75)
    assert not p.loc["liif", "resolved"]
    # the difference 1.75 is below twice NH-CSR's seed std 1; fe_x1_interp's 10.25 is above
    assert p.loc["liif", "seed_std_nhcsr_mse_e3"] == pytest.approx(1.0)
    assert not p.loc["liif", "exceeds_seed_noise"]
    # fe_x1_interp: d = [-10, -11, -9, -11], mean -10.25, s^2 = 2.75 / 3: resolved
    half = 3.182446305 * np.sqrt(2.75 / 3) / 2
    assert p.loc["fe_x1_interp", "mse_e3_diff_lo"] == pytest.approx(-10.25 - half)
    assert p.loc["fe_x1_interp", "resolved"] and p.loc["fe_x1_interp", "exceeds_seed_noise"]
    assert p.loc["fe_x1_interp", "nhcsr_win_fraction"] == 1.0

    md = (tmp_path / "table1.md").read_text()
    assert "13.75 [" in md and "] *" in md and md.count("] *") == 1  # only fe_x1_interp's cell
    assert "arithmetic mean" in md and "seeds" in md
    assert "resolved" in (tmp_path / "table1_paired.md").read_text()
    assert "\\begin{tabular}" in (tmp_path / "table1_paired.tex").read_text()

    # without nhcsr the paired table is written, empty, with a note
    tables_main(["table1", "--metrics", str(metrics), "--methods", "liif", *args[6:]])
    assert pd.read_csv(tmp_path / "table1_paired.csv").empty
    assert "not among Table I's methods" in (tmp_path / "table1_paired.md").read_text()


def test_table1_baselines_without_lr_solves_is_an_error(tmp_path):
    metrics, baselines = tmp_path / "metrics.csv", tmp_path / "fe.csv"
    pd.DataFrame(tidy_rows("s", 4, {"nhcsr": [1, 2]})).to_csv(metrics, index=False)
    pd.DataFrame(tidy_rows("s", 4, {"fe_direct": [0, 0]}, key="approach")).to_csv(
        baselines, index=False
    )
    with pytest.raises(ValueError, match="none of the approaches.*'fe_direct'"):
        tables_main(
            ["table1", "--metrics", str(metrics), "--methods", "nhcsr", "--scales", "4"]
            + ["--train-scales", "2", "--out-prefix", str(tmp_path / "t1")]
            + ["--baselines", str(baselines)]
        )
    assert not list(tmp_path.glob("t1*"))


def test_table_cost_front_answer_and_figure(tmp_path):
    from fesr.report.figures_cost import main as figures_main

    # (seconds, rel_l2) per sample; the LR solve takes 1 s on both samples
    def rows(key, scale, points):
        return [
            {key: name, "split": "s", "scale": scale, "sample": k, "rel_l2": e,
             "rel_energy": e, "rel_h1": e, "mse": e * 1e-3, "seconds": t,
             "setup_seconds": t / 2, "solve_seconds": t / 2, "cores": 1}
            for name, pts in points.items()
            for k, (t, e) in enumerate(pts)
        ]  # fmt: skip

    sr = rows("method", 8, {"liif": [(0.5, 0.35)] * 2})
    # NH-CSR seeds: per sample (1 s, 0.08) and (2 s, 0.12): mean 1.5 s + 1 s LR solve, 0.1
    sr += rows("method", 8, {"nhcsr": [(1.0, 0.08)] * 2, "nhcsr-seed1": [(2.0, 0.12)] * 2})
    sr += rows("method", 2, {"liif": [(0.5, 0.4)] * 2})
    fe = rows(
        "approach",
        8,
        {
            "fe_direct": [(8.0, 0.0)] * 2,
            "fe_x4_interp": [(3.0, 0.15)] * 2,
            "fe_x2_interp": [(1.5, 0.3)] * 2,
            "fe_x1_interp": [(1.0, 0.7)] * 2,
            "hom_geometric_interp": [(1.0, 0.44)] * 2,
            "hom_harmonic_interp": [(1.0, 0.9)] * 2,
        },
    )
    fe += rows("approach", 2, {"fe_direct": [(2.0, 0.0)] * 2, "fe_x1_interp": [(1.0, 0.5)] * 2})
    pd.DataFrame(sr).to_csv(tmp_path / "sr.csv", index=False)
    pd.DataFrame(fe).to_csv(tmp_path / "fe.csv", index=False)
    xr.Dataset({"solve_time": ("sample", [1.0, 1.0])}).to_netcdf(tmp_path / "u_x1.nc")
    tables_main(
        ["table_cost", "--metrics", str(tmp_path / "sr.csv"), "--baselines"]
        + [str(tmp_path / "fe.csv"), "--lr-data", f"s={tmp_path / 'u_x1.nc'}"]
        + ["--methods", "liif", "nhcsr", "--scales", "2", "8"]
        + ["--out-prefix", str(tmp_path / "table_cost")]
    )
    t = pd.read_csv(tmp_path / "table_cost.csv")
    x8 = t[t["scale"] == 8].set_index("approach")
    assert x8.loc["nhcsr", "seeds"] == 2
    assert (x8.loc["nhcsr", "seconds"], x8.loc["nhcsr", "rel_l2"]) == (2.5, pytest.approx(0.1))
    assert x8.loc["hom_geometric_interp", "kind"] == "Homogenized LR solve + Q1"
    front = set(x8.index[x8["pareto"]])
    # fe_x4 is dominated by nhcsr, fe_x1 and hom_harmonic by hom_geometric (same time), liif by
    # fe_x2_interp (same time, lower error)
    assert front == {"hom_geometric_interp", "fe_x2_interp", "nhcsr", "fe_direct"}
    assert "pareto_energy" in x8.columns and x8.loc["fe_direct", "pareto_energy"]

    answer = (tmp_path / "table_cost_answer.md").read_text().split("\n\n")
    x8_text = next(p for p in answer if p.startswith("**s, x8**"))
    assert "SR methods on the L2 front: nhcsr." in x8_text
    assert "The bar, fe_x4_interp" in x8_text
    assert "beaten most cheaply by nhcsr (2.5 s, relative L2 0.1, 0.312x" in x8_text
    # at x2 there is no fe_x4_interp: the bar is the finest coarse solve, fe_x1_interp
    x2_text = next(p for p in answer if p.startswith("**s, x2**"))
    assert "The bar, fe_x1_interp" in x2_text and "beaten most cheaply by liif" in x2_text

    figures_main(
        ["fig_cost", "--table", str(tmp_path / "table_cost.csv"), "--split", "s"]
        + ["--out-prefix", str(tmp_path / "fig_cost")]
    )
    assert (tmp_path / "fig_cost.png").stat().st_size > 0


def test_an_error_of_one_or_more_is_never_on_the_front():
    """u = 0 is free with relative error 1: a faster row that is worse than it is dominated."""
    from fesr.report.cost_table import ZERO_FIELD_ERROR, pareto_front

    cost, error = [0.1, 1.0, 2.0], [1.5, 0.5, 0.0]
    assert list(pareto_front(cost, error)) == [True, True, True]
    assert list(pareto_front(cost, error, ZERO_FIELD_ERROR)) == [False, True, True]
