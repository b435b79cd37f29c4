"""The FE baselines of ``table_cost``: solve directly at the target resolution, or solve coarser
and interpolate up (Q1 = bilinear interpolation, exact prolongation on nested meshes).

``python -m fesr.evaluate.cost --split test_random --scale 8 --reference .../u_x8.nc
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
"""

from __future__ import annotations

import argparse
import re
import sys

import numpy as np
import pandas as pd
from tqdm import tqdm

from fesr.cli import UsageError, check_match, run_main
from fesr.evaluate.io import open_fields, read_sample, write_csv_atomic
from fesr.evaluate.metrics import field_metrics
from fesr.evaluate.plan import HOMOGENIZED_MEANS, homogenized_approach

COLUMNS = [
    "approach",
    "split",
    "scale",
    "source_scale",
    "sample",
    "mse",
    "mae",
    "psnr",
    "ssim",
    "rel_l2",
    "rel_energy",
    "seconds",
]


def interpolate_nodal(coarse: np.ndarray, m: int) -> np.ndarray:
    """Q1 (bilinear) interpolant of a nodal field (n+1, n+1) at the nodes of an m x m mesh.

    Q1 is the tensor product of 1D linear interpolation, so it is applied along y, then x. NumPy
    alone: this job would otherwise spend more time importing torch than interpolating."""
    n = coarse.shape[0] - 1
    pos = np.arange(m + 1) * (n / m)  # fine node j sits at coarse position j n / m
    lo = np.minimum(np.floor(pos).astype(np.int64), n - 1)
    t = pos - lo

    def along(u: np.ndarray, axis: int) -> np.ndarray:
        shape = [1, 1]
        shape[axis] = m + 1
        w = t.reshape(shape)
        return np.take(u, lo, axis) * (1.0 - w) + np.take(u, lo + 1, axis) * w

    return along(along(np.asarray(coarse, dtype=np.float64), 0), 1)


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
                return float(ds.attrs[key])
    finally:
        ds.close()
    raise ValueError(f"'{path}' has neither attribute 'u_scale' nor 'u_max'")


def fe_baselines(split, scale, reference, coarse_paths, u_scale, homogenized=None) -> pd.DataFrame:
    """``homogenized``: mean -> LR file solved with that effective coefficient (optional)."""
    ref_ds = open_fields(reference, ("u", "solve_time"), what="reference data file")
    coarse = {
        scale_of(p): open_fields(p, ("u", "solve_time"), what="coarse data file")
        for p in coarse_paths
    }
    hom = {
        mean: open_fields(p, ("u", "solve_time"), what="homogenized data file")
        for mean, p in (homogenized or {}).items()
    }
    # (approach, source scale, dataset): each solved coarser, then Q1-interpolated
    interpolated = [(f"fe_x{a}_interp", a, ds) for a, ds in sorted(coarse.items()) if a < scale]
    interpolated += [
        (homogenized_approach(mean), int(ds.attrs["alpha"]), ds) for mean, ds in hom.items()
    ]
    try:
        m = ref_ds.sizes["x"] - 1
        rows = []
        ref_time = ref_ds["solve_time"].values
        for k in tqdm(range(ref_ds.sizes["sample"]), desc=f"FE baselines {split} x{scale}"):
            ref = read_sample(ref_ds, k) / u_scale
            zero = {
                "mse": 0.0,
                "mae": 0.0,
                "psnr": float("inf"),
                "ssim": 1.0,
                "rel_l2": 0.0,
                "rel_energy": 0.0,
            }
            rows.append(
                {
                    "approach": "fe_direct",
                    "split": split,
                    "scale": scale,
                    "source_scale": scale,
                    "sample": k,
                    **zero,
                    "seconds": float(ref_time[k]),
                }
            )
            for approach, a, ds in interpolated:
                if ds.sizes["sample"] != ref_ds.sizes["sample"]:
                    raise ValueError(
                        f"'{ds.encoding.get('source')}' and '{reference}' differ in samples"
                    )
                up = interpolate_nodal(read_sample(ds, k) / u_scale, m)
                rows.append(
                    {
                        "approach": approach,
                        "split": split,
                        "scale": scale,
                        "source_scale": a,
                        "sample": k,
                        **field_metrics(up, ref),
                        "seconds": float(ds["solve_time"].values[k]),
                    }
                )
    finally:
        ref_ds.close()
        for ds in (*coarse.values(), *hom.values()):
            ds.close()
    return pd.DataFrame(rows, columns=COLUMNS)


def parse_homogenized(items) -> dict[str, str]:
    """``MEAN=PATH`` words -> {mean: path}; UsageError for an unknown or repeated mean."""
    out: dict[str, str] = {}
    for item in items:
        mean, sep, path = str(item).partition("=")
        if not sep or mean not in HOMOGENIZED_MEANS or not path:
            raise UsageError(
                f"--homogenized {item!r}: expected MEAN=PATH with MEAN one of "
                f"{', '.join(HOMOGENIZED_MEANS)} (arithmetic is the fe_x1_interp row)"
            )
        if mean in out:
            raise UsageError(f"--homogenized names mean {mean!r} twice")
        out[mean] = path
    return out


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
    ap.add_argument(
        "--homogenized",
        nargs="*",
        default=[],
        metavar="MEAN=PATH",
        help=f"LR solves with an effective coefficient, MEAN in {', '.join(HOMOGENIZED_MEANS)}",
    )
    ap.add_argument("--u-scale-from", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    a.homogenized = parse_homogenized(a.homogenized)
    check_cost_inputs(a)
    df = fe_baselines(
        a.split, a.scale, a.reference, a.coarse, read_u_scale(a.u_scale_from), a.homogenized
    )
    write_csv_atomic(df, a.out)


if __name__ == "__main__":
    sys.exit(run_main("python -m fesr.evaluate.cost", main))
