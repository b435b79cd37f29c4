"""The FE solver's cheap end (``fesr.fem.partial_solve``): CG stopped after k iterations or at a
loose rtol, and symmetric Gauss-Seidel smoothing, on the real DOLFINx/PETSc HR system.

Independent checks: the direct solve (``Q1Solver.solve``) for a long CG run; scipy's own CG and a
scipy symmetric Gauss-Seidel on the very matrix PETSc assembled, for the stopping after exactly
k iterations and the sweep count; the exact Q1 energy of ``fesr.fem.q1_grid`` for the energy
norm; CG's energy-error minimisation and Gauss-Seidel's energy contraction as known properties.
The command line writes files that ``fesr.evaluate.metrics`` reads.
"""

import os
import subprocess
import sys
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import xarray as xr
from synthetic_data import write_split

pytest.importorskip("fesr.fem.compat")  # DOLFINx, loaded after netCDF4 (see compat)
from mpi4py import MPI  # noqa: E402

from fesr.cli import run_main  # noqa: E402
from fesr.fem.coefficients import deterministic_map, random_map  # noqa: E402
from fesr.fem.partial_solve import (  # noqa: E402
    PROG,
    PartialSolver,
    cg_iterations,
    main,
    rtol_label,
    smooth,
)
from fesr.fem.q1_grid import energy_sq  # noqa: E402
from fesr.fem.solver import Q1Solver  # noqa: E402

N, E = 64, 32


@pytest.fixture(scope="module")
def coefficient():
    return random_map(E, (1.0, 100.0), 0.5, 0, "test_random", 3)


@pytest.fixture(scope="module")
def direct(coefficient):
    return Q1Solver(MPI.COMM_SELF, N, source=1.0, rtol=1e-12).solve(coefficient).u


@pytest.fixture(scope="module")
def sr_like(direct):
    """An SR-like start: the solution with a smooth amplitude error, nodal noise and boundary
    values that are not zero."""
    rng = np.random.default_rng(0)
    t = np.linspace(0.0, 1.0, N + 1)
    bump = np.outer(np.sin(np.pi * t), np.sin(2 * np.pi * t))
    return 1.3 * direct + 0.2 * direct.max() * bump + 0.02 * direct.max() * rng.random(direct.shape)


def zero_edges(u):
    """The start the solver must use: u with the known boundary value 0 (checked independently
    of ``with_zero_boundary``)."""
    u = u.copy()
    u[[0, -1], :] = 0.0
    u[:, [0, -1]] = 0.0
    return u


def energy_error(u, direct, coefficient):
    return np.sqrt(energy_sq(u - direct, coefficient) / energy_sq(direct, coefficient))


def assembled(solver):
    """K (scipy CSR) and b in PETSc's (serial: dof) order, and the dof -> nodal map."""
    indptr, indices, data = solver.fe.A.getValuesCSR()
    K = sp.csr_matrix((data, indices, indptr), shape=solver.fe.A.getSize())
    b = solver.fe.b.getArray().copy()

    def nodal(dof_values):
        vec = solver.fe.b.duplicate()
        vec.setArray(dof_values)
        try:
            return solver.fe.nodal_field(vec)
        finally:
            vec.destroy()

    def dofs(u):
        vec = solver.fe.b.duplicate()
        try:
            solver.fe.set_nodal_field(vec, u)
            return vec.getArray().copy()
        finally:
            vec.destroy()

    return K, b, nodal, dofs


def test_cg_from_sr_like_start_reaches_the_direct_solve(coefficient, direct, sr_like):
    result = cg_iterations(coefficient, N, 1.0, 30, x0=sr_like)
    assert result.iterations == 30
    assert result.residual < 1e-10, result.residual
    err = np.abs(result.u - direct).max() / np.abs(direct).max()
    assert err < 1e-9, f"max relative difference {err:.2e}"
    assert result.setup_seconds > 0 and result.iteration_seconds > 0


