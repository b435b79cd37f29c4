"""The element-gradient loss (``fesr.element_loss``), the HR element sampler
(``fesr.data.sampling``, ``elements=M``) and the homogenized input field
(``fesr.data.dataset``, ``input_field``).

The loss is checked against an independent computation: the gradient of a known bilinear field
by central finite differences (exact for a bilinear function) at the 2 x 2 Gauss points (exact
for |grad v|^2, quadratic in each variable), and against fields of known constant gradient. The
sampler is checked on NetCDF files whose fields are an analytic function of the physical position
and whose coefficient cells all hold distinct values, so a corner at the wrong node or a value
from the wrong cell cannot agree by chance; a vertex-centred reading of the cell-centred
coefficient is shown to disagree with the expected values (the test can fail).
"""

import copy

import numpy as np
import pytest
import torch
import xarray as xr

from fesr.config import load_config
from fesr.data import BatchBuilder, SplitReader, u_scale
from fesr.data.dataset import check_lr_file_mean, lr_field_path
from fesr.data.sampling import element_coefficients, element_corner_nodes
from fesr.element_loss import (
    check_element_loss,
    element_gradient_loss,
    element_predictions,
    shared_encoding,
    training_loss_with_elements,
)
from fesr.models import registry

N, E = 4, 16  # LR cells and coefficient cells per side: E / N = 4 pixels per LR cell
SCALES = (1, 2, 8)  # HR 8 x 8 (coarser than E: means of 2 x 2 cells) and 32 x 32 (finer)
U_SCALE = 2.0
CORNERS = np.array([[0, 0], [1, 0], [1, 1], [0, 1]])  # a, b, c, d as (dx, dy) in units of h


# -- the loss ------------------------------------------------------------------------------------
def _bilinear(coef, x, y):
    c0, c1, c2, c3 = (coef[..., k] for k in range(4))
    return c0 + c1 * x + c2 * y + c3 * x * y


def _corner_values(coef, x0, y0, h):
    return np.stack([_bilinear(coef, x0 + dx * h, y0 + dy * h) for dx, dy in CORNERS], axis=-1)


def _fd_gradient_sq_integral(coef, x0, y0, h):
    """int_T |grad v|^2 by central differences of v at the 2 x 2 Gauss points."""
    g = (1.0 - 1.0 / np.sqrt(3.0)) / 2.0
    total = 0.0
    for gx in (g, 1.0 - g):
        for gy in (g, 1.0 - g):
            x, y, d = x0 + gx * h, y0 + gy * h, 1e-3 * h
            vx = (_bilinear(coef, x + d, y) - _bilinear(coef, x - d, y)) / (2 * d)
            vy = (_bilinear(coef, x, y + d) - _bilinear(coef, x, y - d)) / (2 * d)
            total = total + (vx * vx + vy * vy) * (h * h / 4.0)  # Gauss weights: area / 4
    return total


@pytest.mark.parametrize("h", [1.0, 1.0 / 64, 1.0 / 512])
def test_element_loss_equals_finite_differences_on_bilinear_fields(h):
    rng = np.random.default_rng(0)
    B, M = 3, 5
    pred_coef, target_coef = rng.normal(size=(B, M, 4)), rng.normal(size=(B, M, 4))
    x0, y0 = rng.integers(0, 100, size=(B, M)) * h, rng.integers(0, 100, size=(B, M)) * h
    pred = torch.from_numpy(_corner_values(pred_coef, x0, y0, h))
    target = torch.from_numpy(_corner_values(target_coef, x0, y0, h))
    per_element = _fd_gradient_sq_integral(pred_coef - target_coef, x0, y0, h)  # e is bilinear
    expect = np.mean(per_element / h**2)
    got = element_gradient_loss(pred, target, h)
    assert got.dtype == torch.float64
    assert float(got) == pytest.approx(expect, rel=1e-6)
    # a trailing axis of 1 (what model queries return) is the same input
    assert float(element_gradient_loss(pred[..., None], target[..., None], h)) == float(got)


