"""SRNO-specific checks: the Galerkin block against the quadratic form of the same attention,
exact chunked predict with bounded per-pass size, and the Monte-Carlo relation between training
queries on random node subsets and prediction on all nodes."""

import pytest
import torch
import torch.nn.functional as F

from fesr.coords import hr_cell, node_coords
from fesr.models import srno
from fesr.models.base import hr_size
from fesr.models.registry import build_model
from fesr.models.srno import GalerkinBlock


def _inputs(config, batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    n, E = config["lr_n"], config["physics"]["E"]
    return {
        "lr": torch.rand(batch, 1, n + 1, n + 1, generator=g),
        "image": torch.rand(batch, 2, E, E, generator=g),
    }


def _all_nodes(config, alpha, batch):
    m = hr_size(config["lr_n"], alpha)
    coords = node_coords(m).unsqueeze(0).expand(batch, -1, -1)
    return m, coords, torch.full_like(coords, hr_cell(m))


def test_galerkin_block_matches_quadratic_form():
    """Q (K^T V) / N computed as (Q K^T / N) V, per head, with layer-normed K and V by hand."""
    torch.manual_seed(0)
    block = GalerkinBlock(width=12, heads=3).double()
    with torch.no_grad():
        for p in (block.k_norm.weight, block.k_norm.bias, block.v_norm.weight, block.v_norm.bias):
            p.copy_(torch.randn_like(p))
    z = torch.randn(2, 37, 12, dtype=torch.float64)
    with torch.no_grad():
        qkv = z @ block.qkv.weight.T + block.qkv.bias
        q, k, v = (
            t.reshape(2, 37, 3, 4).transpose(1, 2) for t in qkv.split(12, dim=-1)
        )  # (B, h, N, d)

        def norm(x, w, b):
            mu = x.mean(-1, keepdim=True)
            var = ((x - mu) ** 2).mean(-1, keepdim=True)
            return (x - mu) / torch.sqrt(var + 1e-5) * w[:, None] + b[:, None]

        k = norm(k, block.k_norm.weight, block.k_norm.bias)
        v = norm(v, block.v_norm.weight, block.v_norm.bias)
        att = ((q @ k.transpose(-1, -2)) / 37) @ v  # no softmax
        h = z + att.transpose(1, 2).reshape(2, 37, 12)
        want = h + block.ffn[2](F.gelu(block.ffn[0](h)))
        got = block(z)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("cache", [True, False])
@pytest.mark.parametrize("chunk", [1, 997, 4096])
def test_chunked_predict_equals_one_query_over_all_nodes(tiny_config, chunk, cache, monkeypatch):
    """predict == query with every node at once, batch of 2: with z cached per node (one pass
    per block) and without (blocks + 1 passes over chunks, recomputing z)."""
    if not cache:
        monkeypatch.setattr(srno, "Z_CACHE_BYTES", 0)
    torch.manual_seed(0)
    model = build_model("srno", tiny_config).eval()
    assert len(model.blocks) >= 2  # block 2 depends on block 1 at every node: the hard case
    inputs = _inputs(tiny_config, batch=2)
    alpha = 0.5 if chunk == 1 else 3  # chunk 1 (one node per pass) on a small grid
    m, coords, cell = _all_nodes(tiny_config, alpha, 2)
    with torch.no_grad():
        whole = model.query(inputs, coords, cell).reshape(2, m + 1, m + 1)
    torch.testing.assert_close(
        model.predict(inputs, alpha, chunk=chunk), whole, rtol=1e-5, atol=1e-5
    )


def test_predict_memory_is_bounded_by_the_chunk(tiny_config, monkeypatch):
    """Without the per-node z cache (Z_CACHE_BYTES exceeded, as paper widths at 64x are), every
    per-node tensor passes through the lifting and the blocks and none of them ever sees more
    than one chunk of nodes, however many nodes the output has."""
    monkeypatch.setattr(srno, "Z_CACHE_BYTES", 0)
    torch.manual_seed(0)
    model = build_model("srno", tiny_config).eval()
    seen = []
    hooks = [
        mod.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape[:-1].numel()))
        for mod in (
            model.lift,
            model.head,
            *[b.qkv for b in model.blocks],
            *[b.ffn for b in model.blocks],
        )
    ]
    chunk = 3000
    try:
        out = model.predict(_inputs(tiny_config), 8, chunk=chunk)
    finally:
        for h in hooks:
            h.remove()
    n_nodes = out[0].numel()
    assert n_nodes > 10 * chunk
    assert max(seen) <= chunk
    assert sum(seen) >= (len(model.blocks) + 1) * n_nodes  # blocks + 1 passes over every node


def test_training_subsets_estimate_the_full_node_attention(tiny_config):
    """Attention over a random node subset is a Monte-Carlo estimate of attention over all nodes:
    query(subset) approaches predict() at those nodes as the subset grows (error ~ 1/sqrt(N))."""
    torch.manual_seed(0)
    model = build_model("srno", tiny_config).eval()
    inputs = _inputs(tiny_config)
    alpha = 4
    full = model.predict(inputs, alpha).reshape(1, -1, 1)
    m, coords, cell = _all_nodes(tiny_config, alpha, 1)
    g = torch.Generator().manual_seed(0)
    errors = {}
    for size in (32, 2048):
        errs = []
        for _ in range(8):
            idx = torch.randperm(coords.shape[1], generator=g)[:size]
            with torch.no_grad():
                sub = model.query(inputs, coords[:, idx], cell[:, idx])
            errs.append((sub - full[:, idx]).abs().mean())
        errors[size] = float(torch.stack(errs).mean())
    assert errors[2048] < errors[32] / 3, errors


def test_attention_is_permutation_equivariant_and_global(tiny_config):
    torch.manual_seed(0)
    model = build_model("srno", tiny_config).eval()
    inputs = _inputs(tiny_config)
    coords = torch.rand(1, 300, 2) * 2 - 1
    cell = torch.full_like(coords, 2 / 128)
    perm = torch.randperm(300)
    with torch.no_grad():
        out = model.query(inputs, coords, cell)
        torch.testing.assert_close(
            model.query(inputs, coords[:, perm], cell[:, perm]), out[:, perm]
        )
        fewer = model.query(inputs, coords[:, :150], cell[:, :150])
    assert not torch.allclose(fewer, out[:, :150])  # the other points matter: global attention
