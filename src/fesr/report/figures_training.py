"""Validation curves: Fig. 9 (validation loss with and without SCS) and fig_training (every
learned model's curve in its own panel, with a summary table of how far each fell and whether it
is flat by the end).

``python -m fesr.report.figures_training fig9 --histories a/history.csv b/history.csv \\
    --labels a b ...``
``python -m fesr.report.figures_training fig_training --histories ... --labels ...``
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

from fesr.cli import USER_ERRORS, run_main  # noqa: E402
from fesr.report.outputs import save_figure, write_table  # noqa: E402


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


FLAT_BAR = 0.05  # flat: the last fifth changes the validation loss by less than 5%


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


FIGURES = {"fig9": fig9, "fig_training": fig_training}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="figure", required=True)
    for name in FIGURES:
        p = sub.add_parser(name)
        p.add_argument("--histories", nargs="+", required=True)
        p.add_argument("--labels", nargs="+", required=True)
        p.add_argument("--out-prefix", required=True)
    a = ap.parse_args(argv)
    sns.set_theme(style="ticks", context="paper")
    save_figure(FIGURES[a.figure](a), a.out_prefix)


if __name__ == "__main__":
    sys.exit(run_main("python -m fesr.report.figures_training", main, user_errors=USER_ERRORS))
