"""LIT-specific checks: the attention block against a direct per-query computation, the fast
window bias against the direct sinusoidal encoding, locality, and the concat variant."""

import math

import pytest
import torch

from fesr.coords import sample_nodal
from fesr.models.lit import LITStage
from fesr.models.local import window_neighbours
from fesr.models.registry import build_model


def _inputs(config, batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    n, E = config["lr_n"], config["physics"]["E"]
    return {
        "lr": torch.rand(batch, 1, n + 1, n + 1, generator=g),
        "image": torch.rand(batch, 2, E, E, generator=g),
    }


def test_window_bias_equals_direct_encoding():
    """The separable table of SinusoidalBias.window_bias is the direct formula, borders included."""
    torch.manual_seed(0)
    stage = LITStage(dim=16, heads=2, window=5, hidden=[16], n_freq=16).double()
    coords = torch.rand(2, 500, 2, dtype=torch.float64) * 2 - 1
    coords[0, :20] = torch.tensor([0.999, -1.0], dtype=torch.float64)  # clamped windows
    coords[1, :20] = 1.0
    nb = window_neighbours(coords, 12, 12, 5)
    torch.testing.assert_close(stage.window_bias(nb), stage.pos_bias(nb.rel), rtol=0, atol=1e-9)


def _direct_stage(stage, maps, feat_q, coords, cell):
    """Per-query loop over eqs. (4)-(7): bilinear q, window k/v read from the maps by (i, j)."""
    H, W = maps.H, maps.W
    h, d = stage.heads, stage.dim // stage.heads
    r = stage.window // 2
    k_map = maps.k.view(H, W, -1)
    v_map = maps.v.view(H, W, -1)
    out = []
    for (x, y), c in zip(coords[0].tolist(), cell[0], strict=True):
        # bilinear q by hand: cell-centred map, border clamped (align_corners=False)
        fx, fy = (x + 1) / 2 * W - 0.5, (y + 1) / 2 * H - 0.5
        x0, y0 = math.floor(fx), math.floor(fy)
        tx, ty = fx - x0, fy - y0
        q = 0
        for jx, wx in ((x0, 1 - tx), (x0 + 1, tx)):
            for jy, wy in ((y0, 1 - ty), (y0 + 1, ty)):
                q = q + wx * wy * feat_q[0, :, min(max(jy, 0), H - 1), min(max(jx, 0), W - 1)]
        cx = min(int((x + 1) / 2 * W), W - 1)
        cy = min(int((y + 1) / 2 * H), H - 1)
        ks, vs, rels = [], [], []
        for oy in range(-r, r + 1):
            for ox in range(-r, r + 1):
                ix, iy = min(max(cx + ox, 0), W - 1), min(max(cy + oy, 0), H - 1)
                ks.append(k_map[iy, ix])
                vs.append(v_map[iy, ix])
                rels.append(
                    [(x - (2 * ix + 1) / W + 1) * W / 2, (y - (2 * iy + 1) / H + 1) * H / 2]
                )
        K, V = torch.stack(ks).view(-1, h, d), torch.stack(vs).view(-1, h, d)
        bias = stage.pos_bias(torch.tensor(rels, dtype=coords.dtype))  # (G, h)
        logits = (K * q.view(1, h, d)).sum(-1) / math.sqrt(d) + bias
        attn = logits.softmax(0)
        z = (attn.unsqueeze(-1) * V).sum(0).reshape(-1)
        cpx = torch.stack([c[0] * W / 2, c[1] * H / 2])
        out.append(stage.decoder(torch.cat([z, cpx])))
    return torch.stack(out).unsqueeze(0)


def test_stage_matches_direct_per_query_computation():
    torch.manual_seed(1)
    stage = LITStage(dim=8, heads=2, window=3, hidden=[8], n_freq=4).double()
    feat = torch.randn(1, 8, 6, 7, dtype=torch.float64)
    maps = stage.prepare(feat)
    coords = torch.rand(1, 40, 2, dtype=torch.float64) * 2 - 1
    coords[0, :4] = torch.tensor(
        [[-1.0, -1.0], [1.0, 1.0], [1.0, -0.3], [0.2, -1.0]], dtype=torch.float64
    )
    cell = torch.full_like(coords, 2 / 50)
    with torch.no_grad():
        got = stage(maps, coords, cell)
        want = _direct_stage(stage, maps, maps.q, coords, cell)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


def test_output_is_local_and_includes_the_q1_skip(tiny_config):
    """Zeroing the encoder input far from a query leaves it unchanged: the receptive field is the
    encoder's plus the 3x3 Q/K/V convs plus the window, nothing global. A zero decoder gives the
    Q1 interpolant."""
    torch.manual_seed(0)
    model = build_model("lit", tiny_config).eval()
    inputs = _inputs(tiny_config)
    E = tiny_config["physics"]["E"]
    coords = torch.tensor([[[-0.9, -0.9]]])
    cell = torch.full_like(coords, 2 / 128)
    far = dict(inputs, image=inputs["image"].clone())
    far["image"][..., E // 2 :, E // 2 :] = 0.0
    with torch.no_grad():
        torch.testing.assert_close(
            model.query(far, coords, cell), model.query(inputs, coords, cell)
        )
        for p in model.stage.decoder[-1].parameters():
            p.zero_()
        torch.testing.assert_close(
            model.query(inputs, coords, cell), sample_nodal(inputs["lr"], coords, "bilinear")
        )


def test_concat_variant_runs_and_trains(tiny_config):
    config = {**tiny_config, "methods": {**tiny_config["methods"]}}
    config["methods"]["lit"] = {**config["methods"]["lit"], "aggregate": "concat"}
    torch.manual_seed(0)
    model = build_model("lit", config)
    assert model.stage.decoder[0].in_features == model.stage.dim * model.stage.window**2 + 2
    inputs = _inputs(tiny_config, batch=2)
    coords = torch.rand(2, 32, 2) * 2 - 1
    batch = dict(
        inputs, coords=coords, cell=torch.full_like(coords, 2 / 64), target=torch.rand(2, 32, 1)
    )
    loss, _ = model.training_loss(batch)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="aggregate"):
        LITStage(dim=8, heads=2, window=3, hidden=[8], n_freq=4, aggregate="mean")
    with pytest.raises(ValueError, match="divisible"):
        LITStage(dim=9, heads=2, window=3, hidden=[8], n_freq=4)
    with pytest.raises(ValueError, match="odd"):
        LITStage(dim=8, heads=2, window=4, hidden=[8], n_freq=4)


def _general_predict(model, inputs, alpha):
    """The reference of the fast grid path: ``query_encoded`` on every node of the HR mesh."""
    from fesr.coords import hr_cell, node_coords
    from fesr.models.base import hr_size

    n = inputs["lr"].shape[-1] - 1
    m = hr_size(n, alpha)
    coords = node_coords(m, dtype=inputs["lr"].dtype).unsqueeze(0)
    coords = coords.expand(inputs["lr"].shape[0], -1, -1)
    with torch.no_grad():
        state = model.encode(inputs)
        out = model.query_encoded(state, coords, torch.full_like(coords, hr_cell(m)))
    return out[..., 0].reshape(-1, m + 1, m + 1)


@pytest.mark.parametrize("alpha", [1.5, 4, 5.3])
@pytest.mark.parametrize("aggregate,window", [("sum", 5), ("concat", 3)])
def test_fast_grid_path_equals_general_path(tiny_config, aggregate, window, alpha):
    """``predict``'s grid path (home-cell groups, per-axis bias tables, folded cell) gives the
    general path's values: the concat decoder, a 5 x 5 window (clamped at every border node of
    the coarse 1.5x grid) and an uneven split of nodes into cells (5.3x) included. In float64, so
    that only summation order separates the two: a 1e-3 error in one bias entry shows as 1e-5."""
    config = {**tiny_config, "methods": {**tiny_config["methods"]}}
    config["methods"]["lit"] = {
        **config["methods"]["lit"],
        "aggregate": aggregate,
        "window": window,
    }
    torch.manual_seed(0)
    model = build_model("lit", config).eval().double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    inputs = {k: v.double() for k, v in _inputs(tiny_config, batch=2).items()}
    want = _general_predict(model, inputs, alpha)
    for chunk in (65536, 700, 50):  # whole grid; tiles of row groups; of column groups
        got = model.predict(inputs, alpha, chunk=chunk)
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9 * float(want.abs().max()))
