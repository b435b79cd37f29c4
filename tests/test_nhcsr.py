"""NH-CSR specifics: the ablation variants keep the contract; branches, skip, loss, config."""

import pytest
import torch
from test_fast_predict import general_path

import fesr.models.nhcsr as nhcsr_module
from fesr.coords import hr_cell
from fesr.models.base import hr_size
from fesr.models.positional import PE_NAMES
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
    assert set(logs) == ({"l1", "scs", "scs_grad_share"} if model.use_scs else {"l1", "scs"})


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


def test_scs_gradient_share_is_logged_and_larger_when_centred(tiny_config):
    """Targets 0.01 away from the predictions: eq. (10)'s raw cosine is above 0.99, its gradient
    share small but nonzero; the centred form's share (same weights, same groups) is larger."""
    torch.manual_seed(0)
    raw = _build("nhcsr", tiny_config, scs_form="raw")
    centred = _build("nhcsr", tiny_config, scs_form="centred")
    centred.load_state_dict(raw.state_dict())
    batch = _batch(tiny_config, raw, q=256)
    with torch.no_grad():
        pred = raw.query(batch, batch["coords"], batch["cell"])
    g = torch.Generator().manual_seed(3)
    batch["target"] = pred + 0.01 * torch.randn(pred.shape, generator=g)
    _, logs_raw = raw.training_loss(batch, step=2)
    _, logs_centred = centred.training_loss(batch, step=2)
    assert logs_raw["scs"] > 0.99
    assert logs_raw["scs_grad_share"] > 0
    assert logs_centred["scs_grad_share"] > 2 * logs_raw["scs_grad_share"]
    # the share is that of the gradients with respect to the predictions, computed by hand
    p = pred.clone().requires_grad_()
    gen = torch.Generator().manual_seed(nhcsr_module.SCS_SEED + 2)
    scs = stochastic_cosine_similarity(p, batch["target"], raw.scs_draws, raw.scs_group, gen)
    (g_scs,) = torch.autograd.grad(raw.scs_lambda * (1 - scs), p)
    p = pred.clone().requires_grad_()
    (g_l1,) = torch.autograd.grad((p - batch["target"]).abs().mean(), p)
    expected = (g_scs.norm() / g_l1.norm()).item()
    assert logs_raw["scs_grad_share"] == pytest.approx(expected, rel=1e-4)
    # evaluation (no gradients) and the no-SCS variant log no share
    with torch.no_grad():
        assert "scs_grad_share" not in raw.training_loss(batch)[1]
    assert "scs_grad_share" not in _build("nhcsr-no_scs", tiny_config).training_loss(batch)[1]


def _without_attention_bias(model):
    """Zero the eq. (8) bias maps: phi then reaches the output only through the value path."""
    with torch.no_grad():
        for branch in (model.coarse, getattr(model, "fine", None)):
            if branch is not None:
                branch.bias.weight.zero_()
                branch.bias.bias.zero_()
    return model


@pytest.mark.parametrize("pe", PE_NAMES)
def test_encoding_enters_the_value_path(pe, tiny_config):
    """Eqs. (7), (9): with the attention bias silenced, phi still changes the output, through
    the value path; silencing that too removes every dependence on phi."""
    torch.manual_seed(0)
    model = _without_attention_bias(_build("nhcsr", tiny_config, pe=pe).eval())
    inputs = _inputs(tiny_config, model)
    coords = torch.rand(1, 40, 2) * 2 - 1
    cell = torch.full_like(coords, 0.05)
    with torch.no_grad():
        with_phi = model.query(inputs, coords, cell)
        for branch in (model.coarse, model.fine):
            branch.value_pe.weight.zero_()
        without_phi = model.query(inputs, coords, cell)
    assert (with_phi - without_phi).abs().max() > 1e-4


