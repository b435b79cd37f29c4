"""Local sampling of cell-centred feature maps at continuous query points (the LIIF family).

Every local-implicit method (Meta-SR, LIIF, LTE, LIT/CLIT, SRNO, LINF, NH-CSR) needs the same
three things: which feature cells surround a query, where their centres are, and the query's
offset from them. They live here once. Features are gathered by integer index (exact, no
interpolation rounding at cell borders) from a map flattened once per ``encode``.

Units: ``rel`` is ``(query - centre)`` measured in feature pixels (spacing 1), ordered (x, y).
The 4-neighbour weights are LIIF's local ensemble: each neighbour weighted by the area of the
rectangle between the query and the diagonally opposite neighbour, normalised to sum to 1, so
the ensemble is the bilinear interpolation of the per-neighbour predictions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Neighbours:
    """k neighbour cells of each query: index (B, Q, k) into H*W, centre and rel (B, Q, k, 2)."""

    index: torch.Tensor
    centre: torch.Tensor
    rel: torch.Tensor
    weight: torch.Tensor | None = None  # (B, Q, k), only for the 4-neighbour ensemble


def _cell_index(coords: torch.Tensor, size: int) -> torch.Tensor:
    """Index of the cell containing each coordinate in [-1, 1] (one axis), clamped to the map."""
    return ((coords + 1.0) * 0.5 * size).floor().clamp_(0, size - 1).long()


def _centre(index: torch.Tensor, size: int, dtype) -> torch.Tensor:
    return (2.0 * index.to(dtype) + 1.0) / size - 1.0


def _make(ix, iy, coords, H, W, weight=None) -> Neighbours:
    """Neighbours from per-axis cell indices ix, iy of shape (B, Q, k)."""
    centre = torch.stack([_centre(ix, W, coords.dtype), _centre(iy, H, coords.dtype)], dim=-1)
    rel = coords.unsqueeze(2) - centre
    rel = torch.stack([rel[..., 0] * (W / 2.0), rel[..., 1] * (H / 2.0)], dim=-1)
    return Neighbours(index=iy * W + ix, centre=centre, rel=rel, weight=weight)


def four_neighbours(coords: torch.Tensor, H: int, W: int) -> Neighbours:
    """The 4 cells whose centres surround each query (LIIF's vx, vy in {-1, +1}), with weights.

    At the map border the cells are clamped (as LIIF does), so two neighbours may coincide;
    the weights still sum to one.
    """
    fx = (coords[..., 0] + 1.0) * 0.5 * W - 0.5  # continuous index in cell-centre units
    fy = (coords[..., 1] + 1.0) * 0.5 * H - 0.5
    x0 = fx.floor().long()
    y0 = fy.floor().long()
    ix = torch.stack([x0, x0 + 1, x0, x0 + 1], dim=-1).clamp_(0, W - 1)
    iy = torch.stack([y0, y0, y0 + 1, y0 + 1], dim=-1).clamp_(0, H - 1)
    nb = _make(ix, iy, coords, H, W)
    area = (nb.rel[..., 0] * nb.rel[..., 1]).abs() + 1e-9
    area = area.flip(-1)  # the weight of a neighbour is the area opposite to it
    nb.weight = area / area.sum(-1, keepdim=True)
    return nb


def window_neighbours(coords: torch.Tensor, H: int, W: int, size: int) -> Neighbours:
    """A size x size window of cells centred on the cell containing each query (LIT's 7x7 grid).

    Indices beyond the map are clamped to the border cell (repeats), and ``rel`` is measured to
    the clamped cell, so the positional terms stay truthful.
    """
    if size % 2 != 1:
        raise ValueError(f"window size must be odd, got {size}")
    r = size // 2
    cx = _cell_index(coords[..., 0], W)
    cy = _cell_index(coords[..., 1], H)
    off = torch.arange(-r, r + 1, device=coords.device)
    oy, ox = torch.meshgrid(off, off, indexing="ij")
    ix = (cx.unsqueeze(-1) + ox.reshape(-1)).clamp_(0, W - 1)
    iy = (cy.unsqueeze(-1) + oy.reshape(-1)).clamp_(0, H - 1)
    return _make(ix, iy, coords, H, W)


def flatten_map(feat: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C), done once per encode so gathers are cheap per chunk."""
    return feat.flatten(2).transpose(1, 2).contiguous()


def gather(flat: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows of a flattened map (B, H*W, C) at index (B, Q, k) -> (B, Q, k, C).

    Advanced indexing, not torch.gather: no (B, C, Q) index tensor is materialised.
    """
    B = flat.shape[0]
    b = torch.arange(B, device=flat.device).view(B, *([1] * (index.dim() - 1)))
    return flat[b, index]


def unfold3x3(feat: torch.Tensor) -> torch.Tensor:
    """LIIF's feature unfolding: each cell gets its 3x3 neighbourhood's features (C -> 9C)."""
    B, C, H, W = feat.shape
    return F.unfold(feat, 3, padding=1).view(B, C * 9, H, W)


class MLP(nn.Sequential):
    """Linear layers with an activation between them (none after the last)."""

    def __init__(self, in_dim: int, hidden: list[int] | int, out_dim: int, act=nn.ReLU):
        hidden = [hidden] if isinstance(hidden, int) else list(hidden)
        layers: list[nn.Module] = []
        last = in_dim
        for h in hidden:
            layers += [nn.Linear(last, h), act()]
            last = h
        layers.append(nn.Linear(last, out_dim))
        super().__init__(*layers)
