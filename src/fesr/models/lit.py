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

Fast ``predict``: ``query_grid`` evaluates the HR node grid by ``LITStage.grid``, the
same values as ``query_encoded`` on ``node_coords(m)`` (float rounding apart; ``forward`` stays
the general path used in training). A node's window depends only on its home cell, per axis and
clamping included, so nodes are grouped by home cell: each group's window keys and values are
gathered once and met with one small matmul (not gathered per node); the positional bias is a
sum of per-axis tables (one entry per node of an axis, not per node and neighbour) carried
inside that matmul; q's bilinear weights are per axis; the constant cell is folded into the
decoder's first bias. Where cells hold few nodes (CLIT's second stage at 16x: 2 x 2), a group
spans a block of cells and meets the union of its nodes' windows, a cell outside a node's window
masked by MASK_BIAS (``axis_groups``; the sum aggregation only), so that the products stay large
enough to be efficient (GROUP_NODES).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from fesr.coords import hr_cell, node_positions, sample_cells, sample_nodal, to_network
from fesr.models.base import SRModel
from fesr.models.encoders import build_encoder
from fesr.models.local import flatten_map, gather, grid_axis, window_neighbours
from fesr.models.mlp import MLP
from fesr.models.registry import register

AGGREGATIONS = ("sum", "concat")
TILE_FLOATS = 8 * 2**20  # temporaries of one tile of the grid path (32 MB in float32)
# A bias that no query-key product comes near: exp of it, less a row's maximum, is exactly 0 in
# float32 (finite, unlike -inf, because it enters a matrix product against zeros).
MASK_BIAS = -1.0e4
GROUP_NODES = 16  # groups of the grid path span several cells until they hold this many nodes


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
        bias = self.proj.bias
        for axis in range(2):
            bias = bias + self.axis_bias(home_rel[..., axis], offsets[..., axis], radius, axis)
        return bias  # (B, Q, G, heads)

    def axis_bias(
        self, a: torch.Tensor, offsets: torch.Tensor, radius: int, axis: int
    ) -> torch.Tensor:
        """One axis's part of ``window_bias`` (without ``proj.bias``): ``a`` (...,) the query's
        offset from its home cell along ``axis`` (0: x, 1: y), ``offsets`` (..., G) the integer
        cell offsets + radius -> (..., G, heads). The node grid's fast path calls it per axis."""
        nf, heads = self.freqs.numel(), self.proj.out_features
        d = torch.arange(-radius, radius + 1, device=a.device, dtype=torch.float64)
        fd = d[:, None] * self.freqs.to(torch.float64)  # (D, nf)
        cos_fd, sin_fd = fd.cos().to(a.dtype), fd.sin().to(a.dtype)
        w = self.proj.weight.view(heads, 2, 2, nf)  # (heads, sin|cos, x|y, nf)
        ws, wc = w[:, 0, axis], w[:, 1, axis]  # (heads, nf)
        m_sin = torch.einsum("hf,df->fdh", ws, cos_fd) + torch.einsum("hf,df->fdh", wc, sin_fd)
        m_cos = torch.einsum("hf,df->fdh", wc, cos_fd) - torch.einsum("hf,df->fdh", ws, sin_fd)
        angle = a.unsqueeze(-1) * self.freqs  # (..., nf)
        table = torch.einsum("...f,fdh->...dh", angle.sin(), m_sin) + torch.einsum(
            "...f,fdh->...dh", angle.cos(), m_cos
        )  # (..., D, heads)
        idx = offsets.unsqueeze(-1).expand(*offsets.shape, heads)
        return torch.gather(table, -2, idx)


