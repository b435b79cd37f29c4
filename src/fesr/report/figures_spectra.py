"""Spectral figures: fig5 (RAPSD of every method vs HR at 32x and 64x) and fig8 (spectra and
slices of NH-CSR's coarse and fine branch outputs).

``python -m fesr.report.figures_spectra fig5 --models ... --scales 32 64 --split test_random ...``
``python -m fesr.report.figures_spectra fig8 --checkpoint results/models/nhcsr/checkpoint.pt
--scales 16 --split test_random ...``
"""

from __future__ import annotations

import argparse
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from tqdm import tqdm  # noqa: E402

from fesr.cli import USER_ERRORS, run_main
from fesr.evaluate.spectra import rapsd  # noqa: E402
from fesr.report.fields import FieldSource  # noqa: E402
from fesr.report.outputs import save_figure  # noqa: E402


def fig5(a, src: FieldSource):
    fig, axes = plt.subplots(1, len(a.scales), figsize=(5.5 * len(a.scales), 4.2), squeeze=False)
    palette = sns.color_palette("tab10", len(a.models))
    nsamp = src.n_samples(a.split)
    for ax, s in zip(axes[0], a.scales, strict=True):
        acc = {}
        for k in tqdm(range(nsamp), desc=f"RAPSD x{s}"):
            # one sample of one field in memory at a time: streaming at 2049^2
            for m in a.models:
                freq, p = rapsd(src.prediction(m, a.split, s, k))
                acc[m] = acc.get(m, 0.0) + p / nsamp
            freq, p = rapsd(src.reference(a.split, s, k))
            acc["HR"] = acc.get("HR", 0.0) + p / nsamp
        ax.loglog(freq, acc["HR"], color="black", lw=2.2, label="HR FE solution")
        for m, col in zip(a.models, palette, strict=True):
            ax.loglog(freq, acc[m], color=col, lw=0.9, label=m)
        ax.set_xlabel("wavenumber (cycles per unit length)")
        ax.set_ylabel("radially averaged power")
        ax.set_title(f"x{s} (n = {32 * s}), mean over {nsamp} {a.split} samples")
    axes[0, -1].legend(fontsize=7, ncol=2)
    fig.suptitle("Radially averaged power spectral density of u / u_scale")
    return fig


def fig8(a, src: FieldSource):
    import torch

    from fesr.checkpoint import load_model
    from fesr.data.conditioning import make_inputs

    s, k = a.scales[0], a.sample
    model, ckpt = load_model(a.checkpoint, "cpu")
    if not hasattr(model, "predict_branches"):
        raise ValueError(f"model in '{a.checkpoint}' has no predict_branches(); fig8 needs NH-CSR")
    u_scale = float(ckpt["u_scale"])
    src._u_scale = u_scale
    lr = src.reference(a.split, 1, k)
    coef = src._read(src.data_dir / a.split / "coefficient.nc", k, "coefficient file", "A")
    inputs = make_inputs(
        torch.as_tensor(lr, dtype=torch.float32)[None, None],
        torch.as_tensor(coef, dtype=torch.float32)[None, None],
        model.uses_coefficient,
        ckpt.get("contrast"),
    )
    with torch.no_grad():
        out = model.predict_branches(inputs, s, chunk=a.chunk)
    fields = {name: out[name][0].double().numpy() for name in ("coarse", "fine", "full")}
    hr = src.reference(a.split, s, k)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    styles = {
        "coarse": ("tab:blue", "coarse branch"),
        "fine": ("tab:red", "fine branch"),
        "full": ("tab:green", "NH-CSR output (sum, decoded)"),
    }
    freq, p = rapsd(hr)
    axes[0].loglog(freq, p, color="black", lw=2.2, label="HR FE solution")
    for name, (col, label) in styles.items():
        axes[0].loglog(freq, rapsd(fields[name])[1], color=col, lw=1.0, label=label)
    axes[0].set_xlabel("wavenumber (cycles per unit length)")
    axes[0].set_ylabel("radially averaged power")
    axes[0].set_title("RAPSD")
    axes[0].legend(fontsize=7)
    mid = hr.shape[0] // 2
    x = np.linspace(0.0, 1.0, hr.shape[0])
    for ax, take, label in (
        (axes[1], lambda f: f[mid, :], "x (row y = 0.5)"),
        (axes[2], lambda f: f[:, mid], "y (column x = 0.5)"),
    ):
        ax.plot(x, take(hr), color="black", lw=2.0, label="HR FE solution")
        for name, (col, lab) in styles.items():
            ax.plot(x, take(fields[name]), color=col, lw=0.9, label=lab)
        ax.set_xlabel(label)
        ax.set_ylabel("branch output (normalised units)")
        ax.set_title(f"middle {'row' if 'row' in label else 'column'} slice")
    fig.suptitle(
        f"NH-CSR coarse and fine branches at x{s} ({a.split}, {src.sample_label(a.split, k)})"
    )
    return fig


FIGURES = {"fig5": fig5, "fig8": fig8}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("figure", choices=sorted(FIGURES))
    ap.add_argument("--models", nargs="*", default=[])
    ap.add_argument("--scales", type=int, nargs="+", required=True)
    ap.add_argument("--split", default="test_random")
    ap.add_argument("--sample", type=int, default=0)
    ap.add_argument("--checkpoint")
    ap.add_argument("--chunk", type=int, default=65536)
    ap.add_argument("--data-dir", default="results/data")
    ap.add_argument("--predictions-dir", default="results/predictions")
    ap.add_argument("--out-prefix", required=True)
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    sns.set_theme(style="ticks", context="paper")
    fig = FIGURES[a.figure](a, FieldSource(a.data_dir, a.predictions_dir))
    save_figure(fig, a.out_prefix)


if __name__ == "__main__":
    sys.exit(run_main("python -m fesr.report.figures_spectra", main, user_errors=USER_ERRORS))
