"""IDM: seeded DDIM sampling, the sampler's plumbing with an exact noise oracle, the HR stage
(bands, neighbourhood, what the U-Net sees), patch training, and the cell-pooling helpers."""

import math

import pytest
import torch

import fesr.models.idm as idm_module
from fesr.coords import cell_centre_coords, node_coords, sample_nodal
from fesr.models.idm import (
    IDM,
    cell_average,
    cell_taps,
    cell_weights,
    initial_noise,
    node_index,
    q1_grid,
)
from fesr.models.registry import build_model, resolve_model_config


@pytest.fixture
def idm(tiny_config):
    torch.manual_seed(0)
    return build_model("idm", tiny_config).eval()


def _inputs(cfg, batch=1, seed=3):
    g = torch.Generator().manual_seed(seed)
    n, E = cfg["lr_n"], cfg["physics"]["E"]
    return {
        "lr": torch.rand(batch, 1, n + 1, n + 1, generator=g),
        "image": torch.rand(batch, 2, E, E, generator=g),
    }


def test_fixed_seed_is_deterministic_and_seeds_differ(idm, tiny_config):
    inputs = _inputs(tiny_config)
    a = idm.predict(inputs, 2, seed=7)
    torch.testing.assert_close(idm.predict(inputs, 2, seed=7), a, rtol=0, atol=0)
    torch.testing.assert_close(idm.predict(inputs, 2, chunk=501, seed=7), a, rtol=1e-5, atol=1e-5)
    assert (idm.predict(inputs, 2, seed=8) - a).abs().max() > 1e-4


def test_each_sample_gets_its_own_seeded_noise(idm, tiny_config):
    """two test samples start from different x_T; the same seed reproduces it; a
    sample's field does not depend on the batch it is predicted in."""
    m = 20
    x = initial_noise(2, m, seed=5)
    assert x.shape == (2, 1, m + 1, m + 1)
    assert (x[0] - x[1]).abs().max() > 0.5
    torch.testing.assert_close(initial_noise(2, m, seed=5), x, rtol=0, atol=0)
    torch.testing.assert_close(initial_noise(1, m, 5, sample_ids=[1]), x[1:], rtol=0, atol=0)
    assert (initial_noise(2, m, seed=6) - x).abs().max() > 0.5
    with pytest.raises(ValueError, match="sample ids"):
        initial_noise(2, m, 5, sample_ids=[0])

    one = _inputs(tiny_config)
    same_twice = {k: v.expand(2, *v.shape[1:]).contiguous() for k, v in one.items()}
    both = idm.predict(same_twice, 2, seed=5)
    assert (both[0] - both[1]).abs().max() > 1e-4  # same input, different starting noise
    alone = idm.predict(one, 2, seed=5, sample_ids=[1])
    torch.testing.assert_close(alone[0], both[1], rtol=1e-5, atol=1e-5)
    again = idm.predict(one, 2, seed=5, sample_ids=[1], state=idm.encode(one))
    torch.testing.assert_close(again, alone, rtol=0, atol=0)


@pytest.mark.parametrize("alpha", [2, 3.7])
def test_shapes(idm, tiny_config, alpha):
    inputs = _inputs(tiny_config, batch=2)
    n = tiny_config["lr_n"]
    m = round(n * alpha)
    assert idm.predict(inputs, alpha).shape == (2, m + 1, m + 1)
    coords = torch.rand(2, 40, 2) * 2 - 1
    with torch.no_grad():
        out = idm.query(inputs, coords, torch.full_like(coords, 2.0 / m))
    assert out.shape == (2, 40, 1) and torch.isfinite(out).all()


def test_query_on_the_node_grid_is_predict_with_seed_zero(idm, tiny_config):
    inputs = _inputs(tiny_config, batch=2)
    m = 3 * tiny_config["lr_n"]
    c = node_coords(m).expand(2, -1, -1)
    with torch.no_grad():
        out = idm.query(inputs, c, torch.full_like(c, 2.0 / m))
    torch.testing.assert_close(
        out[..., 0], idm.predict(inputs, 3, seed=0).flatten(1), rtol=1e-5, atol=1e-5
    )


def test_kept_and_recomputed_hr_features_agree(idm, tiny_config, monkeypatch):
    inputs = _inputs(tiny_config)
    kept = idm.predict(inputs, 2, chunk=700, seed=2)
    monkeypatch.setattr(idm_module, "HR_KEEP_ELEMENTS", 0)
    torch.testing.assert_close(idm.predict(inputs, 2, chunk=700, seed=2), kept)


