"""Wall time per pipeline stage from Snakemake's benchmark files, and evaluation's share at 32x/64x.

    .venv/bin/python benchmarks/bench_eval.py [--results results]

Run after a pipeline run (e.g. `make run`, the quick preset). Every rule writes a benchmark TSV
under results/benchmarks/{rule}/...; its `s` column is the job's wall time. Stages: data (FE
solves), training, evaluation (prediction, metrics, FE baselines, complexity), report (tables and
figures). Prints the summed job seconds per stage (sum over jobs, so with parallel jobs it exceeds
the elapsed time), and how much of the evaluation time falls on alpha = 32 and 64.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

STAGES = {
    "data": ("data",),
    "training": ("model_config", "train"),
    "evaluation": ("predict", "metrics", "fe_baselines", "complexity", "collect"),
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
                "max_rss_mb": float(bench.get("max_rss", pd.Series([float("nan")])).max()),
            }
        )
    df = pd.DataFrame(rows)
    if not df.empty:
        df["alpha"] = df["alpha"].astype("Int64")
    return df


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=Path("results"))
    a = ap.parse_args()
    df = collect(a.results)
    if df.empty:
        raise SystemExit(
            f"no benchmark files under {a.results / 'benchmarks'}; run the pipeline first"
        )
    per_stage = (
        df.groupby("stage")["seconds"]
        .agg(["count", "sum"])
        .rename(columns={"count": "jobs", "sum": "job_seconds"})
    )
    print("Job seconds per stage (sum over jobs):")
    print(per_stage.to_string(float_format=lambda v: f"{v:.1f}"))
    print("\nEvaluation job seconds per rule and scale:")
    ev = df[df["stage"] == "evaluation"]
    print(
        ev.pivot_table(
            index="rule", columns="alpha", values="seconds", aggfunc="sum", fill_value=0.0
        ).to_string(float_format=lambda v: f"{v:.1f}")
    )
    total = ev["seconds"].sum()
    for alphas in ((32,), (64,), (32, 64)):
        share = ev.loc[ev["alpha"].isin(alphas), "seconds"].sum() / total if total else float("nan")
        print(f"share of evaluation at alpha in {alphas}: {share:.1%}")
    print(f"\nlargest peak RSS of an evaluation job: {ev['max_rss_mb'].max():.0f} MB")


if __name__ == "__main__":
    main()