def test_cg_from_zero_has_decreasing_energy_error(coefficient, direct):
    with PartialSolver(MPI.COMM_SELF, N) as solver:
        solver.set_coefficient(coefficient)
        results = {k: solver.cg(k) for k in (1, 2, 4)}
    errors = [energy_error(results[k].u, direct, coefficient) for k in (1, 2, 4)]
    assert [results[k].iterations for k in (1, 2, 4)] == [1, 2, 4]
    assert errors[0] < 1.0 and errors[1] < 0.5 * errors[0] and errors[2] < 0.1 * errors[1], errors
    # the set-up is shared, measured once and reported in full by each
    assert len({results[k].setup_seconds for k in (1, 2, 4)}) == 1


@pytest.mark.parametrize("pc_type", ["none", "jacobi"])
@pytest.mark.parametrize("from_start", [False, True])
def test_k_iterations_equal_scipy_cg_on_the_assembled_matrix(
    coefficient, sr_like, pc_type, from_start
):
    with PartialSolver(MPI.COMM_SELF, N, pc_type=pc_type) as solver:
        solver.set_coefficient(coefficient)
        K, b, nodal, dofs = assembled(solver)
        x0 = dofs(zero_edges(sr_like)) if from_start else np.zeros_like(b)
        M = None
        if pc_type == "jacobi":
            M = sp.diags(1.0 / K.diagonal())
        for k in (1, 2, 4):
            got = solver.cg(k, x0=sr_like if from_start else None)
            want, info = spla.cg(K, b, x0=x0.copy(), rtol=0.0, atol=0.0, maxiter=k, M=M)
            assert info == k and got.iterations == k
            want = nodal(want)
            err = np.abs(got.u - want).max() / np.abs(want).max()
            assert err < 1e-10, f"k={k}: max relative difference {err:.2e}"
            r = b - K @ dofs(got.u)
            assert got.residual == pytest.approx(np.linalg.norm(r) / np.linalg.norm(b), rel=1e-8)


def test_loose_rtol_stops_at_the_first_iterate_that_meets_it(coefficient):
    with PartialSolver(MPI.COMM_SELF, N) as solver:
        solver.set_coefficient(coefficient)
        result = solver.cg(rtol=1e-3)
        before = solver.cg(result.iterations - 1)
    assert result.residual <= 1e-3 * (1 + 1e-8) < before.residual


def test_a_rough_start_is_no_divergence(coefficient, direct):
    """Nodal noise has a residual far above 1e5 ||b|| (PETSc's default divergence test) while
    CG still lowers its energy error; rtol stays relative to ||b|| from such a start."""
    rough = np.random.default_rng(1).random(direct.shape)
    with PartialSolver(MPI.COMM_SELF, N) as solver:
        solver.set_coefficient(coefficient)
        result = solver.cg(1, x0=rough)
        to_rtol = solver.cg(rtol=1e-6, x0=rough)
    assert result.iterations == 1
    assert energy_error(result.u, direct, coefficient) < energy_error(
        zero_edges(rough), direct, coefficient
    )
    assert to_rtol.residual <= 1e-6 * (1 + 1e-8)
    assert rtol_label(1e-3) == "1e-3" and rtol_label(2.5e-2) == "2.5e-2"


def scipy_symmetric_gauss_seidel(K, b, x, sweeps):
    """Forward then backward Gauss-Seidel, ``sweeps`` times: x += (D+L)^-1 r, x += (D+U)^-1 r."""
    lower, upper = sp.tril(K, format="csr"), sp.triu(K, format="csr")
    for _ in range(sweeps):
        x = x + spla.spsolve_triangular(lower, b - K @ x, lower=True)
        x = x + spla.spsolve_triangular(upper, b - K @ x, lower=False)
    return x


def test_smoothing_equals_scipy_symmetric_gauss_seidel(coefficient, sr_like):
    with PartialSolver(MPI.COMM_SELF, N) as solver:
        solver.set_coefficient(coefficient)
        K, b, nodal, dofs = assembled(solver)
        for sweeps in (1, 3):
            got = solver.smooth(sr_like, sweeps)
            want = nodal(scipy_symmetric_gauss_seidel(K, b, dofs(zero_edges(sr_like)), sweeps))
            err = np.abs(got.u - want).max() / np.abs(want).max()
            assert err < 1e-12, f"{sweeps} sweeps: max relative difference {err:.2e}"
            assert got.iterations == sweeps and got.setup_seconds > 0