@pytest.mark.parametrize("pe", [p for p in PE_NAMES if p != "plain"])
def test_each_encoding_changes_what_the_decoder_sees(pe, tiny_config):
    """Table II: another encoding with the same weights elsewhere (attention biases silenced)
    gives other outputs than the plain one."""
    torch.manual_seed(0)
    plain = _without_attention_bias(_build("nhcsr", tiny_config, pe="plain").eval())
    other = _build("nhcsr", tiny_config, pe=pe).eval()
    own = other.state_dict()
    shared = {
        k: v
        for k, v in plain.state_dict().items()
        if k in own and own[k].shape == v.shape and ".pe." not in k and "value_pe" not in k
    }
    other.load_state_dict({**own, **shared})
    _without_attention_bias(other)
    inputs = _inputs(tiny_config, plain)
    coords = torch.rand(1, 40, 2) * 2 - 1
    cell = torch.full_like(coords, 0.05)
    with torch.no_grad():
        a = plain.query(inputs, coords, cell)
        b = other.query(inputs, coords, cell)
    assert (a - b).abs().max() > 1e-4


@pytest.mark.parametrize(
    "name", ["nhcsr", "nhcsr-pe_lte", "nhcsr-pe_ipe", "nhcsr-single_scale", "nhcsr-pe_plain"]
)
@pytest.mark.parametrize("alpha", [4, 3.7, 0.5])
def test_grid_predict_equals_the_general_path(name, alpha, tiny_config):
    """predict's grid path (per-axis windows, per-offset tables) == chunked query_encoded on the
    node grid, border windows included; also when the table is not built."""
    torch.manual_seed(0)
    model = _build(name, tiny_config, exact_boundary=name == "nhcsr").eval()
    inputs = _inputs(tiny_config, model, batch=2)
    ref = general_path(model, inputs, alpha, None)
    scale = ref.abs().max()
    torch.testing.assert_close(
        model.predict(inputs, alpha, chunk=300) / scale, ref / scale, rtol=0, atol=1e-5
    )
    if name == "nhcsr":
        br = model.predict_branches(inputs, alpha)
        torch.testing.assert_close(br["full"] / scale, ref / scale, rtol=0, atol=1e-5)


def test_grid_predict_without_the_offset_table(tiny_config, monkeypatch):
    torch.manual_seed(0)
    model = build_model("nhcsr", tiny_config).eval()
    inputs = _inputs(tiny_config, model)
    with_table = model.predict(inputs, 3.7)
    monkeypatch.setattr(nhcsr_module, "TABLE_FLOATS", 0)
    with torch.no_grad():
        plan = model.coarse.grid_plan(model.encode(inputs)["coarse"], 4, hr_cell(4))
    assert "table" not in plan
    torch.testing.assert_close(model.predict(inputs, 3.7), with_table, rtol=1e-5, atol=1e-6)


def test_cell_clip_is_in_feature_pixels_so_patches_clip_alike(tiny_config):
    """A patch of P coefficient cells (p = P lr_n / E LR cells) sees cell = 2 / (p alpha) in its
    own units: scales beyond the largest training scale clip to it there too."""
    model = build_model("nhcsr", tiny_config).eval()
    n, E = tiny_config["lr_n"], tiny_config["physics"]["E"]
    top = max(tiny_config["training"]["train_scales"])
    P = E // 2
    p = P * n // E
    g = torch.Generator().manual_seed(0)
    inputs = {
        "lr": torch.rand(1, 1, p + 1, p + 1, generator=g),
        "image": torch.rand(1, 2, P, P, generator=g),
    }
    coords = torch.rand(1, 30, 2, generator=g) * 2 - 1
    with torch.no_grad():
        at_top = model.query(inputs, coords, torch.full_like(coords, 2 / (p * top)))
        beyond = model.query(inputs, coords, torch.full_like(coords, 2 / (p * 64)))
        below = model.query(inputs, coords, torch.full_like(coords, 2 / (p * 2)))
    torch.testing.assert_close(beyond, at_top)
    assert not torch.allclose(below, at_top)


