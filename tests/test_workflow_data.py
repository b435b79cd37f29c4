"""The `data` target of the tiny preset through real Snakemake, killed mid-way and resumed.

Runs the repository's Snakefile in a temporary working directory (`-s Snakefile -d tmp`), kills
Snakemake and its jobs with SIGKILL once some shards exist, unlocks, re-runs with
`--rerun-incomplete`, and checks that every dataset of SPEC 1 is there and holds the right data.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from fesr.config import load_config
from fesr.fem import plan
from fesr.fem.coefficients import split_map_source

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
PRESET = ROOT / "workflow" / "presets" / "tiny.yaml"


def snakemake_cmd(workdir: Path, *extra) -> list[str]:
    return [str(SNAKEMAKE), "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--cores", "2",
            *extra, "data", "--configfile", str(PRESET)]  # fmt: skip


def env() -> dict:
    return os.environ | {"OMP_NUM_THREADS": "1", "OMPI_ALLOW_RUN_AS_ROOT": "1",
                         "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}  # fmt: skip


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("workflow_data")
    log = open(work / "first.log", "w")
    first = subprocess.Popen(snakemake_cmd(work), env=env(), stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 600
    killed = False
    while first.poll() is None and time.monotonic() < deadline:
        if len(list((work / "results" / "data").glob("*/shards/*.nc"))) >= 3:
            os.killpg(first.pid, signal.SIGKILL)  # a crash: Snakemake and its running jobs
            killed = True
            break
        time.sleep(0.2)
    first.wait(timeout=60)
    log.close()
    assert killed, (
        "the first run ended before it could be interrupted:\n"
        + (work / "first.log").read_text()[-3000:]
    )
    unlock = [str(SNAKEMAKE), "-s", str(ROOT / "Snakefile"), "-d", str(work), "--unlock",
              "--configfile", str(PRESET)]  # fmt: skip
    subprocess.run(unlock, env=env(), check=True, capture_output=True)
    second = subprocess.run(snakemake_cmd(work, "--rerun-incomplete"), env=env(),
                            capture_output=True, text=True, timeout=1200)  # fmt: skip
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-5000:]
    return work


@pytest.mark.slow
@pytest.mark.mpi
def test_data_target_completes_after_a_crash(resumed_run):
    config = load_config("tiny")
    for path in plan.dataset_files(config):
        assert (resumed_run / path).is_file(), f"missing {path}"
    assert not list((resumed_run / "results").rglob("*.tmp")), "temporary files left behind"
    for split, split_cfg in config["splits"].items():
        with xr.open_dataset(resumed_run / plan.coefficient_path(split)) as c:
            count, map_of, names = split_map_source(split, split_cfg, config["physics"], 0)
            assert c.sizes["sample"] == count
            for k in range(count):  # the stored maps are the maps of the seed
                np.testing.assert_array_equal(c["A"].values[k], map_of(k))
        for alpha in split_cfg["scales"]:
            with xr.open_dataset(resumed_run / plan.field_path(split, alpha)) as u:
                n = 32 * alpha
                assert u["u"].shape == (count, n + 1, n + 1)
                np.testing.assert_array_equal(u["sample"].values, np.arange(count))
                assert u.attrs["u_max"] == float(u["u"].max())
                assert np.all(u["residual"] < 1e-9)
    for rule in ("coefficient", "u_x1_0", "u_x1_merge"):
        assert (resumed_run / "results" / "benchmarks" / "data" / "train" / f"{rule}.tsv").is_file()
        assert (resumed_run / "results" / "logs" / "data" / "train" / f"{rule}.log").is_file()


@pytest.mark.slow
@pytest.mark.mpi
def test_resumed_data_equals_a_direct_solve(resumed_run):
    pytest.importorskip("fesr.fem.compat")
    from mpi4py import MPI

    from fesr.fem.solver import Q1Solver

    with (
        xr.open_dataset(resumed_run / plan.field_path("train", 2)) as u,
        xr.open_dataset(resumed_run / plan.coefficient_path("train")) as c,
    ):
        solver = Q1Solver(MPI.COMM_SELF, 64, rtol=1e-12)
        for k in (0, 5, 7):  # samples from both shards
            direct = solver.solve(c["A"].values[k]).u
            stored = u["u"].values[k]
            assert np.abs(stored - direct).max() <= 1e-8 * np.abs(direct).max()
