"""Meta-SR: the containing feature cell's unfolded feature, weighted per query by an MLP of
(offset inside the cell, 1/scale), checked against a direct computation."""

import torch
import torch.nn.functional as F

from fesr.coords import sample_cells
from fesr.models.registry import build_model


def test_matches_direct_computation(tiny_config):
    torch.manual_seed(0)
    model = build_model("metasr", tiny_config).eval()
    E, n = tiny_config["physics"]["E"], tiny_config["lr_n"]
    inputs = {"lr": torch.rand(1, 1, n + 1, n + 1), "image": torch.rand(1, 2, E, E)}
    coords = torch.rand(1, 200, 2) * 2 - 1
    alpha = 3.7
    cell = torch.full_like(coords, 2.0 / (n * alpha))
    with torch.no_grad():
        feat = model.encoder(inputs["image"])
        C = feat.shape[1]
        feat = F.unfold(feat, 3, padding=1).view(1, 9 * C, E, E)
        q_feat = sample_cells(feat, coords, "nearest")
        pix = (coords + 1) / 2 * E  # position in pixel units from the lower corner
        offset = pix - pix.floor()
        r_rev = torch.full_like(coords[..., :1], E / (n * alpha))
        want = (model.weight_net(torch.cat([offset, r_rev], -1)) * q_feat).sum(-1, keepdim=True)
        got = model.query(inputs, coords, cell)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