@pytest.mark.parametrize("h", [1.0 / 64, 1.0 / 512])
def test_element_loss_is_the_mean_squared_gradient_whatever_the_mesh(h):
    # e = 2x + 3y has |grad e|^2 = 13 everywhere: G = 13 on any element of any size
    x0 = torch.arange(6, dtype=torch.float64).reshape(2, 3) * h
    y0 = torch.flip(x0, dims=[1])
    corners = torch.stack([2 * (x0 + dx * h) + 3 * (y0 + dy * h) for dx, dy in CORNERS], dim=-1)
    got = element_gradient_loss(corners, torch.zeros_like(corners), h)
    assert float(got) == pytest.approx(13.0, rel=1e-9)


def test_element_loss_is_zero_for_a_perfect_prediction_and_blind_to_constants():
    target = torch.rand(2, 7, 4, dtype=torch.float64)
    assert float(element_gradient_loss(target.clone(), target, 0.01)) == 0.0
    assert float(element_gradient_loss(target + 0.3, target, 0.01)) == pytest.approx(0, abs=1e-20)
    assert float(element_gradient_loss(target + torch.rand_like(target), target, 0.01)) > 0


def test_energy_weighting_multiplies_each_element_by_its_coefficient():
    rng = np.random.default_rng(1)
    pred, target = (torch.from_numpy(rng.normal(size=(2, 6, 4))) for _ in range(2))
    coefficient = torch.from_numpy(rng.choice([1.0, 100.0], size=(2, 6)))
    h = 1.0 / 128
    weighted = element_gradient_loss(pred, target, h, coefficient)
    alone = [
        float(element_gradient_loss(pred[b, k], target[b, k], h))
        for b in range(2)
        for k in range(6)
    ]
    expect = np.mean(coefficient.numpy().ravel() * np.array(alone))
    assert float(weighted) == pytest.approx(expect, rel=1e-12)
    unweighted = element_gradient_loss(pred, target, h)
    assert float(element_gradient_loss(pred, target, h, torch.full((2, 6), 100.0))) == (
        pytest.approx(100.0 * float(unweighted), rel=1e-12)
    )
    with pytest.raises(ValueError, match="one value per element"):
        element_gradient_loss(pred, target, h, coefficient[:, :3])


def test_loss_mode_checks():
    check_element_loss("srno", "l1", 0.0, 0)  # today's loss: nothing to check
    check_element_loss("nhcsr", "l1+energy", 0.1, 16)
    with pytest.raises(ValueError, match="per-query method"):
        check_element_loss("srno", "l1+h1", 0.1, 16)
    with pytest.raises(ValueError, match="physics_loss.elements"):
        check_element_loss("liif", "l1+h1", 0.1, 0)
    with pytest.raises(ValueError, match="one of l1, l1\\+h1, l1\\+energy"):
        check_element_loss("liif", "h1", 0.1, 16)


# -- the sampler ---------------------------------------------------------------------------------
def _u(x, y):
    """Distinct at every node of every mesh here, not zero on the boundary."""
    return 1.0 + x + 3.0 * y * y + 0.5 * x * y


def _coefficient(samples):
    """Every cell of every sample distinct: 1 + i E + j + 1000 k."""
    cells = np.arange(E * E, dtype=np.float64).reshape(E, E)
    return np.stack([1.0 + cells + 1000.0 * k for k in range(samples)])


def _write_field(path, u, alpha, **attrs):
    m = u.shape[-1] - 1
    t = np.arange(m + 1) / m
    ds = xr.Dataset({"u": (("sample", "y", "x"), u)}, coords={"x": t, "y": t})
    ds.attrs.update(n=m, alpha=alpha, E=E, u_max=float(u.max()), **attrs)
    ds.to_netcdf(path)


