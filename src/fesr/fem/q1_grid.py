"""Q1 fields on uniform node grids in NumPy alone: exact prolongation and exact energies.

Nodal arrays follow SPEC 1: ``v[i, j] = v(x_j, y_i)`` on an m x m mesh of squares, shape
(m+1, m+1); a coefficient ``A`` is cellwise constant on an E x E grid, ``A[i, j]`` on the cell
``[j/E, (j+1)/E] x [i/E, (i+1)/E]``. No DOLFINx and no torch: metric and baseline jobs import
this in a fraction of the time those take to load.
"""

from __future__ import annotations

import numpy as np


def interpolate_nodal(coarse: np.ndarray, m: int) -> np.ndarray:
    """Q1 (bilinear) interpolant of a nodal field (n+1, n+1) at the nodes of an m x m mesh.

    Q1 is the tensor product of 1D linear interpolation, so it is applied along y, then x. On
    nested meshes (m a multiple of n) it is the exact prolongation of the Q1 field."""
    n = coarse.shape[0] - 1
    pos = np.arange(m + 1) * (n / m)  # fine node j sits at coarse position j n / m
    lo = np.minimum(np.floor(pos).astype(np.int64), n - 1)
    t = pos - lo

    def along(u: np.ndarray, axis: int) -> np.ndarray:
        shape = [1, 1]
        shape[axis] = m + 1
        w = t.reshape(shape)
        return np.take(u, lo, axis) * (1.0 - w) + np.take(u, lo + 1, axis) * w

    return along(along(np.asarray(coarse, dtype=np.float64), 0), 1)


def element_gradient_sq(v: np.ndarray) -> np.ndarray:
    """int_T |grad v|^2 on every element T of the Q1 interpolant of v: an (m, m) array.

    On one square with corner values a (0,0), b (1,0), c (1,1), d (0,1), d/dx v is linear in y
    between p = b - a and q = c - d, so int_T (d/dx v)^2 = (p^2 + pq + q^2) / 3, independent of
    h in 2D; likewise d/dy v with the left and right edges r, s. The sum over T is v^T K v with K
    the Q1 stiffness matrix of the Laplacian."""
    v = np.asarray(v, dtype=np.float64)
    dx = np.diff(v, axis=1)  # (m+1, m): horizontal edge differences
    dy = np.diff(v, axis=0)  # (m, m+1): vertical edge differences
    p, q = dx[:-1, :], dx[1:, :]  # bottom and top edge of each element
    r, s = dy[:, :-1], dy[:, 1:]  # left and right edge of each element
    return ((p * p + p * q + q * q) + (r * r + r * s + s * s)) / 3.0


def check_nested(m: int, E: int) -> None:
    if m % E and E % m:
        raise ValueError(
            f"a {m} x {m} mesh and an {E} x {E} coefficient grid are not nested: expected one "
            "size to divide the other"
        )


def energy_sq(v: np.ndarray, coefficient: np.ndarray) -> float:
    """int A |grad v|^2 = v^T K_A v of the Q1 interpolant of v, with A cellwise constant, exactly.

    Where the mesh is finer than the coefficient grid every element lies in one coefficient cell,
    so A is repeated onto the elements. Where it is coarser, an element covers several cells and
    |grad v|^2 is not constant on it: v is prolonged (exactly, meshes being nested) onto the
    coefficient grid and the sum is taken there."""
    v = np.asarray(v, dtype=np.float64)
    A = np.asarray(coefficient, dtype=np.float64)
    m, E = v.shape[0] - 1, A.shape[0]
    check_nested(m, E)
    if m < E:
        v, m = interpolate_nodal(v, E), E
    r = m // E
    if r > 1:
        A = np.repeat(np.repeat(A, r, axis=0), r, axis=1)
    return float((A * element_gradient_sq(v)).sum())


def seminorm_sq(v: np.ndarray) -> float:
    """|v|_1^2 = int |grad v|^2 of the Q1 interpolant of v (the energy with A = 1)."""
    return float(element_gradient_sq(v).sum())
