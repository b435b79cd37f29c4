"""Writing tables and figures atomically (temporary name, then rename)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd


def _tmp(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")


def write_table(
    df: pd.DataFrame, prefix, caption: str, float_format: str = "%.4g", display=None
) -> list[Path]:
    """``prefix``.csv (full precision), .md and .tex (rounded, with the caption).

    ``display``: another frame for the .md and .tex files (e.g. 'mean [lo, hi]' strings)."""
    prefix = Path(prefix)
    shown = df if display is None else display
    outs = []
    for suffix in (".csv", ".md", ".tex"):
        out = prefix.with_suffix(suffix)
        tmp = _tmp(out)
        if suffix == ".csv":
            df.to_csv(tmp, index=False)
        elif suffix == ".md":
            body = shown.to_markdown(index=False, floatfmt=float_format.strip("%"))
            tmp.write_text(f"{caption}\n\n{body}\n")
        else:
            tex = shown.to_latex(
                index=False,
                float_format=lambda v: float_format % v,
                caption=caption,
                label=f"tab:{prefix.name}",
                na_rep="--",
            )
            tmp.write_text(tex)
        os.replace(tmp, out)
        outs.append(out)
    return outs


def save_figure(fig, prefix) -> list[Path]:
    """``prefix``.png (150 dpi) and ``prefix``.pdf."""
    import matplotlib.pyplot as plt

    prefix = Path(prefix)
    outs = []
    for suffix, kw in ((".png", {"dpi": 150}), (".pdf", {})):
        out = prefix.with_suffix(suffix)
        tmp = _tmp(out)
        fig.savefig(tmp, bbox_inches="tight", **kw)
        os.replace(tmp, out)
        outs.append(out)
    plt.close(fig)
    return outs
