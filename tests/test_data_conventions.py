"""Training batches follow SPEC 1's conventions: vertex-centred HR/LR nodes, cell-centred
coefficient pixels, (x, y)-ordered network coordinates, one normalisation constant."""

import numpy as np
import pytest
import torch
from synthetic_data import field, write_dataset, write_split

from fesr.coords import sample_cells, sample_nodal
from fesr.data import BatchBuilder, SplitReader, TrainBatches, u_scale, validation_batches
from fesr.data.conditioning import encode_coefficient, make_inputs

N, E = 32, 64


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data"), train=5, val=2, scales=(1, 2, 4))


def _builder(data_dir, scale=1.0, q=400, full=False):
    reader = SplitReader(data_dir, "train", [1, 2, 4])
    return BatchBuilder(reader, scale, (1.0, 100.0), True, q, full_field=full)


def test_encode_coefficient_maps_contrast_to_unit_interval():
    enc = encode_coefficient(torch.tensor([1.0, 100.0, 10.0]), (1.0, 100.0))
    torch.testing.assert_close(enc, torch.tensor([0.0, 1.0, 0.5]))
    # the paper's log10(A)/2 for contrast (1, 100)
    A = torch.tensor([1.0, 3.0, 100.0])
    torch.testing.assert_close(encode_coefficient(A, (1, 100)), torch.log10(A) / 2)
    with pytest.raises(ValueError, match="contrast"):
        encode_coefficient(A, (100.0, 1.0))


def test_make_inputs_channels():
    lr = torch.rand(2, 1, N + 1, N + 1)
    coef = torch.where(torch.rand(2, 1, E, E) < 0.5, 1.0, 100.0)
    with_coef = make_inputs(lr, coef, True, (1.0, 100.0))
    without = make_inputs(lr, coef, False, (1.0, 100.0))
    assert with_coef["image"].shape == (2, 2, E, E) and without["image"].shape == (2, 1, E, E)
    torch.testing.assert_close(with_coef["image"][:, :1], without["image"])
    torch.testing.assert_close(with_coef["image"][:, 1:], encode_coefficient(coef, (1, 100)))
    with pytest.raises(ValueError, match="shape"):
        make_inputs(lr[:, 0], coef, True, (1.0, 100.0))


@pytest.mark.parametrize("alpha", [2, 4])
def test_target_is_hr_node_value_at_its_coords(data_dir, alpha):
    """target at coords (x, y) = HR array [i, j] with x = j/m, y = i/m = the analytic field."""
    b = _builder(data_dir, scale=1.0).build([0, 3], alpha, np.random.default_rng(1))
    m = N * alpha
    reader = SplitReader(data_dir, "train", [alpha])
    x = (b["coords"][..., 0].double() + 1) / 2
    y = (b["coords"][..., 1].double() + 1) / 2
    for row, k in enumerate([0, 3]):
        j, i = torch.round(x[row] * m).long(), torch.round(y[row] * m).long()
        torch.testing.assert_close(x[row] * m, j.double(), atol=1e-5, rtol=0)  # nodes only
        hr = torch.from_numpy(reader.field(alpha, k))
        torch.testing.assert_close(b["target"][row, :, 0], hr[i, j])
    # independent of any array: the analytic field at (x, y); a swapped axis would differ here
    A = np.asarray(reader.coefficient(0), dtype=np.float64)
    amp = 0.5 + np.log(A).mean() / np.log(100.0)
    expect = field(x[0].numpy(), y[0].numpy(), amp)
    np.testing.assert_allclose(b["target"][0, :, 0].numpy(), expect, rtol=1e-5, atol=1e-6)
    assert b["scale"] == float(alpha)
    torch.testing.assert_close(b["cell"], torch.full_like(b["coords"], 2.0 / m))
    # distinct nodes per sample (no replacement)
    assert all(len(set(map(tuple, c.tolist()))) == c.shape[0] for c in b["coords"])


def test_lr_interpolant_at_coinciding_hr_nodes_is_exact(data_dir):
    """HR nodes that are also LR nodes: the Q1 (bilinear) interpolant of X there returns X."""
    alpha = 4
    b = _builder(data_dir, scale=1.0, q=4000).build([1], alpha, np.random.default_rng(2))
    ij = torch.round((b["coords"][0] + 1) / 2 * N * alpha).long()  # (Q, 2): (j, i)
    on_lr = (ij % alpha == 0).all(dim=1)
    assert on_lr.sum() > 20
    coords = b["coords"][:, on_lr]
    vals = sample_nodal(b["lr"], coords, "bilinear")[0, :, 0]
    torch.testing.assert_close(vals, b["target"][0, on_lr, 0], rtol=0, atol=1e-6)
    lr_nodes = ij[on_lr] // alpha
    torch.testing.assert_close(vals, b["lr"][0, 0, lr_nodes[:, 1], lr_nodes[:, 0]], rtol=0, atol=0)


