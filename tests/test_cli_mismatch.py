"""The hand-run entry points refuse mismatched inputs: exit 2, one line naming both
sides of the mismatch, no traceback and no output file.

Inputs are tiny synthetic files in the SPEC 1 layout (``synthetic_data``) carrying the
attributes the real pipeline writes (split, seed, alpha, n; a prediction's model), and a bicubic
checkpoint (no weights, so nothing to train). Each CLI runs once as a real subprocess
(``python -m ...``) and otherwise in-process through ``fesr.cli.run_main``, the same wrapper its
``__main__`` uses.
"""

from __future__ import annotations

import json
import subprocess
import sys

import netCDF4
import numpy as np
import pytest
import torch
import xarray as xr
from synthetic_data import bicubic_checkpoint, write_dataset, write_split

from fesr.checkpoint import save_checkpoint
from fesr.cli import run_main
from fesr.models.registry import resolve_model_config

SPLIT, OTHER, SAMPLES = "test_random", "test_deterministic", 2
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")


def set_attrs(path, **attrs):
    with netCDF4.Dataset(path, "a") as nc:
        nc.setncatts(attrs)


def write_prediction(ref_path, out, model="bicubic", split=SPLIT):
    """A prediction file as predict writes it: u, seconds, peak_mb and the identifying attrs."""
    with xr.open_dataset(ref_path) as ref:
        ds = ref[["u"]].load()
        alpha, n = int(ref.attrs["alpha"]), int(ref.attrs["n"])
    ds["seconds"] = ("sample", np.full(SAMPLES, 0.01))
    ds["peak_mb"] = ("sample", np.full(SAMPLES, 1.0))
    ds.attrs = {"model": model, "split": split, "alpha": alpha, "n": n, "u_scale": 1.5, "seed": 0}
    ds.to_netcdf(out)
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_config):
    root = tmp_path_factory.mktemp("cli_mismatch")
    data = root / "data"
    for split, seed in ((SPLIT, 0), (OTHER, 1)):
        d = write_split(data, split, SAMPLES, (1, 2, 4), n=32, E=64, seed=seed)
        for f in d.glob("*.nc"):
            set_attrs(f, split=split, seed=0)
    # a coarse file of the right split but another data seed
    reseeded = write_split(root / "reseeded", SPLIT, SAMPLES, (2,), n=32, E=64) / "u_x2.nc"
    set_attrs(reseeded, split=SPLIT, seed=7)
    fields = [*data.glob("*/u_x*.nc"), reseeded]
    for ds_path in fields:  # solve_time, as the FE datasets have it
        with netCDF4.Dataset(ds_path, "a") as nc:
            nc.createVariable("solve_time", "f8", ("sample",))[:] = np.full(SAMPLES, 0.5)
    preds = root / "pred"
    preds.mkdir()
    pred = {a: write_prediction(data / SPLIT / f"u_x{a}.nc", preds / f"u_x{a}.nc") for a in (2, 4)}
    pred["liif"] = write_prediction(data / SPLIT / "u_x4.nc", preds / "liif_u_x4.nc", "liif")
    ckpt = bicubic_checkpoint(root / "models" / "bicubic" / "checkpoint.pt", tiny_config)
    return {"root": root, "data": data, "pred": pred, "ckpt": ckpt, "reseeded": reseeded}


