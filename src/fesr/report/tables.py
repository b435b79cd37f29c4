"""Every table of SPEC 4 from the tidy metric files.

``python -m fesr.report.tables {table1,table2,table3,table_complexity,table_cost} ...``; each writes
``--out-prefix``.csv/.md/.tex. Values are means over the samples of a split; MSE and MAE are on the
normalised scale and shown in units of 1e-3.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from fesr.cli import USER_ERRORS, run_main
from fesr.report.outputs import write_table
from fesr.report.stats import format_interval, mean_interval


def read_parts(paths) -> pd.DataFrame:
    frames = []
    for p in paths:
        if not Path(p).is_file():
            raise FileNotFoundError(f"metrics file '{p}' does not exist")
        try:
            frames.append(pd.read_csv(p))
        except Exception as err:
            raise ValueError(f"metrics file '{p}' cannot be read as CSV: {err}") from None
    if not frames:
        raise ValueError("no metrics files given")
    return pd.concat(frames, ignore_index=True)


def mean_by(df: pd.DataFrame, keys) -> pd.DataFrame:
    num = df.select_dtypes("number").columns.difference(keys + ["sample"])
    return df.groupby(keys, sort=False)[list(num)].mean().reset_index()


def check_complete(agg: pd.DataFrame, rows_key: str, rows, scales, what: str) -> None:
    have = set(zip(agg[rows_key], agg["scale"], strict=True))
    missing = [(r, s) for r in rows for s in scales if (r, int(s)) not in have]
    if missing:
        raise ValueError(f"{what}: no metrics for {missing}")


def wide_metric_table(df, models, scales, metrics, split_col=True):
    """Rows (split, method) in config order; per metric and scale the mean over the split's maps
    and its 95% interval (``fesr.report.stats``). Returns (numbers, display): ``numbers`` has
    columns ``{name}_x{s}``, ``..._lo``, ``..._hi`` and ``maps_x{s}``; ``display`` the same cells
    as 'mean [lo, hi]' strings for the .md and .tex tables."""
    agg = mean_by(df, ["split", "method", "scale"])
    check_complete(agg, "method", models, scales, "metrics table")
    rows, shown = [], []
    for split in dict.fromkeys(agg["split"]):
        for model in models:
            head = {"split": split, "method": model} if split_col else {"method": model}
            means, extra, disp = {}, {}, dict(head)
            sub = df[(df["split"] == split) & (df["method"] == model)]
            for name, col, factor in metrics:
                for s in scales:
                    vals = sub.loc[sub["scale"] == int(s), col].to_numpy() * factor
                    mean, lo, hi, k = mean_interval(vals)
                    means[f"{name}_x{s}"] = mean
                    extra[f"{name}_x{s}_lo"], extra[f"{name}_x{s}_hi"] = lo, hi
                    extra[f"maps_x{s}"] = k
                    disp[f"{name}_x{s}"] = format_interval(mean, lo, hi)
            rows.append({**head, **means, **extra})
            shown.append(disp)
    return pd.DataFrame(rows), pd.DataFrame(shown)


def maps_note(table: pd.DataFrame, scales) -> str:
    """How many test maps each scale's cells average, per split (the caption states it)."""
    parts = []
    for split, sub in table.groupby("split", sort=False) if "split" in table else [("", table)]:
        counts = {int(s): int(sub[f"maps_x{s}"].min()) for s in scales}
        text = ", ".join(f"{s}x: {k}" for s, k in counts.items())
        parts.append(f"{split} maps per scale {text}" if split else f"maps per scale {text}")
    return "; ".join(parts)


INTERVAL_NOTE = (
    "Cells: mean over test maps [95% t interval of the mean over maps]; no interval with one map."
)


