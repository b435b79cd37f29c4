"""The contract every registered SR method keeps, parametrised over the registry.

Method-specific behaviour (SCS, Gabor, LINF's flow, IDM's sampler, ...) is tested in the
method's own test file; this file checks what all of them promise.
"""

import math

import pytest
import torch

from fesr.coords import node_coords
from fesr.models.base import hr_size
from fesr.models.registry import METHODS, build_model

LEARNED = [m for m in METHODS if m != "bicubic"]


def _inputs(config, model, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    n, E = config["lr_n"], config["physics"]["E"]
    lr = torch.rand(batch, 1, n + 1, n + 1, generator=g)
    image = torch.rand(batch, 2 if model.uses_coefficient else 1, E, E, generator=g)
    return {"lr": lr, "image": image}


def _queries(batch, q, alpha, n, seed=1):
    g = torch.Generator().manual_seed(seed)
    coords = torch.rand(batch, q, 2, generator=g) * 2 - 1
    cell = torch.full_like(coords, 2.0 / (n * alpha))
    return coords, cell


def _available(method):
    try:
        return build_model(method, pytest.tiny_cfg)
    except ModuleNotFoundError as err:  # a method whose module is not written yet
        pytest.skip(f"{method}: {err}")


@pytest.fixture(autouse=True)
def _cfg(tiny_config):
    pytest.tiny_cfg = tiny_config


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("alpha", [2, 3.7])
def test_query_shape(method, alpha, tiny_config):
    torch.manual_seed(0)
    model = _available(method).eval()
    inputs = _inputs(tiny_config, model)
    coords, cell = _queries(2, 50, alpha, tiny_config["lr_n"])
    with torch.no_grad():
        out = model.query(inputs, coords, cell)
    assert out.shape == (2, 50, 1)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("alpha", [2, 3.7, 64])
def test_predict_shape(method, alpha, tiny_config):
    torch.manual_seed(0)
    model = _available(method).eval()
    inputs = _inputs(tiny_config, model, batch=1)
    n = tiny_config["lr_n"]
    out = model.predict(inputs, alpha, chunk=1 << 18)
    m = hr_size(n, alpha)
    assert out.shape == (1, m + 1, m + 1)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("method", list(METHODS))
def test_chunked_predict_equals_single_pass(method, tiny_config):
    torch.manual_seed(0)
    model = _available(method).eval()
    inputs = _inputs(tiny_config, model, batch=1)
    whole = model.predict(inputs, 4, chunk=10**9)
    chunked = model.predict(inputs, 4, chunk=997)
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", LEARNED)
def test_gradients_reach_every_parameter(method, tiny_config):
    torch.manual_seed(0)
    model = _available(method).train()
    inputs = _inputs(tiny_config, model)
    coords, cell = _queries(2, 64, 2, tiny_config["lr_n"])
    batch = dict(inputs, coords=coords, cell=cell, target=torch.rand(2, 64, 1), scale=2.0)
    if getattr(model, "needs_full_field", False):  # IDM trains on the whole HR field
        m = 2 * tiny_config["lr_n"]
        batch["hr"] = torch.rand(2, 1, m + 1, m + 1)
    # Several steps: methods with staged training (CLIT, LINF) exercise every part over them.
    for step in range(4):
        model.zero_grad()
        loss, _ = model.training_loss(batch, step=step)
        loss.backward()
        missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
        if not missing:
            break
    assert not missing, f"{method}: no gradient for {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.slow
@pytest.mark.parametrize("method", LEARNED)
def test_loss_falls_tenfold_on_one_sample(method, tiny_config):
    """Fitting one sample: the training loss falls by >= 10x within a few hundred CPU steps."""
    torch.manual_seed(0)
    model = _available(method).train()
    inputs = _inputs(tiny_config, model, batch=1)
    n = tiny_config["lr_n"]
    coords, cell = _queries(1, 256, 2, n)

    # A smooth target with O(1) error for every method at the start, unseen in the input.
    def field(c):
        return (torch.sin(math.pi * c[..., :1]) * torch.cos(2 * c[..., 1:])) + 1.0

    batch = dict(inputs, coords=coords, cell=cell, target=field(coords), scale=2.0)
    if getattr(model, "needs_full_field", False):  # IDM: the same field at every HR node
        batch["hr"] = field(node_coords(2 * n)).reshape(1, 1, 2 * n + 1, 2 * n + 1)
    opt = torch.optim.Adam(model.parameters(), lr=getattr(model, "fit_test_lr", 2e-3))
    losses = []
    for step in range(400):
        opt.zero_grad()
        loss, _ = model.training_loss(batch, step=step)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    first = sum(losses[:5]) / 5
    last = min(losses[-20:])
    assert last <= first / 10, f"{method}: loss {first:.4g} -> {last:.4g}"
