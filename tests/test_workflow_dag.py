"""The whole DAG of the tiny preset, run by the real Snakemake in a temporary working directory
(the session's ``tiny_run``, tests/conftest.py): every table and figure file appears, each table
has a row per configured method and a column per configured scale, and `table1` rebuilds alone
without re-running training or prediction. The HTML report: tests/test_report_html.py.
"""

import pandas as pd
import pytest
from tiny_dag import snakemake

from fesr.evaluate import plan
from fesr.report.accuracy_tables import LR_BASELINES

# the whole tiny DAG (about 20 models, 100 predictions) takes 10-20 min on 2 busy cores
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3000)]


def test_every_table_and_figure_exists(tiny_run, tiny_config):
    targets = plan.report_targets(tiny_config)
    assert any(t.endswith("table_cost.csv") for t in targets)
    assert any(t.endswith("fig10.pdf") for t in targets)
    missing = [t for t in targets if not (tiny_run / t).is_file()]
    assert not missing, f"not built: {missing}"
    empty = [t for t in targets if (tiny_run / t).stat().st_size == 0]
    assert not empty, f"empty: {empty}"


def test_tables_have_a_row_per_method_and_a_column_per_scale(tiny_run, tiny_config):
    tables = tiny_run / "results" / "tables"
    methods = plan.table1_methods(tiny_config)
    scales = plan.eval_scales(tiny_config)
    t1 = pd.read_csv(tables / "table1.csv")
    for split in plan.eval_splits(tiny_config):
        # the models, then the LR-solve baselines (arithmetic, geometric, harmonic cell means)
        # the LR-solve baselines, then the other numerical references, each once
        extra = ["fe_it1", "lod_coarse", "lod_k1"]  # tiny.yaml's baselines, sorted by name
        assert list(t1.loc[t1["split"] == split, "method"]) == methods + list(LR_BASELINES) + extra
    paired = pd.read_csv(tables / "table1_paired.csv")
    assert set(paired["method"]) == (set(methods) | set(LR_BASELINES) | set(extra)) - {"nhcsr"}
    assert (tables / "table_cost_answer.md").stat().st_size > 0
    for s in scales:
        assert {f"mse_e3_x{s}", f"ssim_x{s}"} <= set(t1.columns)
    assert t1.filter(like="mse_e3_x").notna().all().all()
    ablation = plan.pick_scales(tiny_config, "ablation")
    for name in ("table2", "table3"):
        t = pd.read_csv(tables / f"{name}.csv")
        assert list(t["method"]) == tiny_config["report"][f"{name}_models"]
        assert {f"{m}_x{s}" for m in ("mse_e3", "ssim", "mae_e3") for s in ablation} <= set(
            t.columns
        )
    tc = pd.read_csv(tables / "table_complexity.csv")
    assert list(tc["method"]) == methods
    assert {f"gflops_x{s}" for s in scales} | {f"seconds_x{s}" for s in scales} <= set(tc.columns)
    cost = pd.read_csv(tables / "table_cost.csv")
    for s in scales:
        rows = cost[cost["scale"] == s]
        assert set(methods) | {"fe_direct"} | set(LR_BASELINES) <= set(rows["approach"])
    metrics = pd.read_csv(tiny_run / "results" / "metrics" / "metrics.csv")
    sizes = metrics.groupby(["method", "split", "scale"]).size()
    for split in plan.eval_splits(tiny_config):
        counts = {sizes.get((m, split, s), 0) for m in methods for s in scales}
        assert len(counts) == 1 and counts.pop() > 0, f"{split}: uneven sample rows {sizes}"


def test_one_evaluation_job_per_model_and_split(tiny_run, tiny_config):
    """A (model, split) is predicted by one job for all its scales; the staging
    directory is gone and every (model, split, scale) file is published."""
    jobs = plan.evaluation_jobs(tiny_config)
    bench = tiny_run / "results" / "benchmarks" / "predict"
    ran = {tuple(p.relative_to(bench).with_suffix("").parts) for p in bench.rglob("*.tsv")}
    assert ran == set(jobs), f"predict jobs {sorted(ran)} != planned {sorted(jobs)}"
    staged = [p for p in (tiny_run / plan.EVALUATION).rglob("*") if p.is_file()]
    assert not staged, f"staged files left behind (Snakemake keeps only empty folders): {staged}"
    for model, split, scale in plan.evaluated(tiny_config):
        assert (tiny_run / plan.prediction_path(model, split, scale)).is_file()
        assert (tiny_run / plan.metric_part(model, split, scale)).is_file()


def test_table1_rebuilds_alone(tiny_run):
    table1 = tiny_run / "results" / "tables" / "table1.csv"
    upstream = list((tiny_run / "results" / "models").rglob("checkpoint.pt"))
    upstream += list((tiny_run / "results" / "predictions").rglob("*.nc"))
    upstream += list((tiny_run / "results" / "data").rglob("*.nc"))
    before = {p: p.stat().st_mtime_ns for p in upstream}
    table1.unlink()
    # with the results page, which quotes Table I
    res = snakemake(tiny_run, "table1", "results/RESULTS.md")
    assert res.returncode == 0, res.stderr[-3000:]
    assert table1.is_file()
    assert {p: p.stat().st_mtime_ns for p in upstream} == before, "table1 re-ran upstream jobs"
    again = snakemake(tiny_run, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr
