"""fig_cost: error against wall time per sample (log-log) from table_cost, one row of panels per
error measure and one column per target scale, with the Pareto front of each panel.

``python -m fesr.report.figures_cost fig_cost --table results/tables/table_cost.csv ...``
"""

from __future__ import annotations

import argparse
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from fesr.cli import USER_ERRORS, run_main  # noqa: E402
from fesr.report.cost_table import (  # noqa: E402
    BASELINE_KINDS,
    FROM_SR,
    NORM_NAMES,
    SR_KIND,
    ZERO_FIELD_ERROR,
    pareto_front,
)
from fesr.report.outputs import save_figure  # noqa: E402

# Marker and colour of each baseline kind (fesr.report.cost_table.BASELINE_KINDS, in order):
# FE rows grey, LOD brown, corrected SR in its model's colour with a marker of its correction.
KIND_MARKERS = dict(
    zip(
        [kind for _, kind in BASELINE_KINDS],
        [
            ("|", "black"),
            ("D", "grey"),
            ("s", "grey"),
            ("^", "dimgrey"),
            ("h", "saddlebrown"),
            ("H", "peru"),
            ("P", None),
            ("X", None),
        ],
        strict=True,
    )
)


def short_label(approach: str) -> str:
    return approach.replace("fe_", "").replace("_interp", "+interp")


def fig_cost(a):
    t = pd.read_csv(a.table)
    t = t[t["split"] == a.split]
    scales = sorted(t["scale"].unique())
    # one row of panels per error measure (relative L2, energy with A, H1), one per scale
    errors = list(a.error)
    fig, axes = plt.subplots(
        len(errors), len(scales), figsize=(4.4 * len(scales), 4.2 * len(errors)), squeeze=False
    )
    sr_names = list(dict.fromkeys(t.loc[t["kind"] == SR_KIND, "approach"]))
    palette = dict(zip(sr_names, sns.color_palette("tab20", len(sr_names)), strict=True))
    for r, err in enumerate(errors):
        for ax, s in zip(axes[r], scales, strict=True):
            sub = t[t["scale"] == s]
            for _, row in sub.iterrows():
                name, kind = row["approach"], row["kind"]
                if name == "fe_direct":
                    ax.axvline(
                        row["seconds"],
                        color="black",
                        ls="--",
                        lw=1.2,
                        label="direct FE solve (error 0)",
                    )
                elif kind == SR_KIND:
                    ax.loglog(row["seconds"], row[err], "o", color=palette[name], ms=6, label=name)
                elif fix := FROM_SR.fullmatch(name):
                    marker, _ = KIND_MARKERS[kind]
                    colour = palette.get(fix["model"], "grey")
                    ax.loglog(row["seconds"], row[err], marker, color=colour, ms=7)
                    ax.annotate(
                        "+" + fix["fix"],
                        (row["seconds"], row[err]),
                        fontsize=6,
                        xytext=(3, -7),
                        textcoords="offset points",
                    )
                else:
                    marker, colour = KIND_MARKERS[kind]
                    ax.loglog(row["seconds"], row[err], marker, color=colour, ms=7)
                    ax.annotate(
                        short_label(name),
                        (row["seconds"], row[err]),
                        fontsize=7,
                        xytext=(3, 3),
                        textcoords="offset points",
                    )
            # the front in this panel's error; the direct solve (error 0, off the log axis) ends it
            front = sub[pareto_front(sub["seconds"], sub[err], ZERO_FIELD_ERROR)].sort_values(
                "seconds"
            )
            shown = front[front[err] > 0]
            if len(shown):
                xs, ys = list(shown["seconds"]), list(shown[err])
                end = front.loc[front[err] <= 0, "seconds"]
                if len(end) and end.min() > xs[-1]:
                    xs, ys = xs + [end.min()], ys + [ys[-1]]
                ax.step(xs, ys, where="post", color="black", lw=0.8, alpha=0.6)
                ax.scatter(
                    shown["seconds"],
                    shown[err],
                    s=150,
                    facecolors="none",
                    edgecolors="black",
                    linewidths=1.2,
                    zorder=3,
                    label="Pareto front",
                )
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("wall time per sample, one core [s]")
            ax.set_ylabel(f"{NORM_NAMES.get(err, err)} error")
            ax.set_title(f"target x{s} (n = {32 * int(s)})")
    handles, labels = [], []
    for ax in axes[0]:
        h, lab = ax.get_legend_handles_labels()
        handles, labels = handles + h, labels + lab
    uniq = dict(zip(labels, handles, strict=True))
    present = set(t["kind"])
    for kind, (marker, colour) in KIND_MARKERS.items():
        if kind in present and kind != "FE direct solve":
            uniq[kind] = plt.Line2D([], [], marker=marker, color=colour or "grey", ls="")
    fig.legend(
        uniq.values(),
        uniq.keys(),
        loc="lower center",
        ncol=min(6, len(uniq)),
        fontsize=7,
        bbox_to_anchor=(0.5, -0.12),
    )
    fig.subplots_adjust(hspace=0.35)  # each row's titles clear of the x labels above
    fig.suptitle(f"Error against wall time ({a.split}): when does SR beat solving?")
    return fig


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="figure", required=True)
    p = sub.add_parser("fig_cost")
    p.add_argument("--table", required=True)
    p.add_argument("--split", default="test_random")
    p.add_argument(
        "--error",
        nargs="+",
        default=["rel_l2", "rel_energy", "rel_h1"],
        choices=["rel_l2", "rel_energy", "rel_h1", "mse_e3"],
        help="one row of panels per error measure",
    )
    p.add_argument("--out-prefix", required=True)
    a = ap.parse_args(argv)
    sns.set_theme(style="ticks", context="paper")
    save_figure(fig_cost(a), a.out_prefix)


if __name__ == "__main__":
    np.seterr(divide="ignore")
    sys.exit(run_main("python -m fesr.report.figures_cost", main, user_errors=USER_ERRORS))
