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
  256), so we recompute: (blocks + 1) (blocks + 2) / 2 block evaluations per node instead of
  ``blocks``, and a peak memory that does not grow with alpha beyond the output itself.

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
from fesr.models.lit import cell_in_pixels
from fesr.models.local import MLP, flatten_map, four_neighbours, gather
from fesr.models.registry import register


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
        width, heads, n_blocks = int(cfg["width"]), int(cfg["heads"]), int(cfg.get("blocks", 2))
        self.encoder = build_encoder(cfg["encoder"], cfg.get("encoder_cfg"), cfg["in_channels"])
        C = self.encoder.out_dim
        self.lift = nn.Linear(4 * 2 + 4 * C + 2, width)
        self.blocks = nn.ModuleList([GalerkinBlock(width, heads) for _ in range(n_blocks)])
        self.head = MLP(width, int(cfg.get("proj_hidden", width)), 1, act=nn.GELU)

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

    @torch.no_grad()
    def predict(self, inputs: dict, alpha: float, chunk: int = 65536) -> torch.Tensor:
        """Attention over all (m+1)^2 HR nodes, in ``blocks + 1`` chunked passes (module doc)."""
        lr = inputs["lr"]
        B, n = lr.shape[0], lr.shape[-1] - 1
        m = hr_size(n, alpha)
        state = self.encode(inputs)
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
