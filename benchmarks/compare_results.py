"""Compare two results/ directories file by file: byte for byte first, and where two CSV files
differ, cell by cell on the rows and columns both hold.

A refactoring that should not change any number is checked by running one preset on the tree
before it and on the tree after it, then::

    .venv/bin/python benchmarks/compare_results.py BEFORE/results AFTER/results

Each file under ``tables/``, ``metrics/``, ``figures/`` and ``models/`` (CSV, Markdown, LaTeX),
each NetCDF file under ``data/``, ``computed/`` and ``predictions/`` and each trained model's
``checkpoint.pt`` is reported as one of:

* ``identical``: ``cmp`` equal;
* ``same values``: NetCDF, every variable both files hold has the same values, attributes aside;
* ``same weights``: checkpoints, the same tensors at the same iteration;
* ``same shared cells``: CSV, every cell that both files hold is the same string, and the rest
  are rows or columns one side adds;
* ``text differs``: Markdown and LaTeX, whose numbers the CSV beside them holds;
* ``differs``, or present on one side only.

Measured times, and what is derived from them, are left out (``--measured``). The exit status
is 1 when any file differs in a value both sides hold, so the script can gate a change.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import sys
from pathlib import Path

import pandas as pd

TEXT_DIRS = ("tables", "metrics", "figures", "models")
TEXT_SUFFIXES = (".csv", ".md", ".tex")
NETCDF_DIRS = ("data", "computed", "predictions")
CHECKPOINT = "checkpoint.pt"
# Wall and CPU times, peak memory and what is derived from times (speed-ups, the Pareto fronts)
# are measurements that no two runs share, so they are left out of the values compared (a
# pattern on column and variable names).
MEASURED = r"(^|_)(time|times|seconds|s|wall|cpu|peak|speedup|pareto)(_|$)"


def files_under(root: Path) -> set[str]:
    found = set()
    for sub in TEXT_DIRS:
        found |= {
            str(p.relative_to(root))
            for p in (root / sub).rglob("*")
            if p.is_file() and p.suffix in TEXT_SUFFIXES
        }
    for sub in NETCDF_DIRS:
        found |= {str(p.relative_to(root)) for p in (root / sub).rglob("*.nc")}
    found |= {str(p.relative_to(root)) for p in (root / "models").rglob(CHECKPOINT)}
    return found


def key_columns(before: pd.DataFrame, after: pd.DataFrame) -> list[str]:
    """The columns both frames hold that are not floats: the labels (method, split, scale, map
    index) that say which row is which. An integer value that changed shows as a lost row."""
    shared = [c for c in before.columns if c in after.columns]
    return [c for c in shared if before[c].dtype.kind != "f" and after[c].dtype.kind != "f"]


def largest_relative_change(merged: pd.DataFrame, column: str) -> str:
    """How far a column moved: round-off (1e-8) reads differently from a changed definition."""
    before = pd.to_numeric(merged[f"{column}_b"], errors="coerce")
    after = pd.to_numeric(merged[f"{column}_a"], errors="coerce")
    if before.isna().any() or after.isna().any():
        return "(not numeric)"
    scale = before.abs().where(before != 0, after.abs()).where(lambda v: v != 0, 1.0)
    return f"{((after - before).abs() / scale).max():.2g}"


def compare_csv(before: Path, after: Path, measured: re.Pattern) -> tuple[str, str]:
    # Read as text so that a cell matches only if it was written the same way.
    b = pd.read_csv(before, dtype=str, keep_default_na=False)
    a = pd.read_csv(after, dtype=str, keep_default_na=False)
    keys = key_columns(pd.read_csv(before), pd.read_csv(after))
    values = [c for c in b.columns if c in a.columns and c not in keys and not measured.search(c)]
    if keys:
        if b.duplicated(keys).any() or a.duplicated(keys).any():
            return "differs", f"rows not unique by {keys}"
        merged = b[keys + values].merge(a[keys + values], on=keys, suffixes=("_b", "_a"))
    else:
        if len(a) != len(b):
            return "differs", f"{len(b)} rows before, {len(a)} after, no label column"
        merged = b[values].add_suffix("_b").join(a[values].add_suffix("_a"))
    unequal = [c for c in values if (merged[f"{c}_b"] != merged[f"{c}_a"]).any()]
    added_cols = [c for c in a.columns if c not in b.columns]
    removed_cols = [c for c in b.columns if c not in a.columns]
    detail = (
        f"{len(merged)} shared rows x {len(values)} shared columns; "
        f"rows {len(b)} -> {len(a)}; columns +{len(added_cols)} -{len(removed_cols)}"
    )
    if unequal:
        sizes = ", ".join(f"{c} {largest_relative_change(merged, c)}" for c in unequal[:6])
        return "differs", detail + f"; unequal columns (largest relative change): {sizes}"
    if len(merged) < len(b):
        return "differs", detail + f"; {len(b) - len(merged)} rows lost"
    return "same shared cells", detail


def compare_netcdf(before: Path, after: Path, measured: re.Pattern) -> tuple[str, str]:
    import xarray as xr

    with xr.open_dataset(before) as b, xr.open_dataset(after) as a:
        shared = [v for v in b.data_vars if v in a.data_vars and not measured.search(v)]
        unequal = [v for v in shared if not b[v].equals(a[v])]
        unequal += [c for c in b.coords if c in a.coords and not b[c].equals(a[c])]
        lost = [v for v in b.data_vars if v not in a.data_vars]
        added = [v for v in a.data_vars if v not in b.data_vars]
        detail = f"{len(shared)} shared variables; added: {added or 'none'}"
        if unequal or lost:
            return "differs", detail + f"; unequal: {unequal}; lost: {lost}"
        return "same values", detail


def compare_checkpoint(before: Path, after: Path) -> tuple[str, str]:
    """The trained weights, tensor by tensor, and the iteration they were saved at; the rest of
    a checkpoint (run times, paths, optimizer state) says how it was made, not what it is."""
    import torch

    b = torch.load(before, map_location="cpu", weights_only=True)
    a = torch.load(after, map_location="cpu", weights_only=True)
    wb, wa = b["state_dict"], a["state_dict"]
    if list(wb) != list(wa):
        return "differs", f"parameter names differ: {sorted(set(wb) ^ set(wa))[:4]}"
    unequal = [k for k in wb if not torch.equal(wb[k], wa[k])]
    detail = f"{len(wb)} tensors, iteration {b['iteration']} / {a['iteration']}"
    if unequal or b["iteration"] != a["iteration"]:
        return "differs", detail + f"; unequal: {unequal[:4]}"
    return "same weights", detail


def compare(
    before_root: Path, after_root: Path, measured: str = MEASURED
) -> list[tuple[str, str, str]]:
    pattern = re.compile(measured)
    before, after = files_under(before_root), files_under(after_root)
    rows = []
    for rel in sorted(before | after):
        if rel not in after:
            rows.append((rel, "before only", ""))
        elif rel not in before:
            rows.append((rel, "after only", ""))
        elif filecmp.cmp(before_root / rel, after_root / rel, shallow=False):
            rows.append((rel, "identical", ""))
        elif rel.endswith(".csv"):
            rows.append((rel, *compare_csv(before_root / rel, after_root / rel, pattern)))
        elif rel.endswith(CHECKPOINT):
            rows.append((rel, *compare_checkpoint(before_root / rel, after_root / rel)))
        elif rel.endswith(".nc"):
            rows.append((rel, *compare_netcdf(before_root / rel, after_root / rel, pattern)))
        else:
            rows.append((rel, "text differs", ""))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path, help="results/ of the tree before the change")
    parser.add_argument("after", type=Path, help="results/ of the tree after the change")
    parser.add_argument(
        "--measured",
        default=MEASURED,
        help="regular expression for the columns and variables that hold measured times, "
        f"which are not compared (default: {MEASURED})",
    )
    parser.add_argument(
        "--all", action="store_true", help="list identical files too, not only their count"
    )
    args = parser.parse_args(argv)
    for root in (args.before, args.after):
        if not root.is_dir():
            parser.error(f"{root} is not a directory (expected a results/ directory)")
    rows = compare(args.before, args.after, args.measured)
    counts: dict[str, int] = {}
    for _, status, _ in rows:
        counts[status] = counts.get(status, 0) + 1
    print("| file | status | detail |\n|---|---|---|")
    for rel, status, detail in rows:
        if args.all or status not in ("identical", "same values", "same weights"):
            print(f"| {rel} | {status} | {detail} |")
    print()
    print(", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    return 1 if counts.get("differs", 0) else 0


if __name__ == "__main__":
    sys.exit(main())
