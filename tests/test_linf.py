"""LINF: the flow is a bijection with the right log-determinant, sampling is reproducible, and
the two training stages compute the losses they claim."""

import math

import pytest
import torch

from fesr.coords import node_coords
from fesr.models.flows import ConditionalFlow
from fesr.models.registry import build_model


def _flow(dim, layers, seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    flow = ConditionalFlow(dim, layers).to(dtype)
    with torch.no_grad():  # move off the initialisation so W and b are generic
        for lin in flow.linears:
            lin.weight.add_(0.3 * torch.randn_like(lin.weight))
            lin.bias.normal_()
    return flow


@pytest.mark.parametrize(
    "dim, dtype",
    # d = 1 in float32 is the model's flow; d = 4 checks the dense-matrix algebra (float64, so
    # the conditioning of the random matrices does not hide an error).
    [(1, torch.float32), (4, torch.float64)],
)
def test_flow_inverts(dim, dtype):
    flow = _flow(dim, layers=5, dtype=dtype)
    x = torch.randn(3, 50, dim, dtype=dtype)
    cond = torch.randn(3, 50, flow.cond_dim, dtype=dtype)
    z, _ = flow(x, cond)
    assert (z - x).abs().max() > 0.1  # the flow does something
    torch.testing.assert_close(flow.inverse(z, cond), x, rtol=0, atol=1e-5)


@pytest.mark.parametrize("dim", [1, 3])
def test_flow_logdet_matches_jacobian(dim):
    flow = _flow(dim, layers=4, dtype=torch.float64)
    x = torch.randn(dim, dtype=torch.float64)
    cond = torch.randn(flow.cond_dim, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: flow(v, cond)[0], x)
    _, logdet = flow(x, cond)
    torch.testing.assert_close(logdet, torch.linalg.slogdet(jac)[1])


def test_flow_nll_is_the_gaussian_density_for_one_value():
    """For d = 1 the flow is affine, z = a x + b: p(x) = N(x; -b/a, 1/a^2), computed directly."""
    flow = _flow(1, layers=3, dtype=torch.float64)
    cond = torch.randn(7, flow.cond_dim, dtype=torch.float64)
    x = torch.randn(7, 1, dtype=torch.float64)
    b = flow(torch.zeros_like(x), cond)[0][:, 0]
    a = flow(torch.ones_like(x), cond)[0][:, 0] - b
    mean, std = -b / a, 1.0 / a.abs()
    expected = 0.5 * ((x[:, 0] - mean) / std) ** 2 + torch.log(std) + 0.5 * math.log(2 * math.pi)
    torch.testing.assert_close(flow.nll(x, cond), expected)


@pytest.fixture
def linf(tiny_config):
    torch.manual_seed(0)
    return build_model("linf", tiny_config).eval()


def _inputs(cfg, batch=1):
    g = torch.Generator().manual_seed(3)
    n, E = cfg["lr_n"], cfg["physics"]["E"]
    return {
        "lr": torch.rand(batch, 1, n + 1, n + 1, generator=g),
        "image": torch.rand(batch, 2, E, E, generator=g),
    }


def test_temperature_zero_is_deterministic_and_equals_query(linf, tiny_config):
    inputs = _inputs(tiny_config)
    a = linf.predict(inputs, 2)
    b = linf.predict(inputs, 2, temperature=0.0, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    m = 2 * tiny_config["lr_n"]
    c = node_coords(m).unsqueeze(0)
    with torch.no_grad():
        q = linf.query(inputs, c, torch.full_like(c, 2.0 / m))
    torch.testing.assert_close(q[0, :, 0].reshape(m + 1, m + 1), a[0], rtol=1e-5, atol=1e-6)


def test_positive_temperature_varies_with_the_seed_and_is_reproducible(linf, tiny_config):
    inputs = _inputs(tiny_config)

    def draw(seed, chunk=10**9):
        return linf.predict(
            inputs, 2, chunk=chunk, temperature=0.8, generator=torch.Generator().manual_seed(seed)
        )

    first, again, other = draw(1), draw(1), draw(2)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    torch.testing.assert_close(draw(1, chunk=333), first, rtol=1e-5, atol=1e-6)
    assert (first - other).abs().max() > 1e-4
    assert (first - linf.predict(inputs, 2)).abs().max() > 1e-4  # differs from tau = 0


def test_sample_spread(linf, tiny_config):
    inputs = _inputs(tiny_config, batch=2)
    s = linf.sample(inputs, 2, n_samples=3, temperature=0.5, seed=4)
    m = 2 * tiny_config["lr_n"]
    assert s.shape == (3, 2, m + 1, m + 1)
    assert s.std(dim=0).mean() > 0
    torch.testing.assert_close(linf.sample(inputs, 2, n_samples=3, temperature=0.5, seed=4), s)
    with pytest.raises(ValueError, match="temperature"):
        linf.predict(inputs, 2, temperature=-1.0)


def test_two_stage_loss(linf, tiny_config):
    cfg = tiny_config
    stage1 = linf.stage1_steps
    assert stage1 == round(
        cfg["methods"]["linf"].get("stage1_fraction", 0.5) * cfg["training"]["iterations"]
    )
    n = cfg["lr_n"]
    inputs = _inputs(cfg, batch=2)
    coords = torch.rand(2, 32, 2) * 2 - 1
    batch = dict(
        inputs, coords=coords, cell=torch.full_like(coords, 1.0 / n), target=torch.rand(2, 32, 1)
    )
    with torch.no_grad():
        loss1, logs1 = linf.training_loss(batch, step=0)
        loss2, logs2 = linf.training_loss(batch, step=stage1)
        fidelity = linf.query(batch, coords, batch["cell"])
    assert "l1" not in logs1 and logs1["stage"] == 1
    assert loss1.item() == pytest.approx(logs1["nll"], rel=1e-6)
    l1 = (fidelity - batch["target"]).abs().mean().item()
    assert logs2["l1"] == pytest.approx(l1, rel=1e-5)
    assert loss2.item() == pytest.approx(
        linf.nll_weight * logs2["nll"] + linf.l1_weight * l1, rel=1e-5
    )


def test_patch_other_than_one_is_refused(tiny_config):
    cfg = {
        **tiny_config,
        "methods": {
            **tiny_config["methods"],
            "linf": {**tiny_config["methods"]["linf"], "patch": 3},
        },
    }
    with pytest.raises(ValueError, match="patch=3"):
        build_model("linf", cfg)
