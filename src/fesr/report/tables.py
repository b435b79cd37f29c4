"""Every table of SPEC 4 from the tidy metric files.

``python -m fesr.report.tables {table1,table2,table3,table_complexity,table_cost} ...``; each writes
``--out-prefix``.csv/.md/.tex. Values are means over the samples of a split; MSE and MAE are on the
normalised scale and shown in units of 1e-3.

Seed replicas ``{model}-seed{k}`` are folded into their model (errors averaged per map). table1
also writes ``--out-prefix``_paired.csv/.md/.tex (NH-CSR against every other row on the same
maps) and takes the LR-solve baselines from fe_baselines parts (``--baselines``); table_cost also
writes ``--out-prefix``_answer.md (the Pareto front and cost ratios in words).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from fesr.cli import USER_ERRORS, run_main
from fesr.evaluate.io import atomic_target
from fesr.evaluate.plan import HOMOGENIZED_MEANS, homogenized_approach
from fesr.model_names import model_seed
from fesr.report.outputs import write_table
from fesr.report.stats import format_interval, mean_interval, paired_difference, seed_spread

# Table I's paired comparisons are this method against every other row.
REFERENCE_METHOD = "nhcsr"
# Table I's baseline rows (approaches of the fe_baselines parts): one LR solve with a coefficient
# per coarse cell (this mean of the fine cells it covers), interpolated up with Q1.
# The arithmetic mean is the LR field itself, whose row is fe_x1_interp.
LR_BASELINES = {
    "fe_x1_interp": "arithmetic",
    **{homogenized_approach(mean): mean for mean in HOMOGENIZED_MEANS},
}


def read_parts(paths, what: str = "metrics") -> pd.DataFrame:
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


def mean_by(df: pd.DataFrame, keys) -> pd.DataFrame:
    num = df.select_dtypes("number").columns.difference(keys + ["sample"])
    return df.groupby(keys, sort=False)[list(num)].mean().reset_index()


def check_complete(agg: pd.DataFrame, rows_key: str, rows, scales, what: str) -> None:
    have = set(zip(agg[rows_key], agg["scale"], strict=True))
    missing = [(r, s) for r in rows for s in scales if (r, int(s)) not in have]
    if missing:
        raise ValueError(f"{what}: no metrics for {missing}")


def seed_of(name: str) -> tuple[str, int]:
    """(base model, seed): ``{model}-seed{k}`` is seed k of ``model``, a plain name is seed 0."""
    k = model_seed(name)
    return (name.rsplit("-", 1)[0], k) if k else (name, 0)


def seed_name(base: str, seed: int) -> str:
    return f"{base}-seed{seed}" if seed else base


def with_seeds(df: pd.DataFrame, col: str = "method") -> pd.DataFrame:
    """``df`` with ``col`` reduced to the base model and its seed in a column ``seed``."""
    parsed = [seed_of(str(name)) for name in df[col]]
    return df.assign(**{col: [b for b, _ in parsed], "seed": [k for _, k in parsed]})


def average_seeds(df: pd.DataFrame, col: str = "method") -> pd.DataFrame:
    """Seed replicas folded into their base model: per (split, scale, sample) the mean over the
    seeds of every numeric column, and ``seeds`` = how many were averaged. Every seed of a model
    must cover the same maps, or the average would mix different seed sets."""
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
                    f"seed replicas '{seed_name(base, first_seed)}' and '{seed_name(base, seed)}' "
                    f"cover different maps (split, scale, sample), e.g. {odd}; expected the same "
                    "maps for every seed"
                )
    keys = ["split", col, "scale", "sample"]
    num = [c for c in d.select_dtypes("number").columns if c not in keys + ["seed"]]
    agg = {c: "mean" for c in num} | {"seed": "nunique"}
    out = d.groupby(keys, sort=False).agg(agg).reset_index()
    return out.rename(columns={"seed": "seeds"})


def require_columns(df: pd.DataFrame, needed, what: str) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lack columns {missing}; have {list(df.columns)}")


def wide_metric_table(df, models, scales, metrics, split_col=True):
    """Rows (split, method) in config order; per metric and scale the mean over the split's maps
    and its 95% interval (``fesr.report.stats``). Returns (numbers, display): ``numbers`` has
    columns ``{name}_x{s}``, ``..._lo``, ``..._hi`` and ``maps_x{s}``; ``display`` the same cells
    as 'mean [lo, hi]' strings for the .md and .tex tables."""
    agg = mean_by(df, ["split", "method", "scale"])
    check_complete(agg, "method", models, scales, "metrics table")
    rows, shown = [], []
    for split in dict.fromkeys(agg["split"]):
        for model in models:
            head = {"split": split, "method": model} if split_col else {"method": model}
            means, extra, disp = {}, {}, dict(head)
            sub = df[(df["split"] == split) & (df["method"] == model)]
            for name, col, factor in metrics:
                for s in scales:
                    vals = sub.loc[sub["scale"] == int(s), col].to_numpy() * factor
                    mean, lo, hi, k = mean_interval(vals)
                    means[f"{name}_x{s}"] = mean
                    extra[f"{name}_x{s}_lo"], extra[f"{name}_x{s}_hi"] = lo, hi
                    extra[f"maps_x{s}"] = k
                    disp[f"{name}_x{s}"] = format_interval(mean, lo, hi)
            rows.append({**head, **means, **extra})
            shown.append(disp)
    return pd.DataFrame(rows), pd.DataFrame(shown)


def maps_note(table: pd.DataFrame, scales) -> str:
    """How many test maps each scale's cells average, per split (the caption states it)."""
    parts = []
    for split, sub in table.groupby("split", sort=False) if "split" in table else [("", table)]:
        counts = {int(s): int(sub[f"maps_x{s}"].min()) for s in scales}
        text = ", ".join(f"{s}x: {k}" for s, k in counts.items())
        parts.append(f"{split} maps per scale {text}" if split else f"maps per scale {text}")
    return "; ".join(parts)