def _write_split(data_dir, split, samples=2):
    out = data_dir / split
    out.mkdir(parents=True)
    cc = (np.arange(E) + 0.5) / E
    coef = xr.Dataset({"A": (("sample", "cy", "cx"), _coefficient(samples))})
    coef.assign_coords(cx=cc, cy=cc).to_netcdf(out / "coefficient.nc")
    for alpha in SCALES:
        t = np.arange(N * alpha + 1) / (N * alpha)
        Y, X = np.meshgrid(t, t, indexing="ij")  # u[i, j] = u(x_j, y_i)
        u = np.stack([_u(X, Y) * (1 + k) for k in range(samples)])
        _write_field(out / f"u_x{alpha}.nc", u, alpha)
    lr = xr.open_dataset(out / "u_x1.nc")["u"].values
    _write_field(out / "u_x1_geometric.nc", 3.0 * lr, 1, effective_mean="geometric")
    return out


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("elements")
    _write_split(root, "train")
    return root


def _builder(data_dir, elements, patch=None, input_field="lr"):
    reader = SplitReader(data_dir, "train", SCALES, input_field=input_field)
    return BatchBuilder(reader, U_SCALE, (1.0, 100.0), True, 24, patch=patch, elements=elements)


def _expected_coefficient(A, mesh_n, I, J):
    """The element's coefficient from cell centres: the cell holding the element centre (mesh at
    least as fine as the coefficient grid), or the mean of the cells whose centres lie inside."""
    centres = (np.arange(E) + 0.5) / E
    if mesh_n >= E:
        return A[int(np.floor((I + 0.5) / mesh_n * E)), int(np.floor((J + 0.5) / mesh_n * E))]
    rows = (centres > I / mesh_n) & (centres < (I + 1) / mesh_n)
    cols = (centres > J / mesh_n) & (centres < (J + 1) / mesh_n)
    return A[np.ix_(rows, cols)].mean()


@pytest.mark.parametrize("alpha", [2, 8])
@pytest.mark.parametrize("patch", [None, 8])
def test_sampled_elements_are_the_right_nodes_and_cells(data_dir, alpha, patch):
    M = 20
    batch = _builder(data_dir, M, patch).build([0, 1], alpha, np.random.default_rng(3))
    p = N if patch is None else patch * N // E  # LR cells per side of the field the model sees
    m, mesh_n = p * alpha, N * alpha  # HR cells per side of the (patch) field, of the whole field
    assert batch["element_coords"].shape == (2, M, 4, 2)
    assert batch["element_target"].shape == (2, M, 4)
    assert batch["element_h"] == 1.0 / mesh_n
    A_all = _coefficient(2)
    vertex_reads, checked = 0, 0
    for b in range(2):
        index = batch["element_index"][b].numpy()
        # distinct elements, with replacement only when there are fewer than M (4 x 4 here)
        assert len(set(index.tolist())) == min(M, m * m) or M > m * m
        assert 0 <= index.min() and index.max() < m * m
        i0, j0 = (batch["patch_origin"][b].numpy() * alpha).tolist()  # patch node 0, whole field
        ei, ej = np.divmod(index, m)
        for k in range(M):
            # corners a, b, c, d: physical positions from the element's row and column alone
            xs = (ej[k] + CORNERS[:, 0]) / m  # patch-local [0, 1]
            ys = (ei[k] + CORNERS[:, 1]) / m
            coords = batch["element_coords"][b, k].double().numpy()
            np.testing.assert_allclose(coords[:, 0], 2 * xs - 1, atol=1e-6)
            np.testing.assert_allclose(coords[:, 1], 2 * ys - 1, atol=1e-6)
            # targets: the analytic field at the whole-field physical positions
            X = (j0 + ej[k] + CORNERS[:, 0]) / mesh_n
            Y = (i0 + ei[k] + CORNERS[:, 1]) / mesh_n
            expect = _u(X, Y) * (1 + b) / U_SCALE
            np.testing.assert_allclose(batch["element_target"][b, k].numpy(), expect, rtol=1e-6)
            # coefficient: the cell(s) of the element, read at cell centres
            I, J = i0 + ei[k], j0 + ej[k]
            want = _expected_coefficient(A_all[b], mesh_n, I, J)
            assert float(batch["element_coefficient"][b, k]) == pytest.approx(want, rel=1e-6)
            # the mix-up this guards: A read as a nodal (vertex-centred) map at the element centre
            cx, cy = (J + 0.5) / mesh_n, (I + 0.5) / mesh_n
            vertex = A_all[b][int(round(cy * (E - 1))), int(round(cx * (E - 1)))]
            vertex_reads += vertex != pytest.approx(want, rel=1e-6)
            checked += 1
    # a vertex-centred reading gets a good share of the elements wrong; any one fails the test
    assert vertex_reads >= checked // 4


