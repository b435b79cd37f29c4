"""Patch training: a patch batch is a crop of the whole field, and a local method
predicts the same values on the patch as on the whole field.

A patch batch holds the crop of the whole field's conditioning image, the patch's LR nodes and
queries at its HR nodes in PATCH-LOCAL network coordinates (``fesr.data.sampling``). With an
encoder whose receptive field lies inside the patch (EDSR-baseline with one residual block: 4
convolutions, 4 feature pixels), every method that is local must give, at HR nodes a margin away
from the patch border, the values its whole-field query gives at the same physical nodes.
Everything in feature pixels (offsets, cells, cell clipping) is then the same on both; a quantity
in absolute whole-field units (e.g. a cell clip in network units of the whole field) breaks the
equality. The patch sizes are powers of two, so coordinates are exact binary fractions (float32
included) and a node on a pixel edge is assigned to the same cell in both frames; the tolerance
is float32 rounding, far below the differences a unit error causes (1e-2 here).

The training scales are below the query scale, so LTE's and NH-CSR's cell clipping is active.
SRNO (Galerkin attention over all query points) and IDM (a U-Net over the whole map) are global
by nature: the patch is the field they see; for them the test checks that they train and predict
on a patch.
"""

import copy

import numpy as np
import pytest
import torch
from synthetic_data import write_dataset

from fesr.config import load_config
from fesr.data import BatchBuilder, SplitReader
from fesr.data.sampling import TrainBatches
from fesr.models import registry

N, E = 32, 64  # LR cells, coefficient cells (E / N = 2 pixels per LR cell)
P = 32  # patch side in coefficient cells: 16 LR cells
MARGIN = 8  # feature pixels kept clear of the patch border (receptive field 4 + method stencil)
ALPHA = 4  # query scale, above the training scale below: cell clipping is active
TRAIN_SCALES = [2]
GLOBAL = {"srno", "idm"}
LOCAL = sorted(set(registry.METHODS) - GLOBAL)
SAMPLES = [0, 2]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("patch"), train=3, val=1, scales=(1, 2, 4))


@pytest.fixture(scope="module")
def config():
    cfg = copy.deepcopy(load_config("tiny"))
    cfg["physics"]["E"], cfg["lr_n"] = E, N
    cfg["training"]["train_scales"] = TRAIN_SCALES
    cfg["encoders"]["edsr-baseline"] = {"n_resblocks": 1, "n_feats": 8}
    for mcfg in cfg["methods"].values():
        if "encoder" in mcfg:
            mcfg["encoder"] = "edsr-baseline"
    return cfg


def _builder(data_dir, patch, q, full=False):
    reader = SplitReader(data_dir, "train", [1, 2, 4])
    return BatchBuilder(reader, 2.0, (1.0, 100.0), True, q, full_field=full, patch=patch)


def _batches(data_dir, alpha, full=False):
    """A patch batch querying every HR node of its patches, and the whole-field batch of the
    same samples (its queries unused)."""
    m_patch = P * N // E * alpha
    patch = _builder(data_dir, P, (m_patch + 1) ** 2, full).build(
        SAMPLES, alpha, np.random.default_rng(7)
    )
    whole = _builder(data_dir, None, 8, full).build(SAMPLES, alpha, np.random.default_rng(7))
    return patch, whole


def _global_nodes(batch, alpha):
    """Whole-field HR node (row, column) of each patch query, from its patch-local coords."""
    m_patch = P * N // E * alpha
    local = torch.round((batch["coords"].double() + 1.0) / 2.0 * m_patch).long()  # (B, Q, 2): j, i
    origin = batch["patch_origin"] * alpha  # (B, 2): i0, j0 in HR nodes
    return local[..., 1] + origin[:, None, 0], local[..., 0] + origin[:, None, 1]


