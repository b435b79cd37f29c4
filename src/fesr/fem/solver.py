"""Q1 finite element solve of -div(A grad u) = f, u = 0 on the boundary of the unit square (SPEC 1).

One ``Q1Solver`` per (communicator, n): the mesh, spaces, forms, matrix, right-hand side and
Krylov solver are built once and reused for every sample; per sample only the coefficient is
set and the matrix re-assembled. The solution is gathered to the root rank as an (n+1) x (n+1)
array ``u[i, j] = u(x_j, y_i)``; every dof is placed by its coordinates (``round(x n)``), never by
assuming a dof order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from fesr.fem.coefficients import check_E


class SolverError(RuntimeError):
    """A linear solve that did not converge (or failed on another rank)."""


def check_alpha(alpha) -> int:
    """A scale factor alpha must be a power of two >= 1."""
    if isinstance(alpha, bool) or not isinstance(alpha, int | np.integer):
        raise ValueError(f"scale alpha must be an integer power of two, got {alpha!r}")
    if alpha < 1 or alpha & (alpha - 1):
        raise ValueError(f"scale alpha must be a power of two (1, 2, 4, ...), got {alpha}")
    return int(alpha)


def solver_name(ksp_type: str, pc_type: str) -> str:
    return f"{ksp_type}+{'boomeramg' if pc_type == 'hypre' else pc_type}"


def mesh_size(alpha, lr_n: int = 32) -> int:
    """n = lr_n * alpha squares per side for the field u_x{alpha}."""
    return int(lr_n) * check_alpha(alpha)


def projection_matrix(n: int, E: int) -> np.ndarray:
    """P (n x E): P[k, m] = fraction of mesh interval k covered by coefficient interval m.

    The cellwise L2 projection of an E x E map onto an n x n mesh is ``P @ A @ P.T``: the exact
    cell value when n >= E, the mean over the covered cells when n < E. Overlaps are integers in
    units of 1 / (n E), so the weights are exact.
    """
    k = np.arange(n)[:, None]
    m = np.arange(E)[None, :]
    overlap = np.minimum((k + 1) * E, (m + 1) * n) - np.maximum(k * E, m * n)
    return np.clip(overlap, 0, None) / E


# Means of the fine coefficient cells that a coarse mesh cell covers, as (g, g^-1): the cell
# value is g^-1(mean of g(A)). Arithmetic is the L2 projection (SPEC 1); geometric is the exact
# effective conductivity of a 2D two-phase random medium at p = 1/2 (Keller-Dykhne); harmonic and
# arithmetic are the Wiener bounds.
COEFFICIENT_MEANS = {
    "arithmetic": (lambda a: a, lambda a: a),
    "geometric": (np.log, np.exp),
    "harmonic": (np.reciprocal, np.reciprocal),
}


def check_mean(mean) -> str:
    if not isinstance(mean, str) or mean not in COEFFICIENT_MEANS:
        raise ValueError(
            f"coefficient mean must be one of {', '.join(COEFFICIENT_MEANS)}, got {mean!r}"
        )
    return mean


def project_coefficient(A: np.ndarray, n: int, mean: str = "arithmetic") -> np.ndarray:
    """Cellwise means of the E x E map A on an n x n mesh -> n x n array (row = y).

    ``mean``: which mean of the covered coefficient cells (area-weighted) when n < E; when every
    mesh cell lies inside one coefficient cell the value is exact and all means agree.
    """
    forward, inverse = COEFFICIENT_MEANS[check_mean(mean)]
    A = np.asarray(A, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"coefficient must be a square E x E array, got shape {A.shape}")
    E = check_E(A.shape[0])
    if not np.all(np.isfinite(A)) or A.min() <= 0:
        raise ValueError("coefficient values must be finite and > 0")
    if n % E == 0:  # every mesh cell inside one coefficient cell
        r = n // E
        return np.repeat(np.repeat(A, r, axis=0), r, axis=1)
    if E % n == 0:  # every mesh cell covers r x r whole coefficient cells
        r = E // n
        return inverse(forward(A).reshape(n, r, n, r).mean(axis=(1, 3)))
    P = projection_matrix(n, E)
    return inverse(P @ forward(A) @ P.T)


@dataclass
class SolveResult:
    u: np.ndarray | None  # (n+1, n+1) on the root rank, None elsewhere
    iterations: int
    residual: float  # final ||b - A x|| / ||b||
    solve_time: float  # wall seconds: coefficient + assembly + Krylov solve
    timings: dict = field(default_factory=dict)  # assembly, solve, gather (seconds)


class Q1Solver:
    """Reusable Q1 solver on the n x n quadrilateral mesh of the unit square over ``comm``.

    ``coefficient_family='DG'``: coefficients are E x E arrays, set as their cellwise L2
    projection (``coefficient_mean``: which mean of the covered cells, see ``project_coefficient``).
    ``'Q'``: coefficients are callables ``a(x, y)``, interpolated in Q1 (for smooth manufactured
    solutions). ``source`` is a number or a callable ``f(x, y)`` (interpolated in Q1).
    """

    def __init__(
        self,
        comm,
        n: int,
        source: float | Callable = 1.0,
        rtol: float = 1e-10,
        max_it: int = 1000,
        ksp_type: str = "cg",
        pc_type: str = "hypre",
        coefficient_family: str = "DG",
        coefficient_mean: str = "arithmetic",
    ):
        # isort: off
        from fesr.fem import compat  # first: it fixes the HDF5 load order
        import dolfinx.fem
        import dolfinx.mesh
        import ufl
        from petsc4py import PETSc

        # isort: on

        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"mesh size n must be a positive integer, got {n!r}")
        if not 0 < float(rtol) < 1:
            raise ValueError(f"rtol must lie in (0, 1), got {rtol!r}")
        if int(max_it) < 1:
            raise ValueError(f"max_it must be >= 1, got {max_it!r}")
        if coefficient_family not in ("DG", "Q"):
            raise ValueError(f"coefficient_family must be 'DG' or 'Q', got {coefficient_family!r}")
        self.coefficient_mean = check_mean(coefficient_mean)
        self.comm, self.n, self.family = comm, int(n), coefficient_family
        self.mesh = mesh = compat.unit_square_quads(comm, self.n)
        self.V = V = compat.function_space(mesh, "Lagrange", 1)
        self.W = compat.function_space(
            mesh, *(("DG", 0) if coefficient_family == "DG" else ("Lagrange", 1))
        )
        self.kappa = dolfinx.fem.Function(self.W)
        self.kappa.x.array[:] = 1.0
        self.uh = dolfinx.fem.Function(V)

        if callable(source):
            f = dolfinx.fem.Function(V)
            f.interpolate(lambda x: source(x[0], x[1]))
        else:
            f = dolfinx.fem.Constant(mesh, PETSc.ScalarType(float(source)))
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        self.a = dolfinx.fem.form(ufl.inner(self.kappa * ufl.grad(u), ufl.grad(v)) * ufl.dx)
        self.L = dolfinx.fem.form(f * v * ufl.dx)

        tdim = mesh.topology.dim
        mesh.topology.create_connectivity(tdim - 1, tdim)
        facets = dolfinx.mesh.locate_entities_boundary(
            mesh, tdim - 1, lambda x: np.full(x.shape[1], True)
        )
        dofs = dolfinx.fem.locate_dofs_topological(V, tdim - 1, facets)
        self.bcs = [dolfinx.fem.dirichletbc(PETSc.ScalarType(0.0), dofs, V)]

        self.A = compat.create_matrix(self.a)
        self.b = compat.create_vector(self.L)
        compat.assemble_vector_into(self.b, self.L, self.a, self.bcs)
        self.b_norm = self.b.norm()
        self.r = self.b.duplicate()
        self.x = compat.petsc_vec(self.uh)

        self.ksp = ksp = PETSc.KSP().create(comm)
        ksp.setOperators(self.A)
        ksp.setType(ksp_type)
        ksp.getPC().setType(pc_type)
        if pc_type == "hypre":
            ksp.getPC().setHYPREType("boomeramg")
        if ksp_type == "cg":
            # Converge on the true relative residual ||b - Ax|| / ||b||, as SPEC 1 asks.
            ksp.setNormType(PETSc.KSP.NormType.UNPRECONDITIONED)
        ksp.setTolerances(rtol=float(rtol), atol=0.0, max_it=int(max_it))
        self.solver_name = solver_name(ksp_type, pc_type)

        if coefficient_family == "DG":
            # Grid cell (row i = y, column j = x) of every local cell, owned and ghost.
            cmap = mesh.topology.index_map(tdim)
            cells = np.arange(cmap.size_local + cmap.num_ghosts, dtype=np.int32)
            mid = dolfinx.mesh.compute_midpoints(mesh, tdim, cells)
            self._cell_i = np.clip(np.floor(mid[:, 1] * self.n).astype(np.int64), 0, self.n - 1)
            self._cell_j = np.clip(np.floor(mid[:, 0] * self.n).astype(np.int64), 0, self.n - 1)
            self._cell_dof = compat.cell_dofs(self.W)[cells, 0]

        # Where every owned dof goes in the (n+1)^2 grid, found from its coordinates.
        owned = V.dofmap.index_map.size_local
        xyz = V.tabulate_dof_coordinates()[:owned]
        gi, gj = (
            np.rint(xyz[:, 1] * self.n).astype(np.int64),
            np.rint(xyz[:, 0] * self.n).astype(np.int64),
        )
        if (
            np.abs(gi - xyz[:, 1] * self.n).max(initial=0) > 1e-6
            or np.abs(gj - xyz[:, 0] * self.n).max(initial=0) > 1e-6
        ):
            raise RuntimeError("Q1 dof coordinates are not mesh nodes; unexpected DOLFINx layout")
        self._owned = owned
        local_index = gi * (self.n + 1) + gj
        self._counts = np.asarray(comm.allgather(owned), dtype=np.int64)
        self._grid_index = self._gather_array(local_index.astype(np.int64))
        covered = comm.rank != 0 or np.array_equal(
            np.sort(self._grid_index), np.arange((self.n + 1) ** 2)
        )
        if not comm.bcast(covered, root=0):
            raise RuntimeError("gathered dofs do not cover every grid node exactly once")

    def _gather_array(self, local: np.ndarray) -> np.ndarray | None:
        """Concatenate each rank's owned values on rank 0 (rank order)."""
        if self.comm.size == 1:
            return local.copy()
        from mpi4py import MPI

        recv = None
        if self.comm.rank == 0:
            recv = np.empty(int(self._counts.sum()), dtype=local.dtype)
        mpi_type = MPI.INT64_T if local.dtype == np.int64 else MPI.DOUBLE
        self.comm.Gatherv(
            local, [recv, self._counts, None, mpi_type] if recv is not None else None, root=0
        )
        return recv

    def set_coefficient(self, coefficient) -> None:
        if callable(coefficient):
            self.kappa.interpolate(lambda x: coefficient(x[0], x[1]))
            return
        if self.family != "DG":
            raise ValueError(
                "this solver interpolates callable coefficients; build it with family 'DG'"
            )
        cellwise = project_coefficient(coefficient, self.n, self.coefficient_mean)
        self.kappa.x.array[self._cell_dof] = cellwise[self._cell_i, self._cell_j]

    def solve(self, coefficient) -> SolveResult:
        """Solve for one coefficient; SolverError when the Krylov solver does not converge."""
        from fesr.fem import compat

        t0 = time.perf_counter()
        self.set_coefficient(coefficient)
        compat.assemble_matrix_into(self.A, self.a, self.bcs)
        self.ksp.setOperators(self.A)
        t1 = time.perf_counter()
        self.ksp.solve(self.b, self.x)
        reason, its = self.ksp.getConvergedReason(), self.ksp.getIterationNumber()
        self.A.mult(self.x, self.r)
        self.r.aypx(-1.0, self.b)
        residual = self.r.norm() / self.b_norm if self.b_norm > 0 else self.r.norm()
        t2 = time.perf_counter()
        if reason < 0:
            raise SolverError(
                f"{self.solver_name} did not converge on n={self.n}: reason {reason}, "
                f"{its} iterations, relative residual {residual:.3e}"
            )
        values = self._gather_array(self.uh.x.array[: self._owned].copy())
        u = None
        if values is not None:
            u = np.empty((self.n + 1) ** 2)
            u[self._grid_index] = values
            u = u.reshape(self.n + 1, self.n + 1)
        t3 = time.perf_counter()
        return SolveResult(
            u=u,
            iterations=int(its),
            residual=float(residual),
            solve_time=t2 - t0,
            timings={"assembly": t1 - t0, "solve": t2 - t1, "gather": t3 - t2},
        )

    def close(self) -> None:
        for obj in (self.ksp, self.A, self.b, self.r):
            obj.destroy()