def refused(capsys, prog, main, argv, out, *sides):
    """exit 2, one stderr line naming every side, no output file."""
    rc = run_main(prog, main, [str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for side in sides:
        assert str(side) in err, f"{side!r} not named in: {err}"
    assert not out.exists(), f"{out} was written"
    assert not list(out.parent.glob(f".{out.name}*")), "temporary file left behind"
    return err


def run_module(module, argv):
    cmd = [sys.executable, "-m", module, *map(str, argv)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


# -- metrics ---------------------------------------------------------------------------------------
def _metrics_argv(f, out, **kw):
    method = kw.get("method", "bicubic")
    pred = kw.get("pred") or f["pred"][4]
    ref = kw.get("ref") or f["data"] / SPLIT / "u_x4.nc"
    coef = f["data"] / SPLIT / "coefficient.nc"
    argv = ["--prediction", pred, "--reference", ref, "--coefficient", coef, "--method", method]
    return argv + ["--split", kw.get("split", SPLIT), "--scale", kw.get("scale", 4), "--out", out]


METRICS_CASES = {
    "method": (dict(method="liif"), ["--method", "'liif'", "'bicubic'"]),
    "split": (dict(split=OTHER), ["--split", OTHER, "prediction file", SPLIT]),
    "reference_split": (dict(ref="OTHER/u_x4.nc"), ["--split", "reference data file", OTHER]),
    "reference_scale": (dict(ref="SPLIT/u_x2.nc"), ["--scale", "has 4", "u_x2.nc", "has 2"]),
    "prediction_scale": (dict(pred=2), ["--scale", "has 4", "prediction file", "has 2"]),
    "scale_not_pow2": (dict(scale=3), ["--scale 3", "power of two"]),
}


def _resolve(f, kw):
    kw = dict(kw)
    if isinstance(kw.get("pred"), int):
        kw["pred"] = f["pred"][kw["pred"]]
    if "ref" in kw:
        split, name = kw["ref"].split("/")
        kw["ref"] = f["data"] / {"OTHER": OTHER, "SPLIT": SPLIT}[split] / name
    return kw


@pytest.mark.parametrize("case", list(METRICS_CASES))
def test_metrics_refuses(case, files, tmp_path, capsys):
    from fesr.evaluate.metrics import main

    kw, sides = METRICS_CASES[case]
    out = tmp_path / "x4.csv"
    refused(capsys, "metrics", main, _metrics_argv(files, out, **_resolve(files, kw)), out, *sides)


def test_metrics_cli_subprocess(files, tmp_path):
    out = tmp_path / "x4.csv"
    res = run_module("fesr.evaluate.metrics", _metrics_argv(files, out, method="liif"))
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "model mismatch" in res.stderr and not out.exists()
    # and the matching inputs work
    res = run_module("fesr.evaluate.metrics", _metrics_argv(files, out))
    assert res.returncode == 0, res.stderr
    assert out.is_file()


# -- complexity ------------------------------------------------------------------------------------
def _complexity_argv(f, out, model="bicubic", lr=None, coef=None, scales=(2, 4), preds=None):
    d = f["data"] / SPLIT
    preds = preds if preds is not None else [f["pred"][2], f["pred"][4]]
    argv = ["--model", model, "--checkpoint", f["ckpt"], "--lr-data", lr or d / "u_x1.nc"]
    argv += ["--coefficient", coef or d / "coefficient.nc", "--scales", *scales]
    return argv + ["--predictions", *preds, "--device", "cpu", "--out", out]


@pytest.mark.parametrize(
    "case", ["model", "lr_not_lr", "coefficient_split", "prediction_model", "prediction_scale"]
)
def test_complexity_refuses(case, files, tmp_path, capsys):
    from fesr.evaluate.complexity import main

    f, out = files, tmp_path / "bicubic.csv"
    d, other = f["data"] / SPLIT, f["data"] / OTHER
    argv, sides = {
        "model": (
            _complexity_argv(f, out, model="liif"),
            ["--model", "'liif'", "checkpoint", "'bicubic'"],
        ),
        "lr_not_lr": (_complexity_argv(f, out, lr=d / "u_x2.nc"), ["u_x2.nc", "alpha 2"]),
        "coefficient_split": (
            _complexity_argv(f, out, coef=other / "coefficient.nc"),
            ["split", SPLIT, OTHER, "coefficient file"],
        ),
        "prediction_model": (
            _complexity_argv(f, out, scales=(4,), preds=[f["pred"]["liif"]]),
            ["--model", "'bicubic'", "liif_u_x4.nc", "'liif'"],
        ),
        "prediction_scale": (
            _complexity_argv(f, out, scales=(4,), preds=[f["pred"][2]]),
            ["alpha 2", "--scales [4]"],
        ),
    }[case]
    refused(capsys, "complexity", main, argv, out, *sides)


@NO_GPU
def test_complexity_cuda_missing_is_said_plainly(files, tmp_path):
    out = tmp_path / "bicubic.csv"
    argv = _complexity_argv(files, out)
    argv[argv.index("--device") + 1] = "cuda"
    res = run_module("fesr.evaluate.complexity", argv)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "no CUDA device" in res.stderr and "corrupt" not in res.stderr
    assert not out.exists()


# -- FE baselines ----------------------------------------------------------------------------------
def _fe_baselines_argv(f, out, split=SPLIT, scale=4, ref=None, coarse=None):
    d = f["data"] / SPLIT
    coarse = coarse if coarse is not None else [d / "u_x1.nc", d / "u_x2.nc"]
    argv = ["--split", split, "--scale", scale, "--reference", ref or d / "u_x4.nc"]
    argv += ["--coefficient", d / "coefficient.nc"]
    return argv + ["--coarse", *coarse, "--u-scale-from", f["pred"][4], "--out", out]


@pytest.mark.parametrize(
    "case", ["split", "coarse_split", "coarse_not_coarser", "reference_name", "coarse_seed"]
)
def test_fe_baselines_refuses_mismatched_inputs(case, files, tmp_path, capsys):
    from fesr.evaluate.fe_baselines import main

    f, out = files, tmp_path / "x4.csv"
    d, other = f["data"] / SPLIT, f["data"] / OTHER
    argv, sides = {
        "split": (_fe_baselines_argv(f, out, split=OTHER), ["--split", OTHER, SPLIT, "reference"]),
        "coarse_split": (
            _fe_baselines_argv(f, out, coarse=[other / "u_x2.nc"]),
            ["--split", SPLIT, "coarse data file", OTHER],
        ),
        "coarse_not_coarser": (
            _fe_baselines_argv(f, out, coarse=[d / "u_x4.nc"]),
            ["coarse data file", "scale 4", "--scale 4"],
        ),
        "reference_name": (_fe_baselines_argv(f, out, scale=8), ["--scale", "8", "u_x4.nc", "4"]),
        "coarse_seed": (
            _fe_baselines_argv(f, out, coarse=[f["reseeded"]]),
            ["seed", "reference data file", "has 0", "coarse data file", "has 7"],
        ),
    }[case]
    refused(capsys, "fe_baselines", main, argv, out, *sides)


def test_fe_baselines_cli_exits_2_without_traceback(files, tmp_path):
    out = tmp_path / "x4.csv"
    res = run_module("fesr.evaluate.fe_baselines", _fe_baselines_argv(files, out, scale=3))
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "--scale 3" in res.stderr and not out.exists()


# -- train ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def train_setup(tmp_path_factory, tiny_config):
    root = tmp_path_factory.mktemp("train_mismatch")
    data = write_dataset(root / "data", train=2, val=2, scales=(1, 2, 4), n=32, E=64)
    for split in ("train", "val"):
        for f in (data / split).glob("*.nc"):
            set_attrs(f, split=split, seed=int(tiny_config["seed"]))
    cfg = root / "cfg.json"
    cfg.write_text(json.dumps(tiny_config))
    return root, data, cfg, tiny_config


def _train(cfg, data, out, model="bicubic", device="cpu"):
    argv = ["--model", model, "--config-json", cfg, "--data", data, "--out", out]
    return argv + ["--device", device, "--no-progress"]


def test_train_refuses_out_folder_of_another_model(train_setup, tmp_path, capsys):
    from fesr.train import main

    _, data, cfg, _ = train_setup
    out = tmp_path / "models" / "liif"
    refused(
        capsys, "train", main, _train(cfg, data, out), out / "checkpoint.pt", "'bicubic'", "'liif'"
    )


def test_train_refuses_a_folder_holding_another_models_checkpoint(
    train_setup, tmp_path, capsys, tiny_config
):
    from fesr.train import main

    _, data, cfg, _ = train_setup
    out = tmp_path / "run1"
    save_checkpoint(
        out / "resume.pt",
        model_name="lte",
        model_cfg=resolve_model_config("lte", tiny_config),
        state_dict={},
        iteration=1,
        u_scale=1.0,
        contrast=[1.0, 100.0],
    )
    argv = _train(cfg, data, out)
    refused(capsys, "train", main, argv, out / "checkpoint.pt", "'bicubic'", "resume.pt", "'lte'")


def test_train_refuses_data_of_another_split_or_E(train_setup, tmp_path, capsys):
    from fesr.train import main

    root, data, cfg, config = train_setup
    bad = tmp_path / "data"
    for split in ("train", "val"):
        (bad / split).mkdir(parents=True)
        for f in (data / split).glob("*.nc"):
            (bad / split / f.name).write_bytes(f.read_bytes())
    set_attrs(bad / "val" / "u_x2.nc", split="test_random")
    out = tmp_path / "run"
    argv = _train(cfg, bad, out)
    refused(capsys, "train", main, argv, out / "checkpoint.pt", "split", "'val'", "'test_random'")
    cfg128 = tmp_path / "cfg128.json"
    cfg128.write_text(json.dumps({**config, "physics": {**config["physics"], "E": 128}}))
    argv = _train(cfg128, data, out)
    refused(capsys, "train", main, argv, out / "checkpoint.pt", "E mismatch", "128", "64")


@NO_GPU
def test_train_cuda_missing_is_said_plainly(train_setup, tmp_path):
    _, data, cfg, _ = train_setup
    out = tmp_path / "run"
    res = run_module("fesr.train", _train(cfg, data, out, device="cuda"))
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "no CUDA device" in res.stderr
    assert not (out / "checkpoint.pt").exists()


def test_train_unknown_model_exit_2(train_setup, tmp_path, capsys):
    from fesr.train import main

    _, data, cfg, _ = train_setup
    out = tmp_path / "run"
    argv = _train(cfg, data, out, model="liif-no_scs")
    refused(capsys, "train", main, argv, out / "checkpoint.pt", "liif-no_scs", "no_scs")