INTERVAL_NOTE = (
    "Cells: mean over test maps [95% t interval of the mean over maps]; no interval with one map."
)


TABLE1_METRICS = [("mse_e3", "mse", 1e3), ("ssim", "ssim", 1.0)]
PAIRED_COLUMNS = [
    "split",
    "scale",
    "method",
    "mse_e3_diff",
    "mse_e3_diff_lo",
    "mse_e3_diff_hi",
    f"{REFERENCE_METHOD}_win_fraction",
    "maps",
    "resolved",
    f"seeds_{REFERENCE_METHOD}",
    "seeds_method",
    f"seed_std_{REFERENCE_METHOD}_mse_e3",
    "seed_std_method_mse_e3",
    "exceeds_seed_noise",
]


def read_lr_baselines(paths) -> pd.DataFrame:
    """The LR_BASELINES rows of fe_baselines parts, with their approach as ``method``."""
    fe = read_parts(paths, "baselines")
    require_columns(fe, ["approach", "split", "scale", "sample", "mse", "ssim"], "baselines files")
    rows = fe[fe["approach"].isin(list(LR_BASELINES))]
    if rows.empty:
        raise ValueError(
            f"baselines files hold none of the approaches {list(LR_BASELINES)}; they have "
            f"{sorted(set(fe['approach']))}"
        )
    return rows.rename(columns={"approach": "method"})


def per_map_values(df: pd.DataFrame, split, method, scale, column: str) -> pd.Series:
    sub = df[(df["split"] == split) & (df["method"] == method) & (df["scale"] == int(scale))]
    return sub.set_index("sample")[column]


