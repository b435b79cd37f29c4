"""CLIT-specific checks: a one-stage CLIT is LIT, the cascade sum of eq. (9), the scale splits
and the cumulative schedule."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from fesr.coords import sample_nodal
from fesr.models.clit import greedy_factors, random_factors
from fesr.models.registry import build_model


def _config(tiny_config, **clit):
    methods = dict(tiny_config["methods"])
    methods["clit"] = {**methods["clit"], **clit}
    return {**tiny_config, "methods": methods}


def _inputs(config, batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    n, E = config["lr_n"], config["physics"]["E"]
    return {
        "lr": torch.rand(batch, 1, n + 1, n + 1, generator=g),
        "image": torch.rand(batch, 2, E, E, generator=g),
    }


def _lit_weights_into_clit(lit, clit):
    """LIT's ``stage.*`` are CLIT's ``stages.0.*``; encoder and proj keep their names."""
    mapped = {
        k.replace("stage.", "stages.0.", 1) if k.startswith("stage.") else k: v
        for k, v in lit.state_dict().items()
    }
    missing, unexpected = clit.load_state_dict(mapped, strict=False)
    assert not unexpected
    assert all(k.startswith("stages.") and not k.startswith("stages.0.") for k in missing)


def _batch(config, alpha, q=50, seed=3):
    g = torch.Generator().manual_seed(seed)
    coords = torch.rand(1, q, 2, generator=g) * 2 - 1
    cell = torch.full_like(coords, 2.0 / (config["lr_n"] * alpha))
    return coords, cell


def test_one_stage_clit_equals_lit(tiny_config):
    config = _config(tiny_config, stages=1, cumulative={"stage_iterations": [1.0]})
    torch.manual_seed(0)
    lit = build_model("lit", config).eval()
    clit = build_model("clit", config).eval()
    _lit_weights_into_clit(lit, clit)
    inputs = _inputs(config)
    for alpha in (2, 3.7, 16, 64):
        coords, cell = _batch(config, alpha)
        with torch.no_grad():
            torch.testing.assert_close(
                clit.query(inputs, coords, cell), lit.query(inputs, coords, cell), rtol=0, atol=0
            )
    torch.testing.assert_close(
        clit.predict(inputs, 4, chunk=1000), lit.predict(inputs, 4, chunk=1000), rtol=0, atol=0
    )
    # the training loss too, at every step of the (single-phase) schedule
    coords, cell = _batch(config, 4)
    batch = dict(inputs, coords=coords, cell=cell, target=torch.rand(1, coords.shape[1], 1))
    for step in range(3):
        torch.testing.assert_close(
            clit.training_loss(batch, step)[0], lit.training_loss(batch, step)[0]
        )


def test_multi_stage_clit_is_lit_where_one_factor_suffices(tiny_config):
    """At r = m / E <= max_stage_scale the evaluation plan is one stage: the first stage's LIT."""
    torch.manual_seed(0)
    lit = build_model("lit", tiny_config).eval()
    clit = build_model("clit", tiny_config).eval()
    _lit_weights_into_clit(lit, clit)
    inputs = _inputs(tiny_config)
    E, n = tiny_config["physics"]["E"], tiny_config["lr_n"]
    alpha = clit.max_stage_scale * E / n  # the largest scale with one factor
    coords, cell = _batch(tiny_config, alpha)
    with torch.no_grad():
        torch.testing.assert_close(
            clit.query(inputs, coords, cell), lit.query(inputs, coords, cell), rtol=0, atol=0
        )
        coords, cell = _batch(tiny_config, 2 * alpha)  # two factors now: the second stage adds on
        assert not torch.allclose(clit.query(inputs, coords, cell), lit.query(inputs, coords, cell))


def test_cascade_is_discounted_sum_of_stage_residuals(tiny_config):
    """Eq. (9) from the stages called one by one on their own resampled maps."""
    torch.manual_seed(0)
    clit = build_model(
        "clit", _config(tiny_config, stages=2, cumulative={"stage_iterations": [0.5, 0.5]})
    ).eval()
    inputs = _inputs(tiny_config)
    E = tiny_config["physics"]["E"]
    factors = [2.5, 1.6]
    coords, cell = _batch(tiny_config, E * 4 / tiny_config["lr_n"])
    with torch.no_grad():
        state = clit.encode(inputs)
        got = clit.cascade(state, coords, cell, factors)
        feat = clit.proj(clit.encoder(inputs["image"]))
        r1 = clit.stages[0](clit.stages[0].prepare(feat), coords, cell)
        feat2 = F.interpolate(
            feat, size=(round(E * 2.5),) * 2, mode="bilinear", align_corners=False
        )
        r2 = clit.stages[1](clit.stages[1].prepare(feat2), coords, cell)
        want = 0.75 * r1 + r2 + sample_nodal(inputs["lr"], coords, "bilinear")
    torch.testing.assert_close(got, want)
    assert sorted(k[1] for k in state["maps"]) == [E, round(E * 2.5)]


