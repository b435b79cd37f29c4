"""Per-sample error metrics between a predicted and a reference nodal field (SPEC 4).

All metrics are computed on the normalised value scale of SPEC 2 (fields divided by the
dataset constant ``u_scale``), on the HR node grid:

* ``mse``, ``mae``: mean over all nodes of the squared / absolute error.
* ``psnr = 10 log10(PEAK**2 / mse)`` with PEAK = 1 (training fields lie in about [0, 1]).
* ``ssim``: ``skimage.metrics.structural_similarity`` with ``data_range = 1`` (the same peak),
  default 7 x 7 uniform window.
* ``rel_l2``: ||e||_2 / ||u_ref||_2 over the nodal values.
* ``rel_energy``: |e|_1 / |u_ref|_1, the H1 seminorm of the bilinear (Q1) interpolants on the HR
  mesh, computed exactly (``q1_seminorm_sq``). Scale-free, like rel_l2.

Run as a module it evaluates one prediction file against its reference and writes a tidy CSV,
one row per sample. The files' ``model``, ``split`` and ``alpha`` attributes and their meshes are
checked against ``--method``, ``--split``, ``--scale`` and each other first: a mismatch is one
line naming both sides, exit 2, no output.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import pandas as pd
from skimage.metrics import structural_similarity
from tqdm import tqdm

from fesr.cli import UsageError, check_match, run_main
from fesr.evaluate.io import atomic_target, check_same_grid, open_fields, read_sample

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
    "seconds",
    "peak_mb",
]


def q1_seminorm_sq(v: np.ndarray) -> float:
    """|v|_1^2 = int |grad v|^2 of the Q1 interpolant of nodal values v (m+1, m+1), uniform mesh.

    On one square with corner values a (0,0), b (1,0), c (1,1), d (0,1), d/dx v is linear in y
    between p = b - a and q = c - d, so int (d/dx v)^2 = (p^2 + pq + q^2) / 3, independent of h
    in 2D; likewise for d/dy. Equal to v^T K v with K the Q1 stiffness matrix of the Laplacian.
    """
    v = np.asarray(v, dtype=np.float64)
    dx = np.diff(v, axis=1)  # (m+1, m): horizontal edge differences
    dy = np.diff(v, axis=0)  # (m, m+1): vertical edge differences
    p, q = dx[:-1, :], dx[1:, :]  # bottom and top edge of each element
    r, s = dy[:, :-1], dy[:, 1:]  # left and right edge of each element
    return float(((p * p + p * q + q * q).sum() + (r * r + r * s + s * s).sum()) / 3.0)


def field_metrics(pred: np.ndarray, ref: np.ndarray) -> dict:
    """Every metric of one sample; pred and ref are normalised (m+1, m+1) nodal arrays."""
    pred = np.asarray(pred, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    err = pred - ref
    mse = float(np.mean(err * err))
    ref_norm = float(np.sqrt(np.sum(ref * ref)))
    ref_energy = q1_seminorm_sq(ref)
    return {
        "mse": mse,
        "mae": float(np.mean(np.abs(err))),
        "psnr": float(10.0 * np.log10(PEAK**2 / mse)) if mse > 0 else float("inf"),
        "ssim": float(structural_similarity(ref, pred, data_range=SSIM_DATA_RANGE)),
        "rel_l2": float(np.sqrt(np.sum(err * err)) / ref_norm) if ref_norm > 0 else float("nan"),
        "rel_energy": (
            float(np.sqrt(q1_seminorm_sq(err) / ref_energy)) if ref_energy > 0 else float("nan")
        ),
    }


def prediction_metrics(pred_path, ref_path, method: str, split: str, scale: int) -> pd.DataFrame:
    """One row per sample: the metrics of prediction file vs reference data file."""
    pred_ds = open_fields(pred_path, ("u", "seconds", "peak_mb"), what="prediction file")
    ref_ds = open_fields(ref_path, ("u",), what="reference data file")
    try:
        check_same_grid(pred_ds, ref_ds)
        u_scale = float(pred_ds.attrs.get("u_scale", "nan"))
        if not np.isfinite(u_scale) or u_scale <= 0:
            raise ValueError(f"prediction file '{pred_path}': attribute u_scale must be > 0")
        seconds = pred_ds["seconds"].values
        peak = pred_ds["peak_mb"].values
        rows = []
        for k in tqdm(range(pred_ds.sizes["sample"]), desc=f"metrics {method} {split} x{scale}"):
            m = field_metrics(read_sample(pred_ds, k) / u_scale, read_sample(ref_ds, k) / u_scale)
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
    return pd.DataFrame(rows, columns=COLUMNS)


def file_attr(ds, key):
    """A global attribute of an opened file as a plain Python value (None when absent)."""
    value = ds.attrs.get(key)
    return value.item() if isinstance(value, np.generic) else value


def check_metric_inputs(pred_path, ref_path, method: str, split: str, scale: int) -> None:
    """Refuse (UsageError, one line naming both sides) a prediction or reference file whose
    attributes disagree with the command line or each other: model, split, scale, mesh."""
    if scale < 2 or scale & (scale - 1):
        raise UsageError(f"--scale {scale}: expected a power of two >= 2")
    pred_ds = open_fields(pred_path, ("u", "seconds", "peak_mb"), what="prediction file")
    ref_ds = open_fields(ref_path, ("u",), what="reference data file")
    try:
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
    ap.add_argument("--method", required=True, help="model name written to the 'method' column")
    ap.add_argument("--split", required=True)
    ap.add_argument("--scale", type=int, required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    check_metric_inputs(a.prediction, a.reference, a.method, a.split, a.scale)
    df = prediction_metrics(a.prediction, a.reference, a.method, a.split, a.scale)
    tmp = atomic_target(a.out)
    df.to_csv(tmp, index=False)
    os.replace(tmp, a.out)


if __name__ == "__main__":
    sys.exit(run_main("python -m fesr.evaluate.metrics", main))
