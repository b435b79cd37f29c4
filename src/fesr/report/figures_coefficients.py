"""Fig. 3: coefficient examples on the E x E cell grid, a random map and deterministic maps of
every family (SPEC 1).

``python -m fesr.report.figures_coefficients fig3 --E 128 --contrast 1 100 --seed 0 \\
    --out-prefix ...``
"""

from __future__ import annotations

import argparse
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from fesr.cli import USER_ERRORS, run_main  # noqa: E402
from fesr.report.outputs import save_figure  # noqa: E402

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


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="figure", required=True)
    p = sub.add_parser("fig3")
    p.add_argument("--E", type=int, required=True)
    p.add_argument("--contrast", type=float, nargs=2, required=True)
    p.add_argument("--p-high", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-prefix", required=True)
    a = ap.parse_args(argv)
    sns.set_theme(style="ticks", context="paper")
    save_figure(fig3(a), a.out_prefix)


if __name__ == "__main__":
    sys.exit(run_main("python -m fesr.report.figures_coefficients", main, user_errors=USER_ERRORS))
