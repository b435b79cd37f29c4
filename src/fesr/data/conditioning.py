"""The encoder input of SPEC 2: the LR field on the coefficient's pixel centres plus the
encoded coefficient.

``encode_coefficient`` maps the two-valued coefficient onto [0, 1] on a log scale,
``log(A / lo) / log(hi / lo)``; for the paper's contrast (1, 100) this is ``log10(A) / 2``.
The log scale keeps the encoding meaningful for coefficients between the two values (the
L2-projected coefficient of a coarse mesh, or a different contrast).
"""

from __future__ import annotations

import math

import torch

from fesr.coords import nodal_to_cell_centres


def encode_coefficient(A, contrast) -> torch.Tensor:
    """``log(A / lo) / log(hi / lo)`` for ``contrast = (lo, hi)``: {lo, hi} -> {0, 1}."""
    lo, hi = (float(c) for c in contrast)
    if not (0 < lo < hi):
        raise ValueError(f"contrast must be two values 0 < lo < hi, got {list(contrast)}")
    A = torch.as_tensor(A)
    if not A.is_floating_point():
        A = A.to(torch.float32)
    if (A <= 0).any():
        raise ValueError("coefficient values must be > 0 to be log-encoded")
    return torch.log(A / lo) / math.log(hi / lo)


def make_inputs(
    lr: torch.Tensor, coef, use_coefficient: bool, contrast, E: int | None = None
) -> dict:
    """Model inputs ``{"lr", "image"}`` from the normalised LR field and the raw coefficient.

    lr: (B, 1, n+1, n+1) nodal LR field, already divided by the dataset constant.
    coef: (B, 1, E, E) raw coefficient values; without the coefficient it may be None if ``E`` is
    given (the pixel grid is still the coefficient's).
    image: (B, 2, E, E) = [bicubic d(X) on the E x E pixel centres, encoded A], or (B, 1, E, E)
    = [d(X)] when ``use_coefficient`` is False (the Fig. 10 ablation).
    """
    if lr.dim() != 4 or lr.shape[1] != 1 or lr.shape[-1] != lr.shape[-2]:
        raise ValueError(f"lr must have shape (B, 1, n+1, n+1), got {tuple(lr.shape)}")
    if coef is None:
        if use_coefficient or E is None:
            raise ValueError("make_inputs: coef is None; pass the coefficient (B, 1, E, E)")
        return {"lr": lr, "image": nodal_to_cell_centres(lr, int(E), "bicubic")}
    coef = torch.as_tensor(coef)
    if coef.dim() != 4 or coef.shape[1] != 1 or coef.shape[0] != lr.shape[0]:
        raise ValueError(
            f"coef must have shape (B={lr.shape[0]}, 1, E, E), got {tuple(coef.shape)}"
        )
    E = coef.shape[-1]
    channels = [nodal_to_cell_centres(lr, E, "bicubic")]
    if use_coefficient:
        channels.append(encode_coefficient(coef.to(lr.device), contrast).to(lr.dtype))
    return {"lr": lr, "image": torch.cat(channels, dim=1)}
