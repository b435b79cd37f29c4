"""The FE baselines of ``table_cost``: solve directly at the target resolution, or solve coarser
and interpolate up (Q1 = bilinear interpolation, exact prolongation on nested meshes).

``python -m fesr.evaluate.fe_baselines --split test_random --scale 8 --reference .../u_x8.nc
--coarse .../u_x1.nc .../u_x2.nc .../u_x4.nc
--homogenized geometric=.../u_x1_geometric.nc harmonic=.../u_x1_harmonic.nc
--u-scale-from PREDICTION.nc --out results/metrics/fe_baselines/test_random/x8.csv``

The inputs are cross-checked first (split, scale and seed attributes, file names, sample counts,
nested meshes, the homogenized files' ``effective_mean``): a mismatch is one line naming both
sides, exit 2, no output.

Rows: one per sample and approach. ``approach`` is ``fe_direct`` (error 0 by definition, time =
the dataset's solve_time at that resolution), ``fe_x{a}_interp`` (solve at scale a, time = that
solve's solve_time, error against the HR solution) or ``hom_{mean}_interp`` (classical
homogenization: the LR solve with the geometric or harmonic mean of the coefficient cells each
coarse cell covers, Q1-interpolated like ``fe_x{a}_interp``; source_scale = its scale, 1). The
arithmetic-mean homogenization is ``fe_x1_interp`` itself (u_x1.nc projects the coefficient
with the arithmetic mean), so it has no ``hom_`` row. Geometric is the exact effective
conductivity of a 2D two-phase random medium at p = 1/2 (Keller-Dykhne); harmonic and
arithmetic are the Wiener bounds. Metrics as in ``fesr.evaluate.metrics``.

``--computed NAME=PATH`` adds the rows of fields other solvers computed, in the layout of a
prediction file (``u``, ``seconds`` and ``setup_seconds`` per sample): PG-LOD
(``fesr.fem.lod``: ``lod_k{k}`` on the HR mesh, ``lod_coarse`` = u_H on the LR mesh,
Q1-interpolated), the FE solver stopped early and SR fields corrected by CG or smoothing
(``fesr.fem.partial_solve``). ``source_scale`` is the file's ``alpha``.

Every row has two time columns beside ``seconds``: ``setup_seconds``, what one coefficient map
costs once (a direct solve's coefficient projection, assembly and preconditioner set-up; LOD's
correctors and coarse matrix), and ``solve_seconds``, what each right-hand side then costs (the
Krylov solve; LOD's coarse solve and reconstruction). A data file without ``setup_time`` gives
NaN there.
"""

from __future__ import annotations

import argparse
import re
import sys

import numpy as np
import pandas as pd
from tqdm import tqdm

from fesr.cli import UsageError, check_match, run_main
from fesr.evaluate.io import FieldFileError, open_fields, read_sample, write_csv_atomic
from fesr.evaluate.metrics import METRIC_NAMES, check_same_samples, field_metrics
from fesr.evaluate.plan import HOMOGENIZED_MEANS, homogenized_approach
from fesr.fem.q1_grid import interpolate_nodal

COLUMNS = [
    "approach",
    "split",
    "scale",
    "source_scale",
    "sample",
    *METRIC_NAMES,
    "seconds",
    "setup_seconds",
    "solve_seconds",
    "cores",
]


def scale_of(path) -> int:
    match = re.search(r"u_x(\d+)\.nc$", str(path))
    if not match:
        raise ValueError(
            f"cannot read the scale from file name '{path}'; expected .../u_x{{alpha}}.nc"
        )
    return int(match.group(1))


def read_u_scale(path) -> float:
    """The normalisation constant: attribute ``u_scale`` (prediction) or ``u_max`` (dataset)."""
    ds = open_fields(path, (), what="normalisation source file")
    try:
        for key in ("u_scale", "u_max"):
            if key in ds.attrs:
                value = float(ds.attrs[key])
                if not np.isfinite(value) or value <= 0:
                    raise FieldFileError(
                        f"'{path}': attribute {key} {value!r}; expected a finite number > 0"
                    )
                return value
    finally:
        ds.close()
    raise ValueError(f"'{path}' has neither attribute 'u_scale' nor 'u_max'")


