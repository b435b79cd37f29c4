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
import torch.nn.functional as F

from fesr.coords import hr_cell
from fesr.models.base import SRModel
from fesr.models.encoders import build_encoder
from fesr.models.local import flatten_map, gather, grid_axis, window_neighbours
from fesr.models.mlp import MLP
from fesr.models.registry import register


@register("metasr")
class MetaSR(SRModel):
    def __init__(self, cfg: dict):
        super().__init__(cfg)
        if not cfg.get("encoder"):
            raise ValueError(f"metasr: config needs an 'encoder', got {cfg.get('encoder')!r}")
        self.encoder = build_encoder(cfg["encoder"], cfg.get("encoder_cfg"), cfg["in_channels"])
        self.feat_dim = 9 * self.encoder.out_dim
        self.weight_net = MLP(3, cfg["hidden"], self.feat_dim)

    def encode(self, inputs: dict):
        feat = self.encoder(inputs["image"])
        last = self.weight_net[-1]
        # per cell: W^T f (B, HW, h) and b . f (B, HW, 1) of the 3x3-unfolded feature f, so that
        # f . (W h + b) = [h, 1] . that; as one 3x3 conv (unfold's channel order is (c, ky, kx))
        C = feat.shape[1]
        weight = torch.cat([last.weight.T, last.bias.unsqueeze(0)], dim=0).reshape(-1, C, 3, 3)
        proj = flatten_map(F.conv2d(feat, weight, padding=1))
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

    def query_grid(self, state, m: int, chunk: int) -> torch.Tensor | None:
        """The node grid, fast. A query's weight vector [h, 1] depends only on its
        offset inside its cell (the cell is constant on the grid), and on the grid the offsets
        take few values: one per pair of per-axis offset classes (``grid_axis``; about
        (m / gcd(m, W))^2 at an integer scale, clamped border nodes included). So h is computed
        once per class, every cell's value for every class is one matrix product
        (HW x (h+1)) (h+1 x classes), and a node reads its (cell, class) entry. When the classes
        are too many for that table (non-integer scales), None: the general path."""
        H, W = state["size"]
        proj = state["proj"]
        B, dt, dev = proj.shape[0], proj.dtype, proj.device
        ax = grid_axis(m, W, window=1, device=dev, dtype=dt)
        ay = grid_axis(m, H, window=1, device=dev, dtype=dt)
        nx, ny = ax.n_cls, ay.n_cls
        n_cls = nx * ny
        if n_cls * H * W > max(4 * (m + 1) ** 2, 1 << 16) or n_cls * H * W > 1 << 26:
            return None
        # the classes' offsets, (y, x)-major like the class id cy * nx + cx
        off = torch.stack(torch.meshgrid(ay.rel[ay.rep, 0], ax.rel[ax.rep, 0], indexing="ij"))
        offset = torch.stack([off[1], off[0]], dim=-1).reshape(1, n_cls, 2) + 0.5
        r_rev = torch.full((1, n_cls, 1), hr_cell(m), dtype=dt, device=dev) * (W / 2.0)
        h = torch.cat([offset, r_rev], dim=-1)
        for layer in list(self.weight_net)[:-1]:
            h = layer(h)
        h = torch.cat([h, torch.ones_like(h[..., :1])], dim=-1)[0]  # (classes, h+1)
        # flat index into the (HW, classes) table, split into a row part and a column part
        row = ay.index[:, 0] * (W * n_cls) + ay.cls * nx  # (m+1,)
        col = ax.index[:, 0] * n_cls + ax.cls
        rows = max(1, chunk // (m + 1))
        out = torch.empty(B, m + 1, m + 1, dtype=dt, device=dev)
        for b in range(B):
            table = (proj[b] @ h.T).view(-1)  # (HW * classes,)
            for i0 in range(0, m + 1, rows):
                idx = row[i0 : i0 + rows].unsqueeze(1) + col.unsqueeze(0)
                out[b, i0 : i0 + rows] = table.take(idx)
        return out