def paired_comparisons(seeded, per_map, methods, scales) -> pd.DataFrame:
    """REFERENCE_METHOD against every other method on the same maps, per split and scale: the
    paired MSE difference (x1e-3, reference minus method; seeds averaged per map first) with its
    t interval, the fraction of maps the reference wins, whether the interval excludes 0, and each
    side's seed-to-seed std of the per-seed mean MSE. ``seeded``: rows per seed (``with_seeds``);
    ``per_map``: seeds averaged (``average_seeds``)."""

    def spread(split, method, scale):
        sub = seeded[
            (seeded["split"] == split)
            & (seeded["method"] == method)
            & (seeded["scale"] == int(scale))
        ]
        return seed_spread({k: g["mse"].to_numpy() * 1e3 for k, g in sub.groupby("seed")})

    rows = []
    for split in dict.fromkeys(per_map["split"]):
        for s in scales:
            ref = per_map_values(per_map, split, REFERENCE_METHOD, s, "mse") * 1e3
            ref_spread = spread(split, REFERENCE_METHOD, s)
            for m in methods:
                if m == REFERENCE_METHOD:
                    continue
                other = per_map_values(per_map, split, m, s, "mse") * 1e3
                if other.empty:
                    continue  # no rows on this split (its Table I cells show '--')
                if set(other.index) != set(ref.index):
                    raise ValueError(
                        f"{split} x{s}: '{m}' has metrics for samples {sorted(other.index)} and "
                        f"'{REFERENCE_METHOD}' for {sorted(ref.index)}; a paired comparison "
                        "needs the same maps"
                    )
                d = paired_difference(ref.to_numpy(), other.reindex(ref.index).to_numpy())
                m_spread = spread(split, m, s)
                stds = [v for v in (ref_spread.std, m_spread.std) if np.isfinite(v)]
                rows.append(
                    {
                        "split": split,
                        "scale": int(s),
                        "method": m,
                        "mse_e3_diff": d.mean,
                        "mse_e3_diff_lo": d.low,
                        "mse_e3_diff_hi": d.high,
                        f"{REFERENCE_METHOD}_win_fraction": d.win_fraction,
                        "maps": d.maps,
                        "resolved": d.resolved,
                        f"seeds_{REFERENCE_METHOD}": ref_spread.seeds,
                        "seeds_method": m_spread.seeds,
                        f"seed_std_{REFERENCE_METHOD}_mse_e3": ref_spread.std,
                        "seed_std_method_mse_e3": m_spread.std,
                        # only where a seed spread exists: a difference above twice the larger
                        # seed-to-seed std is more than training noise
                        "exceeds_seed_noise": abs(d.mean) > 2 * max(stds) if stds else pd.NA,
                    }
                )
    out = pd.DataFrame(rows, columns=PAIRED_COLUMNS)
    out["exceeds_seed_noise"] = out["exceeds_seed_noise"].astype("boolean")
    return out


def paired_display(paired: pd.DataFrame) -> pd.DataFrame:
    ref = REFERENCE_METHOD
    fmt = "{:.3g}"

    def num(v) -> str:
        return fmt.format(v) if np.isfinite(v) else "--"

    return pd.DataFrame(
        {
            "split": paired["split"],
            "scale": paired["scale"],
            "method": paired["method"],
            f"{ref} - method MSE (x1e-3)": [
                format_interval(m, lo, hi, fmt)
                for m, lo, hi in zip(
                    paired["mse_e3_diff"],
                    paired["mse_e3_diff_lo"],
                    paired["mse_e3_diff_hi"],
                    strict=True,
                )
            ],
            f"{ref} wins": [
                f"{w:.2f} of {k} maps" if k else "--"
                for w, k in zip(paired[f"{ref}_win_fraction"], paired["maps"], strict=True)
            ],
            "resolved": paired["resolved"].map({True: "yes", False: "no"}),
            f"seed std {ref} / method": [
                f"{num(a)} / {num(b)} ({na} / {nb} seeds)"
                for a, b, na, nb in zip(
                    paired[f"seed_std_{ref}_mse_e3"],
                    paired["seed_std_method_mse_e3"],
                    paired[f"seeds_{ref}"],
                    paired["seeds_method"],
                    strict=True,
                )
            ],
            "exceeds seed noise": paired["exceeds_seed_noise"]
            .map({True: "yes", False: "no"}, na_action="ignore")
            .fillna("--"),
        }
    )


def mark_resolved(table: pd.DataFrame, display: pd.DataFrame, paired: pd.DataFrame) -> None:
    """A trailing '*' on the MSE cells whose paired difference from the reference is resolved."""
    row_of = {
        (sp, m): i for i, (sp, m) in enumerate(zip(table["split"], table["method"], strict=True))
    }
    for sp, s, m in paired.loc[paired["resolved"], ["split", "scale", "method"]].itertuples(
        index=False
    ):
        i = row_of[(sp, m)]
        display.iloc[i, display.columns.get_loc(f"mse_e3_x{s}")] += " *"