def test_scale_splits():
    assert greedy_factors(30, 4, 3) == pytest.approx([4, 4, 1.875])
    assert greedy_factors(16, 4, 3) == pytest.approx([4, 4])
    assert greedy_factors(4, 4, 3) == pytest.approx([4])
    assert greedy_factors(0.5, 4, 3) == pytest.approx([0.5])
    assert greedy_factors(100, 4, 2) == pytest.approx([4, 25])  # excess merges into the last
    g = torch.Generator().manual_seed(0)
    for r in (0.5, 1.0, 3.0, 4.0):
        for k in (1, 2, 3):
            f = random_factors(r, k, generator=g)
            assert len(f) == k and math.prod(f) == pytest.approx(r)
            assert all(min(1.0, r) - 1e-12 <= s <= max(1.0, r) + 1e-12 for s in f)


def test_cumulative_schedule(tiny_config):
    config = _config(tiny_config, stages=3, cumulative={"stage_iterations": [0.5, 0.3, 0.2]})
    config["training"] = {**config["training"], "iterations": 100}
    clit = build_model("clit", config)
    assert [clit.unlocked_stages(s) for s in (0, 49, 50, 79, 80, 99)] == [1, 1, 2, 2, 3, 3]
    assert [clit.active_stages(s) for s in range(50, 54)] == [1, 2, 1, 2]
    assert [clit.active_stages(s) for s in range(81, 84)] == [1, 2, 3]
    # the loss uses exactly the active stages: in phase 1 later stages get no gradient
    inputs = _inputs(config, batch=2)
    coords = torch.rand(2, 40, 2) * 2 - 1
    batch = dict(
        inputs,
        coords=coords,
        cell=torch.full_like(coords, 2 / (config["lr_n"] * 4)),
        target=torch.rand(2, 40, 1),
    )
    for step, used in ((10, 1), (51, 2), (83, 3)):
        clit.zero_grad()
        loss, info = clit.training_loss(batch, step)
        loss.backward()
        assert info["stages"] == used
        for i, stage in enumerate(clit.stages):
            has_grad = all(p.grad is not None for p in stage.parameters())
            assert has_grad == (i < used), (step, i)
    # HR coarser than the feature map (r < 1): no split into factors >= 1, stage 1 alone
    coarse = dict(batch, cell=torch.full_like(coords, 2 / (0.5 * config["physics"]["E"])))
    assert clit.training_loss(coarse, 83)[1]["stages"] == 1


def test_bad_schedule_is_rejected(tiny_config):
    with pytest.raises(ValueError, match="stage_iterations"):
        build_model("clit", _config(tiny_config, stages=2, cumulative={"stage_iterations": [1.0]}))


