"""The cost table: mean error and wall time per (split, scale, approach), its Pareto fronts, and
the written answer to "when is super-resolution worth it?".

Rows: every SR method (time = the LR solve of the same sample + inference; seed replicas averaged
into their model), and every approach of the fe_baselines parts (the direct FE solve, coarser
solves and homogenized LR solves interpolated up with Q1, PG-LOD, the FE solver stopped early,
SR corrected by CG or smoothing), each of the kind ``BASELINE_KINDS`` gives it. A new kind of
baseline row is one entry there; a new error column is one entry of ``ERROR_COLUMNS`` (and of
``FRONTS`` if it gets a front).

Errors: relative L2 of the nodal values, the energy norm with the coefficient
sqrt(int A |grad e|^2) (``rel_energy``, the norm the FE error theory of the elliptic problem is
stated in), and the H1 seminorm (``rel_h1``), each relative to the HR FE solution.

Times: ``seconds`` per sample, split into ``setup_seconds`` (once per coefficient map: a direct
solve's projection, assembly and AMG set-up; LOD's correctors; none for SR, whose training is
amortised over maps) and ``solve_seconds`` (per right-hand side: the Krylov solve; LOD's coarse
solve and reconstruction; SR's LR solve and inference). ``cores``: the cores the time was taken
on, and ``core_seconds`` = seconds x cores.

Where they come from. With a timing file (``fesr.evaluate.timing``: the ``cost_timing`` job,
which runs alone with every core reserved and measures on one core, one MPI rank, the median
over the first ``evaluation.timing_maps`` maps of the figure split), a row's ``seconds``,
``setup_seconds``, ``solve_seconds`` and ``cores`` (1) are its (scale, approach) timing row, and
``timed_alone`` is True. The timing split's times stand for every split: the mesh sizes and the
methods are the same, only the maps differ; the errors stay per split. The pipeline's own
measurement is kept as ``pipeline_seconds`` and ``pipeline_cores``: wall times of jobs that share
the machine's cores with other jobs, a data solve decomposed over its MPI ranks (n >=
``mpi.decompose_min_n``) counted at those ranks, so the direct solve's row shows it at its
configured ranks too. A row without a timing row keeps the pipeline's times
(``timed_alone`` False).

A front is taken per split and scale with time as the cost (``FRONTS``: one per error). u = 0
costs nothing and has relative error exactly 1 in every norm, so a row with an error of 1 or more
is on no front.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from fesr.evaluate.io import atomic_target
from fesr.report.captions import caption
from fesr.report.outputs import write_table
from fesr.report.tidy import average_seeds, read_parts, require_columns


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


# The kind of every row: SR methods (from the metric parts) and, by approach name, each baseline of
# the fe_baselines parts. The first pattern that matches the whole name wins.
SR_KIND = "SR (LR solve + inference)"
HOMOGENIZED_KIND = "Homogenized LR solve + Q1"
LOD_KIND = "PG-LOD"
BASELINE_KINDS = (
    (re.compile(r"fe_direct"), "FE direct solve"),
    (re.compile(r"hom_\w+"), HOMOGENIZED_KIND),
    (re.compile(r"fe_x\d+_interp"), "FE coarse solve + Q1 interp"),
    (re.compile(r"fe_x\d+_it\d+"), "FE CG stopped after k iterations"),
    (re.compile(r"lod_k\d+(_h\d+)?"), LOD_KIND),
    (re.compile(r"lod_coarse"), "LOD coarse part u_H + Q1"),
    (re.compile(r".+\+cg\d+"), "SR + k CG iterations"),
    (re.compile(r".+\+smooth\d+"), "SR + smoothing sweeps"),
)
# Approaches that start from an SR prediction ({model}+{fix}, fesr.evaluate.computed_plan): their
# time includes the LR solve, like SR's.
FROM_SR = re.compile(r"(?P<model>.+)\+(?P<fix>(?:cg|smooth)\d+)")
# Columns averaged per row: the errors against the HR FE solution, then the times.
ERROR_COLUMNS = ("rel_l2", "rel_energy", "rel_h1", "mse")
TIME_COLUMNS = ("seconds", "setup_seconds", "solve_seconds", "cores")
MEAN_COLUMNS = (*ERROR_COLUMNS, *TIME_COLUMNS)
# u = 0 costs nothing and has relative error exactly 1 in every norm, so it dominates any
# approach whose relative error is 1 or more: such a row is never on a front.
ZERO_FIELD_ERROR = 1.0
# The fronts: column -> the error it is taken in (time is always the cost).
FRONTS = {"pareto": "rel_l2", "pareto_energy": "rel_energy", "pareto_h1": "rel_h1"}
NORM_NAMES = {
    "rel_l2": "relative L2",
    "rel_energy": "relative energy norm with A",
    "rel_h1": "relative H1 seminorm",
}


def cost_kind(approach: str) -> str:
    """The kind of a baseline row (``BASELINE_KINDS``)."""
    for pattern, kind in BASELINE_KINDS:
        if pattern.fullmatch(approach):
            return kind
    raise ValueError(
        f"baselines approach '{approach}' has no kind; expected a name matching one of "
        f"{[p.pattern for p, _ in BASELINE_KINDS]} (fesr.report.cost_table.BASELINE_KINDS)"
    )


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


def apply_timing(agg: pd.DataFrame, timing: pd.DataFrame | None) -> pd.DataFrame:
    """The pipeline's times as ``pipeline_seconds``/``pipeline_cores``, and ``TIME_COLUMNS`` from
    the timing rows where a (scale, approach) has one (``timed_alone``); a timing row of the same
    split wins over one of another split."""
    agg = agg.copy()
    agg["pipeline_seconds"], agg["pipeline_cores"] = agg["seconds"], agg["cores"]
    agg["timed_alone"] = False
    if timing is None or timing.empty:
        return agg
    own = {(str(r.split), int(r.scale), str(r.approach)): r for r in timing.itertuples()}
    other = {}
    for r in timing.itertuples():
        other.setdefault((int(r.scale), str(r.approach)), r)
    for i, (split, scale, approach) in enumerate(
        zip(agg["split"], agg["scale"], agg["approach"], strict=True)
    ):
        key = (int(scale), str(approach))
        hit = own.get((str(split), *key), other.get(key))
        if hit is None:
            continue
        idx = agg.index[i]
        for column in TIME_COLUMNS:
            agg.loc[idx, column] = getattr(hit, column)
        agg.loc[idx, "timed_alone"] = True
    return agg


def cost_table(
    sr: pd.DataFrame, fe: pd.DataFrame, lr_times: dict, timing: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Mean error and wall time per (split, scale, approach): SR methods (time = LR solve +
    inference; seed replicas averaged into their model), the direct FE solve, coarser solves and
    homogenized LR solves interpolated up. ``timing``: rows of ``fesr.evaluate.timing`` whose
    times replace the pipeline's (``apply_timing``). ``pareto``: on the front in (seconds,
    rel_l2) among the rows of its split and scale."""
    sr = average_seeds(sr)
    lr = [lr_times[s][k] for s, k in zip(sr["split"], sr["sample"], strict=True)]
    sr["seconds"] = sr["seconds"] + lr
    sr["setup_seconds"], sr["solve_seconds"], sr["cores"] = 0.0, sr["seconds"], 1
    sr["kind"] = SR_KIND
    sr = sr.rename(columns={"method": "approach"})
    fe = fe.copy()
    fe["kind"] = [cost_kind(str(x)) for x in fe["approach"]]
    fe["seeds"] = 1
    from_sr = fe["approach"].astype(str).str.fullmatch(FROM_SR.pattern)
    if from_sr.any():
        lr = [
            lr_times[s][k]
            for s, k in zip(fe.loc[from_sr, "split"], fe.loc[from_sr, "sample"], strict=True)
        ]
        fe.loc[from_sr, "seconds"] += lr
        fe.loc[from_sr, "solve_seconds"] += lr
    cols = ["split", "scale", "kind", "approach", *MEAN_COLUMNS, "seeds"]
    both = pd.concat([sr[cols], fe[cols]], ignore_index=True)
    keys = ["split", "scale", "kind", "approach"]
    # skipna=False: a non-finite sample makes its row's mean NaN (no score, on no front), and
    # ``nonfinite`` counts such samples
    grouped = both.groupby(keys, sort=False)
    agg = grouped.agg(lambda v: v.mean(skipna=False)).reset_index()
    agg["nonfinite"] = grouped["rel_l2"].agg(lambda v: int((~np.isfinite(v)).sum())).to_numpy()
    agg["mse_e3"] = agg.pop("mse") * 1e3
    agg["seeds"] = agg.pop("seeds").astype(int)
    agg["cores"] = agg["cores"].round().astype(int)
    agg = apply_timing(agg, timing)
    agg["cores"] = agg["cores"].astype(int)
    agg["core_seconds"] = agg["seconds"] * agg["cores"]
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


