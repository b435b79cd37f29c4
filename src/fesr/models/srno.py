"""SRNO: the Super-Resolution Neural Operator (Wei and Zhang, CVPR 2023; poster + public code).

1. Lifting z_0(x) = L(c, {s_l E(a)(x_l), delta_l(x)}_{l=1..4}): for the 4 feature cells around x
   (``fesr.models.local.four_neighbours``: LIIF's cells and area weights s_l), concatenate the 4
   offsets delta_l (feature pixels), the 4 features each multiplied by its area weight, and the
   cell (feature pixels), then a linear map (the paper's 1x1 conv) to ``width``.
2. ``blocks`` Galerkin-type attention blocks (the kernel integral, no softmax). Per head,
   q, k, v = linear maps of z; k and v layer-normalised over the head's channels (learned
   per-head scale and shift);

       K(z)(x) = q(x) (1/N sum_y k(y)^T v(y)),

   a mean over the N query points: the discretisation of the integral over the domain. Then
   h = z + K(z) and z' = h + W2 GELU(W1 h) (the 1x1-GELU-1x1 feed-forward).
3. Projection W4 GELU(W3 z) -> 1 value, plus the Q1 interpolant of the LR field (skip).

The attention is global over the query points, so the output at x depends on the whole point set.
What each entry point computes:

* ``query(inputs, coords, cell)`` / ``query_encoded``: attention over the given points (N = Q).
  In training those are ``sample_q`` random HR nodes per sample (the public code queries whole
  HR patches instead): since 1/N sum_y k(y)^T v(y) over uniformly random nodes is an unbiased
  Monte-Carlo estimate of the mean over all nodes, i.e. of the integral of k^T v over the domain,
  training on random subsets and testing on all nodes compute the same operator, discretised
  differently (the neural-operator view; the estimate's error falls like 1/sqrt(sample_q), and
  later blocks see it through a nonlinearity, so the subset output is consistent, not unbiased).
* ``predict(inputs, alpha, chunk)``: attention over *all* (m+1)^2 HR nodes, exactly equal (up
  to summation order) to one ``query`` over all nodes, with memory bounded by the chunk. Block
  b needs the sum of k_b^T v_b over all nodes, and k_b depends on block b-1's output at every
  node, so the evaluation makes ``blocks + 1`` passes over the chunks: pass b recomputes the
  lifting and blocks 1..b-1 (with their already-complete sums) per chunk and accumulates block
  b's (heads, d, d) sum in float64; the last pass produces the output. Storing z per node instead
  would cost width x 4 bytes x (m+1)^2 (537 MB at width 32, 2049^2 nodes; 4.3 GB at paper width
  256), so beyond ``Z_CACHE_BYTES`` we recompute: (blocks + 1) (blocks + 2) / 2 block
  evaluations per node instead of ``blocks``, and a peak memory that does not grow with alpha
  beyond the output itself. Below it (quick sizes at every scale) z is stored per node and each
  block runs once, on a lifting computed with the grid's structure (``lift_grid``).

Deviations from the public code (read for facts only): its feed-forward residual adds the block
*input* (z' = z + FFN(z + K(z))); we use the standard form above, which the SRNO poster's
z_{t+1} = sigma(W z_t + K(z_t)) does not decide between. Its layer norm divides by the unbiased
std plus eps; we use ``torch.nn.functional.layer_norm``. The cell enters in feature pixels
(cell * H / 2), like the offsets.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from fesr.coords import hr_cell, node_coords, sample_nodal
from fesr.models.base import SRModel, hr_size
from fesr.models.encoders import build_encoder
from fesr.models.liif import GRID_TILE_ELEMS
from fesr.models.lit import cell_in_pixels
from fesr.models.local import FourGrid, flatten_map, four_neighbours, gather, q1_grid
from fesr.models.mlp import MLP
from fesr.models.registry import register

# Largest per-node z cache predict() keeps (else it recomputes z per pass, see the module doc):
# 268 MB at quick width 16 and 64x; paper width 256 at 64x (4.3 GB) recomputes.
Z_CACHE_BYTES = 1 << 30
NARROW = 64  # widest z for the regrouped block evaluation of the cached path


class HeadNorm(nn.Module):
    """Layer norm over each head's channels, with a learned scale and shift per head."""

    def __init__(self, heads: int, head_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(heads, head_dim))
        self.bias = nn.Parameter(torch.zeros(heads, head_dim))

    def forward(self, x):  # (B, N, heads, head_dim)
        return F.layer_norm(x, x.shape[-1:]) * self.weight + self.bias


