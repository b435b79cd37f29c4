"""NaN never scores, and inputs of one run agree on their physics.

``predict`` refuses NaN or inf in its LR fields, its coefficients and its checkpoint's u_scale;
``metrics`` scores a non-finite prediction NaN in every metric (never inf, never a best score)
and refuses a non-finite reference. ``predict`` and ``metrics`` compare the physics (E,
contrast, p_high, source, lr_n) of data, checkpoint and prediction: a mismatch exits 2 in one
line naming both sides, and writes nothing. Real CLIs (in-process through ``fesr.cli.run_main``,
the wrapper their ``__main__`` uses, and once each as a subprocess) on synthetic NetCDF files in
the SPEC 1 layout with the attributes the data stage writes, and a bicubic checkpoint.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import netCDF4
import numpy as np
import pandas as pd
import pytest
from synthetic_data import bicubic_checkpoint, write_split

from fesr.cli import run_main
from fesr.evaluate import metrics, predict

SPLIT, SAMPLES = "test_random", 2
PHYSICS = {"E": 64, "contrast": [1.0, 100.0], "p_high": 0.5, "source": 1.0}


def set_attrs(path, **attrs):
    with netCDF4.Dataset(path, "a") as nc:
        nc.setncatts({k: np.asarray(v, dtype=np.float64) if isinstance(v, list) else v
                      for k, v in attrs.items()})  # fmt: skip


def set_value(path, var, index, value):
    with netCDF4.Dataset(path, "a") as nc:
        nc[var][index] = value


def checkpoint(path, tiny_config, u_scale=1.5, **physics):
    phys = {**PHYSICS, **physics}
    return bicubic_checkpoint(
        path, tiny_config, u_scale=u_scale, contrast=phys["contrast"], physics=phys
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_config):
    root = tmp_path_factory.mktemp("hardening_inputs")
    data = write_split(root / "data", SPLIT, SAMPLES, (1, 2), n=32, E=64)
    for f in data.glob("*.nc"):
        set_attrs(f, split=SPLIT, seed=0, **PHYSICS)
    ckpt = checkpoint(root / "models" / "bicubic" / "checkpoint.pt", tiny_config)
    pred = root / "pred" / "u_x2.nc"
    assert run_main(predict.PROG, predict.main, predict_argv(data, ckpt, pred)) == 0
    return {"root": root, "data": data, "ckpt": ckpt, "pred": pred}


def predict_argv(data, ckpt, out, lr=None, coef=None, ref=None, metrics_out=None):
    argv = ["--model", "bicubic", "--checkpoint", ckpt, "--lr-data", lr or data / "u_x1.nc"]
    argv += ["--coefficient", coef or data / "coefficient.nc", "--split", SPLIT, "--alpha", "2"]
    argv += ["--out", out, "--device", "cpu"]
    if ref is not None:
        argv += ["--reference", ref, "--metrics-out", metrics_out]
    return [str(a) for a in argv]


def metrics_argv(f, pred, out, ref=None, coef=None):
    argv = ["--prediction", pred, "--reference", ref or f["data"] / "u_x2.nc"]
    argv += ["--coefficient", coef or f["data"] / "coefficient.nc", "--method", "bicubic"]
    return [str(a) for a in argv + ["--split", SPLIT, "--scale", "2", "--out", out]]


def copy(f, tmp_path, name):
    """A copy of one input file, to be spoilt."""
    out = tmp_path / name
    shutil.copy(f["data"] / name, out)
    return out


def refused(capsys, prog, main, argv, out, *sides):
    """exit 2, one error line naming every side (beside any progress bar), no output and no
    temporary file."""
    rc = run_main(prog, main, argv)
    text = capsys.readouterr().err
    assert rc == 2, text
    assert "Traceback" not in text, text
    lines = [ln for ln in text.replace("\r", "\n").splitlines() if "error:" in ln]
    assert len(lines) == 1, text
    err = lines[0]
    for side in sides:
        assert str(side) in err, f"{side!r} not named in: {err}"
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*"))
    return err


# -- NaN in, NaN out ------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "var", "value"), [("u_x1.nc", "u", np.nan),
                                                    ("coefficient.nc", "A", np.inf)])  # fmt: skip
def test_predict_refuses_non_finite_inputs(files, tmp_path, capsys, name, var, value):
    spoilt = copy(files, tmp_path, name)
    set_value(spoilt, var, (1, 3, 4), value)
    kw = {"lr": spoilt} if var == "u" else {"coef": spoilt}
    out = tmp_path / "out" / "u_x2.nc"
    argv = predict_argv(files["data"], files["ckpt"], out, **kw)
    refused(capsys, predict.PROG, predict.main, argv, out, spoilt, "NaN or inf", "[1]")


def test_predict_refuses_a_non_finite_u_scale(files, tmp_path, capsys, tiny_config):
    ckpt = checkpoint(tmp_path / "bicubic" / "checkpoint.pt", tiny_config, u_scale=float("nan"))
    out = tmp_path / "out" / "u_x2.nc"
    argv = predict_argv(files["data"], ckpt, out)
    refused(capsys, predict.PROG, predict.main, argv, out, ckpt, "u_scale nan")


def test_predict_cli_refuses_nan_in_one_line(files, tmp_path):
    spoilt = copy(files, tmp_path, "u_x1.nc")
    set_value(spoilt, "u", (0, 1, 1), np.nan)
    out = tmp_path / "u_x2.nc"
    argv = predict_argv(files["data"], files["ckpt"], out, lr=spoilt)
    proc = subprocess.run([sys.executable, "-m", "fesr.evaluate.predict", *argv],
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "NaN or inf" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_a_non_finite_prediction_scores_nan_never_best(files, tmp_path, value):
    pred = tmp_path / "u_x2.nc"
    shutil.copy(files["pred"], pred)
    set_value(pred, "u", (0, 10, 10), value)
    out = tmp_path / "metrics.csv"
    cmd = [sys.executable, "-m", "fesr.evaluate.metrics", *metrics_argv(files, pred, out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    df = pd.read_csv(out)
    bad, good = df[df["sample"] == 0].iloc[0], df[df["sample"] == 1].iloc[0]
    for name in metrics.METRIC_NAMES:
        assert np.isnan(bad[name]), (name, bad[name])
        assert np.isfinite(good[name]), (name, good[name])
    # against the untouched prediction: only the spoilt sample changes
    clean = tmp_path / "clean.csv"
    assert run_main("metrics", metrics.main, metrics_argv(files, files["pred"], clean)) == 0
    np.testing.assert_array_equal(pd.read_csv(clean).iloc[1].values, df.iloc[1].values)


def test_metrics_refuses_a_non_finite_reference(files, tmp_path, capsys):
    ref = copy(files, tmp_path, "u_x2.nc")
    set_value(ref, "u", (1, 2, 2), np.nan)
    out = tmp_path / "metrics.csv"
    argv = metrics_argv(files, files["pred"], out, ref=ref)
    refused(capsys, "metrics", metrics.main, argv, out, ref, "u[sample=1]", "NaN or inf")


# -- physics attributes ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [("contrast", [1.0, 10.0], "[1.0, 10.0]"), ("p_high", 0.3, "0.3"), ("source", 2.0, "2.0")],
)
def test_predict_refuses_a_checkpoint_of_other_physics(files, tmp_path, capsys, tiny_config,
                                                        key, value, shown):  # fmt: skip
    ckpt = checkpoint(tmp_path / "bicubic" / "checkpoint.pt", tiny_config, **{key: value})
    out = tmp_path / "out" / "u_x2.nc"
    argv = predict_argv(files["data"], ckpt, out)
    err = refused(capsys, predict.PROG, predict.main, argv, out, f"{key} mismatch", ckpt, shown)
    assert str(files["data"] / "u_x1.nc") in err  # the other side


@pytest.mark.parametrize(
    ("name", "key", "value"),
    [("coefficient.nc", "p_high", 0.25), ("coefficient.nc", "E", 128), ("u_x2.nc", "source", 3.0)],
)
def test_predict_refuses_inputs_disagreeing_with_each_other(files, tmp_path, capsys, name, key,
                                                             value):  # fmt: skip
    spoilt = copy(files, tmp_path, name)
    set_attrs(spoilt, **{key: value})
    out = tmp_path / "out" / "u_x2.nc"
    if name == "u_x2.nc":  # the reference of --reference / --metrics-out
        kw = {"ref": spoilt, "metrics_out": tmp_path / "m.csv"}
    else:
        kw = {"coef": spoilt}
    argv = predict_argv(files["data"], files["ckpt"], out, **kw)
    refused(capsys, predict.PROG, predict.main, argv, out, f"{key} mismatch", spoilt)


def test_prediction_files_record_the_physics(files):
    import xarray as xr

    with xr.open_dataset(files["pred"]) as ds:
        assert int(ds.attrs["E"]) == 64 and int(ds.attrs["lr_n"]) == 32
        assert list(ds.attrs["contrast"]) == [1.0, 100.0]
        assert float(ds.attrs["p_high"]) == 0.5 and float(ds.attrs["source"]) == 1.0


@pytest.mark.parametrize(("key", "value"), [("source", 2.0), ("contrast", [1.0, 50.0])])
def test_metrics_refuses_a_prediction_of_other_physics(files, tmp_path, capsys, key, value):
    pred = tmp_path / "u_x2.nc"
    shutil.copy(files["pred"], pred)
    set_attrs(pred, **{key: value})
    out = tmp_path / "metrics.csv"
    argv = metrics_argv(files, pred, out)
    refused(capsys, "metrics", metrics.main, argv, out, f"{key} mismatch", pred,
            files["data"] / "u_x2.nc")  # fmt: skip


def test_metrics_refuses_a_coefficient_file_of_other_physics(files, tmp_path, capsys):
    coef = copy(files, tmp_path, "coefficient.nc")
    set_attrs(coef, contrast=[2.0, 100.0])
    out = tmp_path / "metrics.csv"
    argv = metrics_argv(files, files["pred"], out, coef=coef)
    refused(capsys, "metrics", metrics.main, argv, out, "contrast mismatch", coef)


def test_a_nan_prediction_has_no_score_in_table1_or_the_cost_table(files, tmp_path):
    """The metrics part of a prediction with a NaN sample, through Table I and table_cost: the
    cell is marked with how many samples were non-finite, and the row is on no front."""
    from fesr.report.tables import main as tables_main

    pred = tmp_path / "u_x2.nc"
    shutil.copy(files["pred"], pred)
    set_value(pred, "u", (0, 10, 10), np.nan)
    part = tmp_path / "bad.csv"
    assert run_main("metrics", metrics.main, metrics_argv(files, pred, part)) == 0
    clean = tmp_path / "good.csv"
    assert run_main("metrics", metrics.main, metrics_argv(files, files["pred"], clean)) == 0
    df = pd.concat([pd.read_csv(part), pd.read_csv(clean).assign(method="liif")])
    both = tmp_path / "parts.csv"
    df.to_csv(both, index=False)
    method = str(pd.read_csv(part)["method"].iloc[0])
    split, scale = str(df["split"].iloc[0]), int(df["scale"].iloc[0])
    argv = ["table1", "--metrics", str(both), "--methods", method, "liif", "--scales", str(scale)]
    argv += ["--train-scales", str(scale), "--out-prefix", str(tmp_path / "table1")]
    tables_main(argv)
    t = pd.read_csv(tmp_path / "table1.csv").set_index("method")
    assert np.isnan(t.loc[method, f"mse_e3_x{scale}"]) and t.loc[method, f"nonfinite_x{scale}"]
    assert np.isfinite(t.loc["liif", f"mse_e3_x{scale}"])
    assert t.loc["liif", f"nonfinite_x{scale}"] == 0
    md = (tmp_path / "table1.md").read_text()
    assert f"-- (1 of {len(pd.read_csv(part))} non-finite)" in md

    from fesr.report.cost_table import cost_table

    lr = {split: np.zeros(len(pd.read_csv(part)))}
    fe = pd.DataFrame(
        {"approach": "fe_direct", "split": split, "scale": scale, "sample": [0, 1], "rel_l2": 0.0,
         "rel_energy": 0.0, "rel_h1": 0.0, "mse": 0.0, "seconds": 1.0, "setup_seconds": 0.5,
         "solve_seconds": 0.5, "cores": 1}
    )  # fmt: skip
    ct = cost_table(df, fe, lr).set_index("approach")
    assert np.isnan(ct.loc[method, "rel_l2"]) and ct.loc[method, "nonfinite"] == 1
    assert not ct.loc[method, ["pareto", "pareto_energy", "pareto_h1"]].any()
