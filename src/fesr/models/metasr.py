"""Meta-SR's meta-upscale module (Hu et al. 2019), as re-implemented in the LIIF code base.

* Encoder features unfolded 3x3 (C -> 9C), flattened once per ``encode``.
* Location projection: each query reads the feature cell that contains it (no ensemble).
* Weight prediction: an MLP (3 -> 256 -> 9C at paper size, ReLU) maps the query's offset
  inside that cell and 1/scale to a per-query weight vector; the output is the dot product of
  the weights with the cell's unfolded feature (no bias), one output channel.

Choices: Meta-SR projects the top-left corner of an HR *pixel* (``coord - cell / 2``) to the LR
pixel; our HR grid is nodal, so the node itself is projected. The offset is measured from the
cell's lower corner in feature pixels, in [0, 1) (Meta-SR's ``i/r - floor(i/r)``), and 1/scale is
the cell size in feature pixels (LIIF's ``r_rev``).
"""

from __future__ import annotations

import torch

from fesr.models.base import SRModel
from fesr.models.encoders import build_encoder
from fesr.models.local import MLP, flatten_map, gather, unfold3x3, window_neighbours
from fesr.models.registry import register


@register("metasr")
class MetaSR(SRModel):
    def __init__(self, cfg: dict):
        super().__init__(cfg)
        if not cfg.get("encoder"):
            raise ValueError(f"metasr: config needs an 'encoder', got {cfg.get('encoder')!r}")
        self.encoder = build_encoder(cfg["encoder"], cfg.get("encoder_cfg"), cfg["in_channels"])
        self.feat_dim = 9 * self.encoder.out_dim
        self.weight_net = MLP(3, cfg.get("hidden", 256), self.feat_dim)

    def encode(self, inputs: dict):
        feat = self.encoder(inputs["image"])
        return {"flat": flatten_map(unfold3x3(feat)), "size": tuple(feat.shape[-2:])}

    def query_encoded(self, state, coords: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        H, W = state["size"]
        nb = window_neighbours(coords, H, W, 1)  # the containing cell
        feat = gather(state["flat"], nb.index[..., 0])  # (B, Q, 9C)
        offset = nb.rel[:, :, 0] + 0.5  # from the cell's lower corner, in pixels
        r_rev = cell[..., :1] * (W / 2.0)  # 1 / scale in feature pixels
        weights = self.weight_net(torch.cat([offset, r_rev], dim=-1))  # (B, Q, 9C)
        return (weights * feat).sum(-1, keepdim=True)
