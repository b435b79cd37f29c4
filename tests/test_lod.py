"""PG-LOD (``fesr.fem.lod``): the quasi-interpolation against quadrature, the correctors in its
kernel, whole-domain patches against the global (ideal) correctors, the exponential decay of the
localisation error, agreement with the DOLFINx fine solve, independence of the worker count,
and the command line's prediction files as ``fesr.evaluate.metrics`` reads them."""

import re

import netCDF4
import numpy as np
import pytest
import xarray as xr
from synthetic_data import write_split

from fesr.cli import run_main
from fesr.evaluate.metrics import check_metric_inputs, prediction_metrics
from fesr.fem import lod
from fesr.fem.coefficients import random_map
from fesr.fem.q1_grid import interpolate_nodal
from fesr.fem.solver import project_coefficient

CONTRAST = (1.0, 100.0)


def energy_sq(v: np.ndarray, cells: np.ndarray) -> float:
    """int A |grad v|^2 of the Q1 interpolant of nodal v on the mesh of the cellwise ``cells``.

    On one square, d/dx v is linear in y between the bottom and top edge differences p, q, so
    int (d/dx v)^2 = (p^2 + pq + q^2) / 3 whatever the size; likewise in y.
    """
    dx, dy = np.diff(v, axis=1), np.diff(v, axis=0)
    p, q = dx[:-1, :], dx[1:, :]
    r, s = dy[:, :-1], dy[:, 1:]
    return float(np.sum(cells * ((p * p + p * q + q * q) + (r * r + r * s + s * s))) / 3.0)


def rel_energy(u: np.ndarray, ref: np.ndarray, cells: np.ndarray) -> float:
    return np.sqrt(energy_sq(u - ref, cells) / energy_sq(ref, cells))


def quasi_interpolate_by_quadrature(v: np.ndarray, lr_n: int) -> np.ndarray:
    """E_H Pi_H v from its definition: per coarse element, the Q1 L2 projection from Gauss
    quadrature (2 x 2 points per fine cell: exact for bilinear times bilinear) and the coarse
    mass matrix; then the mean of the element values at each interior node, 0 on the boundary."""
    N = v.shape[0] - 1
    r = N // lr_n
    g = 0.5 + np.array([-1.0, 1.0]) / (2 * np.sqrt(3))  # Gauss points on [0, 1], weights 1/2
    # coarse element mass matrix on the unit square, corners (0,0), (1,0), (0,1), (1,1) = (x, y)
    corners = [(0, 0), (1, 0), (0, 1), (1, 1)]
    mass = np.array(
        [[(2 - abs(a[0] - b[0])) * (2 - abs(a[1] - b[1])) / 36 for b in corners] for a in corners]
    )
    total = np.zeros((lr_n + 1, lr_n + 1))
    for ei in range(lr_n):
        for ej in range(lr_n):
            moments = np.zeros(4)
            for ci in range(r):
                for cj in range(r):
                    fi, fj = ei * r + ci, ej * r + cj
                    for s in g:
                        for t in g:
                            val = (
                                v[fi, fj] * (1 - s) * (1 - t)
                                + v[fi, fj + 1] * s * (1 - t)
                                + v[fi + 1, fj] * (1 - s) * t
                                + v[fi + 1, fj + 1] * s * t
                            )
                            X, Y = (cj + s) / r, (ci + t) / r  # position in the coarse element
                            phi = [(1 - X) * (1 - Y), X * (1 - Y), (1 - X) * Y, X * Y]
                            moments += 0.25 * val * np.array(phi) / r**2
            coef = np.linalg.solve(mass, moments)
            for (cx, cy), c in zip(corners, coef, strict=True):
                total[ei + cy, ej + cx] += c / 4
    total[[0, -1], :] = 0.0
    total[:, [0, -1]] = 0.0
    return total


def test_quasi_interpolation_is_e_h_of_pi_h_and_a_projection():
    lr_n, N = 4, 12
    rng = np.random.default_rng(0)
    v = rng.standard_normal((N + 1, N + 1))
    v[[0, -1], :] = 0.0
    v[:, [0, -1]] = 0.0
    I_H = lod.quasi_interpolation(lr_n, N)
    got = (I_H @ v.reshape(-1)).reshape(lr_n + 1, lr_n + 1)
    np.testing.assert_allclose(got, quasi_interpolate_by_quadrature(v, lr_n), atol=1e-13)
    u_H = np.zeros((lr_n + 1, lr_n + 1))
    u_H[1:-1, 1:-1] = rng.standard_normal((lr_n - 1, lr_n - 1))
    fine = lod.prolongation(lr_n, N) @ u_H.reshape(-1)
    np.testing.assert_allclose(interpolate_nodal(u_H, N).reshape(-1), fine, atol=1e-14)
    np.testing.assert_allclose(I_H @ fine, u_H.reshape(-1), atol=1e-13)