def paired_part(title, seeded, per_map, methods, scales, table, display, out_prefix) -> str:
    """A table's paired comparisons with REFERENCE_METHOD (``paired_comparisons``), written to
    ``{out_prefix}_paired`` (.csv, .md, .tex); marks the resolved MSE cells of ``display`` with
    '*' and returns the sentence the table's caption gains ('' without the reference)."""
    ref = REFERENCE_METHOD
    paired_prefix = Path(out_prefix).with_name(Path(out_prefix).name + "_paired")
    if ref not in methods:
        paired, note = pd.DataFrame(columns=PAIRED_COLUMNS), ""
        caption = (
            f"{title}, paired: {ref} is not among {title}'s methods {list(methods)}, so there is "
            "no paired comparison."
        )
    else:
        paired = paired_comparisons(seeded, per_map, methods, scales)
        mark_resolved(table, display, paired)
        note = (
            f" *: the paired difference {ref} - method of the MSE on the same maps has a 95% "
            f"interval that excludes 0 (intervals, win fractions and seed spread: "
            f"{paired_prefix.name})."
        )
        caption = (
            f"{title}, paired: {ref} minus each method, MSE (x1e-3, normalised fields) on the "
            "same test maps (seeds averaged per map first): mean difference [95% t interval]; "
            f"negative = {ref} better. wins: fraction of maps with a lower {ref} MSE. resolved: "
            "the interval excludes 0. seed std: std over training seeds of the per-seed mean "
            "MSE (-- with one seed); exceeds seed noise: |difference| > 2 x the larger seed std."
        )
    write_table(paired, paired_prefix, caption, display=paired_display(paired))
    return note


def table1(a) -> None:
    metrics = read_parts(a.metrics)
    require_columns(metrics, ["method", "split", "scale", "sample", "mse", "ssim"], "metrics files")
    scales = [int(s) for s in a.scales]
    methods = list(dict.fromkeys(seed_of(m)[0] for m in a.methods))
    keep = ["method", "split", "scale", "sample", "mse", "ssim"]
    frames = [metrics[keep]]
    baselines = []
    if a.baselines:
        lr = read_lr_baselines(a.baselines)
        baselines = [n for n in LR_BASELINES if n in set(lr["method"]) and n not in methods]
        frames.append(lr[keep])
    rows = pd.concat(frames, ignore_index=True)
    seeded = with_seeds(rows)
    per_map = average_seeds(rows)
    table, display = wide_metric_table(per_map, methods + baselines, scales, TABLE1_METRICS)
    seeds = per_map.groupby("method")["seeds"].max()
    table["seeds"] = table["method"].map(seeds).astype(int)
    display.insert(display.columns.get_loc("method") + 1, "seeds", table["seeds"].to_numpy())
    ood = [s for s in scales if s > max(a.train_scales)]
    caption = (
        "Table I: mean MSE (x1e-3, normalised fields) and SSIM (data range 1) per method and scale "
        f"on each test split. Trained at scales {sorted(a.train_scales)}; scales {ood} are "
        f"out of distribution. {INTERVAL_NOTE} {maps_note(table, scales)}. seeds: training runs "
        "of the method (the model and its -seed{k} replicas) whose errors are averaged per map "
        "before the interval over maps."
    )
    if baselines:
        means = ", ".join(f"{n}: {LR_BASELINES[n]} mean" for n in baselines)
        caption += (
            " Baseline rows: one LR solve with a coefficient per coarse cell equal to a mean of "
            f"the fine cells it covers ({means}), interpolated up with Q1; fe_x1_interp is the LR "
            "field itself."
        )
        if any(n.startswith("hom_") for n in baselines):
            caption += (
                " The geometric mean is the effective conductivity of a random two-phase medium "
                "at p = 1/2 (Keller-Dykhne); the harmonic and arithmetic means are the Wiener "
                "bounds."
            )
    caption += paired_part(
        "Table I", seeded, per_map, methods + baselines, scales, table, display, a.out_prefix
    )
    write_table(table, a.out_prefix, caption, display=display)


def ablation(a, name: str, subject: str) -> None:
    df = read_parts(a.metrics)
    scales = [int(s) for s in a.scales]
    metrics = [("mse_e3", "mse", 1e3), ("ssim", "ssim", 1.0), ("mae_e3", "mae", 1e3)]
    table, display = wide_metric_table(df, a.methods, scales, metrics)
    caption = (
        f"{name} ({subject}): mean MSE (x1e-3), SSIM and MAE (x1e-3) at scales {scales}. "
        f"{INTERVAL_NOTE} {maps_note(table, scales)}."
    )
    # paired with the full model on the same maps: differences of a few percent that the
    # intervals over maps cannot resolve may still be resolved map by map
    caption += paired_part(
        name, with_seeds(df), average_seeds(df), a.methods, scales, table, display, a.out_prefix
    )
    write_table(table, a.out_prefix, caption, display=display)


