"""Tables I-III: mean error per method and scale with its 95% interval over test maps, and the
paired comparison of every row with NH-CSR on the same maps.

Values are means over the samples of a split; MSE and MAE are on the normalised scale and shown
in units of 1e-3. Seed replicas are folded into their model first (``fesr.report.tidy``). Each
table also writes ``{out_prefix}_paired`` (.csv/.md/.tex): NH-CSR minus each other row, MSE on
the same maps (seeds averaged per map first), with the t interval of the mean difference, the
fraction of maps NH-CSR wins, and each side's seed-to-seed std; the resolved MSE cells of the
table are marked with '*'. Table I also holds the LR-solve baseline rows of the fe_baselines parts.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from fesr.evaluate.plan import HOMOGENIZED_MEANS, homogenized_approach
from fesr.model_names import replica_of
from fesr.report.captions import caption
from fesr.report.outputs import write_table
from fesr.report.stats import format_interval, mean_interval, paired_difference, seed_spread
from fesr.report.tidy import (
    average_seeds,
    check_complete,
    mean_by,
    read_parts,
    require_columns,
    with_seeds,
)

# The paired comparisons are this method against every other row.
REFERENCE_METHOD = "nhcsr"
# Table I's baseline rows (approaches of the fe_baselines parts), each with what it is: one LR
# solve with a coefficient per coarse cell (this mean of the fine cells it covers), interpolated
# up with Q1 (the arithmetic mean is the LR field itself, whose row is fe_x1_interp); PG-LOD from
# the same coarse unknowns and the coefficient; CG on the HR mesh stopped early, whose rows
# fe_x{alpha}_it{k} are shown as fe_it{k} in every scale's column.
LR_BASELINES = {
    "fe_x1_interp": "arithmetic mean",
    **{homogenized_approach(mean): f"{mean} mean" for mean in HOMOGENIZED_MEANS},
}
PATTERN_BASELINES = (
    (re.compile(r"lod_k(\d+)(?:_h(\d+))?"), "PG-LOD, patches of k = {0} layers"),
    (re.compile(r"lod_coarse"), "LOD coarse part u_H + Q1"),
    (re.compile(r"fe_it(\d+)"), "CG on the HR mesh stopped after k = {0} iterations"),
)
EARLY_STOPPED = re.compile(r"fe_x(\d+)_it(\d+)")


def baseline_description(name: str) -> str | None:
    """What a Table I baseline row is, or None for an approach Table I does not show."""
    if name in LR_BASELINES:
        return LR_BASELINES[name]
    for pattern, text in PATTERN_BASELINES:
        if m := pattern.fullmatch(name):
            return text.format(*m.groups())
    return None


def table1_name(approach: str, scale: int) -> str:
    """The Table I row of a baselines approach at ``scale`` (fe_x{scale}_it{k} -> fe_it{k})."""
    m = EARLY_STOPPED.fullmatch(approach)
    return f"fe_it{m[2]}" if m and int(m[1]) == int(scale) else approach


# (column name, metrics column, factor) of each table's cells
TABLE1_METRICS = [("mse_e3", "mse", 1e3), ("ssim", "ssim", 1.0)]
ABLATION_METRICS = [("mse_e3", "mse", 1e3), ("ssim", "ssim", 1.0), ("mae_e3", "mae", 1e3)]


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
                    # a non-finite sample (a NaN prediction) leaves the cell without a score:
                    # averaging only the finite maps would rank a broken model by its good maps
                    bad = int((~np.isfinite(vals)).sum())
                    if bad:
                        mean = lo = hi = np.nan
                    means[f"{name}_x{s}"] = mean
                    extra[f"{name}_x{s}_lo"], extra[f"{name}_x{s}_hi"] = lo, hi
                    extra[f"maps_x{s}"] = k
                    extra[f"nonfinite_x{s}"] = bad
                    disp[f"{name}_x{s}"] = (
                        f"-- ({bad} of {len(vals)} non-finite)"
                        if bad
                        else format_interval(mean, lo, hi)
                    )
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
    fe = fe.assign(
        approach=[table1_name(a, s) for a, s in zip(fe["approach"], fe["scale"], strict=True)]
    )
    rows = fe[[baseline_description(a) is not None for a in fe["approach"]]]
    if rows.empty:
        raise ValueError(
            f"baselines files hold none of the approaches {list(LR_BASELINES)}; they have "
            f"{sorted(set(fe['approach']))}"
        )
    return rows.rename(columns={"approach": "method"})


def per_map_values(df: pd.DataFrame, split, method, scale, column: str) -> pd.Series:
    sub = df[(df["split"] == split) & (df["method"] == method) & (df["scale"] == int(scale))]
    return sub.set_index("sample")[column]


def seed_spread_at(seeded, split, method, scale, column: str, factor: float = 1.0):
    """``seed_spread`` of ``method``'s per-map ``column`` (times ``factor``) at one split and
    scale; ``seeded``: rows per seed (``with_seeds``)."""
    sub = seeded[
        (seeded["split"] == split) & (seeded["method"] == method) & (seeded["scale"] == int(scale))
    ]
    return seed_spread({k: g[column].to_numpy() * factor for k, g in sub.groupby("seed")})


def paired_on_same_maps(a: pd.Series, b: pd.Series, what: str):
    """``paired_difference`` of ``a - b``, two per-map series indexed by sample; refused, naming
    ``what``, unless both cover the same maps."""
    if set(a.index) != set(b.index):
        raise ValueError(
            f"{what}: metrics for samples {sorted(a.index)} against {sorted(b.index)}; a paired "
            "comparison needs the same maps"
        )
    return paired_difference(a.to_numpy(), b.reindex(a.index).to_numpy())


def paired_comparisons(seeded, per_map, methods, scales) -> pd.DataFrame:
    """REFERENCE_METHOD against every other method on the same maps, per split and scale: the
    paired MSE difference (x1e-3, reference minus method; seeds averaged per map first) with its
    t interval, the fraction of maps the reference wins, whether the interval excludes 0, and each
    side's seed-to-seed std of the per-seed mean MSE. ``seeded``: rows per seed (``with_seeds``);
    ``per_map``: seeds averaged (``average_seeds``)."""

    def spread(split, method, scale):
        return seed_spread_at(seeded, split, method, scale, "mse", 1e3)

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
                d = paired_on_same_maps(
                    ref, other, f"{split} x{s}: '{REFERENCE_METHOD}' against '{m}'"
                )
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


def paired_part(title, seeded, per_map, methods, scales, table, display, out_prefix) -> None:
    """A table's paired comparisons with REFERENCE_METHOD (``paired_comparisons``), written to
    ``{out_prefix}_paired`` (.csv, .md, .tex); marks the resolved MSE cells of ``display`` with
    '*' (the table's caption says what the mark means)."""
    ref = REFERENCE_METHOD
    paired_prefix = Path(out_prefix).with_name(Path(out_prefix).name + "_paired")
    if ref not in methods:
        paired = pd.DataFrame(columns=PAIRED_COLUMNS)
        caption = (
            f"{title}, paired: {ref} is not among {title}'s methods {list(methods)}, so there is "
            "no paired comparison."
        )
    else:
        paired = paired_comparisons(seeded, per_map, methods, scales)
        mark_resolved(table, display, paired)
        caption = (
            f"{title}, paired: {ref} minus each method, MSE (x1e-3, normalised fields) on the "
            "same test maps (seeds averaged per map first): mean difference [95% t interval]; "
            f"negative = {ref} better. wins: fraction of maps with a lower {ref} MSE. resolved: "
            "the interval excludes 0. seed std: std over training seeds of the per-seed mean "
            "MSE (-- with one seed); exceeds seed noise: |difference| > 2 x the larger seed std."
        )
    write_table(paired, paired_prefix, caption, display=paired_display(paired))


def table1(metric_files, methods, scales, train_scales, out_prefix, baseline_files=None) -> None:
    """Table I of ``methods`` (seed replicas folded in) and the LR-solve baselines found in
    ``baseline_files`` at ``scales``, with its paired table."""
    metrics = read_parts(metric_files)
    keep = ["method", "split", "scale", "sample", "mse", "ssim"]
    require_columns(metrics, keep, "metrics files")
    scales = [int(s) for s in scales]
    methods = list(dict.fromkeys(replica_of(m)[0] for m in methods))
    frames = [metrics[keep]]
    baselines = []
    if baseline_files:
        lr = read_lr_baselines(baseline_files)
        present = list(dict.fromkeys(lr["method"]))
        order = [n for n in LR_BASELINES if n in present] + sorted(
            n for n in present if n not in LR_BASELINES
        )
        baselines = [n for n in order if n not in methods]
        frames.append(lr[keep])
    rows = pd.concat(frames, ignore_index=True)
    seeded = with_seeds(rows)
    per_map = average_seeds(rows)
    table, display = wide_metric_table(per_map, methods + baselines, scales, TABLE1_METRICS)
    seeds = per_map.groupby("method")["seeds"].max()
    table["seeds"] = table["method"].map(seeds).astype(int)
    display.insert(display.columns.get_loc("method") + 1, "seeds", table["seeds"].to_numpy())
    paired_part("Table I", seeded, per_map, methods + baselines, scales, table, display, out_prefix)
    caption_text = table1_caption(table, scales, train_scales, baselines)
    write_table(table, out_prefix, caption_text, display=display)


def table1_caption(table, scales, train_scales, baselines) -> str:
    """``caption("table1")`` and what this run's data decide: the training scales, the
    out-of-distribution scales, the maps per scale and the baseline rows present."""
    ood = [s for s in scales if s > max(train_scales)]
    facts = (
        f"Trained at scales {sorted(train_scales)}, so scales {ood} are out of distribution; "
        f"{maps_note(table, scales)}."
    )
    if baselines:
        facts += " Baseline rows: " + ", ".join(
            f"{n} ({baseline_description(n)})" for n in baselines
        )
        facts += "."
    return f"{caption('table1')} {facts}"


# name -> title of the ablation tables (what each ablates: its caption)
ABLATIONS = {"table2": "Table II", "table3": "Table III"}


def ablation(name: str, metric_files, methods, scales, out_prefix) -> None:
    """Table II or III (``name``): MSE, SSIM and MAE of ``methods`` at ``scales``, each variant
    paired with the full model on the same maps (differences of a few percent that the intervals
    over maps cannot resolve may still be resolved map by map)."""
    title = ABLATIONS[name]
    df = read_parts(metric_files)
    scales = [int(s) for s in scales]
    table, display = wide_metric_table(df, methods, scales, ABLATION_METRICS)
    paired_part(
        title, with_seeds(df), average_seeds(df), methods, scales, table, display, out_prefix
    )
    facts = f"Scales {scales}; {maps_note(table, scales)}."
    write_table(table, out_prefix, f"{caption(name)} {facts}", display=display)