class _Oracle(IDM):
    """The denoiser replaced by the exact noise of a known residual x0: DDIM must return x0."""

    x0: torch.Tensor  # (B, (m+1)^2), in diffusion units

    def step_setup(self, state, xq, gamma, rows, keep):
        return gamma

    def denoise_rows(self, setup, xq, r0, r1, coords):
        M = xq.shape[-1]
        g = setup.view(-1, 1)
        xt = xq[:, 0, r0:r1].flatten(1)
        return (xt - g * self.x0[:, r0 * M : r1 * M]) / (1 - g**2).sqrt()


def test_ddim_with_exact_noise_recovers_the_field(tiny_config):
    cfg = resolve_model_config("idm", tiny_config)
    model = _Oracle(cfg).eval()
    inputs = _inputs(tiny_config, batch=2)
    m = 3 * tiny_config["lr_n"]
    c = node_coords(m)
    # a field whose residual stays inside the sampler's x_0 clipping range
    hr = (0.5 * torch.sin(math.pi * (c[:, 0] + 1) / 2) * (1 + c[:, 1] ** 2)).expand(2, -1)
    model.x0 = (hr - q1_grid(inputs["lr"], m).flatten(1)) / model.residual_scale
    assert model.x0.abs().max() < model.schedule["clip_sample_range"]
    out = model.predict(inputs, 3, chunk=1000, seed=1)
    torch.testing.assert_close(out.flatten(1), hr, rtol=1e-4, atol=1e-4)


def _xq(idm, M, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 2, M, M, generator=g)


def test_hr_stage_in_bands_equals_the_whole_grid(idm):
    M = 23
    xq = _xq(idm, M)
    tshift = torch.randn(2, idm.hr.width)
    with torch.no_grad():
        whole = idm.hr(xq, tshift, 0, M)
        # the same convolutions with ordinary zero padding on the whole grid
        h = torch.nn.functional.silu(
            torch.nn.functional.conv2d(xq, idm.hr.conv1.weight, idm.hr.conv1.bias, padding=1)
            + tshift[:, :, None, None]
        )
        ref = torch.nn.functional.silu(
            torch.nn.functional.conv2d(h, idm.hr.conv2.weight, idm.hr.conv2.bias, padding=1)
        )
        torch.testing.assert_close(whole, ref, rtol=1e-5, atol=1e-6)
        for rows in (1, 3, 5):
            bands = torch.cat(
                [idm.hr(xq, tshift, r, min(r + rows, M)) for r in range(0, M, rows)], dim=2
            )
            torch.testing.assert_close(bands, whole, rtol=1e-5, atol=1e-6)


def _setup(idm, tiny_config, xq, keep=False):
    state = idm.encode(_inputs(tiny_config))
    gamma = torch.full((xq.shape[0],), 0.7)
    return state, idm.step_setup(state, xq, gamma, rows=xq.shape[-1], keep=keep)


def test_decoder_sees_an_hr_neighbourhood_of_x_t(idm, tiny_config):
    """With the cell-level part fixed, a node's predicted noise changes with x_t at its HR
    neighbours (not only its own value), and not with x_t three rows away."""
    M = 2 * tiny_config["lr_n"] + 1
    xq = _xq(idm, M, batch=1)
    coords = node_coords(M - 1)
    i, j = 20, 30
    with torch.no_grad():
        _, setup = _setup(idm, tiny_config, xq)
        rows = coords[i * M : (i + 1) * M]
        base = idm.denoise_rows(setup, xq, i, i + 1, rows)[0, j]
        near, far = xq.clone(), xq.clone()
        near[0, 0, i + 1, j - 1] += 1.0
        far[0, 0, i + 3, j] += 1.0
        assert (idm.denoise_rows(setup, near, i, i + 1, rows)[0, j] - base).abs() > 1e-6
        torch.testing.assert_close(idm.denoise_rows(setup, far, i, i + 1, rows)[0, j], base)


def test_unet_sees_more_than_the_cell_means_of_x_t(idm, tiny_config):
    """Two x_t with equal means over every cell give different U-Net outputs (the HR stage
    runs before the pooling); the old design averaged x_t onto the cells first."""
    E = tiny_config["physics"]["E"]
    M = 2 * tiny_config["lr_n"] + 1  # 65 nodes per side, 64 cells: a null space of W exists
    w = cell_weights(M - 1, E).float()
    v = torch.linalg.svd(w, full_matrices=True).Vh[-1]  # W v = 0
    d = torch.outer(v, torch.ones(M)) * 5.0
    xq = _xq(idm, M, batch=1)
    other = xq.clone()
    other[0, 0] += d
    torch.testing.assert_close(
        cell_average(other[:, :1], E), cell_average(xq[:, :1], E), rtol=0, atol=1e-5
    )
    with torch.no_grad():
        a = _setup(idm, tiny_config, xq)[1].proj
        b = _setup(idm, tiny_config, other)[1].proj
    assert (a - b).abs().max() > 1e-5


