"""Benchmark of the data part: per-sample wall time of the pipeline's solve path, split into
set-up (mesh, spaces, forms, solver objects: once per n), assembly (coefficient projection +
matrix), PC set-up (the BoomerAMG hierarchy of that matrix), Krylov solve (CG), gather (to rank
0) and write (compressed NetCDF), for n = 32 .. 2048 on 1 and 2 MPI ranks; a bare DOLFINx
assemble-and-solve of the same problem, split alike, for comparison; per-part 2-rank parallel
efficiency; a PETSc event profile of the pipeline's solves per rank count (where the time of
the solve goes: AMG set-up, V-cycles, matrix products, halo exchanges, reductions); peak memory
per rank; the load average before and after each rank count (the figure is only meaningful on
an idle machine).

    .venv/bin/python benchmarks/bench_fem.py --ns 2048         # the issue-23 figure
    .venv/bin/python benchmarks/bench_fem.py --ns 32 64 128 --samples 2

Goals: pipeline / bare <= 1.3 at n = 2048; 2-rank efficiency T1 / (2 T2) >= 80 %.
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
    PETSc.Log.begin()
    events = {name: PETSc.Log.Event(name) for name in PROFILE_EVENTS}
    maps = [random_map(E, (1.0, 100.0), 0.5, 0, "test_random", k) for k in range(samples)]
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="bench_fem_")) if comm.rank == 0 else None
    for n in ns:
        t0 = time.perf_counter()
        solver = Q1Solver(comm, n, rtol=1e-10)
        setup = time.perf_counter() - t0
        per = {k: [] for k in (*PARTS, "iterations")}
        before = {name: e.getPerfInfo() for name, e in events.items()}
        cpu0, wall0 = time.process_time(), time.perf_counter()
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
            for key in ("assembly", "pc_setup", "solve", "gather"):
                per[key].append(comm.allreduce(result.timings[key], op=MPI.MAX))
            per["write"].append(write)
            per["iterations"].append(result.iterations)
        # this rank's CPU seconds over its wall seconds in the solves: below 1, it waited for
        # a core (another process) or for the other rank
        share = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        shares = comm.gather(share, root=0)
        profile = {}
        for name, e in events.items():
            info, was = e.getPerfInfo(), before[name]
            seconds = comm.allreduce((info["time"] - was["time"]) / samples, op=MPI.MAX)
            messages = comm.allreduce((info["numMessages"] - was["numMessages"]) / samples)
            profile[name] = {"s": seconds, "count": (info["count"] - was["count"]) / samples,
                             "messages": messages}  # fmt: skip
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
        bare = {"assembly": [], "pc_setup": [], "solve": []}
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
            t1 = time.perf_counter()
            ksp.setUp()
            t2 = time.perf_counter()
            ksp.solve(b, compat.petsc_vec(uh))
            t3 = time.perf_counter()
            for key, dt in (("assembly", t1 - t), ("pc_setup", t2 - t1), ("solve", t3 - t2)):
                bare[key].append(comm.allreduce(dt, op=MPI.MAX))
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
                    **{f"bare_{k}": float(np.median(v)) for k, v in bare.items()},
                    "peak_mb": max(peak),
                    "cpu_share": shares,
                    "profile": profile,
                }  # fmt: skip
            )
            print(json.dumps(rows[-1]), flush=True)
    if comm.rank == 0:
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()


PARTS = ("assembly", "pc_setup", "solve", "gather", "write")
# PETSc events of the pipeline's solves: the AMG set-up and its cycles, the CG iterations, the
# matrix products and the halo exchanges and reductions that a second rank adds
PROFILE_EVENTS = (
    "KSPSetUp",
    "PCSetUp",
    "KSPSolve",
    "PCApply",
    "MatMult",
    "VecScatterBegin",
    "VecScatterEnd",
    "VecNorm",
    "VecTDot",
)


def pipeline(r: dict) -> float:
    return sum(r[k] for k in PARTS)


def bare(r: dict) -> float:
    return r["bare_assembly"] + r["bare_pc_setup"] + r["bare_solve"]


def table(rows) -> str:
    lines = [
        "| n | ranks | set-up s (once) | assembly s | PC set-up s | Krylov s | gather s | write s "
        "| pipeline s/sample | bare s (asm / PC / Krylov) | pipeline/bare | CG its "
        "| peak MB/rank |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']} | {r['ranks']} | {r['setup']:.3f} | {r['assembly']:.3f} | "
            f"{r['pc_setup']:.3f} | {r['solve']:.3f} | {r['gather']:.3f} | {r['write']:.3f} | "
            f"{pipeline(r):.3f} | {bare(r):.3f} ({r['bare_assembly']:.3f} / "
            f"{r['bare_pc_setup']:.3f} / {r['bare_solve']:.3f}) | {pipeline(r) / bare(r):.2f} | "
            f"{r['iterations']:.0f} | {r['peak_mb']:.0f} |"
        )
    return "\n".join(lines)


def efficiency(by: dict, n: int) -> list[str]:
    """T1 / (2 T2) per part of the n solve, and the PETSc profile side by side."""
    one, two = by[n, 1], by[n, 2]
    parts = {
        "set-up (once)": lambda r: r["setup"],
        "assembly": lambda r: r["assembly"],
        "PC set-up": lambda r: r["pc_setup"],
        "Krylov solve": lambda r: r["solve"],
        "gather": lambda r: r["gather"],
        "write": lambda r: r["write"],
        "pipeline per sample": pipeline,
        "bare DOLFINx per sample": bare,
    }
    lines = [
        f"n={n}: 2-rank parallel efficiency T1 / (2 T2)",
        "",
        "| part | 1 rank s | 2 ranks s | efficiency |",
        "|---|---|---|---|",
    ]
    for name, f in parts.items():
        t1, t2 = f(one), f(two)
        eff = f"{t1 / (2 * t2):.0%}" if t2 > 0 else "-"
        lines.append(f"| {name} | {t1:.3f} | {t2:.3f} | {eff} |")
    shares = ", ".join(f"{x:.0%}" for x in two["cpu_share"])
    lines += [
        "",
        f"CPU seconds / wall seconds of each rank in the pipeline's solves: 1 rank "
        f"{one['cpu_share'][0]:.0%}; 2 ranks {shares} (below 100%: the rank waited, for a core "
        "taken by another process or for the other rank)",
        "",
        f"n={n}: PETSc events per sample (slowest rank), pipeline solves",
        "",
        "| event | 1 rank s | 2 ranks s | efficiency | calls | messages (2 ranks) |",
        "|---|---|---|---|---|---|",
    ]
    for name in PROFILE_EVENTS:
        a, b = one["profile"][name], two["profile"][name]
        eff = f"{a['s'] / (2 * b['s']):.0%}" if b["s"] > 0 else "-"
        lines.append(
            f"| {name} | {a['s']:.3f} | {b['s']:.3f} | {eff} | {b['count']:.0f} "
            f"| {b['messages']:.0f} |"
        )
    return lines


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
        print(f"{ranks} rank(s): load average before {os.getloadavg()}", flush=True)
        with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) as proc:
            for line in proc.stdout:  # stream: partial results survive an interrupted run
                if line.startswith("{"):
                    rows.append(json.loads(line))
                    print(line.strip(), flush=True)
        print(f"{ranks} rank(s): load average after {os.getloadavg()}", flush=True)
        if proc.returncode:
            raise SystemExit(f"worker with {ranks} ranks failed ({proc.returncode})")
    print(table(rows))
    by = {(r["n"], r["ranks"]): r for r in rows}
    for n in args.ns:
        if (n, 1) in by and (n, 2) in by:
            print()
            print("\n".join(efficiency(by, n)))


if __name__ == "__main__":
    main()