def test_patch_batch_is_a_crop_of_the_whole_field(data_dir):
    patch, whole = _batches(data_dir, ALPHA, full=True)
    p, r, m_patch = P * N // E, E // N, P * N // E * ALPHA
    assert patch["image"].shape == (2, 2, P, P) and patch["lr"].shape == (2, 1, p + 1, p + 1)
    assert patch["hr"].shape == (2, 1, m_patch + 1, m_patch + 1)
    torch.testing.assert_close(patch["cell"], torch.full_like(patch["coords"], 2.0 / m_patch))
    assert patch["coords"].min() == -1.0 and patch["coords"].max() == 1.0  # patch-local
    i_g, j_g = _global_nodes(patch, ALPHA)
    reader = SplitReader(data_dir, "train", [ALPHA])
    for b, (k, (i0, j0)) in enumerate(zip(SAMPLES, patch["patch_origin"].tolist(), strict=True)):
        assert 0 <= i0 <= N - p and 0 <= j0 <= N - p
        # d(X) computed on the whole field, then cropped: exactly the whole-field pixels
        crop = whole["image"][b, :, i0 * r : i0 * r + P, j0 * r : j0 * r + P]
        assert torch.equal(patch["image"][b], crop)
        assert torch.equal(patch["lr"][b], whole["lr"][b, :, i0 : i0 + p + 1, j0 : j0 + p + 1])
        hr = torch.from_numpy(reader.field(ALPHA, k)) / 2.0
        torch.testing.assert_close(patch["target"][b, :, 0], hr[i_g[b], j_g[b]], rtol=0, atol=0)
        a0, b0 = i0 * ALPHA, j0 * ALPHA
        expect_hr = hr[a0 : a0 + m_patch + 1, b0 : b0 + m_patch + 1]
        torch.testing.assert_close(patch["hr"][b, 0], expect_hr, rtol=0, atol=0)
    # every node of the patch is queried once
    assert patch["coords"].shape[1] == (m_patch + 1) ** 2
    assert len({tuple(c) for c in patch["coords"][0].tolist()}) == (m_patch + 1) ** 2


def test_patch_positions_are_drawn_aligned_and_cover_the_field(data_dir):
    builder = _builder(data_dir, P, 16)
    stream = TrainBatches(builder, [2, 4], batch_size=3, seed=0)
    origins = torch.cat([stream.batch(i)["patch_origin"] for i in range(40)])
    p = P * N // E
    assert origins.min() == 0 and origins.max() == N - p  # both extremes reached
    assert len({tuple(o) for o in origins.tolist()}) > 30
    assert torch.equal(stream.batch(5)["patch_origin"], stream.batch(5)["patch_origin"])
    # the whole field as a "patch" is the whole-field batch
    full = _builder(data_dir, E, 16).build([1], 2, np.random.default_rng(0))
    ref = _builder(data_dir, None, 16).build([1], 2, np.random.default_rng(0))
    for key in ("image", "lr", "coords", "cell", "target"):
        assert torch.equal(full[key], ref[key]), key
    for bad in (0, 33, 3, 2 * E):
        with pytest.raises(ValueError, match="patch"):
            _builder(data_dir, bad, 16)


def _model(name, config):
    torch.manual_seed(0)
    model = registry.build_model(name, config).eval()
    # random weights of default scale make the whole-field values large enough to compare
    return model


@pytest.mark.parametrize("method", LOCAL)
def test_local_method_predicts_the_same_on_a_patch(method, data_dir, config):
    model = _model(method, config)
    patch, whole = _batches(data_dir, ALPHA)
    m_patch, m = P * N // E * ALPHA, N * ALPHA
    i_g, j_g = _global_nodes(patch, ALPHA)
    coords_g = torch.stack([2.0 * j_g / m - 1.0, 2.0 * i_g / m - 1.0], dim=-1).float()
    with torch.no_grad():
        on_patch = model.query(patch, patch["coords"], patch["cell"])[..., 0]
        on_whole = model.query(whole, coords_g, torch.full_like(coords_g, 2.0 / m))[..., 0]
    # nodes at least MARGIN feature pixels inside the patch
    px = (patch["coords"] + 1.0) / 2.0 * P
    inside = ((px >= MARGIN) & (px <= P - MARGIN)).all(-1)
    assert inside.sum() >= 2 * (m_patch // 2 + 1) ** 2 - 2
    assert float(on_patch.std()) > 0
    torch.testing.assert_close(on_patch[inside], on_whole[inside], rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("method", sorted(GLOBAL))
def test_global_method_trains_and_predicts_on_a_patch(method, data_dir, config):
    model = registry.build_model(method, config)
    full = bool(getattr(model, "needs_full_field", False))
    builder = _builder(data_dir, P, 64, full)
    batch = builder.build(SAMPLES, 2, np.random.default_rng(0))
    model.train()
    loss, logs = model.training_loss(batch, step=0)
    assert torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    model.eval()
    with torch.no_grad():
        pred = model.predict({"lr": batch["lr"], "image": batch["image"]}, 2)
    p = P * N // E
    assert pred.shape == (2, 2 * p + 1, 2 * p + 1) and torch.isfinite(pred).all()