def test_element_coefficients_equal_the_projection_of_the_solver():
    from fesr.fem.solver import project_coefficient

    A = 1.0 + np.arange(32 * 32, dtype=np.float64).reshape(32, 32)  # the solver needs E % 32 == 0
    for mesh_n in (8, 16, 32, 64, 24, 48):  # nested both ways; 24 and 48 not nested
        full = project_coefficient(A, mesh_n)
        I, J = np.meshgrid(np.arange(mesh_n), np.arange(mesh_n), indexing="ij")
        got = element_coefficients(A, mesh_n, I.ravel(), J.ravel()).reshape(mesh_n, mesh_n)
        np.testing.assert_allclose(got, full, rtol=1e-12)


def test_corner_nodes_of_an_element():
    m = 5
    assert element_corner_nodes(0, m).tolist() == [0, 1, 7, 6]  # a, b, c, d of element (0, 0)
    i, j = 3, 2
    a = i * (m + 1) + j
    assert element_corner_nodes(i * m + j, m).tolist() == [a, a + 1, a + m + 2, a + m + 1]


@pytest.mark.parametrize("patch", [None, 8])
def test_elements_leave_the_other_keys_unchanged(data_dir, patch):
    plain = _builder(data_dir, 0, patch).build([1, 0], 8, np.random.default_rng(5))
    with_elements = _builder(data_dir, 12, patch).build([1, 0], 8, np.random.default_rng(5))
    assert not any(key.startswith("element_") for key in plain)
    for key, value in plain.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(with_elements[key], value), key
        else:
            assert with_elements[key] == value, key
    with pytest.raises(ValueError, match="integer >= 0"):
        _builder(data_dir, -1)


# -- the homogenized input -----------------------------------------------------------------------
def test_input_field_selects_the_lr_file(data_dir):
    lr = SplitReader(data_dir, "train", SCALES)
    hom = SplitReader(data_dir, "train", SCALES, input_field="hom_geometric")
    raw = xr.open_dataset(lr_field_path(data_dir, "train", "lr"))["u"].values
    raw_hom = xr.open_dataset(lr_field_path(data_dir, "train", "hom_geometric"))["u"].values
    assert lr_field_path(data_dir, "train", "hom_geometric").name == "u_x1_geometric.nc"
    np.testing.assert_array_equal(lr.field(1, 1), raw[1].astype(np.float32))
    np.testing.assert_array_equal(hom.field(1, 1), raw_hom[1].astype(np.float32))
    np.testing.assert_array_equal(hom.field(8, 1), lr.field(8, 1))  # HR fields unchanged
    # the batch's LR input (encoder image and skip) is the selected field; targets the same
    a = _builder(data_dir, 0).build([0, 1], 2, np.random.default_rng(0))
    b = _builder(data_dir, 0, input_field="hom_geometric").build(
        [0, 1], 2, np.random.default_rng(0)
    )
    torch.testing.assert_close(b["lr"], 3.0 * a["lr"])
    assert not torch.equal(a["image"][:, 0], b["image"][:, 0])
    torch.testing.assert_close(a["image"][:, 1], b["image"][:, 1])  # the coefficient channel
    assert torch.equal(a["target"], b["target"]) and torch.equal(a["coords"], b["coords"])
    assert u_scale(data_dir, [2, 8]) == pytest.approx(float(_u(1.0, 1.0) * 2))


