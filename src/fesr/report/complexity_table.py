"""The complexity table: parameters, FLOPs per query node, GFLOPs, inference seconds and peak
memory per method and scale, from the complexity parts (``fesr.evaluate.complexity``), with the
paper-size 64x inference times of ``benchmarks/bench_inference.py --csv`` where given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fesr.model_names import method_of
from fesr.report.captions import caption
from fesr.report.outputs import write_table
from fesr.report.tidy import check_complete, read_parts


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


def table_complexity(part_files, methods, scales, out_prefix, inference_benchmark=None) -> None:
    df = read_parts(part_files)
    scales = [int(s) for s in scales]
    check_complete(df, "method", methods, scales, "table_complexity")
    paper = paper_inference(inference_benchmark)
    rows = []
    for model in methods:
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
            # paper-size 64x inference (a method's variants share its method's numbers)
            base = method_of(model)
            hit = paper.loc[base] if base in paper.index else None
            row["paper_cpu_s_x64"] = float(hit["field_s"]) if hit is not None else np.nan
            row["paper_gpu_est_s_x64"] = float(hit["gpu_est_s"]) if hit is not None else np.nan
        rows.append(row)
    text = caption("table_complexity")
    if paper is not None and len(paper):
        text += (
            f" Paper-size columns: {int(paper['threads'].iloc[0])} CPU thread(s); an assumed "
            f"sustained {float(paper['gpu_tflops_assumed'].iloc[0]):g} TFLOP/s on one GPU."
        )
    write_table(pd.DataFrame(rows), out_prefix, text)