def paper_inference(path) -> pd.DataFrame | None:
    """Paper-size rows of ``benchmarks/bench_inference.py --csv`` (None if no path is given)."""
    if path is None:
        return None
    if not Path(path).is_file():
        raise FileNotFoundError(f"inference benchmark file '{path}' does not exist")
    try:
        df = pd.read_csv(path)
    except Exception as err:
        raise ValueError(
            f"inference benchmark file '{path}' cannot be read as CSV: {err}"
        ) from None
    needed = {"method", "size", "field_s", "gpu_est_s", "gpu_tflops_assumed", "threads"}
    if not needed <= set(df.columns):
        raise ValueError(
            f"inference benchmark file '{path}' lacks columns {needed - set(df.columns)}"
        )
    return df[df["size"] == "paper"].set_index("method")


def table_complexity(a) -> None:
    df = read_parts(a.metrics)
    scales = [int(s) for s in a.scales]
    check_complete(df, "method", a.methods, scales, "table_complexity")
    paper = paper_inference(getattr(a, "inference_benchmark", None))
    rows = []
    for model in a.methods:
        sub = df[df["method"] == model].set_index("scale")
        row = {
            "method": model,
            "params": int(sub["params"].iloc[0]),
            "flops_per_query": sub.loc[scales[0], "flops_per_query"],
        }
        for s in scales:
            row[f"gflops_x{s}"] = sub.loc[s, "flops_full"] / 1e9
        for s in scales:
            row[f"seconds_x{s}"] = sub.loc[s, "seconds"]
        for s in scales:
            row[f"peak_mb_x{s}"] = sub.loc[s, "peak_mb"]
        if paper is not None:
            # paper-size 64x inference (a method's variants share its base method's numbers)
            base = model.split("-")[0]
            hit = paper.loc[base] if base in paper.index else None
            row["paper_cpu_s_x64"] = float(hit["field_s"]) if hit is not None else np.nan
            row["paper_gpu_est_s_x64"] = float(hit["gpu_est_s"]) if hit is not None else np.nan
        rows.append(row)
    caption = (
        "Complexity: parameters, FLOPs per query node (at the smallest scale; matmuls and "
        "convolutions, torch FlopCounterMode), GFLOPs, inference seconds and peak memory (MiB) "
        "for one full HR output per sample. GFLOPs beyond 16x are extrapolated linearly in the "
        "number of HR nodes (results/metrics/complexity.csv, column flops_counted)."
    )
    if paper is not None and len(paper):
        caption += (
            " paper_cpu_s_x64: paper-size model (config.yaml), one 2049 x 2049 field on this "
            f"project's CPU with {int(paper['threads'].iloc[0])} thread(s), encode timed and "
            "queries timed at small scales or on a node subset and extrapolated "
            "(benchmarks/bench_inference.py, docs/bench_inference.csv); "
            "paper_gpu_est_s_x64: its FLOPs / an assumed sustained "
            f"{float(paper['gpu_tflops_assumed'].iloc[0]):g} TFLOP/s on one GPU."
        )
    write_table(pd.DataFrame(rows), a.out_prefix, caption)


def lr_solve_times(specs) -> dict:
    import xarray as xr

    out = {}
    for spec in specs:
        split, _, path = spec.partition("=")
        if not Path(path).is_file():
            raise FileNotFoundError(f"LR data file '{path}' does not exist")
        with xr.open_dataset(path) as ds:
            out[split] = np.asarray(ds["solve_time"].values, dtype=np.float64)
    return out


def cost_kind(approach: str) -> str:
    if approach == "fe_direct":
        return "FE direct solve"
    if approach.startswith("hom_"):
        return "Homogenized LR solve + Q1"
    return "FE coarse solve + Q1 interp"


# u = 0 costs nothing and has relative error exactly 1 in every norm, so it dominates any
# approach whose relative error is 1 or more: such a row is never on a front.
ZERO_FIELD_ERROR = 1.0