def split_times(ds, k, total_var: str, setup_var: str) -> dict:
    """``seconds``, ``setup_seconds``, ``solve_seconds`` and ``cores`` of sample k of a data or
    computed file: total and set-up are recorded, the per-right-hand-side part is their
    difference. A data solve decomposed over MPI ranks ran on that many cores; one sample per
    rank, and every computed field, on one."""
    total = float(ds[total_var].values[k])
    setup = float(ds[setup_var].values[k]) if setup_var in ds else float("nan")
    decomposed = int(ds.attrs.get("decomposed", 0))
    cores = int(ds.attrs.get("mpi_ranks", 1)) if decomposed else 1
    return {
        "seconds": total,
        "setup_seconds": setup,
        "solve_seconds": total - setup,
        "cores": cores,
    }


def fe_baselines(
    split, scale, reference, coarse_paths, coefficient, u_scale, homogenized=None, computed=None
) -> pd.DataFrame:
    """``coefficient``: the split's coefficient.nc (for the energy norm); ``homogenized``:
    mean -> LR file solved with that effective coefficient; ``computed``: name -> a field file
    in prediction layout (optional)."""
    ref_ds = open_fields(reference, ("u", "solve_time"), what="reference data file")
    coef_ds = open_fields(coefficient, ("A",), what="coefficient file")
    coarse = {
        scale_of(p): open_fields(p, ("u", "solve_time"), what="coarse data file")
        for p in coarse_paths
    }
    hom = {
        mean: open_fields(p, ("u", "solve_time"), what="homogenized data file")
        for mean, p in (homogenized or {}).items()
    }
    other = {
        name: open_fields(p, ("u", "seconds"), what="computed field file")
        for name, p in (computed or {}).items()
    }
    # (approach, source scale, dataset, time variables): Q1-interpolated where coarser
    data_times = ("solve_time", "setup_time")
    interpolated = [
        (f"fe_x{a}_interp", a, ds, data_times) for a, ds in sorted(coarse.items()) if a < scale
    ]
    interpolated += [
        (homogenized_approach(mean), int(ds.attrs["alpha"]), ds, data_times)
        for mean, ds in hom.items()
    ]
    interpolated += [
        (name, int(ds.attrs["alpha"]), ds, ("seconds", "setup_seconds"))
        for name, ds in other.items()
    ]
    try:
        m = ref_ds.sizes["x"] - 1
        rows = []
        for k in tqdm(range(ref_ds.sizes["sample"]), desc=f"FE baselines {split} x{scale}"):
            ref = read_sample(ref_ds, k) / u_scale
            if not np.isfinite(ref).all():
                raise FieldFileError(
                    f"reference data file '{reference}': u[sample={k}] holds NaN or inf; "
                    "expected finite values"
                )
            A = read_sample(coef_ds, k, "A")
            zero = {
                "mse": 0.0,
                "mae": 0.0,
                "psnr": float("inf"),
                "ssim": 1.0,
                "rel_l2": 0.0,
                "rel_energy": 0.0,
                "rel_h1": 0.0,
            }
            rows.append(
                {
                    "approach": "fe_direct",
                    "split": split,
                    "scale": scale,
                    "source_scale": scale,
                    "sample": k,
                    **zero,
                    **split_times(ref_ds, k, *data_times),
                }
            )
            for approach, a, ds, times in interpolated:
                if ds.sizes["sample"] != ref_ds.sizes["sample"]:
                    raise ValueError(
                        f"'{ds.encoding.get('source')}' and '{reference}' differ in samples"
                    )
                field = read_sample(ds, k) / u_scale
                up = field if field.shape[0] == m + 1 else interpolate_nodal(field, m)
                rows.append(
                    {
                        "approach": approach,
                        "split": split,
                        "scale": scale,
                        "source_scale": a,
                        "sample": k,
                        **field_metrics(up, ref, A),
                        **split_times(ds, k, *times),
                    }
                )
    finally:
        ref_ds.close()
        coef_ds.close()
        for ds in (*coarse.values(), *hom.values(), *other.values()):
            ds.close()
    return pd.DataFrame(rows, columns=COLUMNS)


