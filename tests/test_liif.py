"""LIIF against a direct transcription of its published algorithm (shifted nearest sampling,
diagonal area swap), and the continuity its local ensemble buys."""

import pytest
import torch
import torch.nn.functional as F

from fesr.coords import cell_centre_coords, sample_cells
from fesr.models.registry import build_model


def shifted_neighbours(coords, H, W):
    """LIIF's way to find the 4 neighbours: shift the query by +-half a cell (plus a tiny eps),
    clamp, and sample the nearest cell. Yields (shifted coords, neighbour centre) 4 times in the
    order (vx, vy) = (-1,-1), (-1,1), (1,-1), (1,1)."""
    centres = cell_centre_coords(H, dtype=coords.dtype).permute(2, 0, 1)[None]
    centres = centres.expand(coords.shape[0], -1, -1, -1)
    for vx in (-1, 1):
        for vy in (-1, 1):
            c = coords.clone()
            c[..., 0] += vx / W + 1e-6
            c[..., 1] += vy / H + 1e-6
            c.clamp_(-1 + 1e-6, 1 - 1e-6)
            yield c, sample_cells(centres, c, "nearest")


def area_ensemble(preds, rels):
    areas = [(r[..., 0] * r[..., 1]).abs() + 1e-9 for r in rels]
    total = sum(areas)
    areas = [areas[3], areas[2], areas[1], areas[0]]  # each weighted by the diagonal opposite
    return sum(p * (a / total).unsqueeze(-1) for p, a in zip(preds, areas, strict=True))


def liif_reference(model, inputs, coords, cell):
    feat = model.encoder(inputs["image"])
    B, C, H, W = feat.shape
    feat = F.unfold(feat, 3, padding=1).view(B, 9 * C, H, W)
    size = torch.tensor([W, H], dtype=coords.dtype)
    preds, rels = [], []
    for c, centre in shifted_neighbours(coords, H, W):
        rel = (coords - centre) * size
        inp = torch.cat([sample_cells(feat, c, "nearest"), rel, cell * size], dim=-1)
        preds.append(model.imnet(inp))
        rels.append(rel)
    return area_ensemble(preds, rels)


@pytest.fixture
def model_and_inputs(tiny_config):
    torch.manual_seed(0)
    model = build_model("liif", tiny_config).eval()
    E, n = tiny_config["physics"]["E"], tiny_config["lr_n"]
    inputs = {"lr": torch.rand(2, 1, n + 1, n + 1), "image": torch.rand(2, 2, E, E)}
    return model, inputs


def test_matches_published_algorithm(model_and_inputs):
    model, inputs = model_and_inputs
    torch.manual_seed(1)
    coords = torch.rand(2, 300, 2) * 2 - 1  # the whole domain, border cells included
    cell = torch.full_like(coords, 2.0 / (32 * 3.7))
    with torch.no_grad():
        torch.testing.assert_close(
            model.query(inputs, coords, cell),
            liif_reference(model, inputs, coords, cell),
            rtol=1e-4,
            atol=1e-5,
        )


def test_cell_is_decoded(model_and_inputs):
    model, inputs = model_and_inputs
    coords = torch.rand(2, 20, 2) * 2 - 1
    with torch.no_grad():
        a = model.query(inputs, coords, torch.full_like(coords, 2.0 / 64))
        b = model.query(inputs, coords, torch.full_like(coords, 2.0 / 128))
    assert (a - b).abs().max() > 1e-6


def test_local_ensemble_is_continuous_across_cell_centres(model_and_inputs):
    """Crossing a line of feature-cell centres swaps two of the four neighbours; their weights
    vanish there, so the prediction does not jump (a single nearest cell would)."""
    model, inputs = model_and_inputs
    E = inputs["image"].shape[-1]
    torch.manual_seed(2)
    y = torch.rand(2, 50, 1) * 1.6 - 0.8
    x_line = 2 * (torch.randint(2, E - 2, (2, 50, 1)) + 0.5) / E - 1  # a cell-centre abscissa
    cell = torch.full((2, 50, 2), 2.0 / 64)
    d = 1e-5
    with torch.no_grad():
        left = model.query(inputs, torch.cat([x_line - d, y], -1), cell)
        right = model.query(inputs, torch.cat([x_line + d, y], -1), cell)
        far = model.query(inputs, torch.cat([x_line + 0.5 * 2 / E, y], -1), cell)
    jump = (left - right).abs().max()
    assert jump < 1e-3 * (far - left).abs().max()
