"""Field figures: fig1 (one LR input at every scale), fig4 (all methods), fig6 (slices),
fig7 (residual maps), fig10 (conditioning and encoders).

``python -m fesr.report.figures_fields fig1 --models liif nhcsr --scales 2 4 ... --split test_random
--data-dir results/data --predictions-dir results/predictions --out-prefix results/figures/fig1``

Images are drawn with ``origin='lower'`` on [0, 1]^2: row index is y, increasing upward (SPEC 1).
"""

from __future__ import annotations

import argparse
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from fesr.cli import USER_ERRORS, run_main
from fesr.report.colouring import display_stride, modulo_rgb  # noqa: E402
from fesr.report.fields import FieldSource  # noqa: E402
from fesr.report.outputs import save_figure  # noqa: E402

EXTENT = (0.0, 1.0, 0.0, 1.0)


def _show_modulo(ax, field, vmin, vmax, factor, title):
    s = display_stride(field.shape[0])
    ax.imshow(
        modulo_rgb(field[::s, ::s], vmin, vmax, factor),
        origin="lower",
        extent=EXTENT,
        interpolation="nearest",
    )
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def _mse(pred, ref) -> float:
    return float(np.mean((pred - ref) ** 2))


def _modulo_note(factor):
    return f"modulo colouring: u/u_scale mapped to [0, 255] by the HR range, x{factor} mod 255, jet"


def fig1(a, src: FieldSource):
    models, scales, k = a.models, a.scales, a.sample
    ncol = len(scales) + 1
    fig, axes = plt.subplots(
        len(models) + 1, ncol, figsize=(1.9 * ncol, 2.0 * (len(models) + 1)), squeeze=False
    )
    preds = {s: {m: src.prediction(m, a.split, s, k) for m in models} for s in scales}
    lr = src.reference(a.split, 1, k)
    vmin, vmax = float(lr.min()), float(lr.max())
    _show_modulo(axes[0, 0], lr, vmin, vmax, a.modulo_factor, f"LR input (n={lr.shape[0] - 1})")
    for r in range(1, len(models) + 1):
        axes[r, 0].axis("off")
    for c, s in enumerate(scales, start=1):
        hr = src.reference(a.split, s, k)
        vmin, vmax = float(hr.min()), float(hr.max())
        _show_modulo(
            axes[0, c], hr, vmin, vmax, a.modulo_factor, f"HR FE x{s} (n={hr.shape[0] - 1})"
        )
        for r, m in enumerate(models, start=1):
            p = preds[s][m]
            _show_modulo(
                axes[r, c],
                p,
                vmin,
                vmax,
                a.modulo_factor,
                f"{m} x{s}\nMSE {_mse(p, hr) * 1e3:.3g}e-3",
            )
    for r, name in enumerate(["FE reference", *models]):
        axes[r, 0 if r == 0 else 1].set_ylabel(name)
    fig.suptitle(
        f"One LR input ({a.split}, {src.sample_label(a.split, k)}) upscaled at every "
        f"scale\n{_modulo_note(a.modulo_factor)}",
        fontsize=9,
        y=1.06,  # two-line title above the panel titles
    )
    return fig


def fig4(a, src: FieldSource):
    models, s = a.models, a.scales[0]
    cases = [(split, a.sample) for split in a.splits]
    ncol = len(models) + 2
    fig, axes = plt.subplots(
        len(cases), ncol, figsize=(1.7 * ncol, 2.0 * len(cases)), squeeze=False
    )
    for r, (split, k) in enumerate(cases):
        preds = {m: src.prediction(m, split, s, k) for m in models}
        hr = src.reference(split, s, k)
        lr = src.reference(split, 1, k)
        vmin, vmax = float(hr.min()), float(hr.max())
        _show_modulo(axes[r, 0], lr, vmin, vmax, a.modulo_factor, "LR input")
        axes[r, 0].set_ylabel(f"{split}\n{src.sample_label(split, k)}", fontsize=8)
        for c, m in enumerate(models, start=1):
            _show_modulo(
                axes[r, c],
                preds[m],
                vmin,
                vmax,
                a.modulo_factor,
                f"{m}\nMSE {_mse(preds[m], hr) * 1e3:.3g}e-3",
            )
        _show_modulo(axes[r, -1], hr, vmin, vmax, a.modulo_factor, f"HR FE x{s}")
    fig.suptitle(
        f"All methods at x{s} on a random and a deterministic coefficient\n"
        f"{_modulo_note(a.modulo_factor)}",
        fontsize=9,
        y=1.06,  # two-line title above the panel titles
    )
    return fig