def break_even(a: pd.Series, b: pd.Series) -> float:
    """How many right-hand sides per map until approach ``a`` costs less than ``b``: a pays more
    set-up and less per solve (inf where it never does, 1 where it is cheaper from the first)."""
    extra = a["setup_seconds"] - b["setup_seconds"]
    saved = b["solve_seconds"] - a["solve_seconds"]
    if not (np.isfinite(extra) and np.isfinite(saved)):
        return np.nan
    if extra <= 0 and saved >= 0:
        return 1.0
    if saved <= 0:
        return np.inf
    return float(max(1.0, np.ceil(extra / saved)))


def lod_break_even(sub: pd.DataFrame) -> list[str]:
    """Sentences: after how many right-hand sides each LOD row pays off against the direct solve
    at the target scale and against the cheapest FE solve (direct or coarser + Q1) as accurate
    in the energy norm to within 2%."""
    rows = sub.set_index("approach")
    fe = rows[rows.index.str.fullmatch(r"fe_direct|fe_x\d+_interp")]
    out = []
    for name, r in rows[rows["kind"] == LOD_KIND].iterrows():
        as_good = fe[fe["rel_energy"] <= 1.02 * r["rel_energy"]].sort_values("seconds")
        others = dict.fromkeys(["fe_direct", *as_good.index[:1]])
        parts = []
        for other in others:
            if other not in rows.index:
                continue
            n = break_even(r, rows.loc[other])
            if np.isfinite(n):
                parts.append(f"{other} after {n:.0f} right-hand sides")
            elif n == np.inf:
                parts.append(f"{other} never (its per-solve time is not lower)")
        if parts:
            out.append(
                f"{name} (set-up {r['setup_seconds']:.3g} s, {r['solve_seconds'] * 1e3:.3g} ms "
                f"per solve) breaks even with " + ", ".join(parts) + "."
            )
    return out


