"""Concatenate tidy per-part CSV files into one (metrics.csv, fe_baselines.csv, complexity.csv).

``python -m fesr.evaluate.collect --out results/metrics/metrics.csv PART.csv ...``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from fesr.cli import USER_ERRORS, run_main
from fesr.evaluate.io import write_csv_atomic


def collect(paths) -> pd.DataFrame:
    frames = []
    for p in paths:
        if not Path(p).is_file():
            raise FileNotFoundError(f"part file '{p}' does not exist")
        try:
            frames.append(pd.read_csv(p))
        except Exception as err:
            raise ValueError(f"part file '{p}' cannot be read as CSV: {err}") from None
    if not frames:
        raise ValueError("collect: no part files given")
    return pd.concat(frames, ignore_index=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("parts", nargs="+")
    a = ap.parse_args(argv)
    write_csv_atomic(collect(a.parts), a.out)


if __name__ == "__main__":
    sys.exit(run_main("python -m fesr.evaluate.collect", main, user_errors=USER_ERRORS))