def table1(a) -> None:
    df = read_parts(a.metrics)
    scales = [int(s) for s in a.scales]
    table, display = wide_metric_table(
        df, a.methods, scales, [("mse_e3", "mse", 1e3), ("ssim", "ssim", 1.0)]
    )
    ood = [s for s in scales if s > max(a.train_scales)]
    caption = (
        "Table I: mean MSE (x1e-3, normalised fields) and SSIM (data range 1) per method and scale "
        f"on each test split. Trained at scales {sorted(a.train_scales)}; scales {ood} are "
        f"out of distribution. {INTERVAL_NOTE} {maps_note(table, scales)}."
    )
    write_table(table, a.out_prefix, caption, display=display)


def ablation(a, title: str) -> None:
    df = read_parts(a.metrics)
    scales = [int(s) for s in a.scales]
    metrics = [("mse_e3", "mse", 1e3), ("ssim", "ssim", 1.0), ("mae_e3", "mae", 1e3)]
    table, display = wide_metric_table(df, a.methods, scales, metrics)
    caption = (
        f"{title}: mean MSE (x1e-3), SSIM and MAE (x1e-3) at scales {scales}. {INTERVAL_NOTE} "
        f"{maps_note(table, scales)}."
    )
    write_table(table, a.out_prefix, caption, display=display)


def paper_inference(path) -> pd.DataFrame | None:
    """Paper-size rows of ``benchmarks/bench_inference.py --csv`` (None if no path is given)."""
    if path is None:
        return None
    if not Path(path).is_file():
        raise FileNotFoundError(f"inference benchmark file '{path}' does not exist")
    try:
        df = pd.read_csv(path)
    except Exception as err:
        raise ValueError(
            f"inference benchmark file '{path}' cannot be read as CSV: {err}"
        ) from None
    needed = {"method", "size", "field_s", "gpu_est_s", "gpu_tflops_assumed", "threads"}
    if not needed <= set(df.columns):
        raise ValueError(
            f"inference benchmark file '{path}' lacks columns {needed - set(df.columns)}"
        )
    return df[df["size"] == "paper"].set_index("method")


def table_complexity(a) -> None:
    df = read_parts(a.metrics)
    scales = [int(s) for s in a.scales]
    check_complete(df, "method", a.methods, scales, "table_complexity")
    paper = paper_inference(getattr(a, "inference_benchmark", None))
    rows = []
    for model in a.methods:
        sub = df[df["method"] == model].set_index("scale")
        row = {
            "method": model,
            "params": int(sub["params"].iloc[0]),
            "flops_per_query": sub.loc[scales[0], "flops_per_query"],
        }
        for s in scales:
            row[f"gflops_x{s}"] = sub.loc[s, "flops_full"] / 1e9
        for s in scales:
            row[f"seconds_x{s}"] = sub.loc[s, "seconds"]
        for s in scales:
            row[f"peak_mb_x{s}"] = sub.loc[s, "peak_mb"]
        if paper is not None:
            # paper-size 64x inference (a method's variants share its base method's numbers)
            base = model.split("-")[0]
            hit = paper.loc[base] if base in paper.index else None
            row["paper_cpu_s_x64"] = float(hit["field_s"]) if hit is not None else np.nan
            row["paper_gpu_est_s_x64"] = float(hit["gpu_est_s"]) if hit is not None else np.nan
        rows.append(row)
    caption = (
        "Complexity: parameters, FLOPs per query node (at the smallest scale; matmuls and "
        "convolutions, torch FlopCounterMode), GFLOPs, inference seconds and peak memory (MiB) "
        "for one full HR output per sample. GFLOPs beyond 16x are extrapolated linearly in the "
        "number of HR nodes (results/metrics/complexity.csv, column flops_counted)."
    )
    if paper is not None and len(paper):
        caption += (
            " paper_cpu_s_x64: paper-size model (config.yaml), one 2049 x 2049 field on this "
            f"project's CPU with {int(paper['threads'].iloc[0])} thread(s), encode timed and "
            "queries timed at small scales or on a node subset and extrapolated "
            "(benchmarks/bench_inference.py, docs/bench_inference.csv); "
            "paper_gpu_est_s_x64: its FLOPs / an assumed sustained "
            f"{float(paper['gpu_tflops_assumed'].iloc[0]):g} TFLOP/s on one GPU."
        )
    write_table(pd.DataFrame(rows), a.out_prefix, caption)


