"""Metric functions against independent computations on small arrays: hand values and matrices
assembled element by element with Gauss quadrature."""

import numpy as np
import pytest
import scipy.sparse as sp

from fesr.evaluate.io import FieldFileError
from fesr.evaluate.metrics import field_metrics, prediction_metrics
from fesr.evaluate.spectra import rapsd
from fesr.fem.q1_grid import energy_sq, interpolate_nodal
from fesr.fem.q1_grid import seminorm_sq as q1_seminorm_sq

ONES = np.ones((1, 1))  # A = 1 on the whole square: the energy norm is the H1 seminorm


def q1_stiffness(m: int) -> sp.csr_matrix:
    """Global Q1 stiffness matrix of the Laplacian on an m x m unit-square mesh, assembled from
    the element matrix (independent of the vectorised edge formula under test)."""
    Ke = np.array([[4, -1, -2, -1], [-1, 4, -1, -2], [-2, -1, 4, -1], [-1, -2, -1, 4]]) / 6.0
    rows, cols, vals = [], [], []
    for i in range(m):
        for j in range(m):
            # corners of element (i, j), counter-clockwise from (x_j, y_i)
            dofs = [
                i * (m + 1) + j,
                i * (m + 1) + j + 1,
                (i + 1) * (m + 1) + j + 1,
                (i + 1) * (m + 1) + j,
            ]
            for a in range(4):
                for b in range(4):
                    rows.append(dofs[a])
                    cols.append(dofs[b])
                    vals.append(Ke[a, b])
    n = (m + 1) ** 2
    return sp.csr_matrix((vals, (rows, cols)), shape=(n, n))


