"""The shared local sampling (fesr.models.local) against direct constructions."""

import torch

from fesr.coords import cell_centre_coords, sample_cells
from fesr.models.local import flatten_map, four_neighbours, gather, unfold3x3, window_neighbours


def test_four_neighbour_ensemble_is_bilinear_interpolation():
    """Weighting the 4 neighbours' values by the ensemble weights = bilinear interpolation of the
    cell-centred map (grid_sample, align_corners=False) away from the border."""
    torch.manual_seed(0)
    feat = torch.randn(2, 3, 8, 8)
    coords = torch.rand(2, 100, 2) * 1.5 - 0.75  # stay inside the outer half-cells
    nb = four_neighbours(coords, 8, 8)
    vals = gather(flatten_map(feat), nb.index)  # (B, Q, 4, C)
    ens = (vals * nb.weight.unsqueeze(-1)).sum(2)
    torch.testing.assert_close(
        ens, sample_cells(feat, coords, mode="bilinear"), rtol=1e-5, atol=1e-5
    )


def test_neighbour_centres_are_cell_centres_and_rel_in_pixels():
    coords = torch.tensor([[[-0.99, 0.99], [0.1, -0.3]]])
    nb = window_neighbours(coords, 4, 4, 3)
    centres = cell_centre_coords(4).reshape(-1, 2)
    torch.testing.assert_close(nb.centre, centres[nb.index])
    # middle of the window is the cell containing the query: |rel| <= 0.5 pixel
    assert (nb.rel[:, :, 4].abs() <= 0.5 + 1e-6).all()


def test_gathered_features_match_nearest_sampling():
    torch.manual_seed(1)
    feat = torch.randn(1, 5, 6, 6)
    coords = torch.rand(1, 50, 2) * 2 - 1
    nb = window_neighbours(coords, 6, 6, 1)
    got = gather(flatten_map(feat), nb.index)[:, :, 0]
    torch.testing.assert_close(got, sample_cells(feat, coords, mode="nearest"))


def test_unfold3x3_centre_channel_block_is_the_map():
    feat = torch.randn(1, 2, 5, 5)
    u = unfold3x3(feat).view(1, 2, 9, 5, 5)
    torch.testing.assert_close(u[:, :, 4], feat)
