"""LTE against a direct transcription of its published algorithm, its cell clipping and its
bilinear (Q1) skip of the LR field."""

import math

import pytest
import torch
from test_liif import area_ensemble, shifted_neighbours

from fesr.coords import hr_cell, node_coords, sample_cells, sample_nodal
from fesr.models.registry import build_model


def lte_reference(model, inputs, coords, cell):
    """LTE as published: nearest-sampled amplitude/frequency at the 4 shifted positions,
    frequencies split into consecutive (fx, fy) pairs, phase from the clipped cell."""
    feat = model.encoder(inputs["image"])
    coef, freq = model.amplitude(feat), model.frequency(feat)
    H, W = feat.shape[-2:]
    size = torch.tensor([W, H], dtype=coords.dtype)
    scale_max = max(model.cfg["train_scales"])
    n = model.cfg["lr_n"]
    cell = torch.maximum(cell, torch.full_like(cell, 2.0 / (n * scale_max)))
    preds, rels = [], []
    for c, centre in shifted_neighbours(coords, H, W):
        rel = (coords - centre) * size
        q_coef = sample_cells(coef, c, "nearest")
        q_freq = sample_cells(freq, c, "nearest")
        q_freq = torch.stack(torch.split(q_freq, 2, dim=-1), dim=-1)  # (B, Q, 2, K)
        q_freq = (q_freq * rel.unsqueeze(-1)).sum(-2) + model.phase(cell * size)
        basis = torch.cat([torch.cos(math.pi * q_freq), torch.sin(math.pi * q_freq)], dim=-1)
        preds.append(model.imnet(q_coef * basis))
        rels.append(rel)
    return area_ensemble(preds, rels) + sample_nodal(inputs["lr"], coords, "bilinear")


@pytest.fixture
def model_and_inputs(tiny_config):
    torch.manual_seed(0)
    model = build_model("lte", tiny_config).eval()
    E, n = tiny_config["physics"]["E"], tiny_config["lr_n"]
    inputs = {"lr": torch.rand(2, 1, n + 1, n + 1), "image": torch.rand(2, 2, E, E)}
    return model, inputs, n


@pytest.mark.parametrize("alpha", [2, 3.7, 64])
def test_matches_published_algorithm(model_and_inputs, alpha):
    model, inputs, n = model_and_inputs
    torch.manual_seed(1)
    coords = torch.rand(2, 300, 2) * 2 - 1
    cell = torch.full_like(coords, hr_cell(round(n * alpha)))
    with torch.no_grad():
        torch.testing.assert_close(
            model.query(inputs, coords, cell),
            lte_reference(model, inputs, coords, cell),
            rtol=1e-4,
            atol=1e-5,
        )


def test_cell_clipped_at_largest_training_scale(model_and_inputs):
    model, inputs, n = model_and_inputs
    smax = max(model.cfg["train_scales"])
    coords = torch.rand(2, 40, 2) * 2 - 1
    with torch.no_grad():
        at = {
            a: model.query(inputs, coords, torch.full_like(coords, hr_cell(n * a)))
            for a in (smax / 2, smax, 64)
        }
    torch.testing.assert_close(at[64], at[smax])
    assert (at[smax / 2] - at[smax]).abs().max() > 1e-6


def test_skip_is_the_q1_interpolant_of_the_lr_field(model_and_inputs):
    """With the MLP's last layer zeroed, LTE returns the bilinear interpolant of X: the LR nodes
    themselves at the LR node positions."""
    model, inputs, n = model_and_inputs
    with torch.no_grad():
        model.imnet[-1].weight.zero_()
        model.imnet[-1].bias.zero_()
        coords = node_coords(n)[None].expand(2, -1, -1)
        out = model.query(inputs, coords, torch.full_like(coords, hr_cell(2 * n)))
    torch.testing.assert_close(out[..., 0].reshape(2, n + 1, n + 1), inputs["lr"][:, 0])


def test_phase_has_no_bias(model_and_inputs):
    assert model_and_inputs[0].phase.bias is None
