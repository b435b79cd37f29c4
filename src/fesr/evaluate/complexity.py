"""Model complexity (SPEC 4, ``table_complexity``): parameters, FLOPs, peak memory, inference time.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode``, which counts the matrix products
and convolutions (2 FLOPs per multiply-add; element-wise operations are not counted). For each
scale the whole HR output of one sample is predicted under the counter: ``flops_full`` is that
total, ``flops_encode`` the query-independent part (``model.encode``; NaN for methods whose
predict is not encode + per-query), ``flops_per_query`` = (full - encode) / number of HR nodes.
Counting re-runs the model, so it is done only at scales up to ``--max-count-scale`` (default 16;
at least the two smallest scales): beyond, ``flops_full`` is extrapolated linearly in the number
of HR nodes through the two largest counted scales (exact for encode + per-query methods, whose
cost is affine in the number of queries) and ``flops_counted`` is False.
Inference time and peak memory are the means over the samples of the prediction files (measured
while predicting, ``fesr.evaluate.predict``).
Run as a module, the inputs are cross-checked first (model, checkpoint, LR and coefficient files
as in predict; each prediction file's model, split and scale): a mismatch is one line naming
both sides, exit 2, no output.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from fesr.checkpoint import resolve_device
from fesr.cli import MissingInputError, UsageError, check_match, run_main
from fesr.evaluate.io import open_fields, read_sample, write_csv_atomic
from fesr.models.base import hr_size

COLUMNS = [
    "method",
    "scale",
    "params",
    "flops_encode",
    "flops_full",
    "flops_per_query",
    "hr_nodes",
    "flops_counted",
    "seconds",
    "peak_mb",
]


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def model_complexity(
    model_name,
    checkpoint,
    lr_path,
    coef_path,
    scales,
    predictions,
    chunk=65536,
    device="auto",
    max_count_scale=16,
) -> pd.DataFrame:
    from fesr.checkpoint import load_model
    from fesr.data.conditioning import make_inputs

    dev = resolve_device(device)
    model, ckpt = load_model(checkpoint, dev)
    model.eval()
    params = int(sum(p.numel() for p in model.parameters()))
    lr_ds = open_fields(lr_path, ("u",), what="LR data file")
    coef_ds = open_fields(coef_path, ("A",), what="coefficient file")
    try:
        u_scale = float(ckpt["u_scale"])
        lr = torch.as_tensor(read_sample(lr_ds, 0) / u_scale, dtype=torch.float32)
        coef = torch.as_tensor(read_sample(coef_ds, 0, "A"), dtype=torch.float32)
        n = lr.shape[-1] - 1
    finally:
        lr_ds.close()
        coef_ds.close()
    inputs = make_inputs(
        lr[None, None].to(dev),
        coef[None, None].to(dev),
        model.uses_coefficient,
        ckpt.get("contrast"),
    )
    timing = {}
    for path in predictions:
        ds = open_fields(path, ("seconds", "peak_mb"), what="prediction file")
        try:
            timing[int(ds.attrs["alpha"])] = (
                float(np.mean(ds["seconds"].values)),
                float(np.mean(ds["peak_mb"].values)),
            )
        finally:
            ds.close()
    with torch.no_grad():
        try:
            flops_encode = count_flops(lambda: model.encode(inputs))
        except NotImplementedError:
            flops_encode = float("nan")
        scales = sorted(int(a) for a in scales)
        counted = [a for a in scales if a <= max_count_scale] or scales[:2]
        if len(counted) < 2:
            counted = scales[:2]
        nodes = {a: (hr_size(n, a) + 1) ** 2 for a in scales}
        full = {}
        for alpha in counted:
            torch.manual_seed(0)
            full[alpha] = count_flops(lambda a=alpha: model.predict(inputs, a, chunk=chunk))
        if len(counted) >= 2:
            a0, a1 = counted[-2], counted[-1]
            slope = (full[a1] - full[a0]) / (nodes[a1] - nodes[a0])
        rows = []
        for alpha in scales:
            flops = full.get(alpha)
            if flops is None:
                flops = full[a1] + slope * (nodes[alpha] - nodes[a1])
            enc = flops_encode if np.isfinite(flops_encode) else np.nan
            sec, peak = timing.get(alpha, (np.nan, np.nan))
            rows.append(
                {
                    "method": model_name,
                    "scale": alpha,
                    "params": params,
                    "flops_encode": flops_encode,
                    "flops_full": flops,
                    "flops_per_query": (flops - enc) / nodes[alpha],
                    "hr_nodes": nodes[alpha],
                    "flops_counted": alpha in full,
                    "seconds": sec,
                    "peak_mb": peak,
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def check_complexity_inputs(a) -> None:
    """Refuse mismatched inputs before any work (UsageError: one line naming both sides): the
    checks of ``fesr.evaluate.predict`` on model, checkpoint, LR and coefficient files, then each
    prediction file's model, split and scale against the command line and the LR file."""
    from fesr.checkpoint import load_checkpoint
    from fesr.evaluate.predict import check_inputs

    resolve_device(a.device)
    for alpha in a.scales:
        if alpha < 2 or alpha & (alpha - 1):
            raise UsageError(f"--scales {alpha}: expected powers of two >= 2")
    if len(set(a.scales)) != len(a.scales):
        raise UsageError(f"--scales {' '.join(map(str, a.scales))}: a scale is given twice")
    if not os.path.isfile(a.checkpoint):
        raise MissingInputError(f"checkpoint '{a.checkpoint}' of model '{a.model}' does not exist")
    try:
        ckpt = load_checkpoint(a.checkpoint, map_location="cpu")
    except ValueError as err:  # corrupt or foreign: the message names the file
        raise UsageError(str(err)) from None
    lr_ds = open_fields(a.lr_data, ("u",), what="LR data file")
    coef_ds = open_fields(a.coefficient, ("A",), what="coefficient file")
    try:
        split = check_inputs(argparse.Namespace(**vars(a), split=None), ckpt, lr_ds, coef_ds)
    finally:
        lr_ds.close()
        coef_ds.close()
    seen = {}
    for path in a.predictions:
        ds = open_fields(path, ("seconds", "peak_mb"), what="prediction file")
        try:
            src = f"prediction file {path}"
            if ds.attrs.get("model") is not None:
                check_match("model", ("--model", a.model), (src, str(ds.attrs["model"])))
            if split is not None and ds.attrs.get("split") is not None:
                check_match("split", (f"LR data file {a.lr_data}", split), (src, ds.attrs["split"]))
            if ds.attrs.get("alpha") is None:
                raise UsageError(f"{src} has no 'alpha' attribute (not written by predict?)")
            alpha = int(ds.attrs["alpha"])
        finally:
            ds.close()
        if alpha not in a.scales:
            raise UsageError(
                f"scale mismatch: {src} is at alpha {alpha}, not among --scales {a.scales}"
            )
        if alpha in seen:
            raise UsageError(f"scale {alpha}: both {seen[alpha]} and {path} hold it")
        seen[alpha] = path


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--lr-data", required=True)
    ap.add_argument("--coefficient", required=True)
    ap.add_argument("--scales", type=int, nargs="+", required=True)
    ap.add_argument("--predictions", nargs="*", default=[])
    ap.add_argument("--chunk", type=int, default=65536)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-count-scale", type=int, default=16, help="count FLOPs up to this scale")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    torch.set_num_threads(max(1, a.threads))
    check_complexity_inputs(a)
    df = model_complexity(
        a.model,
        a.checkpoint,
        a.lr_data,
        a.coefficient,
        a.scales,
        a.predictions,
        a.chunk,
        a.device,
        a.max_count_scale,
    )
    write_csv_atomic(df, a.out)


if __name__ == "__main__":
    sys.exit(run_main("python -m fesr.evaluate.complexity", main))
