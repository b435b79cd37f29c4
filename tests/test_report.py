"""Predictions, tables and modulo colouring on small real files (issue 5).

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
from fesr.report.tables import cost_table
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
        prediction_metrics(out, root / "u_x1.nc", "bicubic", "test_random", 4)


def test_prediction_file_without_u_is_named(tmp_path):
    path = tmp_path / "u_x2.nc"
    xr.Dataset({"v": ("sample", np.zeros(2))}).to_netcdf(path)
    with pytest.raises(FieldFileError, match=f"{path}.*lacks variable"):
        prediction_metrics(path, path, "m", "test_random", 2)


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
            "mse": [0, 0, 1e-4, 1e-4],
            "seconds": [4.0, 4.0, 1.0, 1.0],
        }
    )
    t = cost_table(sr, fe, {"s": np.array([1.0, 2.0])}).set_index("approach")
    # SR time = LR solve time of the same sample + inference: mean(1.5, 3.5) = 2.5
    assert t.loc["liif", "seconds"] == pytest.approx(2.5)
    assert t.loc["liif", "rel_l2"] == pytest.approx(0.2)
    assert t.loc["liif", "speedup_vs_direct"] == pytest.approx(4.0 / 2.5)
    assert t.loc["fe_x2_interp", "speedup_vs_direct"] == pytest.approx(4.0)
    assert t.loc["fe_direct", "rel_l2"] == 0


def test_validation_curve_summary_and_figure(tmp_path):
    from fesr.report.figures_misc import curve_summary
    from fesr.report.figures_misc import main as figures_main

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
