"""The bicubic baseline: what PyTorch's bicubic (Keys, a = -0.75, replicated border) really does
on a vertex-centred nodal field, checked against an independent implementation."""

import numpy as np
import pytest
import torch

from fesr.coords import node_coords, node_positions
from fesr.models.base import hr_size
from fesr.models.registry import build_model


def keys_kernel(t, a):
    t = np.abs(t)
    near = (a + 2) * t**3 - (a + 3) * t**2 + 1
    far = a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def keys_interpolate(u, pts, a=-0.75):
    """Tensor-product cubic convolution of nodal u[i, j] = u(x_j, y_i) at physical (x, y) points,
    nodes beyond the mesh replaced by the border node."""
    n = u.shape[0] - 1
    out = np.empty(len(pts))
    for q, (x, y) in enumerate(pts):
        tx, ty = x * n, y * n
        jx, iy = int(np.floor(tx)), int(np.floor(ty))
        total = 0.0
        for di in range(-1, 3):
            wy = keys_kernel(ty - (iy + di), a)
            for dj in range(-1, 3):
                wx = keys_kernel(tx - (jx + dj), a)
                total += wy * wx * u[np.clip(iy + di, 0, n), np.clip(jx + dj, 0, n)]
        out[q] = total
    return out


def _bicubic(tiny_config):
    return build_model("bicubic", tiny_config).eval()


def _query(model, u, pts):
    lr = torch.as_tensor(u, dtype=torch.float64)[None, None]
    coords = torch.as_tensor(2 * pts - 1, dtype=torch.float64)[None]
    return model.query({"lr": lr}, coords, torch.zeros_like(coords))[0, :, 0].numpy()


def test_no_parameters(tiny_config):
    assert sum(p.numel() for p in _bicubic(tiny_config).parameters()) == 0


def test_matches_independent_keys_convolution(tiny_config):
    rng = np.random.default_rng(0)
    u = rng.standard_normal((9, 9))
    pts = rng.random((300, 2))
    np.testing.assert_allclose(
        _query(_bicubic(tiny_config), u, pts), keys_interpolate(u, pts), atol=1e-10
    )


def test_interpolates_nodes_and_constants_exactly(tiny_config):
    model = _bicubic(tiny_config)
    rng = np.random.default_rng(1)
    n = 8
    u = rng.standard_normal((n + 1, n + 1))
    x = node_positions(n)
    yy, xx = np.meshgrid(x, x, indexing="ij")
    nodes = np.stack([xx.ravel(), yy.ravel()], -1)
    np.testing.assert_allclose(_query(model, u, nodes), u.ravel(), atol=1e-12)
    pts = rng.random((200, 2))
    np.testing.assert_allclose(_query(model, np.full((n + 1, n + 1), 2.5), pts), 2.5, atol=1e-12)


def test_linear_fields_not_reproduced_with_a_minus_075(tiny_config):
    """a = -0.75 is only first-order: a linear field is off between the nodes, by O(h), even in
    the interior; Keys' a = -0.5 would reproduce it (checked on the reference, so the
    reference can tell the two apart)."""
    model = _bicubic(tiny_config)
    rng = np.random.default_rng(2)
    errors = []
    for n in (8, 16, 32):
        x = node_positions(n)
        yy, xx = np.meshgrid(x, x, indexing="ij")
        u = 1.0 + 2.0 * xx - 3.0 * yy
        pts = 1.0 / n + rng.random((400, 2)) * (1 - 2.0 / n)  # stencil inside the mesh
        exact = 1.0 + 2.0 * pts[:, 0] - 3.0 * pts[:, 1]
        errors.append(np.abs(_query(model, u, pts) - exact).max())
        np.testing.assert_allclose(keys_interpolate(u, pts, a=-0.5), exact, atol=1e-12)
    assert errors[0] > 1e-3
    # first order: halving h halves the error
    assert errors[1] / errors[0] == pytest.approx(0.5, rel=0.1)
    assert errors[2] / errors[1] == pytest.approx(0.5, rel=0.1)


def test_predict_keeps_lr_nodes(tiny_config):
    model = _bicubic(tiny_config)
    n = tiny_config["lr_n"]
    torch.manual_seed(0)
    lr = torch.rand(1, 1, n + 1, n + 1, dtype=torch.float64)
    out = model.predict({"lr": lr}, 4)
    assert out.shape[-1] == hr_size(n, 4) + 1
    torch.testing.assert_close(out[0, ::4, ::4], lr[0, 0])
    # and is the same as querying the node coordinates directly
    coords = node_coords(hr_size(n, 4), dtype=torch.float64)[None]
    direct = model.query({"lr": lr}, coords, torch.zeros_like(coords)).reshape(out.shape)
    torch.testing.assert_close(out, direct)
