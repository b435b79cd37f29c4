"""table_physics: what the physics-aware training variants change, in every norm, with intervals.

A variant is a Table I model whose name carries a training token of ``fesr.model_names``
(``energy``/``h1``: the element-gradient loss; ``hom``: the geometric-mean homogenized LR
input); its base is the same name without those tokens (``nhcsr-energy`` -> ``nhcsr``,
``fesr.model_names.training_variant_base``). Per split,
scale and norm (relative L2, energy norm with the coefficient, H1 seminorm) and per variant:
the mean error of variant and base over the maps (seed replicas averaged per map first), the
paired difference variant minus base on the same maps with its 95% t interval, the fraction of
maps the variant wins, the seed-to-seed std of each side's mean, and the variant against the LR
field it starts from (``fe_x1_interp``, the arithmetic-mean LR solve Q1-interpolated) the same
way. A variant whose base is not in Table I is left out; with no variant the table is empty and
its caption says so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fesr.model_names import training_variant_base
from fesr.report.accuracy_tables import (
    paired_on_same_maps,
    per_map_values,
    read_lr_baselines,
    seed_spread_at,
)
from fesr.report.captions import caption
from fesr.report.cost_table import NORM_NAMES
from fesr.report.outputs import write_table
from fesr.report.stats import format_interval
from fesr.report.tidy import average_seeds, read_parts, require_columns, with_seeds

LR_FIELD = "fe_x1_interp"
NORMS = tuple(NORM_NAMES)  # rel_l2, rel_energy, rel_h1
COLUMNS = [
    "split",
    "scale",
    "norm",
    "variant",
    "base",
    "variant_mean",
    "base_mean",
    "diff",
    "diff_lo",
    "diff_hi",
    "variant_win_fraction",
    "maps",
    "resolved",
    "seeds_variant",
    "seeds_base",
    "seed_std_variant",
    "seed_std_base",
    "lr_field_mean",
    "diff_lr_field",
    "diff_lr_field_lo",
    "diff_lr_field_hi",
    "resolved_lr_field",
]


def variant_pairs(methods) -> list[tuple[str, str]]:
    """(variant, base) for every variant of ``methods`` whose base is also among them."""
    methods = list(methods)
    return [(m, b) for m in methods if (b := training_variant_base(m)) is not None and b in methods]


def physics_rows(metrics: pd.DataFrame, lr_field: pd.DataFrame, methods, scales) -> pd.DataFrame:
    """The table's rows (``COLUMNS``) from the tidy per-sample metrics of Table I's models (seed
    replicas by name) and the LR-field baseline rows (``method`` = ``fe_x1_interp``)."""
    pairs = variant_pairs(methods)
    seeded = with_seeds(metrics)
    per_map = average_seeds(metrics)
    rows = []
    for split in dict.fromkeys(per_map["split"]):
        for s in scales:
            for norm in NORMS:
                lr = per_map_values(lr_field, split, LR_FIELD, s, norm)
                for variant, base in pairs:
                    v = per_map_values(per_map, split, variant, s, norm)
                    b = per_map_values(per_map, split, base, s, norm)
                    if v.empty or b.empty:
                        continue
                    what = f"{split} x{s} {norm}"
                    d = paired_on_same_maps(v, b, f"{what}: '{variant}' against '{base}'")
                    vs, bs = (seed_spread_at(seeded, split, m, s, norm) for m in (variant, base))
                    lr_d = (
                        paired_on_same_maps(v, lr, f"{what}: '{variant}' against {LR_FIELD}")
                        if len(lr)
                        else None
                    )
                    rows.append(
                        {
                            "split": split,
                            "scale": int(s),
                            "norm": norm,
                            "variant": variant,
                            "base": base,
                            "variant_mean": float(v.mean()),
                            "base_mean": float(b.mean()),
                            "diff": d.mean,
                            "diff_lo": d.low,
                            "diff_hi": d.high,
                            "variant_win_fraction": d.win_fraction,
                            "maps": d.maps,
                            "resolved": d.resolved,
                            "seeds_variant": vs.seeds,
                            "seeds_base": bs.seeds,
                            "seed_std_variant": vs.std,
                            "seed_std_base": bs.std,
                            "lr_field_mean": float(lr.mean()) if len(lr) else np.nan,
                            "diff_lr_field": lr_d.mean if lr_d else np.nan,
                            "diff_lr_field_lo": lr_d.low if lr_d else np.nan,
                            "diff_lr_field_hi": lr_d.high if lr_d else np.nan,
                            "resolved_lr_field": lr_d.resolved if lr_d else False,
                        }
                    )
    return pd.DataFrame(rows, columns=COLUMNS)


def physics_display(t: pd.DataFrame) -> pd.DataFrame:
    fmt = "{:.3g}"

    def num(v) -> str:
        return fmt.format(v) if np.isfinite(v) else "--"

    def yes(v) -> str:
        return "yes" if v else "no"

    return pd.DataFrame(
        {
            "split": t["split"],
            "scale": t["scale"],
            "norm": t["norm"],
            "variant": t["variant"],
            "base": t["base"],
            "variant mean": [num(v) for v in t["variant_mean"]],
            "base mean": [num(v) for v in t["base_mean"]],
            "variant - base": [
                format_interval(m, lo, hi, fmt)
                for m, lo, hi in zip(t["diff"], t["diff_lo"], t["diff_hi"], strict=True)
            ],
            "variant wins": [
                f"{w:.2f} of {k} maps" if k else "--"
                for w, k in zip(t["variant_win_fraction"], t["maps"], strict=True)
            ],
            "resolved": [yes(v) for v in t["resolved"]],
            "seed std variant / base": [
                f"{num(a)} / {num(b)} ({na} / {nb} seeds)"
                for a, b, na, nb in zip(
                    t["seed_std_variant"],
                    t["seed_std_base"],
                    t["seeds_variant"],
                    t["seeds_base"],
                    strict=True,
                )
            ],
            "LR field mean": [num(v) for v in t["lr_field_mean"]],
            "variant - LR field": [
                format_interval(m, lo, hi, fmt)
                for m, lo, hi in zip(
                    t["diff_lr_field"], t["diff_lr_field_lo"], t["diff_lr_field_hi"], strict=True
                )
            ],
            "resolved vs LR field": [yes(v) for v in t["resolved_lr_field"]],
        }
    )


def table_physics(metric_files, baseline_files, methods, scales, out_prefix) -> None:
    """Reads the metric and baselines parts, writes ``out_prefix``.csv/.md/.tex."""
    metrics = read_parts(metric_files)
    keep = ["split", "method", "scale", "sample", *NORMS]
    require_columns(metrics, keep, "metrics files")
    lr = read_lr_baselines(baseline_files)
    require_columns(lr, keep, "baselines files")
    table = physics_rows(metrics[keep], lr[keep], methods, scales)
    text = caption("table_physics")
    pairs = variant_pairs(methods)
    if pairs:
        text += " Variants here: " + ", ".join(f"{v} (base {b})" for v, b in pairs) + "."
    else:
        text += (
            f" This run's Table I methods {list(methods)} hold no physics-aware variant, so the "
            "table is empty."
        )
    write_table(table, out_prefix, text, display=physics_display(table))
