"""Benchmark of the FE solver's cheap end: CG + BoomerAMG from zero stopped after k = 1, 2, 4
iterations or at rtol 1e-1, 1e-2, against the direct solve (rtol 1e-10), random maps, 8x and 16x.

Per variant: set-up seconds (coefficient + assembly + AMG set-up), iteration seconds, their sum,
and the error against the direct solve, rel L2 over the nodes and rel energy (the A-weighted
energy norm of ``fesr.evaluate.metrics``), as the mean over the maps (times: the median). One
rank, one thread.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_partial_solve.py
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_partial_solve.py --alphas 8 --maps 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alphas", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--maps", type=int, default=3)
    ap.add_argument("--lr-n", type=int, default=32)
    ap.add_argument("--E", type=int, default=128)
    ap.add_argument("--iterations", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--rtol", type=float, nargs="*", default=[1e-1, 1e-2])
    a = ap.parse_args(argv)

    import numpy as np
    from mpi4py import MPI

    from fesr.fem.coefficients import random_map
    from fesr.fem.partial_solve import PartialSolver, rtol_label
    from fesr.fem.q1_grid import energy_sq
    from fesr.fem.solver import Q1Solver

    maps = [random_map(a.E, (1.0, 100.0), 0.5, 0, "test_random", k) for k in range(a.maps)]
    print(f"{a.maps} random maps (E = {a.E}), CG + BoomerAMG from zero, 1 rank")
    header = (
        f"{'scale':>5} {'n':>5} {'variant':>14} {'its':>4} {'setup s':>8} {'iter s':>8} "
        f"{'total s':>8} {'rel L2':>9} {'rel energy':>10}"
    )
    print(header)
    print("-" * len(header))
    for alpha in a.alphas:
        n = a.lr_n * alpha
        direct = Q1Solver(MPI.COMM_SELF, n, rtol=1e-10)
        rows: dict[str, list] = {}
        with PartialSolver(MPI.COMM_SELF, n) as solver:
            for A in maps:
                t0 = time.perf_counter()
                ref = direct.solve(A)
                wall = time.perf_counter() - t0
                rows.setdefault("direct 1e-10", []).append(
                    (ref.iterations, ref.timings["assembly"], ref.timings["solve"], wall, 0, 0)
                )
                ref_l2, ref_energy = np.linalg.norm(ref.u), energy_sq(ref.u, A)
                solver.set_coefficient(A)
                variants = [(f"it{k}", {"iterations": k}) for k in a.iterations]
                variants += [(f"rtol{rtol_label(r)}", {"rtol": r}) for r in a.rtol]
                for name, kwargs in variants:
                    res = solver.cg(**kwargs)
                    err = res.u - ref.u
                    rows.setdefault(name, []).append(
                        (
                            res.iterations,
                            res.setup_seconds,
                            res.iteration_seconds,
                            res.seconds,
                            np.linalg.norm(err) / ref_l2,
                            np.sqrt(energy_sq(err, A) / ref_energy),
                        )
                    )
        direct.close()
        for name, values in rows.items():
            v = np.array(values, dtype=float)
            its, setup, it_s, total = (np.median(v[:, c]) for c in range(4))
            l2, en = v[:, 4].mean(), v[:, 5].mean()
            print(
                f"{alpha:>5} {n:>5} {name:>14} {its:>4.0f} {setup:>8.3f} {it_s:>8.3f} "
                f"{total:>8.3f} {l2:>9.2e} {en:>10.2e}"
            )
    print("direct 1e-10: setup s = coefficient + assembly, iter s = KSP solve incl. AMG set-up")


if __name__ == "__main__":
    main()