def pareto_front(cost, error, worst: float = np.inf) -> np.ndarray:
    """True for the points no other point dominates: none is at least as good in both cost and
    error and better in one. Equal points do not dominate each other (all stay on the front);
    a point with a non-finite value, or an error of ``worst`` or more (dominated by a free
    alternative outside the table, e.g. ``ZERO_FIELD_ERROR``), is never on it and dominates
    nothing."""
    cost = np.asarray(cost, dtype=np.float64)
    error = np.asarray(error, dtype=np.float64)
    ok = np.isfinite(cost) & np.isfinite(error) & (error < worst)
    front = ok.copy()
    for i in np.flatnonzero(ok):
        no_worse = ok & (cost <= cost[i]) & (error <= error[i])
        better = (cost < cost[i]) | (error < error[i])
        front[i] = not (no_worse & better).any()
    return front


# The fronts of table_cost: column -> the error it is taken in (time is always the cost). The
# energy norm is the one the FE error theory of the elliptic problem is stated in.
FRONTS = {"pareto": "rel_l2", "pareto_energy": "rel_energy"}


def cost_table(sr: pd.DataFrame, fe: pd.DataFrame, lr_times: dict) -> pd.DataFrame:
    """Mean error and wall time per (split, scale, approach): SR methods (time = LR solve +
    inference; seed replicas averaged into their model), the direct FE solve, coarser solves and
    homogenized LR solves interpolated up. ``pareto``: on the front in (seconds, rel_l2) among
    the rows of its split and scale."""
    sr = average_seeds(sr)
    sr["seconds"] = [
        lr_times[s][k] + t for s, k, t in zip(sr["split"], sr["sample"], sr["seconds"], strict=True)
    ]
    sr["kind"] = "SR (LR solve + inference)"
    sr = sr.rename(columns={"method": "approach"})
    fe = fe.copy()
    fe["kind"] = [cost_kind(str(x)) for x in fe["approach"]]
    fe["seeds"] = 1
    cols = ["split", "scale", "kind", "approach", "rel_l2", "rel_energy", "mse", "seconds", "seeds"]
    both = pd.concat([sr[cols], fe[cols]], ignore_index=True)
    agg = both.groupby(["split", "scale", "kind", "approach"], sort=False).mean().reset_index()
    agg["mse_e3"] = agg.pop("mse") * 1e3
    agg["seeds"] = agg.pop("seeds").astype(int)
    direct = agg[agg["approach"] == "fe_direct"].set_index(["split", "scale"])["seconds"]
    agg["speedup_vs_direct"] = [
        direct.get((s, c), np.nan) / t
        for s, c, t in zip(agg["split"], agg["scale"], agg["seconds"], strict=True)
    ]
    agg = agg.sort_values(["split", "scale"], kind="stable").reset_index(drop=True)
    for column, error in FRONTS.items():
        agg[column] = False
        for _, idx in agg.groupby(["split", "scale"], sort=False).groups.items():
            agg.loc[idx, column] = pareto_front(
                agg.loc[idx, "seconds"], agg.loc[idx, error], worst=ZERO_FIELD_ERROR
            )
    return agg


COARSE_FE = re.compile(r"^fe_x(\d+)_interp$")
# The bar an approach must beat to be worth it: solving at scale 4 and interpolating up.
COST_BAR = "fe_x4_interp"


def cost_bar(sub: pd.DataFrame):
    """COST_BAR's row, or where the target scale is too small for it, the finest coarse FE solve
    + Q1 of that scale (None without any)."""
    coarse = {
        int(m[1]): i
        for i, a in zip(sub.index, sub["approach"], strict=True)
        if (m := COARSE_FE.match(a))
    }
    if not coarse:
        return None
    hit = sub.index[sub["approach"] == COST_BAR]
    return sub.loc[hit[0] if len(hit) else coarse[max(coarse)]]


