"""Q1 finite element solve of -div(A grad u) = f, u = 0 on the boundary of the unit square (SPEC 1).

One ``Q1Solver`` per (communicator, n): the mesh, spaces, forms, matrix, right-hand side and
Krylov solver are built once and reused for every sample; per sample only the coefficient is
set and the matrix re-assembled. The solution is gathered to the root rank as an (n+1) x (n+1)
array ``u[i, j] = u(x_j, y_i)``; every dof is placed by its coordinates (``round(x n)``), never by
assuming a dof order.

Every solve is verified: after the Krylov solve the true relative residual ||b - Ax|| / ||b|| is
computed with the assembled operator (boundary rows included; collective, so every rank of a
decomposed mesh gets the same value), and a solve whose true residual exceeds
``RESIDUAL_FACTOR`` x rtol is a ``SolverError``, whatever PETSc's converged reason says (it
reports ``preonly`` as converged after one sweep of any preconditioner). CG and GMRES test the
unpreconditioned residual (GMRES preconditioned from the right), so the tolerance they stop at is
the one checked; their recursively updated residual drifts from the true one, so a solve whose
true residual is above rtol restarts once from its iterate (at n = 2048, rtol 1e-10: CG stops at
a true 6.2e-10, one restart of 2 iterations reaches 2.8e-10). The factor covers the round-off
floor of computing b - Ax, about ``ROUNDOFF_COEFFICIENT`` eps n^2 (``residual_floor``; measured
0.23-0.38 eps n^2 on random maps of contrast 2 to 1e4, n = 256 to 2048): 4.7e-10 at n = 2048,
under 10 x 1e-10. ``preonly`` is a solve only with an exact factorisation
(``EXACT_PRECONDITIONERS``); fesr.validate refuses the other combinations and an rtol the floor
makes unreachable. ``SolveResult.residual`` is the true residual.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from fesr.fem.discretisation import (  # noqa: F401  (importable from here too)
    COEFFICIENT_MEANS,
    EXACT_PRECONDITIONERS,
    RESIDUAL_FACTOR,
    ROUNDOFF_COEFFICIENT,
    check_alpha,
    check_mean,
    mesh_size,
    project_coefficient,
    projection_matrix,
    residual_floor,
    solver_name,
)


class SolverError(RuntimeError):
    """A linear solve that missed its tolerance (or failed on another rank)."""


@dataclass
class SolveResult:
    u: np.ndarray | None  # (n+1, n+1) on the root rank, None elsewhere
    iterations: int
    residual: float  # final ||b - A x|| / ||b||
    solve_time: float  # wall seconds: coefficient + assembly + preconditioner + Krylov solve
    timings: dict = field(default_factory=dict)  # assembly, pc_setup, solve, gather (seconds)

    @property
    def setup_time(self) -> float:
        """What one coefficient map costs before any right-hand side: projection, assembly and
        preconditioner set-up (the rest of ``solve_time`` is the Krylov solve)."""
        return self.timings.get("assembly", 0.0) + self.timings.get("pc_setup", 0.0)


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
        if ksp_type == "gmres":
            ksp.setPCSide(PETSc.PC.Side.RIGHT)  # the side whose residual norm is the true one
        if ksp_type in ("cg", "gmres"):
            # Converge on the true relative residual ||b - Ax|| / ||b||, as SPEC 1 asks.
            ksp.setNormType(PETSc.KSP.NormType.UNPRECONDITIONED)
        ksp.setTolerances(rtol=float(rtol), atol=0.0, max_it=int(max_it))
        self.rtol, self.restarts = float(rtol), ksp_type != "preonly"
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

    def nodal_field(self, vec) -> np.ndarray | None:
        """A PETSc vector on V as the (n+1, n+1) nodal array on the root rank (None elsewhere)."""
        values = self._gather_array(np.array(vec.getArray(readonly=True), dtype=np.float64))
        if values is None:
            return None
        u = np.empty((self.n + 1) ** 2)
        u[self._grid_index] = values
        return u.reshape(self.n + 1, self.n + 1)

    def set_nodal_field(self, vec, u) -> None:
        """Set the owned entries of a PETSc vector on V from an (n+1, n+1) nodal array given on
        the root rank (the inverse of ``nodal_field``; other ranks may pass None)."""
        flat, shape = None, None
        if self.comm.rank == 0:
            u = np.asarray(u, dtype=np.float64)
            shape = u.shape
        shape = self.comm.bcast(shape, root=0)  # every rank refuses together, none waits
        if shape != (self.n + 1, self.n + 1):
            raise ValueError(f"nodal field has shape {shape}, expected {(self.n + 1, self.n + 1)}")
        if self.comm.rank == 0:
            flat = np.ascontiguousarray(u.reshape(-1)[self._grid_index])
        if self.comm.size == 1:
            local = flat
        else:
            from mpi4py import MPI

            local = np.empty(self._owned)
            send = [flat, self._counts, None, MPI.DOUBLE] if flat is not None else None
            self.comm.Scatterv(send, local, root=0)
        from petsc4py import PETSc

        vec.setArray(local)
        vec.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)

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

    def true_residual(self) -> float:
        """||b - A x|| / ||b|| of the current iterate (collective over the communicator)."""
        self.A.mult(self.x, self.r)
        self.r.aypx(-1.0, self.b)
        return self.r.norm() / self.b_norm if self.b_norm > 0 else self.r.norm()

    def solve(self, coefficient) -> SolveResult:
        """Solve for one coefficient; SolverError when the solve does not converge or its true
        relative residual exceeds ``RESIDUAL_FACTOR`` x rtol (module docstring)."""
        from fesr.fem import compat

        t0 = time.perf_counter()
        self.set_coefficient(coefficient)
        compat.assemble_matrix_into(self.A, self.a, self.bcs)
        self.ksp.setOperators(self.A)
        t1 = time.perf_counter()
        self.ksp.setUp()  # the AMG hierarchy: timed apart, as per-map set-up
        t1s = time.perf_counter()
        self.ksp.solve(self.b, self.x)
        reason, its = self.ksp.getConvergedReason(), self.ksp.getIterationNumber()
        residual = self.true_residual()
        if reason >= 0 and residual > self.rtol and self.restarts:
            self.ksp.setInitialGuessNonzero(True)
            try:
                self.ksp.solve(self.b, self.x)
            finally:
                self.ksp.setInitialGuessNonzero(False)
            reason, its = self.ksp.getConvergedReason(), its + self.ksp.getIterationNumber()
            residual = self.true_residual()
        t2 = time.perf_counter()
        if reason < 0:
            raise SolverError(
                f"{self.solver_name} did not converge on n={self.n}: reason {reason}, "
                f"{its} iterations, relative residual {residual:.3e}"
            )
        limit = RESIDUAL_FACTOR * self.rtol
        if not residual <= limit:
            raise SolverError(
                f"{self.solver_name} missed its tolerance on n={self.n}: true relative residual "
                f"||b - Ax|| / ||b|| = {residual:.3e} after {its} iterations, above "
                f"{RESIDUAL_FACTOR} x rtol = {limit:.1e}"
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
            timings={
                "assembly": t1 - t0,
                "pc_setup": t1s - t1,
                "solve": t2 - t1s,
                "gather": t3 - t2,
            },
        )

    def close(self) -> None:
        for obj in (self.ksp, self.A, self.b, self.r):
            obj.destroy()
