"""Reading tidy per-part CSV files (one row per split, scale, sample and method or approach) and
folding seed replicas into their model: the one reader behind ``fesr.evaluate.collect`` and every
table.

Seed replicas ``{model}-seed{k}`` (``fesr.model_names``) are folded into their model by averaging
every numeric column per (split, scale, sample) over the seeds; every seed of a model must cover
the same maps, or the average would mix different seed sets.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fesr.model_names import replica_name, replica_of


def read_parts(paths, what: str = "metrics") -> pd.DataFrame:
    """The rows of every CSV file of ``paths``, concatenated in order. ``what`` names the files
    in the errors (a missing or unreadable file, no file at all)."""
    frames = []
    for p in paths:
        if not Path(p).is_file():
            raise FileNotFoundError(f"{what} file '{p}' does not exist")
        try:
            frames.append(pd.read_csv(p))
        except Exception as err:
            raise ValueError(f"{what} file '{p}' cannot be read as CSV: {err}") from None
    if not frames:
        raise ValueError(f"no {what} files given")
    return pd.concat(frames, ignore_index=True)


def require_columns(df: pd.DataFrame, needed, what: str) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lack columns {missing}; have {list(df.columns)}")


def mean_by(df: pd.DataFrame, keys) -> pd.DataFrame:
    """The mean of every numeric column (but ``sample``) per group of ``keys``, in first-seen
    order."""
    num = df.select_dtypes("number").columns.difference(keys + ["sample"])
    return df.groupby(keys, sort=False)[list(num)].mean().reset_index()


def check_complete(agg: pd.DataFrame, rows_key: str, rows, scales, what: str) -> None:
    """Every (row, scale) pair has values in ``agg``; else an error listing the missing ones."""
    have = set(zip(agg[rows_key], agg["scale"], strict=True))
    missing = [(r, s) for r in rows for s in scales if (r, int(s)) not in have]
    if missing:
        raise ValueError(f"{what}: no metrics for {missing}")


def with_seeds(df: pd.DataFrame, col: str = "method") -> pd.DataFrame:
    """``df`` with ``col`` reduced to the model and its replica number in a column ``seed``."""
    parsed = [replica_of(str(name)) for name in df[col]]
    return df.assign(**{col: [b for b, _ in parsed], "seed": [k for _, k in parsed]})


def average_seeds(df: pd.DataFrame, col: str = "method") -> pd.DataFrame:
    """Seed replicas folded into their model: per (split, scale, sample) the mean over the seeds
    of every numeric column, and ``seeds`` = how many were averaged."""
    d = with_seeds(df, col)
    for base, sub in d.groupby(col, sort=False):
        maps = {
            seed: set(zip(g["split"], g["scale"], g["sample"], strict=True))
            for seed, g in sub.groupby("seed")
        }
        first_seed, first = next(iter(maps.items()))
        for seed, have in maps.items():
            if have != first:
                odd = sorted(have ^ first)[:3]
                raise ValueError(
                    f"seed replicas '{replica_name(base, first_seed)}' and "
                    f"'{replica_name(base, seed)}' cover different maps (split, scale, sample), "
                    f"e.g. {odd}; expected the same maps for every seed"
                )
    keys = ["split", col, "scale", "sample"]
    num = [c for c in d.select_dtypes("number").columns if c not in keys + ["seed"]]
    agg = {c: "mean" for c in num} | {"seed": "nunique"}
    out = d.groupby(keys, sort=False).agg(agg).reset_index()
    return out.rename(columns={"seed": "seeds"})
