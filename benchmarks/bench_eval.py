"""Wall time per pipeline stage from Snakemake's benchmark files, and evaluation's share at 32x/64x.

    .venv/bin/python benchmarks/bench_eval.py [--results results]

Run after a pipeline run (e.g. `make run`, the quick preset). Every rule writes a benchmark TSV
under results/benchmarks/{rule}/...; its `s` column is the job's wall time. Stages and their
sums come from `fesr.report.stage_times` (also the source of results/RESULTS.md's stage times).
Prints the summed job seconds per stage (sum over jobs, so with parallel jobs it exceeds the
elapsed time, which is printed beside it) and the summed CPU seconds of the jobs (Snakemake's
`cpu_time`: what the jobs computed, unlike wall time hardly changed by other load on the
machine; with 2 threads per job it can exceed the wall time), and how much of the evaluation
time falls on alpha = 32 and 64.

Evaluation runs one `predict` job per (model, split) that writes every scale; its
benchmark file has no scale, so the share per scale is taken from the prediction files'
per-sample inference `seconds` (results/predictions/*/*/u_x*.nc) instead. Older runs (one job
per model, split and scale) are still read: their jobs carry the scale in the file name.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

from fesr.report.stage_times import collect, per_stage


def inference_seconds(results: Path) -> pd.DataFrame:
    """Per prediction file: model, split, scale and the summed per-sample inference seconds."""
    import xarray as xr

    rows = []
    for path in sorted((results / "predictions").glob("*/*/u_x*.nc")):
        try:
            with xr.open_dataset(path) as ds:
                seconds = float(ds["seconds"].sum())
        except Exception as err:  # a foreign or half-written file
            print(f"skipping unreadable {path}: {err}")
            continue
        alpha = int(re.search(r"u_x(\d+)\.nc$", path.name).group(1))
        rows.append(
            {"model": path.parts[-3], "split": path.parts[-2], "alpha": alpha, "seconds": seconds}
        )
    return pd.DataFrame(rows, columns=["model", "split", "alpha", "seconds"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=Path("results"))
    a = ap.parse_args()
    df = collect(a.results)
    if df.empty:
        raise SystemExit(
            f"no benchmark files under {a.results / 'benchmarks'}; run the pipeline first"
        )
    print("Job seconds per stage (sum over jobs; elapsed: first job start to last job end):")
    print(per_stage(df).to_string(float_format=lambda v: f"{v:.1f}"))
    print("\nEvaluation jobs and job seconds per rule and scale ('all': one job, every scale):")
    ev = df[df["stage"] == "evaluation"].copy()
    ev["scale"] = ev["alpha"].astype("string").fillna("all")
    print(
        ev.pivot_table(
            index="rule", columns="scale", values="seconds", aggfunc="sum", fill_value=0.0
        ).to_string(float_format=lambda v: f"{v:.1f}")
    )
    print(
        ev.groupby("rule")
        .agg(
            jobs=("seconds", "count"),
            job_seconds=("seconds", "sum"),
            mean_s=("seconds", "mean"),
            job_cpu_seconds=("cpu_seconds", "sum"),
        )
        .to_string(float_format=lambda v: f"{v:.1f}")
    )
    total = ev["seconds"].sum()
    if ev["alpha"].notna().any():
        for alphas in ((32,), (64,), (32, 64)):
            share = ev.loc[ev["alpha"].isin(alphas), "seconds"].sum() / total
            print(f"share of evaluation job seconds at alpha in {alphas}: {share:.1%}")
    inference = inference_seconds(a.results)
    if not inference.empty:
        print("\nInference seconds (prediction files, summed over samples) per scale:")
        per_scale = inference.groupby("alpha")["seconds"].sum()
        print(per_scale.to_string(float_format=lambda v: f"{v:.1f}"))
        share = per_scale.reindex([32, 64]).fillna(0.0).sum() / per_scale.sum()
        print(f"share of inference at alpha in (32, 64): {share:.1%}")
    print(f"\nlargest peak RSS of an evaluation job: {ev['max_rss_mb'].max():.0f} MB")


if __name__ == "__main__":
    main()