def test_correctors_lie_in_the_kernel_and_u_h_is_the_quasi_interpolant():
    lr_n, E = 8, 32
    A = random_map(E, CONTRAST, 0.5, 0, "test_random", 2)
    corr = lod.compute_correctors(A, lr_n, 2)
    N = corr.fine_n
    P = lod.prolongation(lr_n, N)[:, lod._interior(lr_n)]
    Q = (P - corr.reconstruction).toarray()
    assert np.abs(Q).max() > 1e-3, "correctors vanish"
    I_H = lod.quasi_interpolation(lr_n, N)
    assert np.abs(I_H @ Q).max() < 1e-12 * np.abs(Q).max()
    boundary = np.ones((N + 1, N + 1), bool)
    boundary[1:-1, 1:-1] = False
    assert np.all(Q[boundary.reshape(-1)] == 0)
    res = lod.solve(corr, 1.0)
    np.testing.assert_allclose(
        I_H @ res.u_fine.reshape(-1), res.u_coarse.reshape(-1), atol=1e-12 * res.u_coarse.max()
    )


@pytest.mark.parametrize("dense_max", [0, 10**4], ids=["sparse", "dense"])
@pytest.mark.parametrize("E, fine_n", [(32, None), (32, 64)], ids=["N=E", "N=2E"])
def test_whole_domain_patches_equal_the_ideal_lod(monkeypatch, dense_max, E, fine_n):
    lr_n = 8
    A = random_map(E, CONTRAST, 0.5, 0, "test_random", 3)
    ideal = lod.solve(lod.compute_correctors(A, lr_n, None, fine_n, ideal=True), 1.0)
    monkeypatch.setattr(lod, "DENSE_MAX", dense_max)
    whole = lod.solve(lod.compute_correctors(A, lr_n, lr_n - 1, fine_n), 1.0)
    N = fine_n or E
    assert whole.u_fine.shape == (N + 1, N + 1) and whole.u_coarse.shape == (lr_n + 1,) * 2
    for got, want in ((whole.u_fine, ideal.u_fine), (whole.u_coarse, ideal.u_coarse)):
        err = np.abs(got - want).max() / np.abs(want).max()
        assert err < 1e-10, f"whole-domain patch differs from the ideal LOD by {err:.1e}"


def test_localisation_error_falls_at_least_4x_per_layer():
    lr_n, E = 16, 64
    A = random_map(E, CONTRAST, 0.5, 0, "test_random", 4)
    cells = project_coefficient(A, E)
    ideal = lod.solve(lod.compute_correctors(A, lr_n, None, ideal=True), 1.0).u_fine
    errors = [rel_energy(lod.lod_solve(A, lr_n, k).u_fine, ideal, cells) for k in (1, 2, 3, 4)]
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert np.all(ratios >= 4), f"errors {errors}, ratios {ratios}"


@pytest.mark.slow
def test_k3_matches_the_dolfinx_fine_solve_in_energy():
    pytest.importorskip("fesr.fem.compat")  # DOLFINx, loaded after netCDF4 (see compat)
    from mpi4py import MPI

    from fesr.fem.solver import Q1Solver

    lr_n, E = 32, 128
    A = random_map(E, CONTRAST, 0.5, 0, "test_random", 5)
    direct = Q1Solver(MPI.COMM_SELF, E, source=1.0, rtol=1e-10).solve(A).u
    cells = project_coefficient(A, E)
    res = lod.lod_solve(A, lr_n, 3, source=1.0)
    err = rel_energy(res.u_fine, direct, cells)
    assert err < 0.02, f"PG-LOD k=3 differs from the fine solve by {err:.3f} in energy"
    coarse_only = rel_energy(interpolate_nodal(res.u_coarse, E), direct, cells)
    assert coarse_only > 5 * err, "u_H alone should miss the fine scales"
    assert res.setup_seconds > 0 and res.solve_seconds > 0


def test_worker_processes_do_not_change_the_result():
    A = random_map(64, CONTRAST, 0.5, 0, "test_random", 6)
    one = lod.lod_solve(A, 16, 2, workers=1)
    two = lod.lod_solve(A, 16, 2, workers=2)
    scale = np.abs(one.u_fine).max()
    np.testing.assert_allclose(two.u_fine, one.u_fine, rtol=0, atol=1e-13 * scale)
    np.testing.assert_allclose(two.u_coarse, one.u_coarse, rtol=0, atol=1e-13 * scale)


