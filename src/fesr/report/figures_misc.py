"""fig3 (coefficient examples), fig9 (validation loss with and without SCS), fig_training (every
learned model's validation curve, Fig. 9-style) and fig_cost (Pareto plot of error against wall
time, from table_cost).

``python -m fesr.report.figures_misc fig3 --E 128 --contrast 1 100 --seed 0 --out-prefix ...``
``python -m fesr.report.figures_misc fig9 --histories a/history.csv b/history.csv --labels a b ...``
``python -m fesr.report.figures_misc fig_training --histories ... --labels ...``
``python -m fesr.report.figures_misc fig_cost --table results/tables/table_cost.csv ...``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from fesr.cli import USER_ERRORS, run_main
from fesr.report.outputs import save_figure, write_table  # noqa: E402

# (title, map name or None for a random map): the families of SPEC 1 plus two mixtures
FIG3_MAPS = [
    ("random (p = 1/2)", None),
    ("checkerboard", "checkerboard"),
    ("wave", "wave"),
    ("stripes", "stripes_diagonal"),
    ("mixture A", "mix_a"),
    ("mixture B", "mix_b"),
]


def fig3(a):
    from fesr.fem.coefficients import deterministic_map, random_map

    fig, axes = plt.subplots(1, len(FIG3_MAPS), figsize=(2.6 * len(FIG3_MAPS), 3.0))
    lo, hi = a.contrast
    for ax, (title, name) in zip(axes, FIG3_MAPS, strict=True):
        if name is None:
            A = random_map(a.E, a.contrast, a.p_high, a.seed, "test_random", 0)
        else:
            A = deterministic_map(name, a.E, a.contrast)
        im = ax.imshow(
            A,
            origin="lower",
            extent=(0, 1, 0, 1),
            cmap="Greys",
            vmin=lo,
            vmax=hi,
            interpolation="nearest",
        )
        ax.set_title(title if name is None else f"{title}\n'{name}'", fontsize=9)
        ax.set_xlabel("x")
        if ax is not axes[0]:
            ax.set_yticklabels([])
    axes[0].set_ylabel("y")
    fig.colorbar(im, ax=list(axes), shrink=0.7, label="coefficient A")
    fig.suptitle(f"Coefficient examples, {a.E} x {a.E} cells, A in {{{lo:g}, {hi:g}}}")
    return fig


def fig9(a):
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    palette = sns.color_palette("tab10", len(a.histories))
    for path, label, col in zip(a.histories, a.labels, palette, strict=True):
        v = read_history(path)
        ax.plot(v["iteration"], v["val_loss"], marker="o", ms=3, color=col, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("training iteration")
    ax.set_ylabel("validation loss (L1, normalised u)")
    ax.set_title("Validation loss with and without the SCS term")
    ax.legend()
    return fig


def read_history(path) -> pd.DataFrame:
    """A history.csv's rows that carry a validation loss (iteration, val_loss, ...)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"training history '{path}' does not exist")
    h = pd.read_csv(path)
    if not {"iteration", "val_loss"} <= set(h.columns):
        raise ValueError(f"'{path}' lacks columns iteration/val_loss; has {list(h.columns)}")
    return h.dropna(subset=["val_loss"])


def curve_summary(v: pd.DataFrame) -> tuple[float, float]:
    """(fall, last-fifth change) of a validation curve.

    fall: first / final value. Last-fifth change: |exp(b * span) - 1| for the least-squares
    line b * iteration + c through log(val_loss) over the last fifth of the run, from the last
    value recorded at or before 80% of it to the end. A fitted line, not two single values,
    because one validation value scatters by a few percent from batch to batch at the final
    learning rate, as large as the trend a 5% bar is meant to detect; with two points the line
    is exact and this is their relative change."""
    it = v["iteration"].to_numpy(dtype=float)
    val = v["val_loss"].to_numpy(dtype=float)
    if len(val) == 0:
        return float("nan"), float("nan")
    before = np.flatnonzero(it <= 0.8 * it[-1])
    first = before[-1] if len(before) else 0
    x, y = it[first:], np.log(val[first:])
    if len(x) < 2 or x[-1] == x[0]:
        return float(val[0] / val[-1]), 0.0
    xc = x - x.mean()
    slope = float(xc @ (y - y.mean()) / (xc @ xc))
    return float(val[0] / val[-1]), float(abs(np.expm1(slope * (x[-1] - x[0]))))


FLAT_BAR = 0.05  # issue 14: the last fifth changes the validation loss by less than 5%


def training_summary(curves, labels) -> pd.DataFrame:
    """One row per model (``curves``: its ``read_history`` frame): iterations, untrained and
    final validation loss, fall, last-fifth change (``curve_summary``) and whether that is under
    ``FLAT_BAR``."""
    rows = []
    for v, label in zip(curves, labels, strict=True):
        fall, last = curve_summary(v)
        rows.append(
            {
                "model": label,
                "iterations": int(v["iteration"].iloc[-1]) if len(v) else 0,
                "val_untrained": float(v["val_loss"].iloc[0]) if len(v) else float("nan"),
                "val_final": float(v["val_loss"].iloc[-1]) if len(v) else float("nan"),
                "fall": fall,
                "last_fifth_change": last,
                "flat": bool(last < FLAT_BAR),
            }
        )
    return pd.DataFrame(rows)


