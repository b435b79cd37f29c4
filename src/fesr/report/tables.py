"""Every table of SPEC 4 from the tidy metric files: the command line of the report rules.

``python -m fesr.report.tables {table1,table2,table3,table_complexity,table_cost} ...``; each
writes ``--out-prefix``.csv (full precision), .md and .tex (rounded, with the caption). The tables
themselves: ``fesr.report.accuracy_tables`` (Tables I-III and their paired comparisons with
NH-CSR, ``--out-prefix``_paired.*), ``fesr.report.cost_table`` (table_cost, its Pareto fronts and
``--out-prefix``_answer.md), ``fesr.report.physics_table`` (the physics-aware variants against
their base models) and ``fesr.report.complexity_table``.
"""

from __future__ import annotations

import argparse
import sys

from fesr.cli import USER_ERRORS, run_main
from fesr.evaluate.plan import TABLE_NAMES
from fesr.report.accuracy_tables import ABLATIONS, table1
from fesr.report.accuracy_tables import ablation as ablation_table
from fesr.report.complexity_table import table_complexity
from fesr.report.cost_table import table_cost
from fesr.report.physics_table import table_physics


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="table", required=True)
    for name in TABLE_NAMES:
        p = sub.add_parser(name)
        p.add_argument("--metrics", nargs="+", required=True, help="tidy per-part CSV files")
        p.add_argument("--methods", nargs="+", required=True)
        p.add_argument("--scales", type=int, nargs="+", required=True)
        p.add_argument("--out-prefix", required=True)
        if name == "table1":
            p.add_argument("--train-scales", type=int, nargs="+", required=True)
            p.add_argument(
                "--baselines", nargs="+", help="fe_baselines parts: LR-solve baseline rows"
            )
        if name == "table_physics":
            p.add_argument(
                "--baselines", nargs="+", required=True, help="fe_baselines parts (LR field rows)"
            )
        if name == "table_complexity":
            p.add_argument(
                "--inference-benchmark", help="CSV of benchmarks/bench_inference.py (optional)"
            )
        if name == "table_cost":
            p.add_argument("--baselines", nargs="+", required=True)
            p.add_argument("--lr-data", nargs="+", required=True, help="split=path/u_x1.nc")
            p.add_argument(
                "--timing",
                nargs="+",
                default=[],
                help="CSV of python -m fesr.evaluate.timing: times taken alone on one core",
            )
    return ap


def main(argv=None) -> None:
    a = parser().parse_args(argv)
    if a.table == "table1":
        table1(a.metrics, a.methods, a.scales, a.train_scales, a.out_prefix, a.baselines)
    elif a.table in ABLATIONS:
        ablation_table(a.table, a.metrics, a.methods, a.scales, a.out_prefix)
    elif a.table == "table_complexity":
        table_complexity(a.metrics, a.methods, a.scales, a.out_prefix, a.inference_benchmark)
    elif a.table == "table_physics":
        table_physics(a.metrics, a.baselines, a.methods, a.scales, a.out_prefix)
    else:
        table_cost(a.metrics, a.baselines, a.lr_data, a.out_prefix, a.timing)


if __name__ == "__main__":
    sys.exit(run_main("python -m fesr.report.tables", main, user_errors=USER_ERRORS))