def test_later_stages_train_on_their_evaluation_split(tiny_config):
    """With config.yaml's cascade plan, E and training scales, the largest training scale runs
    the second stage on the evaluation split (same factors, so the same stage-2 map), and that
    stage receives gradients there: the cascade is trained in distribution."""
    from fesr.config import load_config

    paper = load_config()
    plan = paper["methods"]["clit"]
    E, n = paper["physics"]["E"], paper["lr_n"]
    alpha = max(paper["training"]["train_scales"])
    assert alpha <= max(paper["splits"]["train"]["scales"])  # no scale beyond the data
    config = _config(
        tiny_config,
        stages=plan["stages"],
        max_stage_scale=plan["max_stage_scale"],
        cumulative=plan["cumulative"],
    )
    config["physics"] = {**config["physics"], "E": E}
    config["training"] = {**config["training"], "iterations": 10}
    torch.manual_seed(0)
    clit = build_model("clit", config)
    inputs = _inputs(config, batch=2)
    coords = torch.rand(2, 40, 2) * 2 - 1
    cell = torch.full_like(coords, 2 / (n * alpha))
    batch = dict(inputs, coords=coords, cell=cell, target=torch.rand(2, 40, 1))
    eval_split = clit.eval_factors(clit.scale_ratio(cell, E))
    assert len(eval_split) == 2  # the in-distribution scale already uses the cascade
    # a phase-2 step with both stages active
    step = next(s for s in range(10) if clit.active_stages(s) == 2)
    used, cascade = [], clit.cascade  # observe the split the training step uses

    def spy(state, c, ce, factors):
        used.append(factors)
        return cascade(state, c, ce, factors)

    clit.cascade = spy
    loss, info = clit.training_loss(batch, step)
    loss.backward()
    assert info["stages"] == 2 and used == [pytest.approx(eval_split)]
    grads = [p.grad for p in clit.stages[1].parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    # stage 2 trained on exactly the map evaluation gives it
    state = clit.encode(inputs)
    with torch.no_grad():
        clit.cascade(state, coords, cell, eval_split)
    sizes = sorted(size for i, size in state["maps"] if i == 1)
    assert sizes == [round(E * eval_split[0])]


@pytest.mark.parametrize("alpha", [8, 7.3])
def test_fast_grid_path_equals_general_path_with_two_stages(tiny_config, alpha):
    """``predict``'s grid path through the cascade (here r = m / E > 2: two stages, the second on
    the resampled 2E map) gives the general path's values."""
    from fesr.coords import hr_cell, node_coords
    from fesr.models.base import hr_size

    torch.manual_seed(0)
    clit = build_model("clit", tiny_config).eval().double()
    with torch.no_grad():  # float64: only summation order may differ
        for p in clit.parameters():
            p.add_(0.1 * torch.randn_like(p))
    inputs = {k: v.double() for k, v in _inputs(tiny_config, batch=2).items()}
    m = hr_size(tiny_config["lr_n"], alpha)
    coords = node_coords(m, dtype=torch.float64).unsqueeze(0).expand(2, -1, -1)
    cell = torch.full_like(coords, hr_cell(m))
    assert len(clit.eval_factors(clit.scale_ratio(cell, tiny_config["physics"]["E"]))) == 2
    with torch.no_grad():
        want = clit.query(inputs, coords, cell)[..., 0].reshape(2, m + 1, m + 1)
    got = clit.predict(inputs, alpha, chunk=5000)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9 * float(want.abs().max()))


def test_two_stage_cascade_is_patch_invariant(tiny_config):
    """Patch training: CLIT derives r from the patch's own sizes (r = p alpha / P =
    n alpha / E), so on a crop of the field (image, LR nodes) its two-stage prediction at
    interior nodes equals the whole field's at the same nodes, the resampled stage-2 map
    included. EDSR with one block keeps the receptive field well inside the margin."""
    config = copy.deepcopy(tiny_config)
    config["methods"]["clit"]["encoder"] = "edsr-baseline"
    config["encoders"]["edsr-baseline"] = {"n_resblocks": 1, "n_feats": 8}
    torch.manual_seed(0)
    clit = build_model("clit", config).eval()
    inputs = _inputs(config)
    n, E = config["lr_n"], config["physics"]["E"]
    alpha, P, y0, x0 = 8, 32, 16, 24  # patch of P feature pixels at (y0, x0), whole LR cells
    c = E // n  # feature pixels per LR cell
    p, i0, j0 = P // c, y0 // c, x0 // c
    patch = {
        "image": inputs["image"][..., y0 : y0 + P, x0 : x0 + P],
        "lr": inputs["lr"][..., i0 : i0 + p + 1, j0 : j0 + p + 1],
    }
    cell = torch.full((1, 1, 2), 2 / (p * alpha))
    assert len(clit.eval_factors(clit.scale_ratio(cell, P))) == 2
    whole = clit.predict(inputs, alpha)[0]
    local = clit.predict(patch, alpha)[0]
    k = 8 // c * alpha  # margin: 8 feature pixels, in HR nodes
    a = slice(k, p * alpha - k + 1)
    want = whole[i0 * alpha :, j0 * alpha :][a, a]
    torch.testing.assert_close(local[a, a], want, rtol=1e-5, atol=1e-5)
    # the check can fail: a patch shifted by one LR cell gives other values
    shifted = whole[(i0 + 1) * alpha :, j0 * alpha :][a, a]
    assert not torch.allclose(local[a, a], shifted, atol=1e-3)
