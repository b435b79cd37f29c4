"""Benchmark of PG-LOD (``fesr.fem.lod``) against the project's direct Q1 solve, side by side in
one run on the same random maps (E = 128, contrast 1/100, lr_n = 32), one core.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_lod.py              # 3 maps
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_lod.py --maps 5 --json out.json

Per map: LOD set-up (correctors, coarse matrix and its LU) for k = 1, 2, 3 at N = 128 and k = 2
at N = 256, and its per-right-hand-side solve (load vector, coarse solve, reconstruction; median
of 20); the direct solve (``Q1Solver`` on one rank, CG + BoomerAMG, rtol 1e-10) at n = 128 and
256: per map (coefficient, assembly, AMG set-up and the Krylov solve, ``solve_time``) and per
right-hand side (a second Krylov solve with the AMG hierarchy kept). Wall and CPU seconds are
both printed: on a shared machine wall time includes waiting for a core, CPU time does not.
Medians over the maps. Break-even: the number m of right-hand sides per map from which LOD's
set-up + m solves costs less than the direct solve's per-map part + m Krylov solves at n = N.
Accuracy: rel L2 and energy (sqrt(e^T K_A e / u^T K_A u)) against the direct solve at n = N.

Goal: LOD correctors at N = 128, k = 2 under 1 s on one core.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def timed(fn):
    """(result, wall s, CPU s) of fn()."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def median_solve(fn, repeats: int) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(repeats):
        _, w, c = timed(fn)
        walls.append(w)
        cpus.append(c)
    return float(np.median(walls)), float(np.median(cpus))


def run(maps: int, ks, fine_ks, lr_n: int, repeats: int, workers: int) -> dict:
    # isort: off
    from fesr.fem import compat  # noqa: F401  netCDF4 before DOLFINx (see compat)
    from mpi4py import MPI

    # isort: on
    import scipy.sparse.linalg as spla

    from fesr.fem import lod
    from fesr.fem.coefficients import random_map
    from fesr.fem.solver import Q1Solver, project_coefficient

    E = 128
    configs = [(k, E) for k in ks] + [(k, 2 * E) for k in fine_ks]
    direct_ns = sorted({E, 2 * E} | {n for _, n in configs})
    solvers = {n: Q1Solver(MPI.COMM_SELF, n, source=1.0, rtol=1e-10) for n in direct_ns}
    pool = lod.worker_pool(workers) if workers > 1 else None
    rows: dict[str, list[dict]] = {}
    try:
        for s in range(maps):
            A = random_map(E, (1.0, 100.0), 0.5, 0, "test_random", s)
            direct = {}
            for n, solver in solvers.items():
                res, wall, cpu = timed(lambda solver=solver, A=A: solver.solve(A))
                krylov = median_solve(
                    lambda solver=solver: solver.ksp.solve(solver.b, solver.x), repeats
                )
                direct[n] = res.u
                rows.setdefault(f"direct n={n}", []).append(
                    {"setup_wall": wall, "setup_cpu": cpu, "rhs_wall": krylov[0],
                     "rhs_cpu": krylov[1], "iterations": res.iterations}
                )  # fmt: skip
                inner = lod._interior(n)
                load = np.full(len(inner), 1.0 / n**2)
                lu, wall, cpu = timed(
                    lambda n=n, A=A, inner=inner: spla.splu(
                        lod.stiffness(project_coefficient(A, n))[inner][:, inner].tocsc()
                    )
                )
                once = median_solve(lambda lu=lu, load=load: lu.solve(load), repeats)
                rows.setdefault(f"stored LU n={n}", []).append(
                    {"setup_wall": wall + once[0], "setup_cpu": cpu + once[1],
                     "rhs_wall": once[0], "rhs_cpu": once[1]}
                )  # fmt: skip
            for k, N in configs:
                corr, wall, cpu = timed(
                    lambda k=k, N=N, A=A: lod.compute_correctors(A, lr_n, k, N, workers, pool=pool)
                )
                out = lod.solve(corr, 1.0)
                rhs = median_solve(lambda corr=corr: lod.solve(corr, 1.0), repeats)
                K = lod.stiffness(project_coefficient(A, N))
                ref = direct[N].reshape(-1)
                err = out.u_fine.reshape(-1) - ref
                rows.setdefault(f"lod k={k} N={N}", []).append(
                    {"setup_wall": wall + rhs[0], "setup_cpu": cpu + rhs[1], "rhs_wall": rhs[0],
                     "rhs_cpu": rhs[1], "correctors_wall": wall, "correctors_cpu": cpu,
                     "patches_share": corr.timings["patches"] / corr.setup_seconds, "fine_n": N,
                     "rel_l2": float(np.linalg.norm(err) / np.linalg.norm(ref)),
                     "rel_energy": float(np.sqrt(err @ (K @ err) / (ref @ (K @ ref))))}
                )  # fmt: skip
            print(f"map {s + 1}/{maps} done", file=sys.stderr, flush=True)
    finally:
        if pool is not None:
            pool.shutdown()
        for solver in solvers.values():
            solver.close()
    return {
        name: {key: float(np.median([r[key] for r in rs])) for key in rs[0]}
        for name, rs in rows.items()
    }