def fig_training(a):
    curves = [read_history(path) for path in a.histories]
    summary = training_summary(curves, a.labels)
    write_table(
        summary,
        a.out_prefix,
        "Validation loss per model: untrained and final value, fall (untrained / final), and the "
        "change of the fitted trend over the last fifth of the run (flat: under "
        f"{100 * FLAT_BAR:g}%).",
    )
    n = len(a.histories)
    cols = min(4, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, v, (_, row) in zip(axes.flat, curves, summary.iterrows(), strict=False):
        fall, last, label = row["fall"], row["last_fifth_change"], row["model"]
        ax.plot(v["iteration"], v["val_loss"], marker="o", ms=2, lw=1)
        ax.set_yscale("log")
        ax.set_title(label, fontsize=9)
        ax.text(
            0.97,
            0.95,
            f"fall {fall:.1f}x\nlast fifth {100 * last:.1f}%",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=7,
        )
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("iteration")
    for ax in axes[:, 0]:
        ax.set_ylabel("val L1 (normalised u)")
    fig.suptitle(
        "Validation loss per model (fall: first / final; last fifth: change of the fitted trend)"
    )
    # leave 0.4 inch on top for the title, whatever the number of rows
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))
    return fig


def fig_cost(a):
    from fesr.report.tables import ZERO_FIELD_ERROR, pareto_front

    t = pd.read_csv(a.table)
    t = t[t["split"] == a.split]
    scales = sorted(t["scale"].unique())
    # one row of panels per error measure (relative L2 and energy by default), one per scale
    errors = list(a.error)
    fig, axes = plt.subplots(
        len(errors), len(scales), figsize=(4.4 * len(scales), 4.2 * len(errors)), squeeze=False
    )
    sr_names = list(dict.fromkeys(t.loc[t["kind"].str.startswith("SR"), "approach"]))
    palette = dict(zip(sr_names, sns.color_palette("tab10", len(sr_names)), strict=True))
    for r, err in enumerate(errors):
        for ax, s in zip(axes[r], scales, strict=True):
            sub = t[t["scale"] == s]
            for _, row in sub.iterrows():
                if row["approach"] == "fe_direct":
                    ax.axvline(
                        row["seconds"],
                        color="black",
                        ls="--",
                        lw=1.2,
                        label="direct FE solve (error 0)",
                    )
                elif not row["kind"].startswith("SR"):
                    hom = row["kind"].startswith("Homogenized")
                    ax.loglog(row["seconds"], row[err], "D" if hom else "s", color="grey", ms=7)
                    ax.annotate(
                        row["approach"].replace("fe_", "").replace("_interp", "+interp"),
                        (row["seconds"], row[err]),
                        fontsize=7,
                        xytext=(3, 3),
                        textcoords="offset points",
                    )
                else:
                    ax.loglog(
                        row["seconds"],
                        row[err],
                        "o",
                        color=palette[row["approach"]],
                        ms=6,
                        label=row["approach"],
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
            ax.set_xlabel("wall time per sample [s]")
            ax.set_ylabel(f"{err} error vs HR FE solution")
            ax.set_title(f"target x{s} (n = {32 * int(s)})")
    handles, labels = [], []
    for ax in axes[0]:
        h, lab = ax.get_legend_handles_labels()
        handles, labels = handles + h, labels + lab
    uniq = dict(zip(labels, handles, strict=True))
    uniq["coarse FE solve + Q1 interp (grey squares)"] = plt.Line2D(
        [], [], marker="s", color="grey", ls=""
    )
    if t["kind"].str.startswith("Homogenized").any():
        uniq["homogenized LR solve + Q1 (grey diamonds)"] = plt.Line2D(
            [], [], marker="D", color="grey", ls=""
        )
    fig.legend(
        uniq.values(),
        uniq.keys(),
        loc="lower center",
        ncol=min(6, len(uniq)),
        fontsize=7,
        bbox_to_anchor=(0.5, -0.12),
    )
    fig.suptitle(f"Error against wall time ({a.split}): when does SR beat solving?")
    return fig


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="figure", required=True)
    p = sub.add_parser("fig3")
    p.add_argument("--E", type=int, required=True)
    p.add_argument("--contrast", type=float, nargs=2, required=True)
    p.add_argument("--p-high", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    for name in ("fig9", "fig_training"):
        p = sub.add_parser(name)
        p.add_argument("--histories", nargs="+", required=True)
        p.add_argument("--labels", nargs="+", required=True)
    p = sub.add_parser("fig_cost")
    p.add_argument("--table", required=True)
    p.add_argument("--split", default="test_random")
    p.add_argument(
        "--error",
        nargs="+",
        default=["rel_l2", "rel_energy"],
        choices=["rel_l2", "rel_energy", "mse_e3"],
        help="one row of panels per error measure",
    )
    for p in sub.choices.values():
        p.add_argument("--out-prefix", required=True)
    a = ap.parse_args(argv)
    sns.set_theme(style="ticks", context="paper")
    figures = {"fig3": fig3, "fig9": fig9, "fig_training": fig_training, "fig_cost": fig_cost}
    fig = figures[a.figure](a)
    save_figure(fig, a.out_prefix)


if __name__ == "__main__":
    np.seterr(divide="ignore")
    sys.exit(run_main("python -m fesr.report.figures_misc", main, user_errors=USER_ERRORS))