def test_input_field_refuses_a_file_of_another_mean(data_dir, tmp_path):
    with pytest.raises(ValueError, match="input_field must be one of lr, hom_geometric"):
        SplitReader(data_dir, "train", SCALES, input_field="geometric")
    check_lr_file_mean("u_x1.nc", None, "lr")
    with pytest.raises(ValueError, match="expects geometric"):
        check_lr_file_mean("u_x1_geometric.nc", None, "hom_geometric")
    with pytest.raises(ValueError, match="expects none"):
        check_lr_file_mean("u_x1.nc", "geometric", "lr")
    # a u_x1_geometric.nc without the attribute (e.g. a copy of u_x1.nc) is refused on open
    bad = _write_split(tmp_path, "train", samples=1)
    lr = xr.open_dataset(bad / "u_x1.nc")["u"].values
    (bad / "u_x1_geometric.nc").unlink()
    _write_field(bad / "u_x1_geometric.nc", lr, 1)
    with pytest.raises(ValueError, match="u_x1_geometric.nc: LR field with effective_mean none"):
        SplitReader(tmp_path, "train", SCALES, input_field="hom_geometric")


# -- the training step ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def liif(data_dir):
    cfg = copy.deepcopy(load_config("tiny"))
    cfg["physics"]["E"], cfg["lr_n"] = E, N
    cfg["encoders"]["edsr-baseline"] = {"n_resblocks": 1, "n_feats": 8}
    cfg["methods"]["liif"]["encoder"] = "edsr-baseline"
    torch.manual_seed(0)
    return registry.build_model("liif", cfg)


@pytest.mark.parametrize("mode", ["l1+h1", "l1+energy"])
def test_training_step_adds_the_term_on_one_encoding(data_dir, liif, mode):
    batch = _builder(data_dir, 10).build([0, 1], 8, np.random.default_rng(2))
    calls = []
    hook = liif.encoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        loss, logs = training_loss_with_elements(liif, batch, step=0, mode=mode, weight=0.5)
    finally:
        hook.remove()
    assert len(calls) == 1  # the method's loss and the corner queries share the encoding
    assert "encode" not in vars(liif)  # the class's encode is back
    with torch.no_grad():
        own, own_logs = liif.training_loss(batch, step=0)
        # the term recomputed independently: a fresh encoding, the corners queried one by one
        state = liif.encode(batch)
        cell = batch["cell"][:, :10]
        corners = torch.stack(
            [liif.query_encoded(state, batch["element_coords"][:, :, c], cell) for c in range(4)],
            dim=2,
        )[..., 0]
        coefficient = batch["element_coefficient"] if mode == "l1+energy" else None
        h = batch["element_h"]
        term = element_gradient_loss(corners, batch["element_target"], h, coefficient)
    name = mode.split("+")[1]
    assert logs[name] == pytest.approx(float(term), rel=1e-5)
    assert logs["l1"] == pytest.approx(own_logs["l1"], rel=1e-6)
    assert float(loss.detach()) == pytest.approx(float(own) + 0.5 * float(term), rel=1e-5)
    loss.backward()  # one graph through the shared encoder
    assert all(p.grad is not None for p in liif.encoder.parameters())
    liif.zero_grad()
    # the l1 mode is the method's own loss, untouched
    with torch.no_grad():
        plain, plain_logs = training_loss_with_elements(liif, batch, step=0)
    assert float(plain) == float(own) and plain_logs == own_logs


def test_shared_encoding_encodes_other_inputs_as_usual(data_dir, liif):
    batch = _builder(data_dir, 4).build([0], 2, np.random.default_rng(0))
    other = _builder(data_dir, 4).build([1], 2, np.random.default_rng(0))
    with torch.no_grad(), shared_encoding(liif, batch) as encoded:
        assert encoded() is liif.encode(batch)
        assert liif.encode(other) is not liif.encode(other)
        pred = element_predictions(liif, encoded(), batch)
    assert pred.shape == (1, 4, 4)
