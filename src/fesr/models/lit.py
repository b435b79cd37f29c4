"""LIT: the Local Implicit Transformer of the CLIT paper (Chen et al., CVPR 2023), one stage.

Pipeline: encoder -> 3x3 conv to ``dim`` channels -> cross-scale local attention block (CSLAB)
-> GELU MLP decoder (with the cell) -> residual added to the bilinear (Q1) interpolant of the LR
field. The stage itself (:class:`LITStage`) is shared with :mod:`fesr.models.clit`, so a CLIT
with one stage *is* a LIT (same parameter names under ``stages.0``).

CSLAB for a query x_q (paper eqs. 1-7):

* Q, K, V: three 3x3 convolutions of the feature map (cell-centred, size H x W).
* q is sampled bilinearly at x_q; k and v by nearest sampling on a ``window`` x ``window`` grid of
  feature cells centred on the cell containing x_q (``fesr.models.local.window_neighbours``; cells
  beyond the map are clamped to the border cell).
* Multi-head logits ``q_h . k_h / sqrt(dim / heads) + B_h`` with the relative positional bias
  ``B = Linear(gamma(dx))``: ``dx`` is the offset from each grid cell's centre to x_q in feature
  pixels, ``gamma`` the sin and cos of x and y at ``n_freq`` frequencies log-spaced from 2^0 to
  2^10 (4 * n_freq values), and the linear map gives one bias per head. Softmax over the window.

Choices where the paper and the public code leave room (all documented facts in
``reference-implementations.md``):

* Aggregation (``aggregate``): ``"sum"`` (default) is the paper's eq. (4)/(7), the attention-
  weighted sum of the values per head, concatenated over heads (``dim`` features) -> decoder.
  ``"concat"`` is the public code's variant: every value scaled by its weight and all
  ``window^2`` of them concatenated (``dim * window^2`` features) -> decoder. We default to the
  paper's form because the SPEC names the paper as the source and because the concat decoder's
  first layer costs ``window^2`` times more per query (49x at paper size), which matters for the
  4.2M queries of a 64x output on a CPU.
* Frequencies: exactly ``2^linspace(0, 10, n_freq)``. The public code subtracts 1 (its lowest
  "frequency" is 0, a constant); the paper's eq. (6) has none, so neither do we.
* The cell (HR cell size) enters the decoder in feature pixels: ``cell * (W, H) / 2``, the units
  of the offsets; the public code uses ``cell * (H, W)`` (twice that), a constant factor.
* No local ensemble (as the paper's main model). The LR field is nodal, so the skip is
  ``sample_nodal(lr, x_q)``, the exact Q1 interpolant, not a cell-centred bilinear upsampling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from fesr.coords import sample_cells, sample_nodal
from fesr.models.base import SRModel
from fesr.models.encoders import build_encoder
from fesr.models.local import MLP, flatten_map, gather, window_neighbours
from fesr.models.registry import register

AGGREGATIONS = ("sum", "concat")


def cell_in_pixels(cell: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """HR cell size (network units, (..., 2) ordered x, y) in feature pixels of an H x W map."""
    return torch.stack([cell[..., 0] * (W / 2.0), cell[..., 1] * (H / 2.0)], dim=-1)


class SinusoidalBias(nn.Module):
    """Relative positional bias B = Linear(gamma(dx)): one value per head (paper eqs. 5-6)."""

    def __init__(self, n_freq: int, heads: int, max_log2: float = 10.0):
        super().__init__()
        if n_freq < 1:
            raise ValueError(f"n_freq must be >= 1, got {n_freq}")
        freqs = 2.0 ** torch.linspace(0.0, max_log2, n_freq) if n_freq > 1 else torch.ones(1)
        self.register_buffer("freqs", freqs, persistent=False)
        self.proj = nn.Linear(4 * n_freq, heads)

    def forward(self, rel: torch.Tensor) -> torch.Tensor:
        """rel (..., 2) in feature pixels -> bias (..., heads). The direct formula."""
        angle = (rel.unsqueeze(-1) * self.freqs).flatten(-2)  # (..., 2 * n_freq), x then y
        return self.proj(torch.cat([angle.sin(), angle.cos()], dim=-1))

    def window_bias(
        self, home_rel: torch.Tensor, offsets: torch.Tensor, radius: int
    ) -> torch.Tensor:
        """The same bias for a window, from one sin/cos per query instead of one per neighbour.

        The offset to a window cell is ``rel = a - d``, with ``a`` the query's offset from its home
        cell (B, Q, 2) and ``d`` the integer cell offset in [-radius, radius] ((B, Q, G, 2),
        ``offsets`` holds d + radius). By sin/cos(f (a - d)) = sin/cos(fa) cos(fd) -/+ ...,
        the bias of each axis is a linear map of [sin(fa), cos(fa)] with one weight matrix per
        value of d; the x and y parts add. Exactly ``forward(a - d)`` up to rounding (closer, in
        fact: the arguments stay small), at a fraction of the cost.
        """
        nf, heads = self.freqs.numel(), self.proj.out_features
        d = torch.arange(-radius, radius + 1, device=home_rel.device, dtype=torch.float64)
        fd = d[:, None] * self.freqs.to(torch.float64)  # (D, nf)
        cos_fd, sin_fd = fd.cos().to(home_rel.dtype), fd.sin().to(home_rel.dtype)
        w = self.proj.weight.view(heads, 2, 2, nf)  # (heads, sin|cos, x|y, nf)
        angle = home_rel.unsqueeze(-1) * self.freqs  # (B, Q, 2, nf)
        s, c = angle.sin(), angle.cos()
        bias = self.proj.bias
        for axis in range(2):
            ws, wc = w[:, 0, axis], w[:, 1, axis]  # (heads, nf)
            m_sin = torch.einsum("hf,df->fdh", ws, cos_fd) + torch.einsum("hf,df->fdh", wc, sin_fd)
            m_cos = torch.einsum("hf,df->fdh", wc, cos_fd) - torch.einsum("hf,df->fdh", ws, sin_fd)
            table = torch.einsum("bqf,fdh->bqdh", s[:, :, axis], m_sin) + torch.einsum(
                "bqf,fdh->bqdh", c[:, :, axis], m_cos
            )  # (B, Q, D, heads)
            idx = offsets[..., axis].unsqueeze(-1).expand(-1, -1, -1, heads)
            bias = bias + torch.gather(table, 2, idx)
        return bias  # (B, Q, G, heads)


@dataclass
class StageMaps:
    """What one stage precomputes from its feature map (once per encode and grid)."""

    q: torch.Tensor  # (B, dim, H, W), sampled bilinearly
    k: torch.Tensor  # (B, H*W, dim), gathered by index
    v: torch.Tensor  # (B, H*W, dim)
    H: int
    W: int


class LITStage(nn.Module):
    """Q/K/V convolutions, the cross-scale local attention block and the decoder: one LIT."""

    def __init__(
        self, dim: int, heads: int, window: int, hidden, n_freq: int, aggregate: str = "sum"
    ):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        if aggregate not in AGGREGATIONS:
            raise ValueError(f"aggregate must be one of {AGGREGATIONS}, got '{aggregate}'")
        if window < 1 or window % 2 != 1:
            raise ValueError(f"window must be a positive odd integer, got {window}")
        self.dim, self.heads, self.window, self.aggregate = dim, heads, window, aggregate
        self.conv_q = nn.Conv2d(dim, dim, 3, padding=1)
        self.conv_k = nn.Conv2d(dim, dim, 3, padding=1)
        self.conv_v = nn.Conv2d(dim, dim, 3, padding=1)
        self.pos_bias = SinusoidalBias(n_freq, heads)
        z_dim = dim if aggregate == "sum" else dim * window * window
        self.decoder = MLP(z_dim + 2, hidden, 1, act=nn.GELU)

    def prepare(self, feat: torch.Tensor) -> StageMaps:
        H, W = feat.shape[-2:]
        return StageMaps(
            q=self.conv_q(feat),
            k=flatten_map(self.conv_k(feat)),
            v=flatten_map(self.conv_v(feat)),
            H=H,
            W=W,
        )

    def window_bias(self, nb) -> torch.Tensor:
        """Relative positional bias (B, Q, G, heads) of the window's cells."""
        r = self.window // 2
        home = nb.rel[:, :, nb.rel.shape[2] // 2]  # the centre cell is the query's own cell
        offsets = (home.unsqueeze(2) - nb.rel).round().long() + r  # integer cell offsets + r
        return self.pos_bias.window_bias(home, offsets, r)

    def forward(self, maps: StageMaps, coords: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """The residual I_r (B, Q, 1) at coords (B, Q, 2)."""
        B, Q, _ = coords.shape
        h, d = self.heads, self.dim // self.heads
        nb = window_neighbours(coords, maps.H, maps.W, self.window)
        q = sample_cells(maps.q, coords, "bilinear").view(B, Q, h, d)
        k = gather(maps.k, nb.index).view(B, Q, -1, h, d)  # (B, Q, G, h, d)
        v = gather(maps.v, nb.index).view(B, Q, -1, h, d)
        logits = torch.einsum("bqhd,bqghd->bqgh", q, k) / math.sqrt(d) + self.window_bias(nb)
        attn = logits.softmax(dim=2)  # over the window positions
        if self.aggregate == "sum":
            z = torch.einsum("bqgh,bqghd->bqhd", attn, v).reshape(B, Q, self.dim)
        else:
            z = (v * attn.unsqueeze(-1)).reshape(B, Q, -1)
        return self.decoder(torch.cat([z, cell_in_pixels(cell, maps.H, maps.W)], dim=-1))


def stage_from_cfg(cfg: dict) -> LITStage:
    return LITStage(
        dim=int(cfg["dim"]),
        heads=int(cfg["heads"]),
        window=int(cfg.get("window", 7)),
        hidden=cfg["hidden"],
        n_freq=int(cfg.get("n_freq", 16)),
        aggregate=str(cfg.get("aggregate", "sum")),
    )


@register("lit")
class LIT(SRModel):
    """Encoder -> 3x3 conv -> one LIT stage, plus the Q1 interpolant of the LR field."""

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.encoder = build_encoder(cfg["encoder"], cfg.get("encoder_cfg"), cfg["in_channels"])
        self.proj = nn.Conv2d(self.encoder.out_dim, int(cfg["dim"]), 3, padding=1)
        self.stage = stage_from_cfg(cfg)

    def encode(self, inputs: dict):
        feat = self.proj(self.encoder(inputs["image"]))
        return {"lr": inputs["lr"], "maps": self.stage.prepare(feat)}

    def query_encoded(self, state, coords: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        return self.stage(state["maps"], coords, cell) + sample_nodal(
            state["lr"], coords, "bilinear"
        )