def fig6(a, src: FieldSource):
    s, k = a.scales[0], a.sample
    preds = {m: src.prediction(m, a.split, s, k) for m in a.models}
    hr = src.reference(a.split, s, k)
    mid = hr.shape[0] // 2
    x = np.linspace(0.0, 1.0, hr.shape[0])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    palette = sns.color_palette("tab10", len(a.models))
    for ax, take, label in (
        (axes[0], lambda f: f[mid, :], "x (row y = 0.5)"),
        (axes[1], lambda f: f[:, mid], "y (column x = 0.5)"),
    ):
        ax.plot(x, take(hr), color="black", lw=2.2, label="HR FE solution")
        for m, col in zip(a.models, palette, strict=True):
            ax.plot(x, take(preds[m]), color=col, lw=0.9, label=m)
        ax.set_xlabel(label)
        ax.set_title(f"middle {'row' if 'row' in label else 'column'}")
    axes[0].set_ylabel("u / u_scale")
    axes[1].legend(fontsize=7, ncol=2, loc="best")
    fig.suptitle(f"Middle slices at x{s} ({a.split}, {src.sample_label(a.split, k)})")
    return fig


def _residual_grid(a, src, models, scales, title):
    k = a.sample
    fig, axes = plt.subplots(
        len(models), len(scales), figsize=(2.6 * len(scales), 2.4 * len(models)), squeeze=False
    )
    for c, s in enumerate(scales):
        preds = {m: src.prediction(m, a.split, s, k) for m in models}  # first: sets u_scale
        hr = src.reference(a.split, s, k)
        res = {m: np.abs(p - hr) for m, p in preds.items()}
        vmax = max(float(r.max()) for r in res.values()) or 1.0
        st = display_stride(hr.shape[0])
        for r, m in enumerate(models):
            im = axes[r, c].imshow(
                res[m][::st, ::st], origin="lower", extent=EXTENT, cmap="magma", vmin=0.0, vmax=vmax
            )
            axes[r, c].set_title(f"{m} x{s}\nmean {res[m].mean() * 1e3:.3g}e-3", fontsize=8)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        fig.colorbar(im, ax=axes[:, c].tolist(), shrink=0.8, label="|u_pred - u_HR| / u_scale")
    fig.suptitle(title, fontsize=10)
    return fig


def fig7(a, src: FieldSource):
    return _residual_grid(
        a,
        src,
        a.models,
        a.scales,
        f"Residual maps at several scales ({a.split}, {src.sample_label(a.split, a.sample)})",
    )


def fig10(a, src: FieldSource):
    s, k = a.scales[0], a.sample
    preds = {m: src.prediction(m, a.split, s, k) for m in a.models}
    hr = src.reference(a.split, s, k)
    vmin, vmax = float(hr.min()), float(hr.max())
    ncol = len(a.models) + 1
    fig, axes = plt.subplots(2, ncol, figsize=(2.3 * ncol, 4.8), squeeze=False)
    _show_modulo(axes[0, 0], hr, vmin, vmax, a.modulo_factor, f"HR FE x{s}")
    axes[1, 0].axis("off")
    res = {m: np.abs(p - hr) for m, p in preds.items()}
    rmax = max(float(r.max()) for r in res.values()) or 1.0
    st = display_stride(hr.shape[0])
    for c, m in enumerate(a.models, start=1):
        _show_modulo(
            axes[0, c],
            preds[m],
            vmin,
            vmax,
            a.modulo_factor,
            f"{m}\nMSE {_mse(preds[m], hr) * 1e3:.3g}e-3",
        )
        im = axes[1, c].imshow(
            res[m][::st, ::st], origin="lower", extent=EXTENT, cmap="magma", vmin=0.0, vmax=rmax
        )
        axes[1, c].set_xticks([])
        axes[1, c].set_yticks([])
        axes[1, c].set_title("|error|", fontsize=8)
    fig.colorbar(im, ax=axes[1, 1:].tolist(), shrink=0.8, label="|u_pred - u_HR| / u_scale")
    fig.suptitle(
        f"Conditioning on the coefficient and encoder choice at x{s} ({a.split}, "
        f"{src.sample_label(a.split, k)})\n{_modulo_note(a.modulo_factor)}",
        fontsize=9,
        y=1.06,  # two-line title above the panel titles
    )
    return fig


FIGURES = {"fig1": fig1, "fig4": fig4, "fig6": fig6, "fig7": fig7, "fig10": fig10}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("figure", choices=sorted(FIGURES))
    ap.add_argument("--models", nargs="+", required=True)
    ap.add_argument("--scales", type=int, nargs="+", required=True)
    ap.add_argument("--split", default="test_random")
    ap.add_argument("--splits", nargs="+", default=["test_random", "test_deterministic"])
    ap.add_argument("--sample", type=int, default=0)
    ap.add_argument("--modulo-factor", type=int, default=8)
    ap.add_argument("--data-dir", default="results/data")
    ap.add_argument("--predictions-dir", default="results/predictions")
    ap.add_argument("--out-prefix", required=True)
    a = ap.parse_args(argv)
    sns.set_theme(style="ticks", context="paper")
    fig = FIGURES[a.figure](a, FieldSource(a.data_dir, a.predictions_dir))
    save_figure(fig, a.out_prefix)


if __name__ == "__main__":
    sys.exit(run_main("python -m fesr.report.figures_fields", main, user_errors=USER_ERRORS))