def cost_answer(table: pd.DataFrame) -> str:
    """One paragraph per (split, scale), written from the numbers of ``cost_table``."""

    def item(r, direct_s, error="rel_l2") -> str:
        ratio = r["seconds"] / direct_s if np.isfinite(direct_s) else np.nan
        return (
            f"{r['approach']} ({r['seconds']:.3g} s, {NORM_NAMES[error]} {r[error]:.3g}, "
            f"{ratio:.3g}x the direct solve's time)"
        )

    paragraphs = [
        "# When is super-resolution worth it? (generated from table_cost)",
        "Per test split and target scale: the approaches on the Pareto front of mean wall time "
        "per sample against mean error, in each of three norms: relative L2 of the nodal values, "
        "the energy norm with the coefficient, sqrt(int A |grad e|^2), and the H1 seminorm (no "
        "other approach is both faster and more accurate; an approach with a relative error of "
        "1 or more is never on a front, since u = 0 costs nothing and has error 1); the "
        "cheapest approach more accurate in L2 than solving coarser and interpolating; where "
        "PG-LOD's per-map set-up pays off over many right-hand sides; and times as multiples of "
        "the direct FE solve at the target resolution.",
    ]
    for (split, scale), sub in table.groupby(["split", "scale"], sort=False):
        hit = sub.loc[sub["approach"] == "fe_direct", "seconds"]
        direct_s = float(hit.iloc[0]) if len(hit) else np.nan
        front = sub[sub["pareto"]].sort_values("seconds")
        sr_front = front.loc[front["kind"] == SR_KIND, "approach"].tolist()
        text = (
            f"**{split}, x{scale}** (direct solve {direct_s:.3g} s per sample). On the L2 front: "
            + "; ".join(item(r, direct_s) for _, r in front.iterrows())
            + ". "
            + (
                f"SR methods on the L2 front: {', '.join(sr_front)}. "
                if sr_front
                else "No SR method is on the L2 front. "
            )
        )
        for column, error in FRONTS.items():
            if error == "rel_l2":
                continue
            other = sub[sub[column]].sort_values("seconds")
            on = other.loc[other["kind"] == SR_KIND, "approach"].tolist()
            text += (
                f"In the {NORM_NAMES[error]} the front is "
                + ", ".join(f"{r['approach']} ({r[error]:.3g})" for _, r in other.iterrows())
                + (
                    f", with the SR methods {', '.join(on)}. "
                    if on
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
        lod = lod_break_even(sub)
        if lod:
            text += " " + " ".join(lod)
        paragraphs.append(text)
    return "\n\n".join(paragraphs) + "\n"


def table_cost(metric_files, baseline_files, lr_data, out_prefix, timing_files=()) -> None:
    """``{out_prefix}``.csv/.md/.tex (``cost_table``) and ``{out_prefix}_answer.md``
    (``cost_answer``). ``lr_data``: ``split=path/u_x1.nc`` per split, for the LR solve times;
    ``timing_files``: CSVs of ``fesr.evaluate.timing`` (none: the pipeline's times)."""
    sr = read_parts(metric_files)
    fe = read_parts(baseline_files, "baselines")
    need = ["split", "scale", "sample", *ERROR_COLUMNS, "seconds"]
    require_columns(sr, ["method", *need], "metrics files")
    require_columns(fe, ["approach", *need, *TIME_COLUMNS], "baselines files")
    timing = None
    if timing_files:
        timing = read_parts(timing_files, "timing")
        require_columns(timing, ["approach", "split", "scale", *TIME_COLUMNS], "timing files")
    table = cost_table(sr, fe, lr_solve_times(lr_data), timing)
    answer = cost_answer(table)
    answer_path = Path(out_prefix).with_name(Path(out_prefix).name + "_answer.md")
    write_table(table, out_prefix, caption("table_cost"))
    tmp = atomic_target(answer_path)
    tmp.write_text(answer)
    os.replace(tmp, answer_path)