@pytest.mark.parametrize(
    "name, alpha, over",
    [
        ("nhcsr", 8, {"exact_boundary": True}),
        ("nhcsr", 16, {}),
        ("nhcsr", 4, {}),  # one fine-map node per fine cell
        ("nhcsr-single_scale", 8, {"window": 5}),
        ("nhcsr-pe_ipe", 8, {"heads": 4}),
    ],
)
def test_cell_path_equals_the_general_path(name, alpha, over, tiny_config, monkeypatch):
    """Integer scales take the cell path (tile cells of every kind: border cells with clamped
    windows and taps, the last cell's extra node); it equals the general path for a batch, in
    small and large tiles, and per branch."""
    torch.manual_seed(0)
    model = _build(name, tiny_config, **over).eval()
    kinds = set()
    block = nhcsr_module.LocalAttentionBranch.cell_block

    def spy(self, plan, b, ky, kx, rows, cols):
        kinds.add((id(self), ky, kx))
        return block(self, plan, b, ky, kx, rows, cols)

    monkeypatch.setattr(nhcsr_module.LocalAttentionBranch, "cell_block", spy)
    inputs = _inputs(tiny_config, model, batch=2)
    ref = general_path(model, inputs, alpha, None)
    scale = ref.abs().max()
    for chunk in (300, 65536):
        fast = model.predict(inputs, alpha, chunk=chunk)
        torch.testing.assert_close(fast / scale, ref / scale, rtol=0, atol=1e-5)
    branches = 2 if model.multi_scale else 1
    assert len(kinds) >= 9 * branches  # 3 x 3 kinds (first, interior, last) per branch or more
    if model.multi_scale:
        br = model.predict_branches(inputs, alpha)
        state = model.encode(inputs)
        m = hr_size(tiny_config["lr_n"], alpha)
        with torch.no_grad():
            slow = model._gather_grid(state, m, 4096, branches=True)
        for key in ("coarse", "fine", "full", "skip"):
            torch.testing.assert_close(br[key] / scale, slow[key] / scale, rtol=0, atol=1e-5)


def test_cell_path_is_not_taken_at_non_integer_scales(tiny_config):
    model = build_model("nhcsr", tiny_config).eval()
    inputs = _inputs(tiny_config, model)
    with torch.no_grad():
        state = model.encode(inputs)
        assert model._cell_grid(state, hr_size(tiny_config["lr_n"], 3.7), 4096, False) is None
        assert model._cell_grid(state, hr_size(tiny_config["lr_n"], 8), 4096, False) is not None


@pytest.mark.parametrize("setting", [{"SOFTMAX_FLOOR": 1e30}, {"SOFTMAX_HIGH": -1e9}])
def test_cell_path_softmax_shift_and_per_row_fallback(setting, tiny_config, monkeypatch):
    """The tile-wide shift taken always, and the per-row softmax forced on every tile (as when a
    row would underflow), both give the general path's values."""
    torch.manual_seed(0)
    model = build_model("nhcsr", tiny_config).eval()
    for key, value in setting.items():
        monkeypatch.setattr(nhcsr_module, key, value)
    inputs = _inputs(tiny_config, model)
    ref = general_path(model, inputs, 8, None)
    scale = ref.abs().max()
    torch.testing.assert_close(model.predict(inputs, 8) / scale, ref / scale, rtol=0, atol=1e-5)


def test_cell_path_tables_follow_the_weights(tiny_config):
    """The per-kind tables are kept across fields but not across a change of the weights."""
    torch.manual_seed(0)
    model = build_model("nhcsr", tiny_config).eval()
    inputs = _inputs(tiny_config, model)
    model.predict(inputs, 8)
    with torch.no_grad():
        for p in model.coarse.pe.parameters():
            p.mul_(1.5)
    ref = general_path(model, inputs, 8, None)
    scale = ref.abs().max()
    torch.testing.assert_close(model.predict(inputs, 8) / scale, ref / scale, rtol=0, atol=1e-5)
