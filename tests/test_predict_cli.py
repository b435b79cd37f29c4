"""The evaluation job CLI (``python -m fesr.evaluate.predict``).

One run predicts several scales from one encoding per sample and writes their metric parts; the
values equal separate single-scale runs and the metrics equal ``prediction_metrics`` of the file.
Mismatched inputs (model, split, resolution, scale, device) are refused with exit 2, one line
naming both sides, and no output file. Real tiny LIIF (random weights) and bicubic checkpoints on
synthetic NetCDF files (tests/synthetic_data.py) with the attributes the data stage writes.
"""

import subprocess
import sys

import netCDF4
import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from synthetic_data import write_split

from fesr.checkpoint import save_checkpoint
from fesr.cli import run_main
from fesr.evaluate.metrics import prediction_metrics
from fesr.evaluate.predict import PROG, main
from fesr.models.registry import build_model, resolve_model_config

SPLIT, SAMPLES, U_SCALE = "test_random", 2, 1.5


def set_attrs(path, **attrs):
    with netCDF4.Dataset(path, "a") as nc:
        nc.setncatts(attrs)


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_config):
    root = tmp_path_factory.mktemp("predict_cli")
    for split, seed in ((SPLIT, 0), ("test_deterministic", 1)):
        d = write_split(root / "data", split, SAMPLES, (1, 2, 4), n=32, E=64, seed=seed)
        for f in d.glob("*.nc"):
            set_attrs(f, split=split, seed=0)
    ckpts = {}
    torch.manual_seed(0)
    for name in ("liif", "bicubic"):
        model = build_model(name, tiny_config)
        ckpts[name] = save_checkpoint(
            root / "models" / name / "checkpoint.pt",
            model_name=name,
            model_cfg=resolve_model_config(name, tiny_config),
            state_dict=model.state_dict(),
            iteration=0,
            u_scale=U_SCALE,
            contrast=[1.0, 100.0],
        )
    return root, ckpts


def args(root, ckpt, model="liif", split=SPLIT, alphas=(4,), out=None, extra=()):
    d = root / "data" / split
    out = out or [str(root / "out" / f"u_x{a}.nc") for a in alphas]
    return [
        "--model",
        model,
        "--checkpoint",
        str(ckpt),
        "--lr-data",
        str(d / "u_x1.nc"),
        "--coefficient",
        str(d / "coefficient.nc"),
        "--alpha",
        *map(str, alphas),
        "--out",
        *out,
        "--chunk",
        "1000",
        "--device",
        "cpu",
        *extra,
    ]


def test_one_job_equals_separate_runs_and_writes_metrics(data, tmp_path):
    root, ckpts = data
    d = root / "data" / SPLIT
    outs = [str(tmp_path / "joint" / f"u_x{a}.nc") for a in (2, 4)]
    parts = [str(tmp_path / "joint" / f"x{a}.csv") for a in (2, 4)]
    refs = [str(d / f"u_x{a}.nc") for a in (2, 4)]
    extra = ["--split", SPLIT, "--reference", *refs, "--metrics-out", *parts]
    main(args(root, ckpts["liif"], alphas=(2, 4), out=outs, extra=extra))
    single = str(tmp_path / "single" / "u_x4.nc")
    main(args(root, ckpts["liif"], alphas=(4,), out=[single]))
    with xr.open_dataset(outs[1]) as joint, xr.open_dataset(single) as alone:
        assert joint["u"].shape == (SAMPLES, 129, 129)
        np.testing.assert_allclose(joint["u"].values, alone["u"].values, rtol=1e-6, atol=1e-7)
        assert joint.attrs["split"] == SPLIT and int(joint.attrs["alpha"]) == 4
        assert (joint["seconds"].values > 0).all()
    with xr.open_dataset(outs[0]) as x2:
        assert x2["u"].shape == (SAMPLES, 65, 65) and int(x2.attrs["alpha"]) == 2
    for alpha, out, ref, part in zip((2, 4), outs, refs, parts, strict=True):
        got = pd.read_csv(part)
        want = prediction_metrics(out, ref, d / "coefficient.nc", "liif", SPLIT, alpha)
        assert list(got["scale"]) == [alpha] * SAMPLES and set(got["split"]) == {SPLIT}
        np.testing.assert_allclose(got["mse"], want["mse"], rtol=1e-12)
        assert (got["mse"] > 0).all()
    assert not list((tmp_path / "joint").glob(".*tmp*")), "temporary file left behind"