def test_trains_and_predicts_on_a_patch(tiny_config):
    """A patch batch (patch convention): every size is read from the tensors."""
    torch.manual_seed(0)
    idm = build_model("idm", tiny_config).train()
    n, E = tiny_config["lr_n"], tiny_config["physics"]["E"]
    P, alpha = E // 2, 4
    p = P * n // E
    m = p * alpha
    g = torch.Generator().manual_seed(0)
    coords = node_coords(m)[torch.randperm((m + 1) ** 2, generator=g)[:50]].expand(2, -1, -1)
    batch = {
        "lr": torch.rand(2, 1, p + 1, p + 1, generator=g),
        "image": torch.rand(2, 2, P, P, generator=g),
        "hr": torch.rand(2, 1, m + 1, m + 1, generator=g),
        "coords": coords,
        "cell": torch.full_like(coords, 2.0 / m),
        "target": torch.rand(2, 50, 1, generator=g),
        "scale": float(alpha),
    }
    loss, _ = idm.training_loss(batch)
    loss.backward()
    assert torch.isfinite(loss)
    assert idm.hr.conv1.weight.grad.abs().sum() > 0
    out = idm.eval().predict({"lr": batch["lr"], "image": batch["image"]}, alpha)
    assert out.shape == (2, m + 1, m + 1) and torch.isfinite(out).all()


def test_cell_average_of_a_bilinear_field():
    """For f = x * y (Q1 on any mesh) the mean over a cell is the product of its centre's x, y."""
    E = 8
    for m in (4, 8, 37, 64):
        c = node_coords(m, dtype=torch.float64)
        field = (c[:, 0] * c[:, 1]).reshape(1, 1, m + 1, m + 1)
        centres = cell_centre_coords(E, dtype=torch.float64)
        expected = (centres[..., 0] * centres[..., 1]).reshape(1, 1, E, E)
        torch.testing.assert_close(cell_average(field, E), expected)


@pytest.mark.parametrize("m", [3, 8, 37])
def test_cell_average_is_the_mean_of_the_q1_interpolant(m):
    """Against a fine midpoint rule on the Q1 interpolant of a random field (any m vs E)."""
    E, K = 8, 64
    field = torch.rand(1, 2, m + 1, m + 1, dtype=torch.float64)
    w = cell_weights(m, E)
    torch.testing.assert_close(w.sum(1), torch.ones(E, dtype=torch.float64))
    fine = cell_centre_coords(K * E, dtype=torch.float64).reshape(1, -1, 2)
    vals = sample_nodal(field, fine).transpose(1, 2).reshape(1, 2, K * E, K * E)
    expected = torch.nn.functional.avg_pool2d(vals, K)
    torch.testing.assert_close(cell_average(field, E), expected, rtol=0, atol=2e-4)


def test_node_index_of_nodes():
    m = 12
    c = node_coords(m).unsqueeze(0)
    torch.testing.assert_close(node_index(c, m), torch.arange((m + 1) ** 2).unsqueeze(0))


def test_training_needs_the_full_field(idm, tiny_config):
    assert idm.needs_full_field
    n = tiny_config["lr_n"]
    inputs = _inputs(tiny_config, batch=2)
    coords = node_coords(2 * n)[torch.randperm((2 * n + 1) ** 2)[:30]].expand(2, -1, -1)
    batch = dict(
        inputs, coords=coords, cell=torch.full_like(coords, 1.0 / n), target=torch.rand(2, 30, 1)
    )
    with pytest.raises(KeyError, match="hr"):
        idm.training_loss(batch)
    batch["hr"] = torch.rand(2, 1, 2 * n + 1, 2 * n + 1)
    loss, logs = idm.training_loss(batch)
    assert torch.isfinite(loss) and logs["eps_l1"] > 0


def test_schedule_must_reach_noise(tiny_config):
    cfg = resolve_model_config("idm", tiny_config)
    cfg.update(train_timesteps=100, beta_end=1e-2)
    with pytest.raises(ValueError, match="alpha_bar"):
        IDM(cfg)


@pytest.mark.parametrize("m", [3, 64, 37, 300])
def test_cell_taps_are_the_dense_weights(m):
    E = 16
    idx, w = cell_taps(m, E)
    dense = torch.zeros(E, m + 1, dtype=torch.float64).scatter_add_(1, idx, w)
    torch.testing.assert_close(dense, cell_weights(m, E), rtol=0, atol=0)
    assert idx.shape[1] <= math.ceil(m / E) + 2


def test_training_and_sampling_pool_alike(idm, tiny_config):
    """step_setup pools densely under autograd and through taps without: the same values."""
    xq = _xq(idm, 3 * tiny_config["lr_n"] + 1, batch=1)
    with torch.no_grad():
        taps = _setup(idm, tiny_config, xq)[1].proj
    dense = _setup(idm, tiny_config, xq)[1].proj
    torch.testing.assert_close(dense.detach(), taps, rtol=1e-5, atol=1e-6)