def lr_solve_times(specs) -> dict:
    import xarray as xr

    out = {}
    for spec in specs:
        split, _, path = spec.partition("=")
        if not Path(path).is_file():
            raise FileNotFoundError(f"LR data file '{path}' does not exist")
        with xr.open_dataset(path) as ds:
            out[split] = np.asarray(ds["solve_time"].values, dtype=np.float64)
    return out


def cost_table(sr: pd.DataFrame, fe: pd.DataFrame, lr_times: dict) -> pd.DataFrame:
    """Mean error and wall time per (split, scale, approach): SR methods (time = LR solve +
    inference), the direct FE solve and coarser solves interpolated up."""
    sr = sr.copy()
    sr["seconds"] = [
        lr_times[s][k] + t for s, k, t in zip(sr["split"], sr["sample"], sr["seconds"], strict=True)
    ]
    sr["kind"] = "SR (LR solve + inference)"
    sr = sr.rename(columns={"method": "approach"})
    fe = fe.copy()
    fe["kind"] = np.where(
        fe["approach"] == "fe_direct", "FE direct solve", "FE coarse solve + Q1 interp"
    )
    cols = ["split", "scale", "kind", "approach", "rel_l2", "rel_energy", "mse", "seconds"]
    both = pd.concat([sr[cols], fe[cols]], ignore_index=True)
    agg = both.groupby(["split", "scale", "kind", "approach"], sort=False).mean().reset_index()
    agg["mse_e3"] = agg.pop("mse") * 1e3
    direct = agg[agg["approach"] == "fe_direct"].set_index(["split", "scale"])["seconds"]
    agg["speedup_vs_direct"] = [
        direct.get((s, c), np.nan) / t
        for s, c, t in zip(agg["split"], agg["scale"], agg["seconds"], strict=True)
    ]
    return agg.sort_values(["split", "scale"], kind="stable").reset_index(drop=True)


def table_cost(a) -> None:
    sr = read_parts(a.metrics)
    fe = read_parts(a.baselines)
    table = cost_table(sr, fe, lr_solve_times(a.lr_data))
    caption = (
        "Cost: mean relative L2 and energy (H1-seminorm) error against the HR FE solution, and "
        "mean wall time per sample, of each SR method (LR solve + inference), the direct FE solve "
        "at the target resolution (error 0 by definition) and coarser FE solves interpolated up. "
        "speedup_vs_direct = direct solve time / time."
    )
    write_table(table, a.out_prefix, caption)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="table", required=True)
    for name in ("table1", "table2", "table3", "table_complexity", "table_cost"):
        p = sub.add_parser(name)
        p.add_argument("--metrics", nargs="+", required=True, help="tidy per-part CSV files")
        p.add_argument("--methods", nargs="+", required=True)
        p.add_argument("--scales", type=int, nargs="+", required=True)
        p.add_argument("--out-prefix", required=True)
        if name == "table1":
            p.add_argument("--train-scales", type=int, nargs="+", required=True)
        if name == "table_complexity":
            p.add_argument(
                "--inference-benchmark", help="CSV of benchmarks/bench_inference.py (optional)"
            )
        if name == "table_cost":
            p.add_argument("--baselines", nargs="+", required=True)
            p.add_argument("--lr-data", nargs="+", required=True, help="split=path/u_x1.nc")
    a = ap.parse_args(argv)
    if a.table == "table1":
        table1(a)
    elif a.table == "table2":
        ablation(a, "Table II (positional-encoding ablation)")
    elif a.table == "table3":
        ablation(a, "Table III (single/multi-scale, with/without SCS)")
    elif a.table == "table_complexity":
        table_complexity(a)
    else:
        table_cost(a)


if __name__ == "__main__":
    sys.exit(run_main("python -m fesr.report.tables", main, user_errors=USER_ERRORS))
