"""The DOLFINx Q1 solver against an independent scipy assembly, a manufactured solution's
O(h^2) rate, the array orientation, and non-convergence."""

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

pytest.importorskip("fesr.fem.compat")  # DOLFINx, loaded after netCDF4 (see compat)
from mpi4py import MPI  # noqa: E402

from fesr.fem.coefficients import deterministic_map, random_map  # noqa: E402
from fesr.fem.solver import Q1Solver, SolverError  # noqa: E402

# Bilinear element stiffness of -div(grad) on a square (any size in 2-D), nodes counter-clockwise
# from the bottom-left corner.
K_REF = np.array([[4, -1, -2, -1], [-1, 4, -1, -2], [-2, -1, 4, -1], [-1, -2, -1, 4]]) / 6.0


def q1_system(A: np.ndarray, n: int, f: float = 1.0):
    """The Q1 system (K, b, interior mask) assembled independently: cellwise coefficient by block
    indexing / block means, element matrices scattered with scipy."""
    E = A.shape[0]
    if n >= E:
        cell = A[np.arange(n)[:, None] * E // n, np.arange(n)[None, :] * E // n]
    else:
        r = E // n
        cell = A.reshape(n, r, n, r).mean(axis=(1, 3))
    node = lambda i, j: i * (n + 1) + j  # noqa: E731
    ci, cj = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    corners = np.stack(
        [node(ci, cj), node(ci, cj + 1), node(ci + 1, cj + 1), node(ci + 1, cj)], axis=-1
    ).reshape(-1, 4)
    vals = cell.reshape(-1, 1, 1) * K_REF[None]
    rows = np.repeat(corners, 4, axis=1)
    cols = np.tile(corners, (1, 4))
    N = (n + 1) ** 2
    K = sp.csr_matrix((vals.reshape(-1), (rows.reshape(-1), cols.reshape(-1))), shape=(N, N))
    b = np.zeros(N)
    np.add.at(b, corners.reshape(-1), f / n**2 / 4)
    i, j = np.divmod(np.arange(N), n + 1)
    inner = (i > 0) & (i < n) & (j > 0) & (j < n)
    return K, b, inner


def reference_q1(A: np.ndarray, n: int, f: float = 1.0) -> np.ndarray:
    """Independent Q1 solve of ``q1_system`` by sparse LU."""
    K, b, inner = q1_system(A, n, f)
    u = np.zeros(b.size)
    u[inner] = spla.spsolve(K[inner][:, inner].tocsc(), b[inner])
    return u.reshape(n + 1, n + 1)


@pytest.mark.parametrize("n", [32, 128])
@pytest.mark.parametrize("kind", ["random", "channels_cross", "mix_b"])
def test_dolfinx_equals_independent_scipy_q1(n, kind):
    E = 64
    if kind == "random":
        A = random_map(E, (1.0, 100.0), 0.5, 0, "test_random", 1)
    else:
        A = deterministic_map(kind, E, (1.0, 100.0))
    result = Q1Solver(MPI.COMM_SELF, n, source=1.0, rtol=1e-12).solve(A)
    ref = reference_q1(A, n)
    assert result.u.shape == (n + 1, n + 1)
    err = np.abs(result.u - ref).max() / np.abs(ref).max()
    assert err < 1e-8, f"max relative difference {err:.2e}"
    # the true residual, recomputed after the solve, may exceed rtol by round-off
    assert result.residual < 1e-11 and result.iterations > 0 and result.solve_time > 0


def test_source_scales_the_solution():
    A = deterministic_map("wave", 64, (1.0, 100.0))
    u1 = Q1Solver(MPI.COMM_SELF, 32, source=1.0, rtol=1e-12).solve(A).u
    u3 = Q1Solver(MPI.COMM_SELF, 32, source=-3.0, rtol=1e-12).solve(A).u
    np.testing.assert_allclose(u3, -3.0 * u1, rtol=1e-8, atol=1e-14)


def exact(x, y):
    return np.sin(np.pi * x) * np.sin(np.pi * y) * np.exp(x)


def manufactured_problem():
    """u = sin(pi x) sin(pi y) e^x, a = 1 + 0.5 sin(2 pi x) cos(pi y); f = -div(a grad u)."""
    pi = np.pi

    def a(x, y):
        return 1 + 0.5 * np.sin(2 * pi * x) * np.cos(pi * y)

    def f(x, y):
        sx, cx, ex = np.sin(pi * x), np.cos(pi * x), np.exp(x)
        sy, cy = np.sin(pi * y), np.cos(pi * y)
        ux = (pi * cx + sx) * sy * ex
        uy = pi * sx * cy * ex
        uxx = (2 * pi * cx + sx - pi**2 * sx) * sy * ex
        uyy = -(pi**2) * sx * sy * ex
        ax = pi * np.cos(2 * pi * x) * cy
        ay = -0.5 * pi * np.sin(2 * pi * x) * sy
        return -(a(x, y) * (uxx + uyy) + ax * ux + ay * uy)

    return a, f


def l2_error(u: np.ndarray) -> float:
    """||u_h - u||_L2 with the Q1 interpolant of the nodal array, 3x3 Gauss points per cell."""
    n = u.shape[0] - 1
    g = 0.5 + np.array([-1, 0, 1]) * np.sqrt(3 / 5) / 2
    w = np.array([5, 8, 5]) / 18
    total = 0.0
    for s, ws in zip(g, w, strict=True):
        for t, wt in zip(g, w, strict=True):
            uh = (
                u[:-1, :-1] * (1 - s) * (1 - t)
                + u[:-1, 1:] * s * (1 - t)
                + u[1:, 1:] * s * t
                + u[1:, :-1] * (1 - s) * t
            )
            y = (np.arange(n)[:, None] + t) / n
            x = (np.arange(n)[None, :] + s) / n
            total += ws * wt * np.sum((uh - exact(x, y)) ** 2) / n**2
    return np.sqrt(total)


def test_manufactured_solution_converges_at_order_two():
    a, f = manufactured_problem()
    ns = [8, 16, 32, 64]
    errors = []
    for n in ns:
        solver = Q1Solver(MPI.COMM_SELF, n, source=f, rtol=1e-12, coefficient_family="Q")
        errors.append(l2_error(solver.solve(a).u))
    rates = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(rates > 1.85) and np.all(rates < 2.2), f"errors {errors}, rates {rates}"
    assert errors[-1] < 1e-3


def test_orientation_rows_are_y_columns_are_x():
    n, E = 32, 64
    # high coefficient on the right half only: varies in x (columns) alone
    A = np.ones((E, E))
    A[:, E // 2 :] = 100.0
    u = Q1Solver(MPI.COMM_SELF, n, rtol=1e-12).solve(A).u
    np.testing.assert_allclose(u, u[::-1, :], atol=1e-12)  # symmetric in y (rows)
    asym = np.abs(u - u[:, ::-1]).max() / u.max()
    assert asym > 0.1, "flipping columns (x) must change the field"
    # the stiff right half keeps u small there: the maximum sits left of the centre
    assert np.argmax(u[n // 2]) < n // 2
    # constant coefficient: symmetric in both axes and under transposition
    c = Q1Solver(MPI.COMM_SELF, n, rtol=1e-12).solve(np.full((E, E), 3.0)).u
    for flipped in (c[::-1, :], c[:, ::-1], c.T):
        np.testing.assert_allclose(c, flipped, atol=1e-12)
    for edge in (c[0], c[-1], c[:, 0], c[:, -1]):
        assert np.all(edge == 0)


def test_non_converging_solve_raises():
    A = random_map(64, (1.0, 100.0), 0.5, 0, "train", 0)
    solver = Q1Solver(MPI.COMM_SELF, 64, rtol=1e-10, max_it=1)
    with pytest.raises(SolverError, match="did not converge"):
        solver.solve(A)


def test_solver_checks_its_arguments():
    with pytest.raises(ValueError, match="mesh size"):
        Q1Solver(MPI.COMM_SELF, 0)
    with pytest.raises(ValueError, match="rtol"):
        Q1Solver(MPI.COMM_SELF, 8, rtol=2.0)
    solver = Q1Solver(MPI.COMM_SELF, 8)
    with pytest.raises(ValueError, match="multiple of 32"):
        solver.solve(np.ones((40, 40)))
    with pytest.raises(ValueError, match="> 0"):
        solver.solve(-np.ones((32, 32)))
