"""Concatenate tidy per-part CSV files into one (metrics.csv, fe_baselines.csv, complexity.csv).

``python -m fesr.evaluate.collect --out results/metrics/metrics.csv PART.csv ...``; the parts are
read by ``fesr.report.tidy.read_parts``, as every table reads them.
"""

from __future__ import annotations

import argparse
import sys

from fesr.cli import USER_ERRORS, run_main
from fesr.evaluate.io import write_csv_atomic
from fesr.report.tidy import read_parts


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("parts", nargs="+")
    a = ap.parse_args(argv)
    write_csv_atomic(read_parts(a.parts, "part"), a.out)


if __name__ == "__main__":
    sys.exit(run_main("python -m fesr.evaluate.collect", main, user_errors=USER_ERRORS))