def test_source_scales_linearly():
    A = random_map(32, CONTRAST, 0.5, 0, "test_random", 7)
    corr = lod.compute_correctors(A, 8, 1)
    one, three = lod.solve(corr, 1.0), lod.solve(corr, -3.0)
    np.testing.assert_allclose(three.u_fine, -3.0 * one.u_fine, rtol=1e-12, atol=1e-16)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"fine_n": 48}, "multiple of the coarse mesh lr_n = 32"),
        ({"fine_n": 32}, "at least 2 * lr_n = 64"),
        ({"k": -1}, "patch layers k must be an integer >= 0"),
        ({"workers": 0}, "workers must be an integer >= 1"),
    ],
)
def test_bad_sizes_are_refused(kwargs, needle):
    A = np.ones((64, 64))
    args = {"lr_n": 32, "k": 1} | kwargs
    with pytest.raises(ValueError, match=re.escape(needle)):
        lod.lod_solve(A, **args)


# -- command line ---------------------------------------------------------------------------------
SPLIT, LR_N, E, SAMPLES = "test_random", 16, 64, 2


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("lod_cli")
    d = write_split(root, SPLIT, SAMPLES, (1, 2, 4, 8), n=LR_N, E=E, seed=0)
    for f in d.glob("*.nc"):
        with netCDF4.Dataset(f, "a") as nc:
            nc.setncatts({"split": SPLIT, "seed": 0})
    return d


def cli_args(d, out, alphas=(2, 4, 8), extra=()):
    return [
        "--coefficient",
        str(d / "coefficient.nc"),
        "--split",
        SPLIT,
        "--k",
        "1",
        "--lr-n",
        str(LR_N),
        "--alpha",
        *map(str, alphas),
        "--out",
        *[str(out / f"u_x{a}.nc") for a in alphas],
        "--u-scale-from",
        str(d / "u_x4.nc"),
        *extra,
    ]


def test_cli_writes_prediction_files_that_metrics_read(data, tmp_path):
    out = tmp_path / "lod_k1"
    argv = cli_args(data, out, extra=["--coarse-out", str(out / "u_x1.nc")])
    assert run_main(lod.PROG, lod.main, argv) == 0
    with xr.open_dataset(data / "coefficient.nc") as ds:
        maps = ds["A"].values
    with xr.open_dataset(data / "u_x4.nc") as ds:
        u_scale = float(ds.attrs["u_max"])
    want = [lod.lod_solve(A, LR_N, 1) for A in maps]
    for alpha in (2, 4, 8):
        m = LR_N * alpha
        path = out / f"u_x{alpha}.nc"
        with xr.open_dataset(path) as ds:
            assert ds["u"].shape == (SAMPLES, m + 1, m + 1)
            assert ds.attrs["model"] == "lod_k1" and ds.attrs["split"] == SPLIT
            assert int(ds.attrs["alpha"]) == alpha and int(ds.attrs["n"]) == m
            assert float(ds.attrs["u_scale"]) == u_scale
            np.testing.assert_allclose(ds["x"].values, np.arange(m + 1) / m)
            seconds = ds["setup_seconds"].values + ds["solve_seconds"].values
            np.testing.assert_allclose(ds["seconds"].values, seconds, rtol=1e-12)
            assert (ds["setup_seconds"].values > 0).all() and (ds["solve_seconds"].values > 0).all()
            for s in range(SAMPLES):
                ref = interpolate_nodal(want[s].u_fine, m)
                np.testing.assert_allclose(ds["u"].values[s], ref, rtol=1e-5, atol=1e-7)
        ref_path = data / f"u_x{alpha}.nc"
        check_metric_inputs(path, ref_path, "lod_k1", SPLIT, alpha)
        coef_path = data / "coefficient.nc"
        df = prediction_metrics(path, ref_path, coef_path, "lod_k1", SPLIT, alpha)
        assert len(df) == SAMPLES and np.isfinite(df["rel_l2"]).all()
    with xr.open_dataset(out / "u_x4.nc") as ds:  # N = E = 64: the fine field itself
        np.testing.assert_allclose(ds["u"].values[0], want[0].u_fine, rtol=1e-5, atol=1e-7)
    with xr.open_dataset(out / "u_x1.nc") as ds:
        assert ds["u"].shape == (SAMPLES, LR_N + 1, LR_N + 1)
        assert ds.attrs["model"] == "lod_coarse" and int(ds.attrs["alpha"]) == 1
        np.testing.assert_allclose(ds["u"].values[1], want[1].u_coarse, rtol=1e-5, atol=1e-7)
    assert not list(out.glob(".*tmp*")), "temporary file left behind"


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--fine-n", "40"], "multiple of the coarse mesh lr_n = 16"),
        (["--split", "val"], "split mismatch"),
        (["--coarse-out", "u_x2.nc"], "not scale 2"),
    ],
)
def test_cli_refuses_bad_inputs_without_output(data, tmp_path, capsys, extra, needle):
    out = tmp_path / "refused"
    argv = cli_args(data, out, alphas=(2,), extra=extra)
    assert run_main(lod.PROG, lod.main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and needle in err, err
    assert not out.exists() or not list(out.iterdir())
