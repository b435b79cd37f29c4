"""Benchmark of the data part: per-sample wall time of the pipeline's solve path, split into
assembly (coefficient projection + matrix), solve (CG + BoomerAMG), gather (to rank 0) and write
(compressed NetCDF), for n = 32 .. 2048 on 1 and 2 MPI ranks; a bare DOLFINx assemble-and-solve
of the same problem for comparison; 2-rank parallel efficiency; peak memory per rank.

    .venv/bin/python benchmarks/bench_fem.py                 # driver: runs 1 and 2 ranks, prints
    .venv/bin/python benchmarks/bench_fem.py --ns 32 64 128 --samples 2

Goals (issue 2): pipeline / bare <= 1.3 at n = 2048; 2-rank efficiency T1 / (2 T2) >= 80 %.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def worker(ns, samples: int, E: int) -> None:
    # isort: off
    from fesr.fem import compat  # netCDF4 before DOLFINx (see compat)
    import dolfinx.fem
    import dolfinx.fem.petsc
    import numpy as np
    import ufl
    from mpi4py import MPI
    from petsc4py import PETSc

    # isort: on
    from fesr.fem.coefficients import random_map
    from fesr.fem.dataset import FieldWriter, atomic_dataset
    from fesr.fem.solver import Q1Solver

    comm = MPI.COMM_WORLD
    maps = [random_map(E, (1.0, 100.0), 0.5, 0, "test_random", k) for k in range(samples)]
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="bench_fem_")) if comm.rank == 0 else None
    for n in ns:
        t0 = time.perf_counter()
        solver = Q1Solver(comm, n, rtol=1e-10)
        setup = time.perf_counter() - t0
        per = {"assembly": [], "solve": [], "gather": [], "write": [], "iterations": []}
        ctx = atomic_dataset(tmp / f"u_{n}.nc") if comm.rank == 0 else None
        ds = ctx.__enter__() if ctx else None
        writer = FieldWriter(ds, n, range(samples), {"n": n}) if ds is not None else None
        for k, A in enumerate(maps):
            comm.barrier()
            result = solver.solve(A)
            t = time.perf_counter()
            if writer is not None:
                writer.write(k, result.u, result.solve_time, result.iterations, result.residual)
                ds.sync()
            write = comm.bcast(time.perf_counter() - t, root=0)
            for key in ("assembly", "solve", "gather"):
                per[key].append(comm.allreduce(result.timings[key], op=MPI.MAX))
            per["write"].append(write)
            per["iterations"].append(result.iterations)
        if ctx:
            writer.finish()
            ctx.__exit__(None, None, None)
        solver.close()

        # Bare DOLFINx: the same forms, assembled into a fresh matrix and solved, per sample.
        mesh = compat.unit_square_quads(comm, n)
        V = compat.function_space(mesh, "Lagrange", 1)
        W = compat.function_space(mesh, "DG", 0)
        kappa = dolfinx.fem.Function(W)
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        a = dolfinx.fem.form(kappa * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx)
        L = dolfinx.fem.form(dolfinx.fem.Constant(mesh, PETSc.ScalarType(1.0)) * v * ufl.dx)
        facets = dolfinx.mesh.locate_entities_boundary(mesh, 1, lambda x: np.full(x.shape[1], True))
        bc = dolfinx.fem.dirichletbc(
            PETSc.ScalarType(0.0), dolfinx.fem.locate_dofs_topological(V, 1, facets), V
        )
        cells = np.arange(mesh.topology.index_map(2).size_local, dtype=np.int32)
        mid = dolfinx.mesh.compute_midpoints(mesh, 2, cells)
        cell_dof = compat.cell_dofs(W)[cells, 0]
        ij = (np.floor(mid[:, 1] * E).astype(int), np.floor(mid[:, 0] * E).astype(int))
        uh = dolfinx.fem.Function(V)
        bare = []
        for A in maps:
            comm.barrier()
            t = time.perf_counter()
            kappa.x.array[cell_dof] = A[ij]
            kappa.x.scatter_forward()
            M = dolfinx.fem.petsc.assemble_matrix(a, bcs=[bc])
            M.assemble()
            b = dolfinx.fem.petsc.assemble_vector(L)
            dolfinx.fem.petsc.apply_lifting(b, [a], bcs=[[bc]])
            b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
            dolfinx.fem.petsc.set_bc(b, [bc])
            ksp = PETSc.KSP().create(comm)
            ksp.setOperators(M)
            ksp.setType("cg")
            ksp.getPC().setType("hypre")
            ksp.getPC().setHYPREType("boomeramg")
            ksp.setNormType(PETSc.KSP.NormType.UNPRECONDITIONED)
            ksp.setTolerances(rtol=1e-10, atol=0.0)
            ksp.solve(b, compat.petsc_vec(uh))
            bare.append(comm.allreduce(time.perf_counter() - t, op=MPI.MAX))
            ksp.destroy()
            M.destroy()
            b.destroy()
        peak = comm.gather(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, root=0)
        if comm.rank == 0:
            med = {k: float(np.median(vs)) for k, vs in per.items()}
            rows.append(
                {
                    "n": n,
                    "ranks": comm.size,
                    "setup": setup,
                    **med,
                    "bare": float(np.median(bare)),
                    "peak_mb": max(peak),
                }  # fmt: skip
            )
            print(json.dumps(rows[-1]), flush=True)
    if comm.rank == 0:
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()


def table(rows) -> str:
    lines = [
        "| n | ranks | assembly s | solve s | gather s | write s | pipeline s/sample | bare s "
        "| pipeline/bare | CG its | peak MB/rank |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        pipe = r["assembly"] + r["solve"] + r["gather"] + r["write"]
        lines.append(
            f"| {r['n']} | {r['ranks']} | {r['assembly']:.3f} | {r['solve']:.3f} | "
            f"{r['gather']:.3f} | {r['write']:.3f} | {pipe:.3f} | {r['bare']:.3f} | "
            f"{pipe / r['bare']:.2f} | {r['iterations']:.0f} | {r['peak_mb']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ns", type=int, nargs="+", default=[32, 64, 128, 256, 512, 1024, 2048])
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("-E", type=int, default=128)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.ns, args.samples, args.E)
        return
    env = os.environ | {"OMP_NUM_THREADS": "1", "OMPI_ALLOW_RUN_AS_ROOT": "1",
                        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}  # fmt: skip
    rows = []
    for ranks in args.ranks:
        cmd = [sys.executable, __file__, "--worker", "--samples", str(args.samples), "-E",
               str(args.E), "--ns", *map(str, args.ns)]  # fmt: skip
        if ranks > 1:
            cmd = ["mpiexec", "--oversubscribe", "-n", str(ranks), *cmd]
        with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) as proc:
            for line in proc.stdout:  # stream: partial results survive an interrupted run
                if line.startswith("{"):
                    rows.append(json.loads(line))
                    print(line.strip(), flush=True)
        if proc.returncode:
            raise SystemExit(f"worker with {ranks} ranks failed ({proc.returncode})")
    print(table(rows))
    by = {(r["n"], r["ranks"]): r for r in rows}
    for n in args.ns:
        if (n, 1) in by and (n, 2) in by:
            t1 = sum(by[n, 1][k] for k in ("assembly", "solve", "gather", "write"))
            t2 = sum(by[n, 2][k] for k in ("assembly", "solve", "gather", "write"))
            print(f"n={n}: 2-rank parallel efficiency T1/(2 T2) = {t1 / (2 * t2):.0%}")


if __name__ == "__main__":
    main()