def _refused(argv, capsys, *needles):
    assert run_main(PROG, main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def _mismatch(root, ckpts):
    """name -> (argv, words the message must contain)."""
    d, other = root / "data" / SPLIT, root / "data" / "test_deterministic"

    def swap(flag, path):
        a = args(root, ckpts["liif"])
        a[a.index(flag) + 1] = str(path)
        return a

    return {
        "model": (args(root, ckpts["bicubic"], model="liif"), ["'liif'", "'bicubic'"]),
        "lr_split": (swap("--lr-data", other / "u_x1.nc"), ["split", SPLIT, "test_deterministic"]),
        "lr_resolution": (swap("--lr-data", d / "u_x2.nc"), ["alpha 2", "u_x2.nc"]),
        "coef_split": (
            swap("--coefficient", other / "coefficient.nc"),
            ["split", SPLIT, "test_deterministic"],
        ),
        "scale_3": (args(root, ckpts["liif"], alphas=(3,)), ["--alpha 3", "power of two"]),
        "scale_1": (args(root, ckpts["liif"], alphas=(1,)), ["--alpha 1", "power of two"]),
        "out_name": (
            args(root, ckpts["liif"], alphas=(4,), out=[str(root / "out" / "u_x8.nc")]),
            ["--alpha", "u_x8.nc", "4", "8"],
        ),
        "split_flag": (
            args(root, ckpts["liif"], extra=["--split", "test_deterministic"]),
            ["--split", "test_deterministic", SPLIT],
        ),
        "reference_scale": (
            args(
                root,
                ckpts["liif"],
                extra=["--split", SPLIT, "--reference", str(d / "u_x2.nc"), "--metrics-out", "m"],
            ),
            ["scale", "u_x2.nc", "4", "2"],
        ),
    }


CASES = [
    "model",
    "lr_split",
    "lr_resolution",
    "coef_split",
    "scale_3",
    "scale_1",
    "out_name",
    "split_flag",
    "reference_scale",
]


@pytest.mark.parametrize("case", CASES)
def test_mismatched_inputs_are_refused(data, capsys, case):
    root, ckpts = data
    argv, needles = _mismatch(root, ckpts)[case]
    _refused(argv, capsys, *needles)
    assert not (root / "out").exists() or not list((root / "out").iterdir()), "output written"


def test_lr_of_another_resolution_without_attributes(data, tmp_path, capsys):
    """A foreign LR file (no alpha attribute) on a 64 x 64 mesh: the mesh size names both."""
    root, ckpts = data
    lr = tmp_path / "u_x1.nc"
    with xr.open_dataset(root / "data" / SPLIT / "u_x2.nc") as ds:
        ds.drop_attrs().to_netcdf(lr)
    a = args(root, ckpts["liif"])
    a[a.index("--lr-data") + 1] = str(lr)
    _refused(a, capsys, "LR mesh size n", "64", "32")


def test_corrupt_checkpoint_is_one_line(data, tmp_path, capsys):
    root, _ = data
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"not a checkpoint")
    _refused(args(root, bad), capsys, str(bad), "checkpoint")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_missing_cuda_device_is_named(data, capsys):
    root, ckpts = data
    a = args(root, ckpts["liif"])
    a[a.index("--device") + 1] = "cuda"
    _refused(a, capsys, "--device cuda", "no CUDA device")


def test_module_exits_2_with_one_line(data, tmp_path):
    """The real entry point (``python -m``): exit code 2, no traceback, no output."""
    root, ckpts = data
    out = tmp_path / "u_x4.nc"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fesr.evaluate.predict",
            *args(root, ckpts["bicubic"], out=[str(out)]),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "model mismatch" in proc.stderr, proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("preset", ["tiny", "quick"])
def test_evaluation_jobs_cover_the_plan_once(preset):
    """One job per (model, split) with exactly the scales the tables and figures need."""
    from fesr.config import load_config
    from fesr.evaluate import plan

    config = load_config(preset)
    jobs = plan.evaluation_jobs(config)
    flat = [(m, sp, s) for (m, sp), scales in jobs.items() for s in scales]
    assert sorted(flat) == sorted(plan.evaluated(config)) and len(set(flat)) == len(flat)
    for split in plan.eval_splits(config):
        for m in plan.table1_methods(config):
            assert jobs[(m, split)] == sorted(plan.eval_scales(config))
    ablation = plan.report_models(config, "table2_models")[0]
    assert jobs[(ablation, plan.figure_split(config))] == plan.pick_scales(config, "ablation")
    with pytest.raises(ValueError, match="no table or figure needs"):
        plan.job_scales(config, "liif", "train")