def test_image_is_cell_centred(data_dir):
    """Pixel (i, j) of the image is the cell [j/E, (j+1)/E] x [i/E, (i+1)/E]: the coefficient
    channel is A[i, j] and the LR channel is X at the cell centre ((j + .5)/E, (i + .5)/E)."""
    b = _builder(data_dir, scale=1.0).build([2], 2, np.random.default_rng(0))
    reader = SplitReader(data_dir, "train", [1])
    A = torch.from_numpy(reader.coefficient(2))
    torch.testing.assert_close(b["image"][0, 1], encode_coefficient(A, (1, 100)))
    # a point inside cell (i, j), away from its centre, samples that pixel
    i, j = 5, 40
    pt = torch.tensor([[[2 * (j + 0.8) / E - 1, 2 * (i + 0.3) / E - 1]]])
    assert float(sample_cells(b["image"][:, 1:], pt)[0, 0, 0]) == float(b["image"][0, 1, i, j])
    # LR channel vs the analytic field at the cell centres: interpolation error only. PyTorch's
    # bicubic (Keys, a = -0.75) is only ~1e-2 accurate here, so compare with the mix-ups:
    # vertex-style positions j / E or j / (E - 1) are clearly further off.
    amp = 0.5 + np.log(A.double().numpy()).mean() / np.log(100.0)

    def err(pos):
        Y, X = np.meshgrid(pos, pos, indexing="ij")
        return np.abs(b["image"][0, 0].numpy() - field(X, Y, amp)).max()

    right = err((np.arange(E) + 0.5) / E)
    assert right < 0.02, right
    assert err(np.arange(E) / E) > 2 * right
    assert err(np.arange(E) / (E - 1)) > 2 * right


def test_u_scale_is_max_of_train_attributes_and_normalises(tmp_path):
    d = write_dataset(tmp_path / "a", train=3, val=1, scales=(1, 2, 4))
    s = u_scale(d, [2, 4])
    raw = max(
        float(SplitReader(d, "train", [a]).field(a, k).max()) for a in (2, 4) for k in range(3)
    )
    assert s == pytest.approx(raw, rel=1e-6)
    # fallback without the attribute: computed streaming, same value
    d2 = tmp_path / "b"
    write_split(d2, "train", 3, (1, 2, 4), seed=0, u_max_attr=False)
    assert u_scale(d2, [2, 4]) == pytest.approx(s, rel=1e-6)
    b = BatchBuilder(SplitReader(d, "train", [1, 4]), s, (1, 100), True, 50).build(
        [0, 1, 2], 4, np.random.default_rng(0)
    )
    assert float(b["target"].max()) <= 1.0 + 1e-6
    reader = SplitReader(d, "train", [1])
    torch.testing.assert_close(b["lr"][1, 0] * s, torch.from_numpy(reader.field(1, 1)))


def test_train_stream_is_pure_function_of_iteration(data_dir):
    builder = _builder(data_dir, scale=2.0, q=64)
    s1 = TrainBatches(builder, [2, 4], batch_size=2, seed=3)
    s2 = TrainBatches(builder, [2, 4], batch_size=2, seed=3, start=5, stop=8)
    later = list(s2)
    assert len(later) == 3
    for off, b in enumerate(later):
        ref = s1.batch(5 + off)
        for key in ("lr", "image", "coords", "cell", "target", "index"):
            assert torch.equal(ref[key], b[key])
        assert ref["scale"] == b["scale"]
    # every sample once per epoch (5 samples, batch 2: epoch 0 covers positions 0..4)
    first = np.concatenate([s1.indices(i) for i in range(3)])[:5]
    assert sorted(first.tolist()) == [0, 1, 2, 3, 4]
    assert {s1.batch(i)["scale"] for i in range(20)} == {2.0, 4.0}
    assert not torch.equal(
        TrainBatches(builder, [2], 2, seed=4).batch(0)["coords"],
        TrainBatches(builder, [2], 2, seed=3).batch(0)["coords"],
    )


def test_full_field_and_validation_batches(data_dir):
    b = _builder(data_dir, scale=1.0, q=32, full=True).build([0, 1], 2, np.random.default_rng(0))
    assert b["hr"].shape == (2, 1, 2 * N + 1, 2 * N + 1)
    reader = SplitReader(data_dir, "val", [1, 2, 4])
    vb = BatchBuilder(reader, 1.0, (1, 100), False, 32)
    v1 = validation_batches(vb, [2, 4], val_samples=5, seed=0)
    v2 = validation_batches(vb, [4, 2], val_samples=5, seed=0)
    assert [b["scale"] for b in v1] == [2.0, 4.0]
    assert v1[0]["lr"].shape[0] == 2  # clipped to the split size
    assert v1[0]["image"].shape[1] == 1  # no coefficient channel
    for a, c in zip(v1, v2, strict=True):
        assert torch.equal(a["coords"], c["coords"]) and torch.equal(a["target"], c["target"])


def test_bad_inputs_give_clear_errors(data_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="u_x8.nc"):
        SplitReader(data_dir, "train", [1, 8])
    with pytest.raises(ValueError, match="integers"):
        SplitReader(data_dir, "train", [1, 2.5])
    bad = tmp_path / "train"
    bad.mkdir()
    (bad / "coefficient.nc").write_text("not netcdf")
    with pytest.raises(ValueError, match="coefficient.nc"):
        SplitReader(tmp_path, "train", [1])
