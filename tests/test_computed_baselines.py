"""``fesr.evaluate.fe_baselines --computed``: the rows of fields other solvers computed (PG-LOD
and its coarse part here), scored like every baseline, with their per-map and per-solve times."""

import netCDF4
import pandas as pd
import pytest
import xarray as xr
from test_lod import LR_N, SAMPLES, SPLIT, cli_args, data  # noqa: F401 (data: the fixture)

from fesr.cli import run_main
from fesr.evaluate import fe_baselines
from fesr.evaluate.metrics import field_metrics
from fesr.fem import lod
from fesr.fem.q1_grid import interpolate_nodal


def with_solve_times(path, total, setup, ranks=1, decomposed=0):
    """A synthetic data file given the time variables and MPI attributes a data solve writes."""
    with netCDF4.Dataset(path, "a") as nc:
        for name, value in (("solve_time", total), ("setup_time", setup)):
            if name not in nc.variables:
                nc.createVariable(name, "f8", ("sample",))
            nc[name][:] = value
        nc.setncatts({"mpi_ranks": ranks, "decomposed": decomposed})


def test_lod_rows_are_scored_with_their_split_times(data, tmp_path):  # noqa: F811
    out = tmp_path / "lod_k1"
    argv = cli_args(data, out, alphas=(4,), extra=["--coarse-out", str(out / "u_x1.nc")])
    assert run_main(lod.PROG, lod.main, argv) == 0
    with_solve_times(data / "u_x4.nc", 3.0, 1.0, ranks=2, decomposed=1)
    with_solve_times(data / "u_x2.nc", 0.5, 0.2)
    csv = tmp_path / "x4.csv"
    argv = ["--split", SPLIT, "--scale", "4", "--reference", str(data / "u_x4.nc")]
    argv += ["--coarse", str(data / "u_x2.nc"), "--coefficient", str(data / "coefficient.nc")]
    argv += ["--computed", f"lod_k1={out / 'u_x4.nc'}", f"lod_coarse={out / 'u_x1.nc'}"]
    argv += ["--u-scale-from", str(data / "u_x4.nc"), "--out", str(csv)]
    assert run_main("fe_baselines", fe_baselines.main, argv) == 0
    rows = pd.read_csv(csv)
    assert list(rows["approach"][:4]) == ["fe_direct", "fe_x2_interp", "lod_k1", "lod_coarse"]

    with xr.open_dataset(data / "u_x4.nc") as ref_ds, xr.open_dataset(out / "u_x4.nc") as lo:
        u_scale = float(ref_ds.attrs["u_max"])
        with xr.open_dataset(data / "coefficient.nc") as c, xr.open_dataset(out / "u_x1.nc") as co:
            for k in range(SAMPLES):
                ref = ref_ds["u"].values[k] / u_scale
                got = rows[rows["sample"] == k].set_index("approach")
                # the LOD field against the reference, in every norm, independently recomputed
                want = field_metrics(lo["u"].values[k] / u_scale, ref, c["A"].values[k])
                for col in ("rel_l2", "rel_energy", "rel_h1", "mse"):
                    assert got.loc["lod_k1", col] == pytest.approx(want[col], rel=1e-10)
                up = interpolate_nodal(co["u"].values[k] / u_scale, 4 * LR_N)
                want = field_metrics(up, ref, c["A"].values[k])
                assert got.loc["lod_coarse", "rel_energy"] == pytest.approx(want["rel_energy"])
                assert got.loc["lod_coarse", "source_scale"] == 1
                # per map + per solve = total; LOD's set-up is its correctors
                lod_row = got.loc["lod_k1"]
                assert lod_row["setup_seconds"] == pytest.approx(lo["setup_seconds"].values[k])
                assert lod_row["setup_seconds"] + lod_row["solve_seconds"] == pytest.approx(
                    lod_row["seconds"]
                )
                assert lod_row["cores"] == 1
    direct = rows[rows["approach"] == "fe_direct"].iloc[0]
    assert (direct["seconds"], direct["setup_seconds"], direct["solve_seconds"]) == (3.0, 1.0, 2.0)
    assert direct["cores"] == 2  # decomposed over 2 ranks
    coarse = rows[rows["approach"] == "fe_x2_interp"].iloc[0]
    assert (coarse["setup_seconds"], coarse["cores"]) == (0.2, 1)


def test_computed_file_of_another_model_is_refused(data, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "lod_k1"
    assert run_main(lod.PROG, lod.main, cli_args(data, out, alphas=(4,))) == 0
    csv = tmp_path / "x4.csv"
    argv = ["--split", SPLIT, "--scale", "4", "--reference", str(data / "u_x4.nc")]
    argv += ["--coefficient", str(data / "coefficient.nc")]
    argv += ["--computed", f"lod_k2={out / 'u_x4.nc'}"]
    argv += ["--u-scale-from", str(data / "u_x4.nc"), "--out", str(csv)]
    assert run_main("fe_baselines", fe_baselines.main, argv) == 2
    err = capsys.readouterr().err
    assert "model mismatch" in err and "lod_k2" in err and "'lod_k1'" in err
    assert not csv.exists()
