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
once per feature cell in ``encode`` (HW rows) instead of once per query and neighbour (4Q rows)
and the queries gather h0-dim vectors instead of 9C-dim ones: the same function and the same
parameters (``imnet`` is an ordinary MLP on the 9C + 4 input), about 9C / h0 times less work per
query. The neighbours are evaluated one at a time and accumulated.
"""

from __future__ import annotations

import torch

from fesr.models.base import SRModel
from fesr.models.encoders import build_encoder
from fesr.models.local import MLP, flatten_map, four_neighbours, gather, unfold3x3
from fesr.models.registry import register


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
        self.imnet = MLP(feat_dim + 4, cfg.get("hidden", [256, 256, 256, 256]), 1)

    def encode(self, inputs: dict):
        feat = self.encoder(inputs["image"])
        flat = flatten_map(unfold3x3(feat))  # (B, HW, 9C)
        first = self.imnet[0]
        proj = flat @ first.weight[:, : flat.shape[-1]].T  # first layer's feature part, (B, HW, h0)
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
