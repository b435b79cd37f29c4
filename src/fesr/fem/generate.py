"""Command line of the data part, called by workflow/rules/data.smk (and usable by hand).

    python -m fesr.fem.generate coefficients --split S (--settings JSON | --preset P) --output F
    [mpiexec -n R] python -m fesr.fem.generate solve --split S --alpha A [--shard K] \
        (--settings JSON | --preset P) --coefficients F --output F [--effective-mean M]
    python -m fesr.fem.generate merge --output F SHARD [SHARD ...]

``--settings`` is the JSON of ``fesr.fem.plan.data_settings`` (what Snakemake passes);
``--preset`` loads config.yaml merged with a preset instead. Bad input stops with a message
naming the bad value, before any output file exists.

``solve`` without ``--shard`` solves every sample of the split into one file.
``--effective-mean geometric|harmonic`` sets each mesh cell's coefficient to that mean of the
coefficient cells it covers instead of the arithmetic mean (the homogenization baselines of
table_cost, ``u_x1_{mean}.nc``); the file records it as attribute ``effective_mean``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from fesr.fem import plan
from fesr.fem.discretisation import COEFFICIENT_MEANS


def load_settings(args) -> dict:
    if args.settings is not None:
        try:
            settings = json.loads(args.settings)
        except json.JSONDecodeError as err:
            raise ValueError(f"--settings is not valid JSON: {err}") from None
        if settings.get("split") not in (None, args.split):
            raise ValueError(f"--settings is for split {settings['split']!r}, not {args.split!r}")
        return settings
    from fesr.config import load_config

    return plan.data_settings(load_config(args.preset), args.split)


def common_attrs(settings: dict) -> dict:
    from fesr.fem.dataset import git_revision, package_versions

    physics = settings["physics"]
    return {
        "split": settings["split"],
        "kind": settings["split_config"]["kind"],
        "E": int(physics["E"]),
        "epsilon": 1.0 / int(physics["E"]),
        "contrast": list(physics["contrast"]),
        "p_high": float(physics["p_high"]),
        "source": float(physics["source"]),
        "seed": int(settings["seed"]),
        "package_versions": package_versions(),
        "git_revision": git_revision(),
        "conventions": "u[i, j] = u(x_j, y_i); A[i, j] on [j/E,(j+1)/E] x [i/E,(i+1)/E]",
    }


def run_coefficients(settings: dict, output: str) -> None:
    from fesr.fem.coefficients import split_map_source
    from fesr.fem.dataset import write_coefficients

    split = settings["split"]
    count, map_of, names = split_map_source(
        split, settings["split_config"], settings["physics"], settings["seed"]
    )
    write_coefficients(
        output,
        (map_of(k) for k in range(count)),
        np.arange(count),
        int(settings["physics"]["E"]),
        common_attrs(settings),
        names=names,
    )
    print(f"wrote {output}: {count} maps of split {split}", flush=True)


def run_solve(
    settings: dict,
    alpha: int,
    shard: int | None,
    coefficients: str,
    output: str,
    effective_mean: str | None = None,
) -> None:
    from mpi4py import MPI
    from tqdm import tqdm

    from fesr.fem.coefficients import check_contrast, check_E
    from fesr.fem.dataset import FieldWriter, atomic_dataset, read_coefficients
    from fesr.fem.parallel import solve_many
    from fesr.fem.solver import RESIDUAL_FACTOR, SolverError, mesh_size, solver_name

    comm = MPI.COMM_WORLD
    physics, solver_cfg = settings["physics"], settings["solver"]
    n = mesh_size(alpha, settings["lr_n"])
    E = check_E(physics["E"])
    check_contrast(physics["contrast"])
    split_cfg = settings["split_config"]
    if shard is None:
        samples = list(range(plan.split_size(split_cfg)))
    else:
        samples = list(plan.shard_samples(split_cfg, shard))
    maps, cattrs = read_coefficients(coefficients, samples)
    if int(cattrs["E"]) != E or int(cattrs["seed"]) != int(settings["seed"]):
        raise ValueError(
            f"{coefficients} was made with E={cattrs['E']}, seed={cattrs['seed']}; "
            f"this job has E={E}, seed={settings['seed']}: rebuild it"
        )
    decompose = n >= int(settings["decompose_min_n"])
    options = {
        "source": float(physics["source"]),
        "rtol": float(solver_cfg["rtol"]),
        "max_it": int(solver_cfg["max_it"]),
        "ksp_type": solver_cfg["ksp_type"],
        "pc_type": solver_cfg["pc_type"],
    }
    if effective_mean is not None:
        options["coefficient_mean"] = effective_mean
    position = {s: k for k, s in enumerate(samples)}
    t0 = time.perf_counter()

    def solve_all(on_result):
        try:
            solve_many(comm, n, samples, lambda s: maps[position[s]], on_result, decompose, options)
        except SolverError as err:
            raise SolverError(f"split {settings['split']}, alpha {alpha}, {err}") from None

    if comm.rank != 0:
        solve_all(None)
        return
    attrs = common_attrs(settings) | {
        "n": n,
        "alpha": alpha,
        "h": 1.0 / n,
        "solver": solver_name(options["ksp_type"], options["pc_type"]),
        "tolerance": options["rtol"],
        "residual_limit": RESIDUAL_FACTOR * options["rtol"],  # each residual is at most this
        "max_it": options["max_it"],
        "mpi_ranks": comm.size,
        "decomposed": int(decompose),
    }
    if shard is not None:
        attrs["shard"] = shard
    if effective_mean is not None:
        attrs["effective_mean"] = effective_mean
    with (
        atomic_dataset(output) as ds,
        tqdm(total=len(samples), desc=f"n={n}", file=sys.stderr) as bar,
    ):
        writer = FieldWriter(ds, n, samples, attrs)

        def on_result(s, result):
            writer.write(
                position[s],
                result.u,
                result.solve_time,
                result.iterations,
                result.residual,
                result.setup_time,
            )
            bar.update()

        solve_all(on_result)
        writer.finish()
    print(
        f"wrote {output}: {len(samples)} samples, n={n}, {comm.size} ranks "
        f"({'decomposed' if decompose else 'one sample per rank'}), "
        f"{time.perf_counter() - t0:.2f} s",
        flush=True,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fesr.fem.generate", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("coefficients", "solve"):
        p = sub.add_parser(name)
        p.add_argument("--split", required=True)
        src = p.add_mutually_exclusive_group(required=True)
        src.add_argument("--settings", help="JSON of fesr.fem.plan.data_settings")
        src.add_argument("--preset", help="config preset name or YAML path merged over config.yaml")
        p.add_argument("--output", required=True)
        if name == "solve":
            p.add_argument("--alpha", type=int, required=True)
            p.add_argument("--shard", type=int, help="default: every sample of the split")
            p.add_argument("--coefficients", required=True)
            p.add_argument("--effective-mean", choices=tuple(COEFFICIENT_MEANS))
    p = sub.add_parser("merge")
    p.add_argument("--output", required=True)
    p.add_argument("shards", nargs="+")
    args = parser.parse_args(argv)

    try:
        if args.command == "merge":
            from fesr.fem.dataset import merge_shards

            merge_shards(args.shards, args.output)
            print(f"wrote {args.output} from {len(args.shards)} shards", flush=True)
            return 0
        settings = load_settings(args)
        if args.command == "coefficients":
            run_coefficients(settings, args.output)
        else:
            run_solve(
                settings,
                args.alpha,
                args.shard,
                args.coefficients,
                args.output,
                args.effective_mean,
            )
    except (ValueError, RuntimeError, KeyError, OSError) as err:
        from fesr.cli import OutputError

        kind = "" if isinstance(err, OutputError) else f"{type(err).__name__}: "
        print(f"fesr.fem.generate {args.command}: {kind}{err}", file=sys.stderr, flush=True)
        mpi = sys.modules.get("mpi4py.MPI")
        if mpi is not None and mpi.COMM_WORLD.size > 1:
            from fesr.fem.solver import SolverError

            if mpi.COMM_WORLD.rank != 0 and isinstance(err, SolverError):
                # Every rank raises SolverError together (fesr.fem.parallel): an Abort here
                # could kill rank 0 before it removes its temporary file; rank 0 aborts.
                return 2
            mpi.COMM_WORLD.Abort(2)  # a rank may be waiting in a collective: end them all
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