def break_even(lod_row: dict, other: dict) -> str:
    """Right-hand sides per map from which LOD costs less than ``other`` (CPU seconds): each
    costs its per-map part (set-up + 1 solve, less that solve) + m solves."""
    lod_map = lod_row["setup_cpu"] - lod_row["rhs_cpu"]
    other_map = other["setup_cpu"] - other["rhs_cpu"]
    if lod_map + lod_row["rhs_cpu"] <= other_map + other["rhs_cpu"]:
        return "1"
    if other["rhs_cpu"] <= lod_row["rhs_cpu"]:
        return "never"
    return str(int(np.ceil((lod_map - other_map) / (other["rhs_cpu"] - lod_row["rhs_cpu"]))))


def report(med: dict) -> str:
    d128, d256 = med["direct n=128"], med["direct n=256"]
    lines = [
        "| approach | set-up+1 solve s/map wall | CPU | per-RHS ms wall | CPU "
        "| / direct n=128 | / direct n=256 | break-even RHS vs direct n=N | vs stored LU n=N "
        "| rel L2 vs n=N | rel energy |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in med.items():
        ratios = f"| {r['setup_cpu'] / d128['setup_cpu']:.2f} "
        ratios += f"| {r['setup_cpu'] / d256['setup_cpu']:.2f} "
        times = (
            f"| {name} | {r['setup_wall']:.3f} | {r['setup_cpu']:.3f} | {1e3 * r['rhs_wall']:.2f} "
            f"| {1e3 * r['rhs_cpu']:.2f} "
        )
        if not name.startswith("lod"):
            lines.append(times + ratios + "| - | - | 0 | 0 |")
            continue
        n = int(r["fine_n"])
        lines.append(
            times + ratios + f"| {break_even(r, med[f'direct n={n}'])} "
            f"| {break_even(r, med[f'stored LU n={n}'])} | {r['rel_l2']:.4f} "
            f"| {r['rel_energy']:.4f} |"
        )
    lines += [
        "",
        "| LOD set-up (correctors, coarse matrix, LU) | wall s | CPU s | patch solves share |",
        "|---|---|---|---|",
    ]
    for name, r in med.items():
        if name.startswith("lod"):
            lines.append(
                f"| {name} | {r['correctors_wall']:.3f} | {r['correctors_cpu']:.3f} "
                f"| {100 * r['patches_share']:.0f} % |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--maps", type=int, default=3)
    ap.add_argument("--k", type=int, nargs="+", default=[1, 2, 3], help="k at N = E = 128")
    ap.add_argument("--fine-k", type=int, nargs="*", default=[2], help="k at N = 256")
    ap.add_argument("--lr-n", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=20, help="per-RHS solves timed per map")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--json", help="write the medians here")
    a = ap.parse_args()
    med = run(a.maps, a.k, a.fine_k, a.lr_n, a.repeats, a.workers)
    print(report(med))
    print(
        "\nRatios and break-even use CPU seconds. direct (Q1Solver, 1 rank): per map = "
        "coefficient + assembly + AMG set-up + one CG solve, per RHS = one CG solve with the AMG "
        "hierarchy kept. stored LU (scipy SuperLU of the same matrix, for reference): per map = "
        "assembly + factorisation + one solve, per RHS = one solve. LOD: per map = correctors + "
        "coarse matrix + its LU + one solve, per RHS = load vector, coarse solve, "
        "reconstruction."
    )
    if a.json:
        Path(a.json).write_text(json.dumps(med, indent=2))