@dataclass
class AxisGroups:
    """One axis of the HR node grid against a feature-map axis, for ``LITStage.grid``.

    The window of a node depends only on its home cell (borders included: clamping is per
    axis), so the nodes of one axis are cut into groups of consecutive nodes whose home cells
    lie in one block of ``span`` cells, at most ``P`` per group (longer runs, like the border
    cell's extra node, are split) and padded to ``P`` by repeating the group's last node (the
    padded copies compute the same value and are written to the same node). A group meets the
    union of its nodes' windows (D = window + span - 1 cells; a cell outside a node's window
    gets the bias MASK_BIAS, whose softmax weight is exactly 0), so that narrow cells of few
    nodes still make groups large enough for efficient products. Everything offset-dependent is
    per node of this axis.
    """

    nodes: torch.Tensor  # (Ng, P) node index along the axis
    window: torch.Tensor  # (Ng, D) the group's window (union) cells along the axis (clamped)
    lo: torch.Tensor  # (Ng * P,) bilinear taps of q (cell-centred, border-clamped) ...
    hi: torch.Tensor
    w_lo: torch.Tensor  # (Ng * P, 1) ... and their weights
    w_hi: torch.Tensor
    bias: torch.Tensor  # (Ng, heads, D, P) this axis's part of the positional bias


