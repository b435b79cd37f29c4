"""SPEC 1's conventions (fesr.coords): vertex-centred nodal fields, cell-centred maps, (x, y) order.

Each test builds the expected values from the physical definitions (u[i, j] = u(x_j, y_i),
x_j = j / n; pixel (i, j) centred at ((j + 0.5) / E, (i + 0.5) / E)), independently of the
helpers under test.
"""

import numpy as np
import torch
import torch.nn.functional as F

from fesr.coords import (
    cell_centre_coords,
    hr_cell,
    nodal_to_cell_centres,
    node_coords,
    sample_cells,
    sample_nodal,
)


def _bilinear(x, y):
    # an anisotropic Q1 field: transposing the axes or shifting by half a cell changes it
    return 0.3 + 1.7 * x - 0.6 * y + 0.9 * x * y


def _nodal(f, n):
    x = np.arange(n + 1) / n
    yy, xx = np.meshgrid(x, x, indexing="ij")  # row index i is y
    return torch.as_tensor(f(xx, yy), dtype=torch.float64)[None, None]


def test_node_coords_order_and_range():
    n = 4
    c = node_coords(n, dtype=torch.float64).reshape(n + 1, n + 1, 2)
    j, i = 3, 1
    torch.testing.assert_close(
        c[i, j], torch.tensor([2 * j / n - 1, 2 * i / n - 1], dtype=torch.float64)
    )
    assert c.min() == -1 and c.max() == 1
    assert hr_cell(n) == 2.0 / n


def test_sampling_nodal_array_at_its_nodes_returns_it():
    torch.manual_seed(0)
    n = 7
    u = torch.randn(2, 1, n + 1, n + 1, dtype=torch.float64)
    coords = node_coords(n, dtype=torch.float64)[None].expand(2, -1, -1)
    for mode in ("bilinear", "bicubic"):
        got = sample_nodal(u, coords, mode)[..., 0].reshape(2, n + 1, n + 1)
        torch.testing.assert_close(got, u[:, 0])


def test_bilinear_sampling_is_the_q1_interpolant():
    n = 5
    u = _nodal(_bilinear, n)
    rng = np.random.default_rng(0)
    pts = rng.random((300, 2))
    coords = torch.as_tensor(2 * pts - 1)[None]
    got = sample_nodal(u, coords, "bilinear")[0, :, 0].numpy()
    np.testing.assert_allclose(got, _bilinear(pts[:, 0], pts[:, 1]), atol=1e-12)


def test_nodal_to_cell_centres_of_q1_field_is_field_at_centres():
    n, E = 4, 12
    u = _nodal(_bilinear, n)
    centres = (np.arange(E) + 0.5) / E
    cy, cx = np.meshgrid(centres, centres, indexing="ij")
    want = _bilinear(cx, cy)
    got = nodal_to_cell_centres(u, E, mode="bilinear")[0, 0].numpy()
    np.testing.assert_allclose(got, want, atol=1e-12)
    # The classic bug: resizing the (n+1)^2 node array as if it were an image of pixels
    # (align_corners=False) puts the samples in the wrong places.
    naive = F.interpolate(u, size=(E, E), mode="bilinear", align_corners=False)[0, 0].numpy()
    assert np.abs(naive - want).max() > 1e-2


def test_cell_centre_coords_and_sample_cells():
    E = 6
    c = cell_centre_coords(E, dtype=torch.float64)
    i, j = 4, 1
    torch.testing.assert_close(
        c[i, j], torch.tensor([2 * (j + 0.5) / E - 1, 2 * (i + 0.5) / E - 1], dtype=torch.float64)
    )
    torch.manual_seed(1)
    feat = torch.randn(1, 3, E, E, dtype=torch.float64)
    for mode in ("nearest", "bilinear"):
        got = sample_cells(feat, c.reshape(1, -1, 2), mode)  # (1, E*E, 3)
        torch.testing.assert_close(got[0].T.reshape(3, E, E), feat[0])


def test_nearest_cell_sampling_covers_the_pixel():
    """A query anywhere inside pixel (i, j) = [j/E, (j+1)/E] x [i/E, (i+1)/E] reads that pixel."""
    E = 5
    feat = torch.arange(E * E, dtype=torch.float64).reshape(1, 1, E, E)
    rng = np.random.default_rng(3)
    i, j = rng.integers(0, E, 50), rng.integers(0, E, 50)
    x = (j + 0.05 + 0.9 * rng.random(50)) / E
    y = (i + 0.05 + 0.9 * rng.random(50)) / E
    coords = torch.as_tensor(np.stack([2 * x - 1, 2 * y - 1], -1))[None]
    got = sample_cells(feat, coords, "nearest")[0, :, 0].numpy()
    np.testing.assert_array_equal(got, i * E + j)