def q1_weighted_stiffness(m: int, A: np.ndarray) -> sp.csr_matrix:
    """K_A[a, b] = int A grad phi_a . grad phi_b on an m x m mesh, A cellwise constant on an
    E x E grid, by 2 x 2 Gauss quadrature on every (element, coefficient cell) overlap: exact,
    since the integrand is a polynomial of degree <= 2 in each variable there."""
    E = A.shape[0]
    N = max(m, E)  # the overlaps of elements and cells are the cells of the common refinement
    g = (np.array([-1.0, 1.0]) / np.sqrt(3.0) + 1.0) / 2.0  # Gauss points on [0, 1]
    rows, cols, vals = [], [], []
    for I in range(N):
        for J in range(N):
            a_val = A[I * E // N, J * E // N]
            i, j = I * m // N, J * m // N  # the element holding this sub-cell
            dofs = [
                i * (m + 1) + j,
                i * (m + 1) + j + 1,
                (i + 1) * (m + 1) + j + 1,
                (i + 1) * (m + 1) + j,
            ]
            Ke = np.zeros((4, 4))
            for gx in g:
                for gy in g:
                    # point in element-local coordinates (s, t) in [0, 1]^2
                    s_ = (J + gx) * m / N - j
                    t_ = (I + gy) * m / N - i
                    # d/ds, d/dt of the corner shape functions (0,0), (1,0), (1,1), (0,1)
                    ds = np.array([-(1 - t_), (1 - t_), t_, -t_])
                    dt = np.array([-(1 - s_), -s_, s_, (1 - s_)])
                    grad = np.stack([ds, dt]) * m  # physical gradient: element side 1/m
                    Ke += grad.T @ grad * (1.0 / N) ** 2 / 4.0
            for a in range(4):
                for b in range(4):
                    rows.append(dofs[a])
                    cols.append(dofs[b])
                    vals.append(a_val * Ke[a, b])
    n = (m + 1) ** 2
    return sp.csr_matrix((vals, (rows, cols)), shape=(n, n))


def grid(m):
    x = np.linspace(0.0, 1.0, m + 1)
    return np.meshgrid(x, x)  # X varies along columns (x), Y along rows (y)


def test_energy_of_bilinear_field_hand_value():
    X, Y = grid(4)
    # u = x y is bilinear, so its Q1 interpolant is exact: |u|_1^2 = int y^2 + x^2 = 2/3
    assert q1_seminorm_sq(X * Y) == pytest.approx(2.0 / 3.0, rel=1e-14)
    # u = x: |u|_1^2 = 1; constants have zero energy
    assert q1_seminorm_sq(X) == pytest.approx(1.0, rel=1e-14)
    assert q1_seminorm_sq(np.full((5, 5), 3.0)) == pytest.approx(0.0, abs=1e-14)


def test_energy_matches_assembled_stiffness_matrix():
    rng = np.random.default_rng(1)
    m = 7
    v = rng.standard_normal((m + 1, m + 1))
    K = q1_stiffness(m)
    assert q1_seminorm_sq(v) == pytest.approx(float(v.ravel() @ (K @ v.ravel())), rel=1e-12)


@pytest.mark.parametrize("m", [1, 2, 8])
def test_energy_with_two_phase_coefficient_hand_value(m):
    # u = x (1 + y) with A = 1 on x < 1/2, 100 on x > 1/2 (E = 2): int A ((1 + y)^2 + x^2) =
    # 29/24 + 100 * 35/24 (A transposed, 100 on y > 1/2, gives another value); m = 1 and 2 are
    # coarser than or equal to the coefficient grid
    X, Y = grid(m)
    A = np.array([[1.0, 100.0], [1.0, 100.0]])
    assert energy_sq(X * (1 + Y), A) == pytest.approx(3529.0 / 24.0, rel=1e-13)


@pytest.mark.parametrize("m, E", [(8, 4), (8, 8), (4, 8), (2, 8)])
def test_energy_matches_independently_assembled_weighted_stiffness(m, E):
    rng = np.random.default_rng(m * 10 + E)
    A = np.where(rng.random((E, E)) < 0.5, 1.0, 100.0)
    v = rng.standard_normal((m + 1, m + 1))
    K = q1_weighted_stiffness(m, A)
    assert energy_sq(v, A) == pytest.approx(float(v.ravel() @ (K @ v.ravel())), rel=1e-12)
    # the same assembly with A = 1 is the Laplacian: the H1 seminorm
    K1 = q1_weighted_stiffness(m, np.ones((E, E)))
    assert q1_seminorm_sq(v) == pytest.approx(float(v.ravel() @ (K1 @ v.ravel())), rel=1e-12)


def test_energy_refuses_meshes_that_are_not_nested():
    with pytest.raises(ValueError, match="not nested"):
        energy_sq(np.zeros((7, 7)), np.ones((4, 4)))


def test_relative_energy_and_h1_errors_of_known_perturbation():
    X, Y = grid(8)
    ref = X * Y
    pred = ref + 0.5 * X  # error e = x/2: |e|_1^2 = 1/4, |ref|_1^2 = 2/3
    m = field_metrics(pred, ref, ONES)
    assert m["rel_h1"] == pytest.approx(np.sqrt(0.25 / (2.0 / 3.0)), rel=1e-12)
    assert m["rel_energy"] == pytest.approx(m["rel_h1"], rel=1e-12)  # A = 1
    # A = 1 | 100: ||e||_A^2 = 1/4 (1/2 + 100/2), ||ref||_A^2 = 1105/24
    m = field_metrics(pred, ref, np.array([[1.0, 100.0], [1.0, 100.0]]))
    assert m["rel_energy"] == pytest.approx(np.sqrt(0.25 * 50.5 / (1105.0 / 24.0)), rel=1e-12)
    assert m["rel_h1"] == pytest.approx(np.sqrt(0.25 / (2.0 / 3.0)), rel=1e-12)


def test_offset_mse_mae_psnr_rel_l2():
    X, Y = grid(16)
    ref = 0.5 + 0.25 * np.sin(3 * X) * Y
    c = 0.1
    m = field_metrics(ref + c, ref, ONES)
    assert m["mse"] == pytest.approx(c**2, rel=1e-12)
    assert m["mae"] == pytest.approx(c, rel=1e-12)
    assert m["psnr"] == pytest.approx(10 * np.log10(1.0 / c**2), rel=1e-12)
    assert m["rel_l2"] == pytest.approx(c * np.sqrt(ref.size) / np.linalg.norm(ref), rel=1e-12)
    assert m["rel_energy"] == pytest.approx(0.0, abs=1e-12)  # a constant shift has no energy
    assert m["rel_h1"] == pytest.approx(0.0, abs=1e-12)


def test_ssim_identical_is_one_and_degrades():
    rng = np.random.default_rng(0)
    ref = rng.random((33, 33))
    assert field_metrics(ref, ref, ONES)["ssim"] == pytest.approx(1.0)
    assert field_metrics(ref + 0.2 * rng.standard_normal(ref.shape), ref, ONES)["ssim"] < 0.9


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        field_metrics(np.zeros((9, 9)), np.zeros((17, 17)), ONES)


@pytest.mark.parametrize("f", [3, 7])
def test_rapsd_of_sinusoid_peaks_at_its_frequency(f):
    n = 64
    x = np.arange(n) / n
    X, Y = np.meshgrid(x, x)
    k, p = rapsd(np.sin(2 * np.pi * f * X) + np.cos(2 * np.pi * f * Y))
    assert k[np.argmax(p)] == f
    assert p[np.argmax(p)] > 1e6 * np.median(p)


def test_q1_interpolation_reproduces_bilinear_fields():
    Xc, Yc = grid(4)
    Xf, Yf = grid(16)
    up = interpolate_nodal(2 * Xc * Yc + Xc - 3 * Yc, 16)
    np.testing.assert_allclose(up, 2 * Xf * Yf + Xf - 3 * Yf, atol=1e-12)


def test_missing_prediction_file_is_named(tmp_path):
    missing = tmp_path / "predictions" / "liif" / "test_random" / "u_x4.nc"
    with pytest.raises(FieldFileError, match=str(missing)):
        prediction_metrics(
            missing, tmp_path / "ref.nc", tmp_path / "coefficient.nc", "liif", "test_random", 4
        )


def test_corrupt_prediction_file_is_named(tmp_path):
    bad = tmp_path / "u_x4.nc"
    bad.write_bytes(b"CDF\x01 truncated garbage, not a NetCDF file")
    with pytest.raises(FieldFileError, match=f"{bad}.*cannot be read"):
        prediction_metrics(
            bad, tmp_path / "ref.nc", tmp_path / "coefficient.nc", "liif", "test_random", 4
        )
