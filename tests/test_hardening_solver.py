"""Every solve is verified: its true relative residual ||b - Ax|| / ||b||, computed
after the solve, must be at most RESIDUAL_FACTOR x rtol, whatever PETSc's converged reason says.

Through the real data CLI (``python -m fesr.fem.generate solve``, one and two MPI ranks, one
sample per rank and decomposed): a solver that PETSc calls converged but that solves nothing
(``preonly`` + ``jacobi``, which the validation refuses, passed here as --settings) stops the job
naming split, sample, alpha and residual, and writes no file; a good solve records the true
residual, checked against an independent scipy assembly of the same Q1 system. In-process: the
round-off floor the validation assumes is the one a solve reaches, and GMRES and CG stop at the
tolerance of the true residual.
"""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from test_fem_dataset import run_cli as run_generate
from test_fem_solver import q1_system

from fesr.config import load_config
from fesr.fem import plan

pytest.importorskip("fesr.fem.compat")  # DOLFINx, loaded after netCDF4 (see compat)
from mpi4py import MPI  # noqa: E402

from fesr.fem.coefficients import deterministic_map, random_map  # noqa: E402
from fesr.fem.solver import (  # noqa: E402
    RESIDUAL_FACTOR,
    Q1Solver,
    SolverError,
    residual_floor,
)

ROOT = Path(__file__).resolve().parents[1]
SPLIT = "test_deterministic"  # tiny: 2 maps, E = 64; alpha 8 (n = 256) is decomposed
# Bilinear element stiffness of -div(grad) on a square, nodes counter-clockwise from lower left.


def run_cli(args, ranks: int = 1) -> subprocess.CompletedProcess:
    return run_generate(args, ranks=ranks, check=False)


def settings(coefficients: bool = False, **solver) -> str:
    config = load_config("tiny")
    make = plan.coefficient_settings if coefficients else plan.data_settings
    s = make(config, SPLIT)
    if solver:
        s["solver"] = {**s["solver"], **solver}
    return json.dumps(s)


@pytest.fixture(scope="module")
def coefficients(tmp_path_factory):
    out = tmp_path_factory.mktemp("hardening_solver") / "coefficient.nc"
    proc = run_cli(
        ["coefficients", "--split", SPLIT, "--settings", settings(True), "--output", out]
    )
    assert proc.returncode == 0, proc.stderr
    return out


def solve_args(coefficients, out, alpha, **solver):
    return ["solve", "--split", SPLIT, "--alpha", alpha, "--shard", 0, "--coefficients",
            coefficients, "--output", out, "--settings", settings(**solver)]  # fmt: skip


def q1_residual(A: np.ndarray, n: int, u: np.ndarray) -> float:
    """||b - K u|| / ||b|| of the Q1 system assembled independently (scipy; u = 0 on the
    boundary, so only the interior rows have a residual)."""
    K, b, inner = q1_system(A, n)
    r = b[inner] - K[inner] @ u.reshape(-1)
    return float(np.linalg.norm(r) / np.linalg.norm(b[inner]))


@pytest.mark.mpi
@pytest.mark.parametrize(
    ("alpha", "ranks"), [(1, 1), (1, 2), (8, 2)], ids=["1rank", "per-rank", "decomposed"]
)
def test_a_solve_that_solves_nothing_stops_the_job_naming_where(
    coefficients, tmp_path, alpha, ranks
):
    out = tmp_path / "u.nc"
    args = solve_args(coefficients, out, alpha, ksp_type="preonly", pc_type="jacobi")
    proc = run_cli(args, ranks=ranks)
    assert proc.returncode != 0
    err = proc.stderr
    for text in (f"split {SPLIT}", f"alpha {alpha}", "sample 0", "true relative residual"):
        assert text in err, err[-2000:]
    assert f"above {RESIDUAL_FACTOR} x rtol" in err
    assert not out.exists() and not list(tmp_path.iterdir()), list(tmp_path.iterdir())


@pytest.mark.mpi
@pytest.mark.parametrize(("alpha", "ranks"), [(2, 1), (8, 2)], ids=["serial", "decomposed"])
def test_the_recorded_residual_is_the_true_residual(coefficients, tmp_path, alpha, ranks):
    """rtol 1e-6: a residual far above round-off, so the independent one must agree closely."""
    out = tmp_path / "u.nc"
    proc = run_cli(solve_args(coefficients, out, alpha, rtol=1e-6), ranks=ranks)
    assert proc.returncode == 0, proc.stderr[-2000:]
    n = 32 * alpha
    with xr.open_dataset(out) as ds, xr.open_dataset(coefficients) as cf:
        assert float(ds.attrs["residual_limit"]) == pytest.approx(RESIDUAL_FACTOR * 1e-6)
        for k in range(ds.sizes["sample"]):
            recorded = float(ds["residual"][k])
            independent = q1_residual(cf["A"].values[k], n, ds["u"].values[k])
            assert 1e-9 < independent <= RESIDUAL_FACTOR * 1e-6
            assert recorded == pytest.approx(independent, rel=1e-3), (recorded, independent)


def test_petsc_converged_is_not_enough():
    A = deterministic_map("channels_cross", 64, (1.0, 100.0))
    solver = Q1Solver(MPI.COMM_SELF, 64, ksp_type="preonly", pc_type="jacobi")
    assert solver.ksp.getConvergedReason() == 0
    with pytest.raises(SolverError, match=r"missed its tolerance.*\|\|b\|\| = [0-9.]+e[-+]0[01] "):
        solver.solve(A)
    assert solver.ksp.getConvergedReason() > 0  # what PETSc says of that sweep


@pytest.mark.parametrize(("ksp", "pc"), [("gmres", "jacobi"), ("cg", "jacobi"), ("preonly", "lu")])
def test_every_valid_solver_meets_the_true_tolerance(ksp, pc):
    """GMRES from the right and CG test the unpreconditioned residual, and LU is exact: the
    recorded true residual meets the tolerance."""
    A = random_map(64, (1.0, 100.0), 0.5, 0, "test_random", 0)
    result = Q1Solver(MPI.COMM_SELF, 32, rtol=1e-8, max_it=5000, ksp_type=ksp, pc_type=pc).solve(A)
    assert result.residual <= RESIDUAL_FACTOR * 1e-8
    if ksp != "preonly":
        assert result.residual <= 1e-8 * 1.01  # the restart makes it meet rtol itself


@pytest.mark.parametrize("n", [256, 512])
def test_the_round_off_floor_the_validation_assumes(n):
    """Restarted CG reaches the floor: no tolerance below residual_floor(n) / RESIDUAL_FACTOR
    could be met, and the floor is not overstated by more than a few times."""
    A = random_map(128, (1.0, 100.0), 0.5, 0, "test_random", 1)
    solver = Q1Solver(MPI.COMM_SELF, n, rtol=1e-15, max_it=300)
    from fesr.fem import compat

    solver.set_coefficient(A)
    compat.assemble_matrix_into(solver.A, solver.a, solver.bcs)
    solver.ksp.setOperators(solver.A)
    solver.ksp.solve(solver.b, solver.x)
    solver.ksp.setInitialGuessNonzero(True)
    for _ in range(2):
        solver.ksp.solve(solver.b, solver.x)
    floor = solver.true_residual()
    assert 0.2 * residual_floor(n) < floor < residual_floor(n), (floor, residual_floor(n))
