"""Every approach of ``table_cost`` re-timed alone on one core: the timing job's CSV.

``python -m fesr.evaluate.timing --split test_random --maps 3 --scales 2 4 8 16 32 64
--coarse-scales 1 2 4 8 16 32 --models bicubic liif nhcsr --checkpoints C1 C2 C3
--data-dir results/data [--lr-n 32 --source 1.0 --ksp-type cg --pc-type hypre --rtol 1e-10
--max-it 1000 --lod-layers 1 2 3 --lod-finer 2:256 --fe-iterations 1 2 4
--corrections-models liif --corrections-scales 8 16 --cg 1 2 --smooth 10 --chunk 65536]
--out results/metrics/timing/test_random.csv``

Conditions. One process on one MPI rank (refused otherwise), ``torch.set_num_threads(1)``, run
with ``OMP_NUM_THREADS=1``; the Snakemake rule takes every core so that nothing runs beside it.
Every time is a wall time around exactly the operations the pipeline's own job times, on the
first ``--maps`` coefficient maps of the split; solvers, meshes and models are built outside the
timed regions, as the data and evaluation jobs build them once per shard or split. Per
(approach, scale) the CSV holds the median over maps of ``setup_seconds`` (once per coefficient
map) and of ``solve_seconds`` (per right-hand side), and ``seconds`` = their sum. A first call's
one-time costs (allocations, library initialisation) fall out of the median from three maps on.

Approaches, named as the fe_baselines parts and the metric parts name them
(``fesr.evaluate.fe_baselines``, ``fesr.evaluate.computed_plan``):

* ``fe_direct``: ``Q1Solver.solve`` on ``MPI.COMM_SELF``, n = lr_n alpha; set-up = coefficient
  projection + assembly + AMG set-up (``SolveResult.setup_time``), solve = the Krylov solve.
* ``fe_x{a}_interp`` (a < alpha, a among ``--coarse-scales``): the direct solve at scale a, its
  solve plus the Q1 interpolation to the HR grid (``interpolate_nodal``); ``hom_{mean}_interp``
  likewise from the LR solve with the geometric or harmonic mean coefficient.
* ``lod_k{k}``, ``lod_k{k}_h{n}``: ``fesr.fem.lod`` set-up (correctors) and solve, plus the
  prolongation of u_ms to the HR grid; ``lod_coarse``: the same LOD (most layers on n = E) with
  u_H prolonged instead.
* ``fe_x{alpha}_it{k}``: ``PartialSolver`` from zero; set-up = coefficient + assembly + AMG set-up,
  solve = the k iterations.
* SR models (``--models``; seed replicas share their model's architecture and cost): set-up 0,
  solve = the 1-core LR solve of the same map (set-up + Krylov solve at scale 1; the geometric
  LR solve for a model whose input field is ``hom_geometric``) + a stand-alone inference, encode
  + the queries of every HR node, as ``fesr.evaluate.predict`` times it, from that LR solve's
  field (the data file's u_x1 up to the solver tolerance).
* ``{model}+cg{k}``: that SR row + the set-up and k iterations of ``PartialSolver.cg``;
  ``{model}+smooth{nu}``: SR + assembly and nu sweeps of ``PartialSolver.smooth``, timed from a
  zero start (the work of a sweep does not depend on the start).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from fesr.cli import MissingInputError, UsageError, check_match, run_main
from fesr.evaluate.io import open_fields, read_sample, write_csv_atomic
from fesr.evaluate.plan import HOMOGENIZED_MEANS, homogenized_approach
from fesr.fem.q1_grid import interpolate_nodal

PROG = "python -m fesr.evaluate.timing"
COLUMNS = [
    "approach",
    "split",
    "scale",
    "cores",
    "setup_seconds",
    "solve_seconds",
    "seconds",
    "maps",
]
# The LR solve an SR model's input field comes from: u_x1.nc is the arithmetic-mean projection.
INPUT_FIELD_MEANS = {"lr": "arithmetic", "hom_geometric": "geometric"}


class Times:
    """Per (approach, scale): the set-up and solve seconds of each map."""

    def __init__(self):
        self.runs = defaultdict(list)

    def add(self, approach: str, scale: int, setup: float, solve: float) -> None:
        self.runs[(approach, int(scale))].append((float(setup), float(solve)))

    def rows(self, split: str) -> pd.DataFrame:
        rows = []
        for (approach, scale), runs in self.runs.items():
            setup, solve = (float(np.median(v)) for v in zip(*runs, strict=True))
            rows.append(
                {
                    "approach": approach,
                    "split": split,
                    "scale": scale,
                    "cores": 1,
                    "setup_seconds": setup,
                    "solve_seconds": solve,
                    "seconds": setup + solve,
                    "maps": len(runs),
                }
            )
        return pd.DataFrame(rows, columns=COLUMNS).sort_values(["scale", "approach"], kind="stable")


def timed(fn, *args, **kwargs):
    """(fn's result, its wall seconds)."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def parse_finer(items) -> list[tuple[int, int]]:
    """``k:n`` words -> [(layers, fine mesh n)]."""
    out = []
    for item in items:
        k, sep, n = str(item).partition(":")
        if not sep or not k.isdigit() or not n.isdigit() or int(k) < 1 or int(n) < 2:
            raise UsageError(f"--lod-finer {item!r}: expected LAYERS:FINE_N, e.g. 2:256")
        out.append((int(k), int(n)))
    return out


def lod_variants(layers, finer, E: int) -> dict[str, tuple[int, int | None]]:
    """LOD approach name -> (layers, fine mesh n or None for n = E), as computed_plan names them."""
    from fesr.fem.lod import default_model_name

    out = {default_model_name(k, None, E): (int(k), None) for k in layers}
    out.update({default_model_name(k, n, E): (k, n) for k, n in finer})
    return out


def check_args(a) -> None:
    """Refuse a bad command line before any work (UsageError naming the value)."""
    from mpi4py import MPI

    if MPI.COMM_WORLD.size > 1:
        raise UsageError(f"runs on one MPI rank (it times one core), got {MPI.COMM_WORLD.size}")
    if a.maps < 1:
        raise UsageError(f"--maps {a.maps}: expected an integer >= 1")
    for flag, values in (("--scales", a.scales), ("--corrections-scales", a.corrections_scales)):
        for s in values:
            if s < 2 or s & (s - 1):
                raise UsageError(f"{flag} {s}: expected a power of two >= 2")
    for s in a.coarse_scales:
        if s < 1 or s & (s - 1):
            raise UsageError(f"--coarse-scales {s}: expected a power of two >= 1")
    if len(a.models) != len(a.checkpoints):
        raise UsageError(
            f"--checkpoints has {len(a.checkpoints)} file(s) but --models has {len(a.models)}"
        )
    missing = [m for m in a.corrections_models if m not in a.models]
    if missing:
        raise UsageError(
            f"--corrections-models {' '.join(missing)}: not among --models "
            f"{' '.join(a.models)} (a corrected row adds to its model's SR time)"
        )
    for flag, values in (
        ("--lod-layers", a.lod_layers),
        ("--fe-iterations", a.fe_iterations),
        ("--cg", a.cg),
        ("--smooth", a.smooth),
    ):
        for v in values:
            if v < 1:
                raise UsageError(f"{flag} {v}: expected an integer >= 1")
    for path in a.checkpoints:
        if not os.path.isfile(path):
            raise MissingInputError(f"checkpoint '{path}' does not exist")


def read_maps(a) -> list[np.ndarray]:
    path = Path(a.data_dir) / a.split / "coefficient.nc"
    ds = open_fields(path, ("A",), what="coefficient file")
    try:
        if ds.attrs.get("split") is not None:
            check_match(
                "split", ("--split", a.split), (f"coefficient file {path}", str(ds.attrs["split"]))
            )
        count = min(int(a.maps), int(ds.sizes["sample"]))
        return [read_sample(ds, k, "A") for k in range(count)]
    finally:
        ds.close()


def time_direct(a, maps, scales, bar) -> tuple[dict, dict, dict]:
    """The 1-core direct solve of every map at every scale and the homogenized LR solves:
    ({scale: [(setup, solve)]}, {scale: [u]}, {mean: ([(setup, solve)], [u])})."""
    from mpi4py import MPI

    from fesr.fem.solver import Q1Solver, mesh_size

    options = {
        "source": a.source,
        "rtol": a.rtol,
        "max_it": a.max_it,
        "ksp_type": a.ksp_type,
        "pc_type": a.pc_type,
    }
    times, fields, hom = {}, {}, {}
    means = [("arithmetic", s) for s in scales] + [(m, 1) for m in HOMOGENIZED_MEANS]
    for mean, scale in means:
        solver = Q1Solver(MPI.COMM_SELF, mesh_size(scale, a.lr_n), coefficient_mean=mean, **options)
        try:
            runs, us = [], []
            for A in maps:
                result = solver.solve(A)
                runs.append((result.setup_time, result.solve_time - result.setup_time))
                us.append(result.u)
                bar.update()
        finally:
            solver.close()
        if mean == "arithmetic":
            times[scale], fields[scale] = runs, us
        else:
            hom[mean] = (runs, us)
    return times, fields, hom


def time_lod(a, maps, variants, bar) -> dict:
    """{variant: [(LODResult)]} per map, solved once each (workers = 1)."""
    from fesr.fem.lod import compute_correctors, solve

    out = {}
    for name, (k, fine_n) in variants.items():
        out[name] = []
        for A in maps:
            out[name].append(solve(compute_correctors(A, a.lr_n, k, fine_n), a.source))
            bar.update()
    return out


def time_partial(a, maps, alpha, iterations, sweeps, bar) -> tuple[dict, dict]:
    """From zero on the HR system at alpha: {k: [(setup, iterations)]}, {nu: [(setup, sweeps)]}."""
    from mpi4py import MPI

    from fesr.fem.discretisation import mesh_size
    from fesr.fem.partial_solve import PartialSolver

    n = mesh_size(alpha, a.lr_n)
    cg, smooth = defaultdict(list), defaultdict(list)
    with PartialSolver(MPI.COMM_SELF, n, a.source, a.ksp_type, a.pc_type, a.max_it) as solver:
        zero = np.zeros((n + 1, n + 1))
        for A in maps:
            solver.set_coefficient(A)
            for k in iterations:
                r = solver.cg(k)
                cg[k].append((r.setup_seconds, r.iteration_seconds))
            for nu in sweeps:
                r = solver.smooth(zero, nu)
                smooth[nu].append((r.setup_seconds, r.iteration_seconds))
            bar.update()
    return cg, smooth


def time_inference(model_name, checkpoint, lr_fields, maps, scales, a, bar) -> list[list[float]]:
    """Seconds of a stand-alone inference per map (rows) and scale (columns): encode + queries,
    as ``fesr.evaluate.predict`` times them; the model runs on the CPU."""
    import torch

    from fesr.checkpoint import load_model
    from fesr.data.conditioning import make_inputs
    from fesr.evaluate.predict import _predict_kwargs, sample_seed

    try:
        model, ckpt = load_model(checkpoint, "cpu")
    except ValueError as err:
        raise UsageError(str(err).splitlines()[0]) from None
    check_match("model", ("--models", model_name), (f"checkpoint {checkpoint}", ckpt["model_name"]))
    u_scale = float(ckpt["u_scale"])
    takes_state, takes_seed = _predict_kwargs(model)
    out = []
    for k, (lr, A) in enumerate(zip(lr_fields, maps, strict=True)):
        inputs = make_inputs(
            torch.as_tensor(lr / u_scale, dtype=torch.float32)[None, None],
            torch.as_tensor(A, dtype=torch.float32)[None, None],
            model.uses_coefficient,
            ckpt.get("contrast"),
        )
        seed = sample_seed(a.seed, k)
        with torch.inference_mode():
            state, encode = None, 0.0
            if takes_state:
                state, encode = timed(model.encode, inputs)
            per_scale = []
            for alpha in scales:
                kwargs = {"chunk": a.chunk}
                if takes_state:
                    kwargs["state"] = state
                if takes_seed:
                    kwargs["seed"] = seed
                torch.manual_seed(seed)
                _, seconds = timed(model.predict, inputs, alpha, **kwargs)
                per_scale.append(encode + seconds)
            del state
        out.append(per_scale)
        bar.update()
    return out


def time_all(a) -> pd.DataFrame:
    """Every row of the module docstring for the split and scales of ``a``."""
    from fesr.model_names import model_input_field

    maps = read_maps(a)
    E = int(maps[0].shape[0])
    scales = sorted(set(a.scales))
    coarse = sorted(set(a.coarse_scales) | {1})
    direct_scales = sorted(set(coarse) | set(scales))
    variants = lod_variants(a.lod_layers, parse_finer(a.lod_finer), E)
    coarse_variant = f"lod_k{max(a.lod_layers)}" if a.lod_layers else None
    corrected_at = (
        [s for s in scales if s in set(a.corrections_scales)] if a.corrections_models else []
    )
    iterations = sorted(set(a.fe_iterations) | (set(a.cg) if corrected_at else set()))
    nmaps = len(maps)
    total = nmaps * (len(direct_scales) + len(HOMOGENIZED_MEANS) + len(variants))
    total += nmaps * (len(scales) + len(a.models))
    t = Times()
    with tqdm(total=total, desc=f"timing {a.split} on 1 core") as bar:
        direct, fields, hom = time_direct(a, maps, direct_scales, bar)
        lod = time_lod(a, maps, variants, bar)
        partial = {
            alpha: time_partial(
                a, maps, alpha, iterations, a.smooth if alpha in corrected_at else [], bar
            )
            for alpha in scales
        }
        lr_total = {
            "arithmetic": [su + so for su, so in direct[1]],
            **{mean: [su + so for su, so in runs] for mean, (runs, _) in hom.items()},
        }
        lr_fields = {"arithmetic": fields[1], **{mean: us for mean, (_, us) in hom.items()}}
        sr = {}
        for name, ckpt in zip(a.models, a.checkpoints, strict=True):
            mean = INPUT_FIELD_MEANS[model_input_field(name)]
            infer = time_inference(name, ckpt, lr_fields[mean], maps, scales, a, bar)
            sr[name] = [[lr_total[mean][k] + s for s in row] for k, row in enumerate(infer)]
    for alpha in scales:
        m = a.lr_n * alpha
        for k in range(nmaps):
            t.add("fe_direct", alpha, *direct[alpha][k])
            for src in coarse:
                if src < alpha:
                    _, interp = timed(interpolate_nodal, fields[src][k], m)
                    setup, solve = direct[src][k]
                    t.add(f"fe_x{src}_interp", alpha, setup, solve + interp)
            for mean, (runs, us) in hom.items():
                _, interp = timed(interpolate_nodal, us[k], m)
                t.add(homogenized_approach(mean), alpha, runs[k][0], runs[k][1] + interp)
            for name, results in lod.items():
                res = results[k]
                _, up = timed(interpolate_nodal, res.u_fine, m)
                t.add(name, alpha, res.setup_seconds, res.solve_seconds + up)
                if name == coarse_variant:
                    _, up = timed(interpolate_nodal, res.u_coarse, m)
                    t.add("lod_coarse", alpha, res.setup_seconds, res.solve_seconds + up)
            cg, smooth = partial[alpha]
            for it in a.fe_iterations:
                t.add(f"fe_x{alpha}_it{it}", alpha, *cg[it][k])
            for name in a.models:
                solve = sr[name][k][scales.index(alpha)]
                t.add(name, alpha, 0.0, solve)
                if name in a.corrections_models and alpha in corrected_at:
                    for it in a.cg:
                        setup, its = cg[it][k]
                        t.add(f"{name}+cg{it}", alpha, setup, solve + its)
                    for nu in a.smooth:
                        setup, sweeps = smooth[nu][k]
                        t.add(f"{name}+smooth{nu}", alpha, setup, solve + sweeps)
    return t.rows(a.split)


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    ap.add_argument("--split", required=True)
    ap.add_argument("--maps", type=int, default=3, help="the first T coefficient maps")
    ap.add_argument("--scales", type=int, nargs="+", required=True, help="target scales")
    ap.add_argument(
        "--coarse-scales",
        type=int,
        nargs="*",
        default=[1],
        help="scales of the fe_x{a}_interp rows (the split's data scales)",
    )
    ap.add_argument("--models", nargs="*", default=[], help="SR models (base names)")
    ap.add_argument("--checkpoints", nargs="*", default=[], help="one per --models")
    ap.add_argument("--data-dir", required=True, help="holds {split}/coefficient.nc")
    ap.add_argument("--lr-n", type=int, default=32)
    ap.add_argument("--source", type=float, default=1.0)
    ap.add_argument("--ksp-type", default="cg")
    ap.add_argument("--pc-type", default="hypre")
    ap.add_argument("--rtol", type=float, default=1e-10)
    ap.add_argument("--max-it", type=int, default=1000)
    ap.add_argument("--lod-layers", type=int, nargs="*", default=[])
    ap.add_argument("--lod-finer", nargs="*", default=[], metavar="K:N")
    ap.add_argument("--fe-iterations", type=int, nargs="*", default=[])
    ap.add_argument("--corrections-models", nargs="*", default=[])
    ap.add_argument("--corrections-scales", type=int, nargs="*", default=[])
    ap.add_argument("--cg", type=int, nargs="*", default=[])
    ap.add_argument("--smooth", type=int, nargs="*", default=[])
    ap.add_argument("--chunk", type=int, default=65536, help="query nodes per inference call")
    ap.add_argument("--seed", type=int, default=0, help="as predict's --seed (stochastic methods)")
    ap.add_argument("--out", required=True)
    return ap.parse_args(argv)


def main(argv=None) -> None:
    from fesr.fem import compat  # noqa: F401  (first: it fixes the HDF5 load order)

    a = parse_args(argv)
    if os.environ.get("OMP_NUM_THREADS") != "1":
        print(
            f"{PROG}: OMP_NUM_THREADS is not 1: native libraries may use more than one core",
            file=sys.stderr,
        )
    import torch

    torch.set_num_threads(1)
    check_args(a)
    write_csv_atomic(time_all(a), a.out)


if __name__ == "__main__":
    sys.exit(run_main(PROG, main))
