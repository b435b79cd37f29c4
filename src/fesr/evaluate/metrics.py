"""Per-sample error metrics between a predicted and a reference nodal field (SPEC 4).

All metrics are computed on the normalised value scale of SPEC 2 (fields divided by the
dataset constant ``u_scale``), on the HR node grid:

* ``mse``, ``mae``: mean over all nodes of the squared / absolute error.
* ``psnr = 10 log10(PEAK**2 / mse)`` with PEAK = 1 (training fields lie in about [0, 1]).
* ``ssim``: ``skimage.metrics.structural_similarity`` with ``data_range = 1`` (the same peak),
  default 7 x 7 uniform window.
* ``rel_l2``: ||e||_2 / ||u_ref||_2 over the nodal values.
* ``rel_energy``: ||e||_A / ||u_ref||_A = sqrt(e^T K_A e / u^T K_A u), the energy norm of FE
  theory, sqrt(int A |grad v|^2), of the bilinear (Q1) interpolants on the HR mesh with the
  exact coefficient A of the map, computed exactly (``fesr.fem.q1_grid.energy_sq``). With
  contrast 100 it weights the gradient error in high-coefficient cells 100x.
* ``rel_h1``: |e|_1 / |u_ref|_1, the H1 seminorm (the energy norm with A = 1), likewise exact.
Both are scale-free, like rel_l2.

Run as a module it evaluates one prediction file against its reference and writes a tidy CSV,
one row per sample. The files' ``model``, ``split`` and ``alpha`` attributes and their meshes are
checked against ``--method``, ``--split``, ``--scale`` and each other first, and their physics
(E, contrast, p_high, source, lr_n) against each other and the coefficient file's: a mismatch is
one line naming both sides, exit 2, no output.

A prediction holding NaN or inf scores NaN in every metric (never inf, never a best score); a
reference holding them is refused. The CSV is written through ``fesr.cli.atomic_output``.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd
from skimage.metrics import structural_similarity
from tqdm import tqdm

from fesr.cli import UsageError, check_match, run_main
from fesr.evaluate.io import (
    FieldFileError,
    check_physics,
    check_same_grid,
    file_physics,
    open_fields,
    read_sample,
    write_csv_atomic,
)
from fesr.fem.q1_grid import energy_sq, seminorm_sq

PEAK = 1.0
SSIM_DATA_RANGE = 1.0
COLUMNS = [
    "method",
    "split",
    "scale",
    "sample",
    "mse",
    "mae",
    "psnr",
    "ssim",
    "rel_l2",
    "rel_energy",
    "rel_h1",
    "seconds",
    "peak_mb",
]
# The columns field_metrics fills: all NaN for a non-finite prediction.
METRIC_NAMES = tuple(
    c for c in COLUMNS if c not in ("method", "split", "scale", "sample", "seconds", "peak_mb")
)


def relative_norm(err_sq: float, ref_sq: float) -> float:
    return float(np.sqrt(err_sq / ref_sq)) if ref_sq > 0 else float("nan")


def field_metrics(pred: np.ndarray, ref: np.ndarray, coefficient: np.ndarray) -> dict:
    """Every metric of one sample; pred and ref are normalised (m+1, m+1) nodal arrays and
    ``coefficient`` the sample's E x E coefficient map (for the energy norm)."""
    pred = np.asarray(pred, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    if not np.isfinite(ref).all():
        raise ValueError("the reference field holds NaN or inf; expected finite values")
    if not np.isfinite(pred).all():
        return dict.fromkeys(METRIC_NAMES, float("nan"))
    err = pred - ref
    mse = float(np.mean(err * err))
    return {
        "mse": mse,
        "mae": float(np.mean(np.abs(err))),
        "psnr": float(10.0 * np.log10(PEAK**2 / mse)) if mse > 0 else float("inf"),
        "ssim": float(structural_similarity(ref, pred, data_range=SSIM_DATA_RANGE)),
        "rel_l2": relative_norm(float(np.sum(err * err)), float(np.sum(ref * ref))),
        "rel_energy": relative_norm(energy_sq(err, coefficient), energy_sq(ref, coefficient)),
        "rel_h1": relative_norm(seminorm_sq(err), seminorm_sq(ref)),
    }


def prediction_metrics(
    pred_path, ref_path, coef_path, method: str, split: str, scale: int
) -> pd.DataFrame:
    """One row per sample: the metrics of prediction file vs reference data file, the energy
    norm with the maps of the coefficient file."""
    pred_ds = open_fields(pred_path, ("u", "seconds", "peak_mb"), what="prediction file")
    ref_ds = open_fields(ref_path, ("u",), what="reference data file")
    coef_ds = open_fields(coef_path, ("A",), what="coefficient file")
    try:
        check_same_grid(pred_ds, ref_ds)
        check_same_samples(ref_ds, coef_ds, ref_path, coef_path)
        u_scale = float(pred_ds.attrs.get("u_scale", "nan"))
        if not np.isfinite(u_scale) or u_scale <= 0:
            raise ValueError(f"prediction file '{pred_path}': attribute u_scale must be > 0")
        seconds = pred_ds["seconds"].values
        peak = pred_ds["peak_mb"].values
        rows = []
        for k in tqdm(range(pred_ds.sizes["sample"]), desc=f"metrics {method} {split} x{scale}"):
            ref = read_sample(ref_ds, k)
            if not np.isfinite(ref).all():
                raise FieldFileError(
                    f"reference data file '{ref_path}': u[sample={k}] holds NaN or inf; expected "
                    "finite values"
                )
            m = field_metrics(
                read_sample(pred_ds, k) / u_scale, ref / u_scale, read_sample(coef_ds, k, "A")
            )
            rows.append(
                {
                    "method": method,
                    "split": split,
                    "scale": int(scale),
                    "sample": k,
                    **m,
                    "seconds": float(seconds[k]),
                    "peak_mb": float(peak[k]),
                }
            )
    finally:
        pred_ds.close()
        ref_ds.close()
        coef_ds.close()
    return pd.DataFrame(rows, columns=COLUMNS)


def check_same_samples(ref_ds, coef_ds, ref_path, coef_path) -> None:
    """The reference data and the coefficient maps its energy norm is taken with: same count."""
    check_match(
        "sample count",
        (f"reference data file {ref_path}", int(ref_ds.sizes["sample"])),
        (f"coefficient file {coef_path}", int(coef_ds.sizes["sample"])),
    )


def file_attr(ds, key):
    """A global attribute of an opened file as a plain Python value (None when absent)."""
    value = ds.attrs.get(key)
    return value.item() if isinstance(value, np.generic) else value


def check_metric_inputs(
    pred_path, ref_path, method: str, split: str, scale: int, coef_path=None
) -> None:
    """Refuse (UsageError, one line naming both sides) a prediction or reference file whose
    attributes disagree with the command line or each other: model, split, scale, mesh, and the
    physics of prediction, reference and coefficient file."""
    if scale < 2 or scale & (scale - 1):
        raise UsageError(f"--scale {scale}: expected a power of two >= 2")
    pred_ds = open_fields(pred_path, ("u", "seconds", "peak_mb"), what="prediction file")
    ref_ds = open_fields(ref_path, ("u",), what="reference data file")
    try:
        physics = [
            (f"prediction file {pred_path}", file_physics(pred_ds)),
            (f"reference data file {ref_path}", file_physics(ref_ds)),
        ]
        if coef_path is not None:
            with open_fields(coef_path, ("A",), what="coefficient file") as coef_ds:
                physics.append((f"coefficient file {coef_path}", file_physics(coef_ds)))
        check_physics(physics)
        psrc, rsrc = f"prediction file {pred_path}", f"reference data file {ref_path}"
        if file_attr(pred_ds, "model") is not None:
            check_match("model", ("--method", method), (psrc, str(file_attr(pred_ds, "model"))))
        for src, ds in ((psrc, pred_ds), (rsrc, ref_ds)):
            if file_attr(ds, "split") is not None:
                check_match("split", ("--split", split), (src, str(file_attr(ds, "split"))))
            if file_attr(ds, "alpha") is not None:
                check_match("scale", ("--scale", scale), (src, int(file_attr(ds, "alpha"))))
        check_same_grid(pred_ds, ref_ds)
    finally:
        pred_ds.close()
        ref_ds.close()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prediction", required=True)
    ap.add_argument("--reference", required=True)
    ap.add_argument("--coefficient", required=True, help="the split's coefficient.nc")
    ap.add_argument("--method", required=True, help="model name written to the 'method' column")
    ap.add_argument("--split", required=True)
    ap.add_argument("--scale", type=int, required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    check_metric_inputs(a.prediction, a.reference, a.method, a.split, a.scale, a.coefficient)
    df = prediction_metrics(a.prediction, a.reference, a.coefficient, a.method, a.split, a.scale)
    write_csv_atomic(df, a.out)


if __name__ == "__main__":
    sys.exit(run_main("python -m fesr.evaluate.metrics", main))
