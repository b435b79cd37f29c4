"""Wall time per pipeline stage from Snakemake's benchmark files, and evaluation's share at 32x/64x.

    .venv/bin/python benchmarks/bench_eval.py [--results results]

Run after a pipeline run (e.g. `make run`, the quick preset). Every rule writes a benchmark TSV
under results/benchmarks/{rule}/...; its `s` column is the job's wall time. Stages: data (FE
solves), training, evaluation (prediction, metrics, FE baselines, complexity), report (tables and
figures). Prints the summed job seconds per stage (sum over jobs, so with parallel jobs it exceeds
the elapsed time) and the summed CPU seconds of the jobs (Snakemake's `cpu_time`: what the jobs
computed, unlike wall time hardly changed by other load on the machine; with 2 threads per job it
can exceed the wall time), and how much of the evaluation time falls on alpha = 32 and 64.

Evaluation runs one `predict` job per (model, split) that writes every scale (issue 10); its
benchmark file has no scale, so the share per scale is taken from the prediction files'
per-sample inference `seconds` (results/predictions/*/*/u_x*.nc) instead. Older runs (one job
per model, split and scale) are still read: their jobs carry the scale in the file name.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

STAGES = {
    "data": ("data",),
    "training": ("model_config", "train"),
    "evaluation": (
        "predict",
        "evaluated_scale",
        "metrics",
        "fe_baselines",
        "complexity",
        "collect",
    ),
    "report": ("report",),
}


def stage_of(rule_dir: str) -> str:
    for stage, prefixes in STAGES.items():
        if any(rule_dir == p or rule_dir.startswith(p + "_") for p in prefixes):
            return stage
    return "other"


def collect(results: Path) -> pd.DataFrame:
    rows = []
    root = results / "benchmarks"
    for tsv in sorted(root.rglob("*.tsv")):
        rel = tsv.relative_to(root)
        try:
            bench = pd.read_csv(tsv, sep="\t")
        except Exception as err:  # a half-written file of an interrupted job
            print(f"skipping unreadable {tsv}: {err}")
            continue
        alpha = re.search(r"x(\d+)\.tsv$", tsv.name)
        rows.append(
            {
                "rule": rel.parts[0],
                "stage": stage_of(rel.parts[0]),
                "job": str(rel),
                "alpha": int(alpha.group(1)) if alpha else None,
                "seconds": float(bench["s"].mean()),
                # CPU seconds of the job's processes: robust to other load on the machine
                "cpu_seconds": float(bench.get("cpu_time", pd.Series([float("nan")])).mean()),
                "max_rss_mb": float(bench.get("max_rss", pd.Series([float("nan")])).max()),
            }
        )
    df = pd.DataFrame(rows)
    if not df.empty:
        df["alpha"] = df["alpha"].astype("Int64")
    return df


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
    per_stage = df.groupby("stage").agg(
        jobs=("seconds", "count"),
        job_seconds=("seconds", "sum"),
        job_cpu_seconds=("cpu_seconds", "sum"),
    )
    print("Job seconds per stage (sum over jobs):")
    print(per_stage.to_string(float_format=lambda v: f"{v:.1f}"))
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
