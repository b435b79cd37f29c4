"""Modulo colouring (SPEC 4, Figs. 1, 4, 10): small differences of smooth fields become visible.

The field is normalised to [0, 255] with a reference range (the HR field's, so that every panel of
a comparison shares it), multiplied by a factor (8 or 64), taken modulo 255 and mapped through jet.
"""

from __future__ import annotations

import matplotlib
import numpy as np


def modulo_values(field, vmin: float, vmax: float, factor: int) -> np.ndarray:
    """(field - vmin) / (vmax - vmin) * 255 * factor mod 255, in [0, 255)."""
    if factor < 1:
        raise ValueError(f"modulo factor must be >= 1, got {factor}")
    span = float(vmax) - float(vmin)
    if not span > 0:
        raise ValueError(f"modulo colouring needs vmax > vmin, got [{vmin}, {vmax}]")
    scaled = (np.asarray(field, dtype=np.float64) - vmin) / span * 255.0
    return np.mod(scaled * factor, 255.0)


def modulo_rgb(field, vmin: float, vmax: float, factor: int, cmap: str = "jet") -> np.ndarray:
    """RGB image (..., 3) in [0, 1] of the modulo-coloured field."""
    return matplotlib.colormaps[cmap](modulo_values(field, vmin, vmax, factor) / 255.0)[..., :3]


def display_stride(size: int, max_pixels: int = 513) -> int:
    """Node stride so that a displayed panel has at most ~max_pixels nodes per side (exact nested
    subsampling of the node grid; keeps PDFs small at 2049 x 2049)."""
    return max(1, int(np.ceil((size - 1) / (max_pixels - 1))))