def cost_answer(table: pd.DataFrame) -> str:
    """One paragraph per (split, scale), written from the numbers of ``cost_table``."""

    def item(r, direct_s) -> str:
        ratio = r["seconds"] / direct_s if np.isfinite(direct_s) else np.nan
        return (
            f"{r['approach']} ({r['seconds']:.3g} s, relative L2 {r['rel_l2']:.3g}, "
            f"{ratio:.3g}x the direct solve's time)"
        )

    paragraphs = [
        "# When is super-resolution worth it? (generated from table_cost)",
        "Per test split and target scale: the approaches on the Pareto front of mean wall time "
        "per sample against mean relative L2 error (no other approach is both faster and more "
        "accurate; an approach with a relative error of 1 or more is never on it, since u = 0 "
        "costs nothing and has error 1), the same front in the relative energy norm, the "
        "cheapest approach more accurate in L2 than solving coarser and interpolating, and times "
        "as multiples of the direct FE solve at the target resolution.",
    ]
    for (split, scale), sub in table.groupby(["split", "scale"], sort=False):
        hit = sub.loc[sub["approach"] == "fe_direct", "seconds"]
        direct_s = float(hit.iloc[0]) if len(hit) else np.nan
        front = sub[sub["pareto"]].sort_values("seconds")
        sr_front = front.loc[front["kind"].str.startswith("SR"), "approach"].tolist()
        energy = sub[sub["pareto_energy"]].sort_values("seconds")
        sr_energy = energy.loc[energy["kind"].str.startswith("SR"), "approach"].tolist()
        text = (
            f"**{split}, x{scale}** (direct solve {direct_s:.3g} s per sample). On the front: "
            + "; ".join(item(r, direct_s) for _, r in front.iterrows())
            + ". "
            + (
                f"SR methods on the front: {', '.join(sr_front)}. "
                if sr_front
                else "No SR method is on the front. "
            )
            + "In the energy norm the front is "
            + ", ".join(f"{r['approach']} ({r['rel_energy']:.3g})" for _, r in energy.iterrows())
            + (
                f", with the SR methods {', '.join(sr_energy)}. "
                if sr_energy
                else ", with no SR method on it. "
            )
        )
        bar = cost_bar(sub)
        if bar is None:
            text += "There is no coarse FE solve + Q1 to compare against at this scale."
        else:
            better = sub[(sub["rel_l2"] < bar["rel_l2"]) & (sub["approach"] != bar["approach"])]
            better = better.sort_values("seconds")
            text += f"The bar, {item(bar, direct_s)}, " + (
                f"is beaten most cheaply by {item(better.iloc[0], direct_s)}."
                if len(better)
                else "is beaten by no approach."
            )
        paragraphs.append(text)
    return "\n\n".join(paragraphs) + "\n"


def table_cost(a) -> None:
    sr = read_parts(a.metrics)
    fe = read_parts(a.baselines, "baselines")
    need = ["split", "scale", "sample", "rel_l2", "rel_energy", "mse", "seconds"]
    require_columns(sr, ["method", *need], "metrics files")
    require_columns(fe, ["approach", *need], "baselines files")
    table = cost_table(sr, fe, lr_solve_times(a.lr_data))
    answer = cost_answer(table)
    caption = (
        "Cost: mean relative L2 and energy (H1-seminorm) error against the HR FE solution, and "
        "mean wall time per sample, of each SR method (LR solve + inference; seed replicas "
        "averaged, seeds = how many), the direct FE solve at the target resolution (error 0 by "
        "definition), coarser FE solves interpolated up and homogenized LR solves (coefficient "
        "per coarse cell: geometric or harmonic mean of the fine cells) interpolated up. "
        "speedup_vs_direct = direct solve time / time. pareto: no other row of the same split and "
        "scale is at least as fast and as accurate (rel_l2) and better in one; pareto_energy: the "
        "same in rel_energy. A row with a relative error of 1 or more is on neither front (u = 0 "
        "is free and has error 1)."
    )
    answer_path = Path(a.out_prefix).with_name(Path(a.out_prefix).name + "_answer.md")
    write_table(table, a.out_prefix, caption)
    tmp = atomic_target(answer_path)
    tmp.write_text(answer)
    os.replace(tmp, answer_path)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="table", required=True)
    for name in ("table1", "table2", "table3", "table_complexity", "table_cost"):
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
        if name == "table_complexity":
            p.add_argument(
                "--inference-benchmark", help="CSV of benchmarks/bench_inference.py (optional)"
            )
        if name == "table_cost":
            p.add_argument("--baselines", nargs="+", required=True)
            p.add_argument("--lr-data", nargs="+", required=True, help="split=path/u_x1.nc")
    a = ap.parse_args(argv)
    if a.table == "table1":
        table1(a)
    elif a.table == "table2":
        ablation(a, "Table II", "positional-encoding ablation")
    elif a.table == "table3":
        ablation(a, "Table III", "single/multi-scale, with/without SCS")
    elif a.table == "table_complexity":
        table_complexity(a)
    else:
        table_cost(a)


if __name__ == "__main__":
    sys.exit(run_main("python -m fesr.report.tables", main, user_errors=USER_ERRORS))