@pytest.mark.parametrize("kind", ["random", "channels_cross"])
def test_smoothing_never_increases_the_energy_error(kind, sr_like):
    A = (
        random_map(E, (1.0, 100.0), 0.5, 0, "test_random", 5)
        if kind == "random"
        else deterministic_map(kind, E, (1.0, 100.0))
    )
    direct = Q1Solver(MPI.COMM_SELF, N, source=1.0, rtol=1e-12).solve(A).u
    start = sr_like / sr_like.max() * direct.max()
    with PartialSolver(MPI.COMM_SELF, N) as solver:
        solver.set_coefficient(A)
        errors = [energy_error(zero_edges(start), direct, A)]
        errors += [energy_error(solver.smooth(start, nu).u, direct, A) for nu in range(1, 9)]
        # the assembled K gives the exact Q1 energy of a field that is zero on the boundary
        e = solver.smooth(start, 2).u - direct
        assert solver.energy_sq(e) == pytest.approx(energy_sq(e, A), rel=1e-10)
    steps = np.diff(errors)
    assert (steps <= 1e-12 * errors[0]).all(), errors
    assert errors[-1] < 0.9 * errors[0], errors  # it does reduce the rough part


def test_smooth_function_matches_the_solver_method(coefficient, sr_like):
    with PartialSolver(MPI.COMM_SELF, N) as solver:
        solver.set_coefficient(coefficient)
        want = solver.smooth(sr_like, 2).u
    np.testing.assert_allclose(smooth(coefficient, N, 1.0, sr_like, 2).u, want, rtol=0, atol=0)


def test_bad_arguments_are_refused(coefficient):
    with PartialSolver(MPI.COMM_SELF, 32) as solver:
        with pytest.raises(RuntimeError, match="set_coefficient"):
            solver.cg(1)
        solver.set_coefficient(coefficient)
        with pytest.raises(ValueError, match="exactly one"):
            solver.cg(1, rtol=1e-2)
        with pytest.raises(ValueError, match="iterations must be an integer >= 1, got 0"):
            solver.cg(0)
        with pytest.raises(ValueError, match="sweeps"):
            solver.smooth(np.zeros((33, 33)), 0)
        with pytest.raises(ValueError, match=r"shape \(32, 32\), expected \(33, 33\)"):
            solver.smooth(np.zeros((32, 32)), 1)


# -- command line --------------------------------------------------------------------------------
SPLIT, LR_N, ALPHA, SAMPLES = "test_random", 8, 4, 2


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("partial_cli")
    d = write_split(root / "data", SPLIT, SAMPLES, (ALPHA,), n=LR_N, E=32, seed=0)
    for f in d.glob("*.nc"):
        with netCDF4.Dataset(f, "a") as nc:
            nc.setncatts({"split": SPLIT, "seed": 0})
    # an SR prediction to correct, in the layout of fesr.evaluate.predict
    from fesr.evaluate.predict import create_output

    m = LR_N * ALPHA
    start = root / "predictions" / "liif" / SPLIT / f"u_x{ALPHA}.nc"
    start.parent.mkdir(parents=True)
    attrs = {"model": "liif", "split": SPLIT, "alpha": ALPHA, "u_scale": 0.05, "seed": 3}
    with xr.open_dataset(d / f"u_x{ALPHA}.nc") as ref:
        u = ref["u"].values
    nc = create_output(start, m, np.arange(SAMPLES), attrs)
    with nc:
        nc["u"][:] = (1.1 * u).astype(np.float32)
        nc["seconds"][:] = [0.5, 0.25]
        nc["peak_mb"][:] = [1e4, 1e4]
    return root, d, start


def cli_args(d, mode, outs, *extra):
    return [
        mode,
        "--coefficient",
        str(d / "coefficient.nc"),
        "--split",
        SPLIT,
        "--alpha",
        str(ALPHA),
        "--lr-n",
        str(LR_N),
        "--out",
        *map(str, outs),
        *extra,
    ]