def parse_named_paths(items, option: str, names=None, note: str = "") -> dict[str, str]:
    """``NAME=PATH`` words -> {name: path}; UsageError for a malformed word, a name outside
    ``names`` (when given) or a repeated name."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, path = str(item).partition("=")
        if not sep or not name or not path or (names is not None and name not in names):
            allowed = f" with NAME one of {', '.join(names)}" if names is not None else ""
            raise UsageError(f"{option} {item!r}: expected NAME=PATH{allowed}{note}")
        if name in out:
            raise UsageError(f"{option} names {name!r} twice")
        out[name] = path
    return out


def parse_homogenized(items) -> dict[str, str]:
    """``MEAN=PATH`` words -> {mean: path}."""
    note = " (arithmetic is the fe_x1_interp row)"
    return parse_named_paths(items, "--homogenized", HOMOGENIZED_MEANS, note)


def check_cost_inputs(a) -> None:
    """Refuse mismatched inputs before any work (UsageError: one line naming both sides): every
    file's split against --split, scales against file names and --scale, the coarse and
    homogenized files' seed, sample count and mesh against the reference's, a homogenized file's
    ``effective_mean`` against the mean it is given as."""
    if a.scale < 2 or a.scale & (a.scale - 1):
        raise UsageError(f"--scale {a.scale}: expected a power of two >= 2")
    ref = open_fields(a.reference, ("u", "solve_time"), what="reference data file")
    try:
        rsrc = f"reference data file {a.reference}"
        facts = _file_facts(ref)
        _check_file(rsrc, facts, a.split, ("--scale", a.scale))
        if re.search(r"u_x(\d+)\.nc$", str(a.reference)):
            check_match("scale", ("--scale", a.scale), (rsrc, scale_of(a.reference)))
        coef = open_fields(a.coefficient, ("A",), what="coefficient file")
        try:
            check_same_samples(ref, coef, a.reference, a.coefficient)
            if coef.attrs.get("split") is not None:
                csrc = f"coefficient file {a.coefficient}"
                check_match("split", ("--split", a.split), (csrc, str(coef.attrs["split"])))
        finally:
            coef.close()
        for path in a.coarse:
            ds = open_fields(path, ("u", "solve_time"), what="coarse data file")
            try:
                csrc, cf = f"coarse data file {path}", _file_facts(ds)
            finally:
                ds.close()
            name_scale = _name_scale(path)
            _check_file(csrc, cf, a.split, (f"the name of {csrc}", name_scale))
            _check_coarser(a.scale, (rsrc, facts), (csrc, cf), name_scale)
        for mean, path in a.homogenized.items():
            ds = open_fields(path, ("u", "solve_time"), what="homogenized data file")
            try:
                hsrc, hf = f"homogenized data file {path}", _file_facts(ds)
                effective_mean = ds.attrs.get("effective_mean")
            finally:
                ds.close()
            if hf["alpha"] is None or effective_mean is None:
                raise UsageError(
                    f"{hsrc} lacks attribute alpha or effective_mean: expected the output of "
                    "python -m fesr.fem.generate solve --effective-mean"
                )
            check_match("effective mean", ("--homogenized", mean), (hsrc, str(effective_mean)))
            check_match("split", ("--split", a.split), (hsrc, str(hf["split"])))
            _check_coarser(a.scale, (rsrc, facts), (hsrc, hf), int(hf["alpha"]))
        for name, path in a.computed.items():
            _check_computed(a, name, path, (rsrc, facts))
    finally:
        ref.close()
    norm = open_fields(a.u_scale_from, (), what="normalisation source file")
    try:
        if norm.attrs.get("split") is not None:
            check_match(
                "split", ("--split", a.split), (f"file {a.u_scale_from}", str(norm.attrs["split"]))
            )
    finally:
        norm.close()


def _check_computed(a, name, path, reference) -> None:
    """A computed field file: its model attribute is ``name``, its split ``--split``, and it is
    on the reference's maps at the reference's scale or a coarser one."""
    ds = open_fields(path, ("u", "seconds"), what="computed field file")
    try:
        src, cf, model = f"computed field file {path}", _file_facts(ds), ds.attrs.get("model")
    finally:
        ds.close()
    if cf["alpha"] is None or model is None:
        raise UsageError(f"{src} lacks attribute alpha or model: expected a prediction-layout file")
    check_match("model", ("--computed", name), (src, str(model)))
    check_match("split", ("--split", a.split), (src, str(cf["split"])))
    rsrc, facts = reference
    if int(cf["alpha"]) == a.scale:
        check_match("number of samples", (rsrc, facts["samples"]), (src, cf["samples"]))
        check_match("mesh size n", (rsrc, facts["n"]), (src, cf["n"]))
    else:
        _check_coarser(a.scale, reference, (src, cf), int(cf["alpha"]))


def _check_coarser(scale, reference, coarse, coarse_scale) -> None:
    """A file solved at coarse_scale < scale on the reference's maps: same seed and samples,
    nested mesh (n_ref / n_coarse = scale / coarse_scale). Each side is (source, facts)."""
    (rsrc, facts), (csrc, cf) = reference, coarse
    if coarse_scale >= scale:
        raise UsageError(f"{csrc} is at scale {coarse_scale}, not coarser than --scale {scale}")
    if facts["seed"] is not None and cf["seed"] is not None:
        check_match("seed", (rsrc, facts["seed"]), (csrc, cf["seed"]))
    check_match("number of samples", (rsrc, facts["samples"]), (csrc, cf["samples"]))
    check_match(
        "mesh size n",
        (f"{rsrc} scaled to x{coarse_scale}", facts["n"] * coarse_scale // scale),
        (csrc, cf["n"]),
    )


def _file_facts(ds) -> dict:
    def attr(key):
        v = ds.attrs.get(key)
        return v.item() if isinstance(v, np.generic) else v

    return {
        "split": attr("split"),
        "alpha": attr("alpha"),
        "seed": attr("seed"),
        "samples": int(ds.sizes["sample"]),
        "n": int(ds.sizes["x"]) - 1,
    }


def _name_scale(path) -> int:
    try:
        return scale_of(path)
    except ValueError as err:
        raise UsageError(str(err)) from None


def _check_file(src, facts, split, wanted) -> None:
    """split attribute against --split; alpha attribute against ``wanted`` (source, scale)."""
    if facts["split"] is not None:
        check_match("split", ("--split", split), (src, str(facts["split"])))
    if facts["alpha"] is not None:
        check_match("scale", wanted, (src, int(facts["alpha"])))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", required=True)
    ap.add_argument("--scale", type=int, required=True)
    ap.add_argument("--reference", required=True)
    ap.add_argument("--coarse", nargs="*", default=[])
    ap.add_argument("--coefficient", required=True, help="the split's coefficient.nc")
    ap.add_argument(
        "--homogenized",
        nargs="*",
        default=[],
        metavar="MEAN=PATH",
        help=f"LR solves with an effective coefficient, MEAN in {', '.join(HOMOGENIZED_MEANS)}",
    )
    ap.add_argument(
        "--computed",
        nargs="*",
        default=[],
        metavar="NAME=PATH",
        help="fields of other solvers in prediction layout (LOD, partial solves, corrections)",
    )
    ap.add_argument("--u-scale-from", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    a.computed = parse_named_paths(a.computed, "--computed")
    a.homogenized = parse_homogenized(a.homogenized)
    check_cost_inputs(a)
    df = fe_baselines(
        a.split,
        a.scale,
        a.reference,
        a.coarse,
        a.coefficient,
        read_u_scale(a.u_scale_from),
        a.homogenized,
        a.computed,
    )
    write_csv_atomic(df, a.out)


if __name__ == "__main__":
    sys.exit(run_main("python -m fesr.evaluate.fe_baselines", main))
