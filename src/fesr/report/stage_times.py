"""Measured time of each pipeline stage, from the benchmark files Snakemake writes per job.

Every rule writes a benchmark TSV under ``results/benchmarks/{rule}/...``; its ``s`` column is the
job's wall time, ``cpu_time`` the CPU seconds of its processes and ``max_rss`` its peak memory.
Stages: data (FE solves), training, evaluation (prediction, metrics, FE baselines, complexity)
and report (tables, figures, the results page). Per stage: the number of jobs, the summed job
seconds (with parallel jobs more than the time that passed), the summed CPU seconds, and the
elapsed time from the first job's start to the last job's end. A job ends when its TSV is
written (the file's modification time) and starts ``s`` seconds before; a run resumed later
counts the pause as elapsed too.

Used by ``benchmarks/bench_eval.py`` and ``fesr.report.results_page``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

# rule-directory prefixes of each stage (a rule's benchmarks lie in results/benchmarks/{rule}/)
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
    """One row per benchmark file: rule, stage, job, alpha (from a ``x{alpha}.tsv`` name),
    seconds, cpu_seconds, max_rss_mb and end (POSIX time the file was written)."""
    import re

    rows = []
    root = Path(results) / "benchmarks"
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
                "end": tsv.stat().st_mtime,
            }
        )
    df = pd.DataFrame(
        rows,
        columns=["rule", "stage", "job", "alpha", "seconds", "cpu_seconds", "max_rss_mb", "end"],
    )
    df["alpha"] = df["alpha"].astype("Int64")
    return df


def per_stage(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per stage (in pipeline order, then 'other'): jobs, job_seconds, job_cpu_seconds,
    elapsed_seconds (first start to last end) and max_rss_mb."""
    order = [*STAGES, "other"]
    start = jobs["end"] - jobs["seconds"]
    out = (
        jobs.assign(start=start)
        .groupby("stage")
        .agg(
            jobs=("seconds", "count"),
            job_seconds=("seconds", "sum"),
            job_cpu_seconds=("cpu_seconds", "sum"),
            first_start=("start", "min"),
            last_end=("end", "max"),
            max_rss_mb=("max_rss_mb", "max"),
        )
    )
    out["elapsed_seconds"] = out["last_end"] - out["first_start"]
    out = out.reindex([s for s in order if s in out.index])
    return out[["jobs", "job_seconds", "job_cpu_seconds", "elapsed_seconds", "max_rss_mb"]]
