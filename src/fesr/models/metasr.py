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

Cost: the prediction is ``f . (W h + b)`` with (W, b) the weight MLP's last layer and h its
last hidden vector, which equals ``h . (W^T f) + b . f``. ``encode`` computes ``W^T f`` and
``b . f`` once per feature cell, so a query costs a dot product of hidden size instead of a
(hidden x 9C) matrix product and a 9C-long gather: the same function, the same parameters.
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
        flat = flatten_map(unfold3x3(feat))  # (B, HW, 9C)
        last = self.weight_net[-1]
        # per cell: W^T f (B, HW, h) and b . f (B, HW, 1), so that f . (W h + b) = [h, 1] . that
        proj = torch.cat([flat @ last.weight, (flat @ last.bias).unsqueeze(-1)], dim=-1)
        return {"proj": proj, "size": tuple(feat.shape[-2:])}

    def query_encoded(self, state, coords: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        H, W = state["size"]
        nb = window_neighbours(coords, H, W, 1)  # the containing cell
        offset = nb.rel[:, :, 0] + 0.5  # from the cell's lower corner, in pixels
        r_rev = cell[..., :1] * (W / 2.0)  # 1 / scale in feature pixels
        h = torch.cat([offset, r_rev], dim=-1)
        for layer in list(self.weight_net)[:-1]:
            h = layer(h)
        h = torch.cat([h, torch.ones_like(h[..., :1])], dim=-1)
        return (h * gather(state["proj"], nb.index[..., 0])).sum(-1, keepdim=True)
