"""The Fourier basis of LTE and LINF on the node grid's band tiles.

Both methods feed an MLP with ``amplitude * [cos, sin](angle)`` at K frequencies per query and
neighbour. On a band tile (rows sharing their cells, ``fesr.models.local.FourGrid``) the angle
splits into a per-column part and a per-row-and-cell part, so the trigonometry is done on the
two small factors and combined by one complex product (``band_fourier``).
"""

from __future__ import annotations

import torch


def fourier_pairs(flat: torch.Tensor, K: int) -> torch.Tensor:
    """An LTE-style map (B, HW, [amplitude cos_1..K, sin_1..K, rest]) with its amplitude
    reordered to (cos_k, sin_k) pairs, ``band_fourier``'s layout: once per map, not per tile."""
    amp = flat[..., : 2 * K].unflatten(-1, (2, K)).transpose(-1, -2).flatten(-2)
    return torch.cat([amp, flat[..., 2 * K :]], dim=-1)


def band_fourier(a, b, col, amp, out) -> torch.Tensor:
    """amp * [cos, sin](a + b) on a band tile of R rows x C columns x 4 neighbours (LTE's and
    LINF's Fourier basis), (R, C, 4, K, 2) interleaved (cos_k, sin_k) in ``out`` (a real buffer
    of at least 2 R C 4 K 2 elements, the second half scratch). ``a`` (C, 4, K): the angle per
    column and neighbour; ``b`` (R, 2 X, K): the angle per row and band cell
    (``FourGrid.band_cells``: ``col`` (C*4,) picks a column's cells); ``amp`` broadcastable to
    (R, C, 4, K, 2).

    By angle addition, as one complex product e^{ia} e^{ib}: the trig of b is taken once per
    band cell instead of once per column (about m / W times fewer), and the full-size work is
    one row gather (leading-dimension ``index_select``: contiguous rows), one complex multiply
    and the amplitude. The sums round differently from the direct argument: relative
    differences ~1e-7 at unit frequencies, growing like |freq| (3e-6 at 100x)."""
    R, X2, K = b.shape
    C = a.shape[0]
    ea = torch.complex(torch.cos(a), torch.sin(a))
    # gathered as real rows: index_select on complex rows is several times slower
    eb = torch.view_as_real(torch.complex(torch.cos(b), torch.sin(b))).view(R * X2, 2 * K)
    rows = (torch.arange(R, device=col.device) * X2).unsqueeze(1) + col
    size = R * C * 4 * K * 2
    gathered = torch.index_select(eb, 0, rows.view(-1), out=out[size : 2 * size].view(-1, 2 * K))
    eb = torch.view_as_complex(gathered.view(R, C, 4, K, 2))
    z = torch.view_as_complex(out[:size].view(R, C, 4, K, 2))
    torch.mul(eb, ea, out=z)
    return torch.view_as_real(z).mul_(amp)
