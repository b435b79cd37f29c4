"""Coefficient maps and their cellwise projection: values, seeding, names, channels, conventions."""

import numpy as np
import pytest
from scipy import ndimage

from fesr.fem import DETERMINISTIC_MAPS
from fesr.fem.coefficients import deterministic_map, random_map, resolve_map_names
from fesr.fem.positions import cell_centre_positions, node_positions
from fesr.fem.solver import check_alpha, mesh_size, project_coefficient

CONTRAST = (1.0, 100.0)


def test_exactly_the_thirteen_names():
    assert DETERMINISTIC_MAPS == (
        "checkerboard", "checkerboard_fine", "wave", "wave_dense", "stripes_horizontal",
        "stripes_vertical", "stripes_diagonal", "channels_cross", "channels_wave",
        "mix_a", "mix_b", "mix_c", "mix_d",
    )  # fmt: skip
    assert resolve_map_names("all") == DETERMINISTIC_MAPS


@pytest.mark.parametrize("E", [64, 128])
def test_deterministic_maps_are_binary_distinct_and_nontrivial(E):
    maps = {name: deterministic_map(name, E, CONTRAST) for name in DETERMINISTIC_MAPS}
    for name, A in maps.items():
        assert A.shape == (E, E) and A.dtype == np.float64, name
        assert set(np.unique(A)) == set(CONTRAST), name
        assert 0.1 < np.mean(A == CONTRAST[1]) < 0.9, f"{name}: high fraction {np.mean(A == 100)}"
    flat = {name: A.tobytes() for name, A in maps.items()}
    assert len(set(flat.values())) == len(DETERMINISTIC_MAPS), "two maps are identical"


def test_maps_are_the_same_picture_at_every_E():
    # E = 128 refines E = 64: every 2 x 2 block of the fine map is mostly its coarse cell.
    for name in DETERMINISTIC_MAPS:
        coarse = deterministic_map(name, 64, CONTRAST)
        fine = deterministic_map(name, 128, CONTRAST)
        agree = np.mean(np.repeat(np.repeat(coarse, 2, 0), 2, 1) == fine)
        assert agree > 0.85, f"{name}: E=64 and E=128 agree on {agree:.2f} of cells"


def crosses(mask: np.ndarray) -> bool:
    """A 4-connected high component touching opposite sides (left-right or bottom-top)."""
    labels, _ = ndimage.label(mask)
    lr = set(labels[:, 0][labels[:, 0] > 0]) & set(labels[:, -1][labels[:, -1] > 0])
    bt = set(labels[0][labels[0] > 0]) & set(labels[-1][labels[-1] > 0])
    return bool(lr or bt)


@pytest.mark.parametrize("E", [64, 128])
def test_channels_cross_the_whole_domain(E):
    for name in ("channels_cross", "channels_wave", "mix_d"):
        assert crosses(deterministic_map(name, E, CONTRAST) == 100.0), name
    # ... and the checkerboard has no such channel (corner contacts do not connect)
    assert not crosses(deterministic_map("checkerboard", E, CONTRAST) == 100.0)


def test_orientation_of_named_maps():
    A = deterministic_map("stripes_horizontal", 64, CONTRAST)
    assert np.all(A == A[:, :1]), "horizontal stripes must be constant along each row (x)"
    assert not np.all(A == A[:1, :])
    B = deterministic_map("stripes_vertical", 64, CONTRAST)
    np.testing.assert_array_equal(B, A.T)


def test_random_maps_are_seeded_per_sample_and_split():
    a = random_map(64, CONTRAST, 0.5, seed=0, split="train", sample=3)
    np.testing.assert_array_equal(a, random_map(64, CONTRAST, 0.5, 0, "train", 3))
    assert set(np.unique(a)) == set(CONTRAST)
    assert abs(np.mean(a == 100.0) - 0.5) < 0.05
    for other in (
        random_map(64, CONTRAST, 0.5, 1, "train", 3),  # another seed
        random_map(64, CONTRAST, 0.5, 0, "val", 3),  # another split
        random_map(64, CONTRAST, 0.5, 0, "train", 4),  # another sample
    ):
        assert np.mean(other != a) > 0.3
    assert np.all(random_map(64, CONTRAST, 1.0, 0, "train", 0) == 100.0)
    assert abs(np.mean(random_map(128, (2.0, 3.0), 0.2, 0, "test_random", 0) == 3.0) - 0.2) < 0.02


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: deterministic_map("zebra", 64, CONTRAST), "valid names: checkerboard"),
        (lambda: resolve_map_names(["wave", "zebra"]), "zebra"),
        (lambda: deterministic_map("wave", 80, CONTRAST), "multiple of 32"),
        (lambda: random_map(48, CONTRAST, 0.5, 0, "train", 0), "multiple of 32"),
        (lambda: random_map(64, (0.0, 100.0), 0.5, 0, "train", 0), "> 0"),
        (lambda: deterministic_map("wave", 64, (-1.0, 100.0)), "> 0"),
        (lambda: random_map(64, CONTRAST, 1.5, 0, "train", 0), "p_high"),
        (lambda: random_map(64, CONTRAST, 0.5, 0, "test", 0), "unknown split"),
        (lambda: check_alpha(3), "power of two"),
        (lambda: mesh_size(6), "power of two"),
        (lambda: check_alpha(0), "power of two"),
        (lambda: project_coefficient(np.zeros((64, 64)), 32), "> 0"),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_positions_follow_fesr_coords():
    coords = pytest.importorskip("fesr.coords")
    for n in (1, 32, 256):
        np.testing.assert_array_equal(node_positions(n), coords.node_positions(n))
    for E in (32, 128):
        np.testing.assert_array_equal(cell_centre_positions(E), coords.cell_centre_positions(E))


def test_projection_is_exact_or_the_cell_mean():
    rng = np.random.default_rng(0)
    A = rng.random((64, 64)) + 1.0
    fine = project_coefficient(A, 256)  # n >= E: each mesh cell inside one coefficient cell
    for i, j in [(0, 0), (5, 200), (255, 17)]:
        assert fine[i, j] == A[i // 4, j // 4]
    coarse = project_coefficient(A, 32)  # n < E: mean over the 2 x 2 covered cells
    assert coarse[3, 7] == pytest.approx(A[6:8, 14:16].mean(), rel=1e-14)
    # E = 96 on n = 64: cells cover 1.5 coefficient cells; the projection preserves the integral
    B = rng.random((96, 96)) + 1.0
    P = project_coefficient(B, 64)
    assert P.mean() == pytest.approx(B.mean(), rel=1e-13)
    w = np.array([1.0, 0.5])  # mesh cell 0 covers cell 0 fully and half of cell 1
    assert P[0, 0] == pytest.approx(w @ B[:2, :2] @ w / 2.25, rel=1e-13)
