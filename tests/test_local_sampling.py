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


def _grid_vs_general(m, H, W, window):
    from fesr.coords import node_coords
    from fesr.models.local import grid_axis

    coords = node_coords(m).unsqueeze(0)
    if window is None:
        nb, kx = four_neighbours(coords, H, W), 2
    else:
        nb, kx = window_neighbours(coords, H, W, window), window
    ax, ay = grid_axis(m, W, window), grid_axis(m, H, window)
    k = torch.arange(nb.index.shape[-1])
    i, j = torch.meshgrid(torch.arange(m + 1), torch.arange(m + 1), indexing="ij")
    i, j = i.reshape(-1, 1), j.reshape(-1, 1)
    index = ay.index[i, k // kx] * W + ax.index[j, k % kx]
    rel = torch.stack([ax.rel[j, k % kx], ay.rel[i, k // kx]], dim=-1)
    assert torch.equal(index, nb.index[0])
    assert torch.equal(rel, nb.rel[0])  # bit-identical, ties included
    return ax, ay


def test_grid_axis_equals_general_neighbours_and_classes_repeat():
    """Per-axis grid neighbours = the general path's on node_coords(m), for both layouts, at
    integer and non-integer ratios, non-square maps; classes hold equal offsets."""
    for m, H, W in [(64, 16, 16), (59, 16, 12), (8, 16, 16), (128, 32, 32)]:
        for window in (None, 3):
            ax, _ = _grid_vs_general(m, H, W, window)
            # every node's offsets equal its class representative's (up to float rounding)
            torch.testing.assert_close(ax.rel, ax.rel[ax.rep[ax.cls]], rtol=0, atol=1e-5)
    # 64 cells on a 16-cell map: 4 nodes per cell, period 4 -> 4 interior classes, plus one per
    # clamped node within half a cell (4-neighbours) or a cell (3-window) of either edge
    assert _grid_vs_general(64, 16, 16, None)[0].n_cls == 4 + 2 + 3
    assert _grid_vs_general(64, 16, 16, 3)[0].n_cls == 4 + 4 + 5


def test_four_grid_tiles_cover_the_grid_once_within_the_budget():
    """FourGrid.tiles: every node exactly once, at most ``nodes`` per tile, and a tile flagged
    as a band has rows that share their y-neighbours; index/weights = four_neighbours'."""
    from fesr.coords import node_coords
    from fesr.models.local import FourGrid

    for m, H, W in [(64, 16, 16), (59, 12, 16), (8, 16, 16)]:
        grid = FourGrid(m, H, W)
        nb = four_neighbours(node_coords(m).unsqueeze(0), H, W)
        for nodes in (1, 7, m + 1, 3 * (m + 1) + 5, 10**6):
            seen = torch.zeros(m + 1, m + 1, dtype=torch.long)
            for i0, i1, j0, j1, band in grid.tiles(nodes):
                assert (i1 - i0) * (j1 - j0) <= max(nodes, 1)
                seen[i0:i1, j0:j1] += 1
                if band:
                    assert (grid.iy[:, i0:i1] == grid.iy[:, i0 : i0 + 1]).all()
            assert (seen == 1).all(), (m, nodes)
        index = grid.index(0, m + 1, 0, m + 1).permute(1, 2, 0).reshape(-1, 4)
        assert torch.equal(index, nb.index[0])
        weight = grid.weights(0, m + 1, 0, m + 1).permute(1, 2, 0).reshape(-1, 4)
        torch.testing.assert_close(weight, nb.weight[0], rtol=1e-6, atol=1e-7)


def test_cell_axis_unions_taps_and_offsets_are_every_nodes_own():
    """CellAxis: for every node of every tile cell, its kind's union slots hold the node's window
    cells (grid_axis, clamped duplicates kept apart), its tap weights on the cell's patch give
    grid_sample's bilinear value, and its kind's offsets are the node's own."""
    import torch.nn.functional as F

    from fesr.coords import node_positions, to_network
    from fesr.models.local import cell_axis, grid_axis

    g = torch.Generator().manual_seed(0)
    for m, tiles, size, window in [
        (64, 16, 16, 3),
        (64, 16, 32, 3),
        (32, 16, 32, 3),
        (16, 16, 32, 3),
        (64, 16, 16, 5),
    ]:
        ax = cell_axis(m, tiles, size, window)
        ga = grid_axis(m, size, window)
        t = torch.as_tensor(to_network(node_positions(m)), dtype=torch.float32)
        line = torch.rand(1, 1, 1, size, generator=g)
        grid = torch.stack([t, torch.zeros_like(t)], -1).view(1, 1, -1, 2)
        bilinear = F.grid_sample(line, grid, padding_mode="border", align_corners=False)
        union, patch = ax.union(0, tiles), ax.patch(0, tiles)
        covered = 0
        assert sorted(c for _, c0, c1 in ax.runs for c in range(c0, c1)) == list(range(tiles))
        for c in range(tiles):
            kind = ax.kind_of[c]
            for p in range(ax.nodes[kind]):
                j = c * ax.P + p
                slots = ax.slots[kind][p]
                assert len(set(slots.tolist())) == window
                assert torch.equal(union[c][slots], ga.index[j])
                value = (ax.taps[kind][p] * line[0, 0, 0, patch[c]]).sum()
                torch.testing.assert_close(value, bilinear[0, 0, 0, j], rtol=0, atol=1e-6)
                torch.testing.assert_close(ax.rel[kind][p], ga.rel[j], rtol=0, atol=1e-5)
                covered += 1
        assert covered == m + 1
        assert len(ax.nodes) == (3 if window == 3 else 5)  # first, interior, last (+ near-border)
    assert cell_axis(59, 16, 16, 3) is None  # not whole cells of nodes
