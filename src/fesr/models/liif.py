"""LIIF: local implicit image function (Chen et al. 2021), single output channel.

Faithful to the reference facts (``/work/shared/reference-implementations.md``):

* encoder features unfolded 3x3 (C -> 9C), computed and flattened once per ``encode``;
* for each query the 4 feature cells whose centres surround it (``fesr.models.local.
  four_neighbours``, clamped at the border), their features gathered by index (the
  equivalent of LIIF's nearest sampling with the +-1 pixel shifts);
* MLP input: unfolded feature (9C), relative coordinate (2) and cell (2), both in LIIF's units:
  network-coordinate differences times the map size, i.e. twice our feature-pixel ``rel``;
  hidden 256 x 4 with ReLU at paper size;
* local ensemble: the 4 predictions weighted by the area opposite to each neighbour.

Choices: the cell is the HR *node spacing* 2 / (n alpha) (our HR grid is nodal, there are no
HR pixels). Cost: the MLP's first layer is linear in its input, so its feature part is applied
once per feature cell in ``encode`` (HW rows; as one 3x3 convolution of the features, which
equals unfold-then-matmul and trains several times faster) instead of once per query and
neighbour (4Q rows); the queries gather h0-dim vectors instead of 9C-dim ones: the same function
and the same parameters (``imnet`` is an ordinary MLP on the 9C + 4 input), about 9C / h0 times
less work per query. The neighbours are evaluated one at a time and accumulated. On the grid of
``predict`` the offset terms are per-row and per-column and are cached (``query_grid``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from fesr.coords import hr_cell
from fesr.models.base import SRModel
from fesr.models.encoders import build_encoder
from fesr.models.local import FourGrid, flatten_map, four_neighbours, gather
from fesr.models.mlp import MLP, TileMLP
from fesr.models.registry import register

# Per-neighbour hidden values per tile of the fast grid path (2 MB): in L2, and few Python steps.
GRID_TILE_ELEMS = 1 << 19


def liif_units(rel: torch.Tensor, cell: torch.Tensor, H: int, W: int):
    """(rel in feature pixels, cell in network units) -> LIIF's scaled relative coord and cell."""
    size = torch.tensor([W, H], dtype=cell.dtype, device=cell.device)
    return rel * 2.0, cell * size


@register("liif")
class LIIF(SRModel):
    # The tiny preset's 16-wide MLP fits one sample 8x in 400 steps at 2e-3, 30x at 5e-3.
    fit_test_lr = 5e-3

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        if not cfg.get("encoder"):
            raise ValueError(f"liif: config needs an 'encoder', got {cfg.get('encoder')!r}")
        self.encoder = build_encoder(cfg["encoder"], cfg.get("encoder_cfg"), cfg["in_channels"])
        feat_dim = 9 * self.encoder.out_dim
        self.imnet = MLP(feat_dim + 4, cfg["hidden"], 1)

    def encode(self, inputs: dict):
        feat = self.encoder(inputs["image"])
        # The first layer's feature part on the 3x3-unfolded map (B, HW, h0), as one 3x3 conv:
        # unfold orders its 9C channels (c, ky, kx), which is the conv weight's (h0, C, 3, 3).
        first = self.imnet[0]
        C = feat.shape[1]
        weight = first.weight[:, : 9 * C].reshape(-1, C, 3, 3)
        proj = flatten_map(F.conv2d(feat, weight, padding=1))
        return {"proj": proj, "size": tuple(feat.shape[-2:])}

    def query_encoded(self, state, coords: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        H, W = state["size"]
        nb = four_neighbours(coords, H, W)
        rel, rel_cell = liif_units(nb.rel, cell, H, W)
        first, rest = self.imnet[0], list(self.imnet)[1:]
        w_rel, w_cell = first.weight[:, -4:-2], first.weight[:, -2:]
        common = rel_cell @ w_cell.T + first.bias  # (B, Q, h0)
        out = 0.0
        for k in range(4):
            h = gather(state["proj"], nb.index[..., k]) + rel[:, :, k] @ w_rel.T + common
            for layer in rest:
                h = layer(h)
            out = out + h * nb.weight[..., k : k + 1]
        return out

    def query_grid(self, state, m: int, chunk: int) -> torch.Tensor:
        """The node grid, fast: the first layer's input is proj[cell] + rel_x w_x +
        rel_y w_y + (cell part); on the grid rel_x depends on the column only and rel_y on the
        row only (``FourGrid``), so those terms are computed once per column / row and added by
        broadcasting, and within a band of rows sharing their cells proj[cell] + rel_x w_x is
        formed once. The 4 neighbours of a tile go through the rest of the MLP as one matrix,
        in preallocated buffers. Equal to ``query_encoded`` on ``node_coords(m)`` up to float
        summation order."""
        H, W = state["size"]
        proj = state["proj"]
        B, h0 = proj.shape[0], proj.shape[-1]
        dt, dev = proj.dtype, proj.device
        grid = FourGrid(m, H, W, device=dev, dtype=dt)
        first, rest = self.imnet[0], list(self.imnet)[1:]
        w_rel, w_cell = first.weight[:, -4:-2], first.weight[:, -2:]
        cell = torch.full((1, 2), hr_cell(m), dtype=dt, device=dev)
        common = (cell * torch.tensor([W, H], dtype=dt, device=dev)) @ w_cell.T + first.bias
        tx = (2.0 * grid.rx).unsqueeze(-1) * w_rel[:, 0]  # (4, m+1, h0), LIIF's units
        ty = (2.0 * grid.ry).unsqueeze(-1) * w_rel[:, 1] + common
        widths = [h0] + [layer.out_features for layer in rest if isinstance(layer, nn.Linear)]
        tile = min(chunk, max(1, GRID_TILE_ELEMS // (4 * max(widths))))
        run = TileMLP(rest, 4 * tile, widths, dt, dev)
        out = torch.empty(B, m + 1, m + 1, dtype=dt, device=dev)
        for i0, i1, j0, j1, band in grid.tiles(tile):
            R, C = i1 - i0, j1 - j0
            wgt = grid.weights(i0, i1, j0, j1)
            idx = grid.index(i0, i0 + 1 if band else i1, j0, j1).view(-1)
            for b in range(B):
                g = proj[b].index_select(0, idx).view(4, -1, C, h0)
                h = run.input(4 * R * C).view(4, R, C, h0)
                # in a band g has one row (the rows share their cells) and is broadcast
                torch.add(g.add_(tx[:, None, j0:j1]), ty[:, i0:i1, None], out=h)
                pred = run(h.view(-1, h0)).view(4, R, C).mul_(wgt)
                out[b, i0:i1, j0:j1] = pred[0] + pred[1] + pred[2] + pred[3]
        return out