def metrics_of(pred, d, method):
    from fesr.evaluate.metrics import main as metrics_main

    out = pred.with_suffix(".csv")
    metrics_main(
        [
            "--prediction",
            str(pred),
            "--reference",
            str(d / f"u_x{ALPHA}.nc"),
            "--coefficient",
            str(d / "coefficient.nc"),
            "--method",
            method,
            "--split",
            SPLIT,
            "--scale",
            str(ALPHA),
            "--out",
            str(out),
        ]
    )
    return pd.read_csv(out)


def test_cheap_cli_writes_files_the_metrics_read(data, tmp_path):
    root, d, _ = data
    names = [f"fe_x{ALPHA}_it1", f"fe_x{ALPHA}_it2", f"fe_x{ALPHA}_rtol1e-2"]
    outs = [tmp_path / name / SPLIT / f"u_x{ALPHA}.nc" for name in names]
    extra = ["--u-scale-from", str(d / f"u_x{ALPHA}.nc"), "--iterations", "1", "2"]
    assert run_main(PROG, main, cli_args(d, "cheap", outs, *extra, "--rtol", "1e-2")) == 0
    coef = xr.open_dataset(d / "coefficient.nc")
    with coef:
        A0 = coef["A"].values[0]
    for name, out in zip(names, outs, strict=True):
        with xr.open_dataset(out) as ds:
            assert ds.attrs["model"] == name and ds.attrs["start"] == "zero"
            assert ds["u"].shape == (SAMPLES, LR_N * ALPHA + 1, LR_N * ALPHA + 1)
            total = ds["setup_seconds"].values + ds["correction_seconds"].values
            np.testing.assert_allclose(ds["seconds"].values, total, rtol=1e-12)
            assert (ds["setup_seconds"].values > 0).all() and (ds["peak_mb"].values >= 0).all()
            if "_it" in name:
                assert (ds["iterations"].values == int(name[-1])).all()
            else:
                assert (ds["residual"].values <= 1e-2 * (1 + 1e-8)).all()
            u0 = ds["u"].values[0].astype(np.float64)
        want = cg_iterations(A0, LR_N * ALPHA, 1.0, 1).u if name.endswith("it1") else None
        if want is not None:  # the file holds the solver's field, in SPEC orientation
            np.testing.assert_allclose(u0, want, rtol=1e-6, atol=1e-9 * np.abs(want).max())
        rows = metrics_of(out, d, name)
        assert len(rows) == SAMPLES and set(rows["method"]) == {name}
        assert np.isfinite(rows["rel_energy"]).all()
    assert not list(tmp_path.rglob(".*tmp*")), "temporary file left behind"


def test_correct_cli_keeps_the_sr_part_apart(data, tmp_path):
    root, d, start = data
    names = ["liif+cg1", "liif+smooth3"]
    outs = [tmp_path / name / SPLIT / f"u_x{ALPHA}.nc" for name in names]
    argv = cli_args(d, "correct", outs, "--start", str(start), "--cg", "1", "--smooth", "3")
    assert run_main(PROG, main, argv) == 0
    for name, out in zip(names, outs, strict=True):
        with xr.open_dataset(out) as ds:
            assert ds.attrs["model"] == name and ds.attrs["start_model"] == "liif"
            assert ds.attrs["u_scale"] == 0.05 and ds.attrs["seed"] == 3
            np.testing.assert_allclose(ds["sr_seconds"].values, [0.5, 0.25])
            parts = ds["sr_seconds"] + ds["setup_seconds"] + ds["correction_seconds"]
            np.testing.assert_allclose(ds["seconds"].values, parts.values, rtol=1e-12)
            assert (ds["peak_mb"].values >= 1e4).all()  # the SR part's peak is the larger
        rows = metrics_of(out, d, name)
        assert len(rows) == SAMPLES and set(rows["method"]) == {name}


def test_a_failure_mid_split_leaves_no_file(data, tmp_path):
    root, d, start = data
    broken = tmp_path / "liif" / SPLIT / f"u_x{ALPHA}.nc"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(start.read_bytes())
    with netCDF4.Dataset(broken, "a") as nc:
        nc["u"][1, 5, 5] = np.nan  # the second sample: the first is already written
    outs = [
        tmp_path / "out" / name / SPLIT / f"u_x{ALPHA}.nc" for name in ("liif+cg1", "liif+smooth1")
    ]
    argv = cli_args(d, "correct", outs, "--start", str(broken), "--cg", "1", "--smooth", "1")
    with pytest.raises(ValueError, match="1 non-finite values"):
        main(argv)
    assert not list((tmp_path / "out").rglob("*.nc*")), "output left behind"


