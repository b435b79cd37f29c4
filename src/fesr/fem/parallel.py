"""Distributing the solves of one shard over the ranks of an MPI communicator (SPEC 1).

* ``decompose=True`` (n >= mpi.decompose_min_n): every sample is one mesh partitioned over all
  ranks; samples are solved one after another.
* ``decompose=False``: each rank solves whole samples on ``MPI.COMM_SELF``, round-robin; after
  each round the fields are gathered to rank 0 (at most ``size`` fields in flight).

Either way rank 0 receives ``(sample, SolveResult)`` in sample order through ``on_result`` and
every rank raises ``SolverError`` when any solve fails, so no rank is left waiting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from fesr.fem.solver import Q1Solver, SolverError, SolveResult


def solve_many(
    comm,
    n: int,
    samples: Sequence[int],
    coefficient_of: Callable[[int], np.ndarray],
    on_result: Callable[[int, SolveResult], None],
    decompose: bool,
    solver_options: dict,
) -> None:
    if decompose or comm.size == 1:
        solver = Q1Solver(comm, n, **solver_options)
        try:
            for s in samples:
                try:
                    result = solver.solve(coefficient_of(s))
                except SolverError as err:
                    raise SolverError(f"sample {s}: {err}") from None
                if comm.rank == 0:
                    on_result(s, result)
        finally:
            solver.close()
        return

    from mpi4py import MPI

    # Initialising PETSc is collective over COMM_WORLD: do it on every rank before any rank
    # builds a solver alone.
    from fesr.fem import compat  # noqa: F401

    # Build the per-rank solvers one rank at a time: the first one fills the form JIT cache,
    # so ranks never compile the same module concurrently.
    solver = None
    for r in range(comm.size):
        if comm.rank == r:
            solver = Q1Solver(MPI.COMM_SELF, n, **solver_options)
        comm.barrier()
    try:
        samples = list(samples)
        for start in range(0, len(samples), comm.size):
            batch = samples[start : start + comm.size]
            mine = batch[comm.rank] if comm.rank < len(batch) else None
            payload = None
            if mine is not None:
                try:
                    payload = (mine, solver.solve(coefficient_of(mine)), None)
                except SolverError as err:
                    payload = (mine, None, f"sample {mine}: {err}")
            gathered = comm.gather(payload, root=0)
            errors = None
            if comm.rank == 0:
                errors = [p[2] for p in gathered if p is not None and p[2] is not None]
            errors = comm.bcast(errors, root=0)
            if errors:
                raise SolverError("; ".join(errors))
            if comm.rank == 0:
                for p in gathered:
                    if p is not None:
                        on_result(p[0], p[1])
    finally:
        solver.close()
