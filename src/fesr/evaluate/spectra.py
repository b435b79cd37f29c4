"""Radially averaged power spectral density (RAPSD) of a 2D field (Fig. 5, Fig. 8)."""

from __future__ import annotations

import numpy as np


def rapsd(field: np.ndarray, length: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """RAPSD of a square (N, N) field sampled on [0, length]^2.

    The mean is removed, |FFT|^2 / N^4 is averaged over rings of integer radius k (in FFT index
    units) around the zero frequency. Returns (wavenumber in cycles per unit length, power) for
    k = 1 .. N // 2: a sinusoid with f periods across the domain peaks at wavenumber f / length.
    """
    f = np.asarray(field, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] != f.shape[1]:
        raise ValueError(f"rapsd expects a square 2D field, got shape {f.shape}")
    n = f.shape[0]
    power = np.abs(np.fft.fft2(f - f.mean())) ** 2 / float(n) ** 4
    k = np.fft.fftfreq(n, d=1.0 / n)  # integer frequency indices
    radius = np.rint(np.hypot(*np.meshgrid(k, k, indexing="ij"))).astype(np.int64)
    kmax = n // 2
    sums = np.bincount(radius.ravel(), weights=power.ravel(), minlength=kmax + 1)
    counts = np.bincount(radius.ravel(), minlength=kmax + 1)
    ks = np.arange(1, kmax + 1)
    return ks / length, sums[ks] / np.maximum(counts[ks], 1)