@pytest.mark.parametrize("case", ["split", "count", "folder", "name", "no_variant", "scale"])
def test_mismatched_inputs_are_refused(data, tmp_path, capsys, case):
    root, d, start = data
    out = tmp_path / "liif+cg1" / SPLIT / f"u_x{ALPHA}.nc"
    argv = cli_args(d, "correct", [out], "--start", str(start), "--cg", "1")
    needles = {
        "split": ["split", "test_deterministic", SPLIT],
        "count": ["--out has 1 file(s) but 2 variant(s)", "liif+smooth2"],
        "folder": ["liif+cg2", "liif+cg1"],
        "name": ["u_x8.nc", "4", "8"],
        "no_variant": ["no variant", "--cg or --smooth"],
        "scale": ["--alpha 3", "power of two"],
    }[case]
    if case == "split":
        argv[argv.index("--split") + 1] = "test_deterministic"
    elif case == "count":
        argv += ["--smooth", "2"]
    elif case == "folder":
        argv[argv.index("--cg") + 1] = "2"
    elif case == "name":
        argv[argv.index("--out") + 1] = str(tmp_path / "u_x8.nc")
    elif case == "no_variant":
        argv = argv[: argv.index("--cg")]
    else:
        argv[argv.index("--alpha") + 1] = "3"
    assert run_main(PROG, main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    assert not list(tmp_path.rglob("*.nc*")), "output written"


TWO_RANKS = """
import sys
import netCDF4  # noqa: F401  (before DOLFINx, see fesr.fem.compat)
import numpy as np
from mpi4py import MPI
from fesr.fem.partial_solve import PartialSolver

comm = MPI.COMM_WORLD
data = np.load(sys.argv[1]) if comm.rank == 0 else None
A = comm.bcast(data["A"] if comm.rank == 0 else None, root=0)
x0 = data["x0"] if comm.rank == 0 else None
with PartialSolver(comm, int(sys.argv[3]), pc_type="jacobi") as solver:
    solver.set_coefficient(A)
    from_start, from_zero = solver.cg(3, x0=x0), solver.cg(3)
    energy = solver.energy_sq(from_start.u)
if comm.rank == 0:
    assert from_start.u is not None and comm.size == 2
    np.savez(sys.argv[2], from_start=from_start.u, from_zero=from_zero.u, energy=energy)
else:
    assert from_start.u is None
"""


def test_two_ranks_equal_one_with_a_pointwise_preconditioner(coefficient, sr_like, tmp_path):
    """Jacobi does not depend on the partition, so 2 ranks must give the serial iterates: the
    scatter of the start and the gather of the field place every node as on one rank."""
    script, inputs, outputs = tmp_path / "two.py", tmp_path / "in.npz", tmp_path / "out.npz"
    script.write_text(TWO_RANKS)
    np.savez(inputs, A=coefficient, x0=sr_like)
    env = os.environ | {
        "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"),
        "OMP_NUM_THREADS": "1",
        "OMPI_ALLOW_RUN_AS_ROOT": "1",
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "OMPI_MCA_rmaps_base_oversubscribe": "1",
    }
    cmd = ["mpiexec", "--oversubscribe", "-n", "2", sys.executable, str(script)]
    proc = subprocess.run(
        [*cmd, str(inputs), str(outputs), str(N)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = np.load(outputs)
    with PartialSolver(MPI.COMM_SELF, N, pc_type="jacobi") as solver:
        solver.set_coefficient(coefficient)
        from_start, from_zero = solver.cg(3, x0=sr_like), solver.cg(3)
        energy = solver.energy_sq(from_start.u)
    for name, want in (("from_start", from_start.u), ("from_zero", from_zero.u)):
        err = np.abs(got[name] - want).max() / np.abs(want).max()
        assert err < 1e-12, f"{name}: max relative difference {err:.2e}"
    assert float(got["energy"]) == pytest.approx(energy, rel=1e-12)
