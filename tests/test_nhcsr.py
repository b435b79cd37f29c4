"""NH-CSR specifics: the ablation variants keep the contract; branches, skip, loss, config."""

import pytest
import torch

from fesr.models.base import hr_size
from fesr.models.registry import build_model
from fesr.models.scs import stochastic_cosine_similarity

VARIANTS = [
    "nhcsr-pe_plain",
    "nhcsr-pe_sinusoid",
    "nhcsr-pe_ipe",
    "nhcsr-pe_lte",
    "nhcsr-single_scale",
    "nhcsr-single_scale-no_scs",
    "nhcsr-no_scs",
    "nhcsr-no_coef",
    "nhcsr-edsr",
    "nhcsr-swinir",
]


def _build(name, config, **over):
    if over:
        config = dict(
            config, methods=dict(config["methods"], nhcsr=dict(config["methods"]["nhcsr"], **over))
        )
    try:
        return build_model(name, config)
    except ModuleNotFoundError as err:  # SwinIR comes from another module
        pytest.skip(f"{name}: {err}")


def _inputs(config, model, batch=1, seed=0, zero_boundary=False):
    g = torch.Generator().manual_seed(seed)
    n, E = config["lr_n"], config["physics"]["E"]
    lr = torch.rand(batch, 1, n + 1, n + 1, generator=g)
    if zero_boundary:
        lr[..., 0, :] = lr[..., -1, :] = lr[..., :, 0] = lr[..., :, -1] = 0.0
    image = torch.rand(batch, 2 if model.uses_coefficient else 1, E, E, generator=g)
    return {"lr": lr, "image": image}


def _batch(config, model, q=48, alpha=2.0, seed=1):
    g = torch.Generator().manual_seed(seed)
    coords = torch.rand(2, q, 2, generator=g) * 2 - 1
    cell = torch.full_like(coords, 2.0 / (config["lr_n"] * alpha))
    return dict(
        _inputs(config, model, batch=2),
        coords=coords,
        cell=cell,
        target=torch.rand(2, q, 1, generator=g),
        scale=alpha,
    )


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_contract(name, tiny_config):
    """Shapes at a non-integer scale, chunked == single pass, gradients reach every parameter."""
    torch.manual_seed(0)
    model = _build(name, tiny_config).eval()
    inputs = _inputs(tiny_config, model)
    n = tiny_config["lr_n"]
    out = model.predict(inputs, 3.7)
    m = hr_size(n, 3.7)
    assert out.shape == (1, m + 1, m + 1) and torch.isfinite(out).all()
    torch.testing.assert_close(
        model.predict(inputs, 2, chunk=997),
        model.predict(inputs, 2, chunk=10**9),
        rtol=1e-5,
        atol=1e-5,
    )
    model.train()
    loss, logs = model.training_loss(_batch(tiny_config, model))
    loss.backward()
    missing = [k for k, p in model.named_parameters() if p.grad is None]
    assert not missing, missing[:5]
    assert set(logs) == {"l1", "scs"}


def test_variants_configure_what_their_names_say(tiny_config):
    assert build_model("nhcsr-single_scale", tiny_config).multi_scale is False
    assert not hasattr(build_model("nhcsr-single_scale", tiny_config), "fine")
    assert build_model("nhcsr-no_coef", tiny_config).encoder.sfe1.in_channels == 1
    assert type(build_model("nhcsr-pe_lte", tiny_config).coarse.pe).__name__ == "LTEEncoding"
    assert type(build_model("nhcsr", tiny_config).fine.pe).__name__ == "GaborEncoding"
    assert build_model("nhcsr-no_scs", tiny_config).use_scs is False


def test_fine_map_is_the_pixel_shuffled_feature_grid(tiny_config):
    model = build_model("nhcsr", tiny_config).eval()
    E, r = tiny_config["physics"]["E"], model.cfg.get("pixel_shuffle", 2)
    with torch.no_grad():
        state = model.encode(_inputs(tiny_config, model))
    assert tuple(state["coarse"]["size"]) == (E, E)
    assert tuple(state["fine"]["size"]) == (r * E, r * E)


def test_predict_branches_shapes_and_full_is_predict(tiny_config):
    torch.manual_seed(0)
    model = build_model("nhcsr", tiny_config).eval()
    inputs = _inputs(tiny_config, model, batch=2)
    br = model.predict_branches(inputs, 3.7, chunk=1000)
    m = hr_size(tiny_config["lr_n"], 3.7)
    assert set(br) == {"coarse", "fine", "full", "skip"}
    assert all(v.shape == (2, m + 1, m + 1) for v in br.values())
    torch.testing.assert_close(br["full"], model.predict(inputs, 3.7, chunk=1000), rtol=0, atol=0)
    assert not torch.allclose(br["coarse"], br["fine"])


