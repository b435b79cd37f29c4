"""Failures leave nothing: every writer, on a full disk and on a read-only one, removes
its temporary files and says which file it could not write and why, in one line, without a
chained traceback.

The disks are real: a 64 KiB tmpfs filled to its last byte, and a read-only tmpfs (needs root to
mount; skipped otherwise). Writers: predict, metrics, the data CLI (coefficients, solve, merge),
checkpoints, and the CSV writer of collect, complexity and cost (``write_csv_atomic``). Each runs
through its real CLI in-process (``fesr.cli.run_main`` / ``fesr.fem.generate.main``); predict
once more as a subprocess, whose stderr is checked for a chained traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import netCDF4
import numpy as np
import pandas as pd
import pytest
from synthetic_data import bicubic_checkpoint, write_split

from fesr.checkpoint import save_checkpoint
from fesr.cli import run_main
from fesr.config import load_config
from fesr.evaluate import collect, metrics, predict
from fesr.evaluate.io import write_csv_atomic
from fesr.fem import plan
from fesr.models.registry import resolve_model_config

SPLIT = "test_random"
CAUSE = {"full": "No space left on device", "readonly": "Read-only file system"}


def _mount(path, options: str):
    path.mkdir()
    cmd = ["mount", "-t", "tmpfs", "-o", f"size=64k,{options}", "tmpfs", str(path)]
    if subprocess.run(cmd, capture_output=True, check=False).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")


def _fill(path):
    with open(path / "filler", "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass


@pytest.fixture(params=["full", "readonly"])
def disk(request, tmp_path):
    """(kind, directory): a full or a read-only file system, unmounted afterwards."""
    where = tmp_path / request.param
    _mount(where, "ro" if request.param == "readonly" else "rw")
    try:
        if request.param == "full":
            _fill(where)
        yield request.param, where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def left_behind(where) -> list[str]:
    return sorted(p.name for p in where.iterdir() if p.name != "filler")


def one_line(text: str) -> str:
    assert "Traceback" not in text and "During handling" not in text, text
    lines = [ln for ln in text.replace("\r", "\n").splitlines() if "cannot write" in ln]
    assert len(lines) == 1, text
    return lines[0]


def check_refused(capsys, rc, kind, where, out, expect_rc=1):
    err = one_line(capsys.readouterr().err)
    assert rc == expect_rc, err
    assert f"cannot write {out}: {CAUSE[kind]}" in err, err
    assert left_behind(where) == [], left_behind(where)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_config):
    root = tmp_path_factory.mktemp("hardening_writers")
    data = write_split(root / "data", SPLIT, 2, (1, 8), n=32, E=64)
    for f in data.glob("*.nc"):
        with netCDF4.Dataset(f, "a") as nc:
            nc.setncatts({"split": SPLIT, "seed": 0})
    ckpt = bicubic_checkpoint(root / "models" / "bicubic" / "checkpoint.pt", tiny_config)
    pred = root / "pred" / "u_x8.nc"
    assert run_main(predict.PROG, predict.main, predict_argv(data, ckpt, pred)) == 0
    part = root / "part.csv"
    pd.DataFrame({"method": ["bicubic"], "mse": [0.1]}).to_csv(part, index=False)
    return {"root": root, "data": data, "ckpt": ckpt, "pred": pred, "part": part}


def predict_argv(data, ckpt, out):
    argv = ["--model", "bicubic", "--checkpoint", ckpt, "--lr-data", data / "u_x1.nc"]
    argv += ["--coefficient", data / "coefficient.nc", "--split", SPLIT, "--alpha", 8]
    return [str(a) for a in [*argv, "--out", out, "--device", "cpu"]]


def test_predict(inputs, disk, capsys):
    kind, where = disk
    out = where / "u_x8.nc"
    rc = run_main(predict.PROG, predict.main, predict_argv(inputs["data"], inputs["ckpt"], out))
    check_refused(capsys, rc, kind, where, out)


def test_predict_subprocess_has_no_chained_traceback(inputs, disk):
    kind, where = disk
    out = where / "u_x8.nc"
    cmd = [sys.executable, "-m", "fesr.evaluate.predict"]
    proc = subprocess.run([*cmd, *predict_argv(inputs["data"], inputs["ckpt"], out)],
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert f"cannot write {out}: {CAUSE[kind]}" in one_line(proc.stderr)
    assert left_behind(where) == []


def test_metrics(inputs, disk, capsys):
    kind, where = disk
    out = where / "x8.csv"
    data = inputs["data"]
    argv = ["--prediction", inputs["pred"], "--reference", data / "u_x8.nc", "--coefficient"]
    argv += [data / "coefficient.nc", "--method", "bicubic", "--split", SPLIT, "--scale", 8]
    rc = run_main("metrics", metrics.main, [str(a) for a in [*argv, "--out", out]])
    check_refused(capsys, rc, kind, where, out)


def test_csv_parts_collected(inputs, disk, capsys):
    kind, where = disk
    out = where / "metrics.csv"
    rc = run_main("collect", collect.main, ["--out", str(out), str(inputs["part"])])
    check_refused(capsys, rc, kind, where, out)


def test_write_csv_atomic_raises_the_cause(disk):
    kind, where = disk
    out = where / "sub" / "t.csv" if kind == "readonly" else where / "t.csv"
    with pytest.raises(OSError, match=f"cannot write {out}: {CAUSE[kind]}") as err:
        write_csv_atomic(pd.DataFrame({"a": np.arange(10)}), out)
    assert err.value.__suppress_context__
    assert left_behind(where) == []


def test_checkpoint(disk, tiny_config):
    kind, where = disk
    out = where / "checkpoint.pt"
    with pytest.raises(OSError, match=f"cannot write {out}: {CAUSE[kind]}") as err:
        save_checkpoint(
            out,
            model_name="bicubic",
            model_cfg=resolve_model_config("bicubic", tiny_config),
            state_dict={"w": np.zeros(1)},
            iteration=0,
            u_scale=1.0,
            contrast=[1.0, 100.0],
        )
    assert err.value.__suppress_context__  # torch's "file write failed" is not shown
    assert left_behind(where) == []


# -- the data CLI (in-process: fesr.fem.generate.main prints its one line and returns 2) -----------
def _settings(coefficients=False) -> str:
    config = load_config("tiny")
    make = plan.coefficient_settings if coefficients else plan.data_settings
    return json.dumps(make(config, "test_deterministic"))


@pytest.fixture(scope="module")
def fem_inputs(tmp_path_factory):
    pytest.importorskip("fesr.fem.compat")
    from fesr.fem.generate import main

    root = tmp_path_factory.mktemp("hardening_fem")
    coef = root / "coefficient.nc"
    args = ["--split", "test_deterministic", "--settings"]
    assert main(["coefficients", *args, _settings(True), "--output", str(coef)]) == 0
    shard = root / "u_x4_0.nc"
    solve = ["solve", *args, _settings(), "--alpha", "4", "--shard", "0"]
    assert main([*solve, "--coefficients", str(coef), "--output", str(shard)]) == 0
    return {"coef": coef, "shard": shard}


@pytest.mark.parametrize("command", ["coefficients", "solve", "merge"])
def test_data_cli(fem_inputs, disk, capsys, command):
    from fesr.fem.generate import main

    kind, where = disk
    out = where / ("coefficient.nc" if command == "coefficients" else "u_x4.nc")
    args = ["--split", "test_deterministic", "--settings"]
    if command == "coefficients":
        argv = ["coefficients", *args, _settings(True)]
    elif command == "solve":
        argv = ["solve", *args, _settings(), "--alpha", "4", "--coefficients", fem_inputs["coef"]]
    else:
        argv = ["merge", str(fem_inputs["shard"])]
    rc = main([*map(str, argv), "--output", str(out)])
    check_refused(capsys, rc, kind, where, out, expect_rc=2)


def test_a_solver_error_on_a_healthy_disk_stays_a_solver_error(fem_inputs, tmp_path, capsys):
    """A failure that is no write failure is not disguised as one: nothing written, the
    solver's own message."""
    from fesr.fem.generate import main

    settings = json.loads(_settings())
    settings["solver"]["max_it"] = 1
    out = tmp_path / "u_x4.nc"
    argv = ["solve", "--split", "test_deterministic", "--settings", json.dumps(settings)]
    argv += ["--alpha", "4", "--coefficients", str(fem_inputs["coef"]), "--output", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "SolverError" in err and "cannot write" not in err
    assert os.listdir(tmp_path) == []