class GalerkinBlock(nn.Module):
    """One Galerkin-type linear attention block plus feed-forward, both with residuals."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"srno: width ({width}) must be divisible by heads ({heads})")
        self.heads, self.head_dim = heads, width // heads
        self.qkv = nn.Linear(width, 3 * width)
        self.k_norm = HeadNorm(heads, self.head_dim)
        self.v_norm = HeadNorm(heads, self.head_dim)
        self.ffn = MLP(width, width, width, act=nn.GELU)

    def _qkv(self, z):
        B, N, _ = z.shape
        q, k, v = self.qkv(z).view(B, N, 3, self.heads, self.head_dim).unbind(2)
        return q, self.k_norm(k), self.v_norm(v)

    def kv_sum(self, z: torch.Tensor) -> torch.Tensor:
        """sum over the points of k^T v per head: (B, heads, d, d)."""
        _, k, v = self._qkv(z)
        return torch.einsum("bnhd,bnhe->bhde", k, v)

    def attend(self, z: torch.Tensor, kv_mean: torch.Tensor) -> torch.Tensor:
        """The block at points z (B, N', width) given the mean of k^T v over the whole point set."""
        B, N, W = z.shape
        q = F.linear(z, self.qkv.weight[:W], self.qkv.bias[:W]).view(
            B, N, self.heads, self.head_dim
        )
        h = z + torch.einsum("bnhd,bhde->bnhe", q, kv_mean).reshape(B, N, W)
        return h + self.ffn(h)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Attention over exactly the points of z (one pass)."""
        kv = self.kv_sum(z).double() / z.shape[1]
        return self.attend(z, kv.to(z.dtype))


@register("srno")
class SRNO(SRModel):
    """Encoder -> 4-neighbour lifting -> Galerkin attention blocks -> projection + Q1 skip."""

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        width, heads, n_blocks = int(cfg["width"]), int(cfg["heads"]), int(cfg["blocks"])
        self.encoder = build_encoder(cfg["encoder"], cfg.get("encoder_cfg"), cfg["in_channels"])
        C = self.encoder.out_dim
        self.lift = nn.Linear(4 * 2 + 4 * C + 2, width)
        self.blocks = nn.ModuleList([GalerkinBlock(width, heads) for _ in range(n_blocks)])
        self.head = MLP(width, int(cfg["proj_hidden"]), 1, act=nn.GELU)

    def encode(self, inputs: dict):
        feat = self.encoder(inputs["image"])
        return {
            "lr": inputs["lr"],
            "flat": flatten_map(feat),
            "H": feat.shape[-2],
            "W": feat.shape[-1],
        }

    def lifted(self, state, coords: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        H, W = state["H"], state["W"]
        nb = four_neighbours(coords, H, W)
        feats = gather(state["flat"], nb.index) * nb.weight.unsqueeze(-1)  # (B, Q, 4, C)
        x = torch.cat([nb.rel.flatten(-2), feats.flatten(-2), cell_in_pixels(cell, H, W)], dim=-1)
        return self.lift(x)

    def output(self, state, z: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        return self.head(z) + sample_nodal(state["lr"], coords, "bilinear")

    def query_encoded(self, state, coords: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        z = self.lifted(state, coords, cell)
        for block in self.blocks:
            z = block(z)
        return self.output(state, z, coords)

    @torch.inference_mode()
    def predict(self, inputs: dict, alpha: float, chunk: int = 65536, state=None) -> torch.Tensor:
        """Attention over all (m+1)^2 HR nodes (module doc): with z cached per node when it fits
        ``Z_CACHE_BYTES`` (one pass per block), else in ``blocks + 1`` chunked passes that
        recompute z. ``state``: ``encode(inputs)`` if the caller has it."""
        lr = inputs["lr"]
        B, n = lr.shape[0], lr.shape[-1] - 1
        m = hr_size(n, alpha)
        state = self.encode(inputs) if state is None else state
        if B * (m + 1) ** 2 * self.lift.out_features * lr.element_size() <= Z_CACHE_BYTES:
            return self._predict_cached(state, m, chunk)
        coords_all = node_coords(m, device=lr.device, dtype=lr.dtype)
        N = coords_all.shape[0]

        def chunks():
            for start in range(0, N, chunk):
                c = coords_all[start : start + chunk].unsqueeze(0).expand(B, -1, -1)
                yield start, c, torch.full_like(c, hr_cell(m))

        def through(c, cell, n_blocks, means):
            z = self.lifted(state, c, cell)
            for block, kv in zip(self.blocks[:n_blocks], means, strict=True):
                z = block.attend(z, kv)
            return z

        means: list[torch.Tensor] = []
        for b, block in enumerate(self.blocks):
            acc = None
            for _, c, cell in chunks():
                part = block.kv_sum(through(c, cell, b, means)).double()
                acc = part if acc is None else acc + part
            means.append((acc / N).to(lr.dtype))
        out = torch.empty(B, N, device=lr.device, dtype=lr.dtype)
        for start, c, cell in chunks():
            z = through(c, cell, len(self.blocks), means)
            out[:, start : start + c.shape[1]] = self.output(state, z, c)[..., 0]
        return out.reshape(B, m + 1, m + 1)

    def lift_grid(self, state, m: int, chunk: int = 65536) -> torch.Tensor:
        """``lifted`` at every node of the m x m mesh, (B, (m+1)^2, width), fast: the lifting is
        linear, so each neighbour slot's feature part is one product per feature cell (P_k), the
        offset part a sum of per-column and per-row terms (``FourGrid``), and a node adds its
        4 gathered, area-weighted P_k rows to those."""
        H, W = state["H"], state["W"]
        flat = state["flat"]
        B, C = flat.shape[0], flat.shape[-1]
        dt, dev = flat.dtype, flat.device
        grid = FourGrid(m, H, W, device=dev, dtype=dt)
        w = self.lift.weight
        width = w.shape[0]
        cell = cell_in_pixels(torch.full((1, 2), hr_cell(m), dtype=dt, device=dev), H, W)
        tx = grid.rx.T @ w[:, 0:8:2].T  # (m+1, width): slots k = 0..3, x then y per slot
        ty = grid.ry.T @ w[:, 1:8:2].T + (cell @ w[:, 8 + 4 * C :].T + self.lift.bias)
        wf = w[:, 8 : 8 + 4 * C].reshape(width, 4, C).permute(1, 2, 0)  # (4, C, width)
        z = torch.empty(B, m + 1, m + 1, width, dtype=dt, device=dev)
        tile = min(chunk, max(1, GRID_TILE_ELEMS // (4 * width)))
        for b in range(B):
            proj = torch.matmul(flat[b], wf).view(4 * H * W, width)  # P_k of every cell
            for i0, i1, j0, j1, band in grid.tiles(tile):
                k_off = torch.arange(4, device=dev).view(4, 1, 1) * (H * W)
                idx = (grid.index(i0, i0 + 1 if band else i1, j0, j1) + k_off).view(-1)
                g = proj.index_select(0, idx).view(4, -1, j1 - j0, width)
                g = g * grid.weights(i0, i1, j0, j1).unsqueeze(-1)  # band: broadcast rows
                zt = z[b, i0:i1, j0:j1]
                torch.add(g[0] + g[1], g[2] + g[3], out=zt)
                zt += tx[j0:j1]
                zt += ty[i0:i1].unsqueeze(1)
        return z.view(B, -1, width)

    def _predict_cached(self, state, m: int, chunk: int) -> torch.Tensor:
        """The exact operator of one ``query_encoded`` over all nodes, z stored per node: the
        lifting once (``lift_grid``), then per block one pass for the sum of k^T v (float64
        accumulation) and one that updates z in place, then the projection and the Q1 skip.
        Same function as ``GalerkinBlock``, regrouped for narrow widths (<= ``NARROW``, where
        per-row overheads dominate): the per-head layer norms as products with a block-averaging
        matrix, the per-head k^T v as one product whose diagonal blocks are kept, and the
        attention's q-projection folded into one matrix, z + (z Wq^T + bq) KV =
        z (I + Wq^T KV) + bq KV. Wider blocks run as they are (those products would cost
        width^2 per node)."""
        z = self.lift_grid(state, m, chunk)
        B, N, width = z.shape
        tile = min(chunk, max(1, GRID_TILE_ELEMS // (3 * width)))
        eye = torch.eye(width, dtype=z.dtype, device=z.device)
        for block in self.blocks:
            if width > NARROW:
                for b in range(B):
                    zb = z[b : b + 1]
                    acc = sum(block.kv_sum(zb[:, s : s + tile]).double() for s in range(0, N, tile))
                    kv = (acc / N).to(z.dtype)
                    for s in range(0, N, tile):
                        zb[:, s : s + tile] = block.attend(zb[:, s : s + tile], kv)
                continue
            heads, d = block.heads, block.head_dim
            diag = torch.block_diag(*[torch.ones(d, d, dtype=z.dtype, device=z.device)] * heads)
            avg = diag / d  # x @ avg: each channel gets the mean of its head's channels
            w, bias = block.qkv.weight, block.qkv.bias
            norms = [
                (block.k_norm, w[width : 2 * width], bias[width : 2 * width]),
                (block.v_norm, w[2 * width :], bias[2 * width :]),
            ]
            for b in range(B):
                acc = torch.zeros(width, width, dtype=torch.float64, device=z.device)
                for s in range(0, N, tile):
                    zk = z[b, s : s + tile]
                    k, v = (
                        _head_norm(torch.addmm(bb, zk, ww.T), norm, avg) for norm, ww, bb in norms
                    )
                    acc += (k.T @ v).double()
                kv = (acc / N).to(z.dtype) * diag  # the heads' (d x d) blocks
                fold = eye + w[:width].T @ kv
                shift = bias[:width] @ kv
                first, act, second = block.ffn
                for s in range(0, N, tile):
                    zt = z[b, s : s + tile]
                    h = torch.addmm(shift, zt, fold)
                    u = act(torch.addmm(first.bias, h, first.weight.T))
                    torch.addmm(h, u, second.weight.T, out=zt).add_(second.bias)
        out = torch.empty(B, N, dtype=z.dtype, device=z.device)
        for s in range(0, N, tile):
            out[:, s : s + tile] = self.head(z[:, s : s + tile])[..., 0]
        return out.view(B, m + 1, m + 1) + q1_grid(state["lr"], m)


def _head_norm(x: torch.Tensor, norm: HeadNorm, avg: torch.Tensor) -> torch.Tensor:
    """``norm`` (layer norm over each head's channels, F.layer_norm's eps) of rows x (N, width),
    with the per-head means taken as products with the block-averaging matrix ``avg``: a few
    whole-row passes instead of a normalisation of many 8-wide rows."""
    xc = x - x @ avg
    var = (xc * xc) @ avg
    return torch.addcmul(
        norm.bias.reshape(-1), xc * torch.rsqrt(var.add_(1e-5)), norm.weight.reshape(-1)
    )