def test_branches_are_the_decoder_on_each_branch_alone(tiny_config):
    """Silence the fine branch (its MLP outputs 0): full == coarse and fine == skip + decoder(0)."""
    torch.manual_seed(0)
    model = build_model("nhcsr", tiny_config).eval()
    with torch.no_grad():
        model.fine.mlp[-1].weight.zero_()
        model.fine.mlp[-1].bias.zero_()
    br = model.predict_branches(_inputs(tiny_config, model), 2)
    torch.testing.assert_close(br["full"], br["coarse"])
    with torch.no_grad():
        const = model.decoder(torch.zeros(1, model.decoder[1][0].in_features))[0, 0]
    torch.testing.assert_close(br["fine"] - br["skip"], torch.full_like(br["fine"], float(const)))


def test_single_scale_branches(tiny_config):
    model = build_model("nhcsr-single_scale", tiny_config).eval()
    br = model.predict_branches(_inputs(tiny_config, model), 2)
    assert set(br) == {"coarse", "full", "skip"}
    torch.testing.assert_close(br["coarse"], br["full"])


def test_skip_is_the_q1_interpolant_of_the_lr_nodes(tiny_config):
    """With a silent decoder the output is the LR field's Q1 interpolant: at even HR nodes of the
    2x grid exactly the LR nodal values (vertex-centred, not cell-centred)."""
    model = build_model("nhcsr", tiny_config).eval()
    with torch.no_grad():
        model.decoder[1][-1].weight.zero_()
        model.decoder[1][-1].bias.zero_()
    inputs = _inputs(tiny_config, model)
    out = model.predict(inputs, 2)
    torch.testing.assert_close(out[:, ::2, ::2], inputs["lr"][:, 0])
    # odd nodes: the mean of the two neighbouring LR nodes along a mesh line
    lr = inputs["lr"][0, 0]
    torch.testing.assert_close(out[0, ::2, 1::2], 0.5 * (lr[:, :-1] + lr[:, 1:]))


def test_exact_boundary_switch(tiny_config):
    model = _build("nhcsr", tiny_config, exact_boundary=True).eval()
    out = model.predict(_inputs(tiny_config, model, zero_boundary=True), 2)
    for edge in (out[0, 0], out[0, -1], out[0, :, 0], out[0, :, -1]):
        assert torch.all(edge == 0)
    free = build_model("nhcsr", tiny_config).eval()
    assert free.predict(_inputs(tiny_config, free, zero_boundary=True), 2)[0, 0].abs().max() > 0


def test_cell_is_clipped_at_the_largest_training_scale(tiny_config):
    model = build_model("nhcsr", tiny_config).eval()
    n, top = tiny_config["lr_n"], max(tiny_config["training"]["train_scales"])
    inputs = _inputs(tiny_config, model)
    coords = torch.rand(1, 30, 2) * 2 - 1
    with torch.no_grad():
        at_top = model.query(inputs, coords, torch.full_like(coords, 2 / (n * top)))
        beyond = model.query(inputs, coords, torch.full_like(coords, 2 / (n * 64)))
        below = model.query(inputs, coords, torch.full_like(coords, 2 / (n * 2)))
    torch.testing.assert_close(beyond, at_top)
    assert not torch.allclose(below, at_top)


def test_loss_is_l1_plus_lambda_one_minus_scs(tiny_config):
    torch.manual_seed(0)
    for name in ("nhcsr", "nhcsr-no_scs"):
        model = build_model(name, tiny_config)
        batch = _batch(tiny_config, model)
        loss, logs = model.training_loss(batch, step=5)
        again, _ = model.training_loss(batch, step=5)
        assert loss.item() == again.item()  # the SCS groups depend on the step only
        with torch.no_grad():
            pred = model.query(batch, batch["coords"], batch["cell"])
        l1 = (pred - batch["target"]).abs().mean()
        assert logs["l1"] == pytest.approx(l1.item(), rel=1e-5)
        lam = model.cfg["scs_lambda"]
        expected = l1 + lam * (1 - logs["scs"]) if model.use_scs else l1
        assert loss.item() == pytest.approx(float(expected), rel=1e-5)
        assert -1 <= logs["scs"] <= 1
        # an independent draw of groups gives a similar, not identical, similarity
        assert stochastic_cosine_similarity(pred, batch["target"], 33, 33).item() == pytest.approx(
            logs["scs"], abs=0.2
        )


def test_bad_config_and_input_errors(tiny_config):
    with pytest.raises(ValueError, match="unknown nhcsr config keys \\['pixelshuffle'\\]"):
        _build("nhcsr", tiny_config, pixelshuffle=2)
    with pytest.raises(ValueError, match="window 4"):
        _build("nhcsr", tiny_config, window=4)
    with pytest.raises(ValueError, match="pe 'fourier'"):
        _build("nhcsr", tiny_config, pe="fourier")
    with pytest.raises(ValueError, match="not divisible by heads"):
        _build("nhcsr", tiny_config, dim=15)
    model = build_model("nhcsr-no_coef", tiny_config)
    bad = {"lr": torch.rand(1, 1, 33, 33), "image": torch.rand(1, 2, 64, 64)}
    with pytest.raises(ValueError, match=r"expected \(B, 1, E, E\)"):
        model.predict(bad, 2)