def axis_groups(
    stage: LITStage, m: int, size: int, axis: int, device, dtype, span: int = 1
) -> AxisGroups:
    """The node grid of an m x m mesh along one axis of a ``size``-cell map (see AxisGroups)."""
    r = stage.window // 2
    ga = grid_axis(m, size, window=stage.window, device=device, dtype=dtype)
    home = ga.index[:, r]
    block = home // span
    # runs of equal block of home cells (non-decreasing along the axis), cut into pieces of P
    P = max(1, math.ceil(m / size)) * span
    _, counts = torch.unique_consecutive(block, return_counts=True)
    groups = []
    start = 0
    for c in counts.tolist():
        for s0 in range(start, start + c, P):
            idx = list(range(s0, min(s0 + P, start + c)))
            groups.append(idx + [idx[-1]] * (P - len(idx)))
        start += c
    nodes = torch.tensor(groups, dtype=torch.long, device=device)  # (Ng, P)
    flat = nodes.reshape(-1)
    # q's bilinear taps as grid_sample(align_corners=False, padding_mode="border") takes them
    t = torch.as_tensor(to_network(node_positions(m)), dtype=dtype, device=device)[flat]
    f = (((t + 1) * size - 1) / 2).clamp(0, size - 1)
    lo = f.floor()
    w_hi = (f - lo).unsqueeze(-1)
    lo = lo.long()
    hi = (lo + 1).clamp(max=size - 1)
    # positional bias of this axis, as window_bias computes it (the x part carries proj.bias)
    a = ga.rel[:, r]
    offsets = (a.unsqueeze(-1) - ga.rel).round().long() + r
    bias = stage.pos_bias.axis_bias(a, offsets, r, axis)  # (m+1, window, heads)
    if axis == 0:
        bias = stage.pos_bias.proj.bias + bias
    D = stage.window + span - 1
    # window entry e of node j sits at union position (home - block start) + e
    pos = (home - block * span).unsqueeze(1) + torch.arange(stage.window, device=device)
    union = bias.new_full((m + 1, D, bias.shape[-1]), MASK_BIAS)
    union.scatter_(1, pos.unsqueeze(-1).expand_as(bias), bias)
    cells = block[nodes[:, 0]].unsqueeze(1) * span - r + torch.arange(D, device=device)
    return AxisGroups(
        nodes=nodes,
        window=cells.clamp_(0, size - 1),
        lo=lo,
        hi=hi,
        w_lo=1 - w_hi,
        w_hi=w_hi,
        bias=union[nodes].permute(0, 3, 2, 1).contiguous(),  # (Ng, heads, D, P)
    )


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

    def grid(self, maps: StageMaps, m: int, cell: torch.Tensor, chunk: int) -> torch.Tensor:
        """``forward`` on every node of the m x m mesh's grid, (B, m+1, m+1): the fast path.

        Same values as ``forward`` on ``node_coords(m)`` (float rounding apart), cheaper because
        the grid is regular: the window of a node depends only on its home cell, so nodes are
        grouped by home cell (``AxisGroups``) and each group's window keys/values are read once
        and met with a small matmul; the positional bias is a sum of per-axis tables (computed
        once per node of an axis, not per node and neighbour); q's bilinear weights are per axis;
        the constant cell is folded into the decoder's first bias. ``cell`` (2,) is the HR cell
        in network units (x, y). ``chunk`` bounds the nodes per pass.
        """
        B, HW, dim = maps.k.shape
        H, W, h = maps.H, maps.W, self.heads
        dev, dt = maps.k.device, maps.k.dtype
        # cells of few nodes: groups over blocks of cells and their union of windows (sum
        # aggregation only: concat keeps the window's layout)
        per_cell = max(1, math.ceil(m / max(H, W))) ** 2
        span = 1
        if self.aggregate == "sum":
            while per_cell * span * span < GROUP_NODES:
                span += 1
        gx = axis_groups(self, m, W, 0, dev, dt, span)
        gy = axis_groups(self, m, H, 1, dev, dt, span)
        d, D = dim // h, gx.window.shape[1]
        G = D * D
        Ngx, Px = gx.nodes.shape
        Ngy, Py = gy.nodes.shape
        kv = torch.cat([maps.k, maps.v], dim=-1)  # one gather for both
        qmap = maps.q.permute(0, 2, 3, 1) * (1.0 / math.sqrt(d))  # (B, H, W, dim), pre-scaled
        # the decoder's first layer with the constant cell (in feature pixels) in its bias
        first = self.decoder[0]
        z_dim = first.in_features - 2
        cpx = cell_in_pixels(cell.to(dt), H, W)
        b0 = first.bias + first.weight[:, z_dim:] @ cpx
        w0 = first.weight[:, :z_dim]
        rest = nn.Sequential(*list(self.decoder)[1:])
        # windows of all column groups, per window row dy: (Ngx, G) offsets into a map row
        win_x = gx.window.unsqueeze(1).expand(Ngx, D, D)  # (Ngx, Dy, Dx)
        # window cell g = D dy + dx: one-hot of dx, then of dy (G, 2D)
        g = torch.arange(G, device=dev)
        j = torch.arange(D, device=dev)
        onehot = torch.cat([g[:, None] % D == j, g[:, None] // D == j], dim=1).to(dt)
        out = maps.k.new_empty(B, m + 1, m + 1)
        # Tiles of whole groups, at most ``chunk`` nodes and about TILE_FLOATS floats of
        # temporaries (at paper size and P = 1 a node's window alone is 25k floats): row groups
        # x all columns, or one row group x a range of column groups when a row group is larger.
        per_group = G * (2 * dim + h * (d + 2 * D))
        per_node = 2 * h * (d + 2 * D) + 2 * G * h + 2 * dim + 2 * w0.shape[0]
        cap = TILE_FLOATS // (per_node + per_group // (Py * Px))
        chunk = max(1, min(int(chunk), cap))
        cstep = max(1, min(Ngx, chunk // (Py * Px)))
        step = max(1, chunk // (Py * Ngx * Px)) if cstep == Ngx else 1
        for g0 in range(0, Ngy, step):
            g1 = min(g0 + step, Ngy)
            ny = g1 - g0
            T = ny * Py
            sl = slice(g0 * Py, g1 * Py)
            # q: bilinear along y (here), then along x (per column tile)
            qy = qmap[:, gy.lo[sl]] * gy.w_lo[sl, None] + qmap[:, gy.hi[sl]] * gy.w_hi[sl, None]
            rows = gy.nodes[g0:g1].reshape(-1)
            for c0 in range(0, Ngx, cstep):
                c1 = min(c0 + cstep, Ngx)
                nx = c1 - c0
                cs = slice(c0 * Px, c1 * Px)
                q = qy[:, :, gx.lo[cs]] * gx.w_lo[cs] + qy[:, :, gx.hi[cs]] * gx.w_hi[cs]
                # Transposed (window cell x node) layout: the softmax runs over a non-last
                # axis, which torch vectorises along the nodes (over a last axis of 9 or 49 it
                # is slow). The bias rides in the matmul: keys get one-hot columns of their
                # window row and column, queries the matching rows of the per-axis bias
                # tables, so [k | e_x | e_y] . [q; b_x; b_y] = q.k + b_x + b_y, no extra pass.
                qa = q.new_empty(B, ny, nx, h, d + 2 * D, Py, Px)
                qa[..., :d, :, :] = q.view(B, ny, Py, nx, Px, h, d).permute(0, 1, 3, 5, 6, 2, 4)
                qa[..., d : d + D, :, :] = gx.bias[c0:c1, :, :, None, :]
                qa[..., d + D :, :, :] = gy.bias[g0:g1, None, :, :, :, None]
                # the window of every (row group, column group) pair: (ny, nx, G) cell indices
                idx = gy.window[g0:g1, None, :, None] * W + win_x[c0:c1].unsqueeze(0)
                kvw = kv[:, idx.reshape(ny, nx, G)]  # (B, ny, nx, G, 2 dim)
                ka = q.new_empty(B, ny, nx, h, G, d + 2 * D)
                ka[..., :d] = kvw[..., :dim].reshape(B, ny, nx, G, h, d).transpose(3, 4)
                ka[..., d:] = onehot
                v = kvw[..., dim:].reshape(B, ny, nx, G, h, d).permute(0, 1, 2, 4, 5, 3)
                logits = ka @ qa.view(B, ny, nx, h, d + 2 * D, Py * Px)  # (.., h, G, Py*Px)
                if Py * Px >= 8:
                    attn = logits.softmax(dim=-2)
                else:  # few nodes per group: put the column groups innermost for the softmax
                    attn = logits.permute(0, 1, 3, 4, 2, 5).contiguous().softmax(dim=3)
                    attn = attn.permute(0, 1, 4, 2, 3, 5)
                if self.aggregate == "sum":
                    z = v @ attn  # (B, ny, nx, h, d, Py*Px)
                    z = z.view(B, ny, nx, h, d, Py, Px).permute(0, 1, 5, 2, 6, 3, 4)
                else:  # every weighted value, ordered (window cell, head, channel) as forward
                    z = attn.unsqueeze(-2) * v.transpose(-1, -2).unsqueeze(-1)  # (h, G, d, PP)
                    z = z.view(B, ny, nx, h, G, d, Py, Px).permute(0, 1, 6, 2, 7, 4, 3, 5)
                z = z.reshape(B, T, nx * Px, z_dim)
                res = rest(F.linear(z, w0, b0))[..., 0]  # (B, T, nx*Px)
                cols = gx.nodes[c0:c1].reshape(-1)
                out[:, rows[:, None], cols[None, :]] = res
        return out


def stage_from_cfg(cfg: dict) -> LITStage:
    return LITStage(
        dim=int(cfg["dim"]),
        heads=int(cfg["heads"]),
        window=int(cfg["window"]),
        hidden=cfg["hidden"],
        n_freq=int(cfg["n_freq"]),
        aggregate=str(cfg["aggregate"]),
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

    def query_grid(self, state, m: int, chunk: int) -> torch.Tensor:
        cell = grid_cell(m, state["lr"])
        return self.stage.grid(state["maps"], m, cell, chunk) + q1_grid(state["lr"], m)


def grid_cell(m: int, like: torch.Tensor) -> torch.Tensor:
    """The HR cell (x, y) of the m x m mesh, as ``predict``'s general path builds it."""
    return torch.full((2,), hr_cell(m), dtype=like.dtype, device=like.device)


def q1_grid(lr: torch.Tensor, m: int) -> torch.Tensor:
    """The Q1 interpolant of the nodal LR field (B, 1, n+1, n+1) on the m x m mesh's nodes
    (B, m+1, m+1): ``sample_nodal`` at ``node_coords(m)``, by separable interpolation."""
    return F.interpolate(lr, size=(m + 1, m + 1), mode="bilinear", align_corners=True)[:, 0]
