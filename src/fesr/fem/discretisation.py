"""The facts of the Q1 solve that need no DOLFINx: mesh sizes, the coefficient's projection onto
a mesh, and the tolerance a verified solve is held to (``fesr.fem.solver`` explains the factor
and the round-off floor). Validation, LOD and the training data import them without loading the
FE libraries.
"""

from __future__ import annotations

import numpy as np

from fesr.fem.coefficients import check_E

RESIDUAL_FACTOR = 10  # a solve passes when its true relative residual is <= this x rtol
ROUNDOFF_COEFFICIENT = 0.5  # residual_floor(n) = this x eps x n^2 (module docstring)
EXACT_PRECONDITIONERS = ("lu",)  # the pc_types that solve the system in one application


def residual_floor(n: int) -> float:
    """About the smallest true relative residual double precision reaches on the n x n mesh."""
    return ROUNDOFF_COEFFICIENT * float(np.finfo(np.float64).eps) * n * n


def check_alpha(alpha) -> int:
    """A scale factor alpha must be a power of two >= 1."""
    if isinstance(alpha, bool) or not isinstance(alpha, int | np.integer):
        raise ValueError(f"scale alpha must be an integer power of two, got {alpha!r}")
    if alpha < 1 or alpha & (alpha - 1):
        raise ValueError(f"scale alpha must be a power of two (1, 2, 4, ...), got {alpha}")
    return int(alpha)


def solver_name(ksp_type: str, pc_type: str) -> str:
    return f"{ksp_type}+{'boomeramg' if pc_type == 'hypre' else pc_type}"


def mesh_size(alpha, lr_n: int = 32) -> int:
    """n = lr_n * alpha squares per side for the field u_x{alpha}."""
    return int(lr_n) * check_alpha(alpha)


def projection_matrix(n: int, E: int) -> np.ndarray:
    """P (n x E): P[k, m] = fraction of mesh interval k covered by coefficient interval m.

    The cellwise L2 projection of an E x E map onto an n x n mesh is ``P @ A @ P.T``: the exact
    cell value when n >= E, the mean over the covered cells when n < E. Overlaps are integers in
    units of 1 / (n E), so the weights are exact.
    """
    k = np.arange(n)[:, None]
    m = np.arange(E)[None, :]
    overlap = np.minimum((k + 1) * E, (m + 1) * n) - np.maximum(k * E, m * n)
    return np.clip(overlap, 0, None) / E


# Means of the fine coefficient cells that a coarse mesh cell covers, as (g, g^-1): the cell
# value is g^-1(mean of g(A)). Arithmetic is the L2 projection (SPEC 1); geometric is the exact
# effective conductivity of a 2D two-phase random medium at p = 1/2 (Keller-Dykhne); harmonic and
# arithmetic are the Wiener bounds.
COEFFICIENT_MEANS = {
    "arithmetic": (lambda a: a, lambda a: a),
    "geometric": (np.log, np.exp),
    "harmonic": (np.reciprocal, np.reciprocal),
}


def check_mean(mean) -> str:
    if not isinstance(mean, str) or mean not in COEFFICIENT_MEANS:
        raise ValueError(
            f"coefficient mean must be one of {', '.join(COEFFICIENT_MEANS)}, got {mean!r}"
        )
    return mean


def project_coefficient(A: np.ndarray, n: int, mean: str = "arithmetic") -> np.ndarray:
    """Cellwise means of the E x E map A on an n x n mesh -> n x n array (row = y).

    ``mean``: which mean of the covered coefficient cells (area-weighted) when n < E; when every
    mesh cell lies inside one coefficient cell the value is exact and all means agree.
    """
    forward, inverse = COEFFICIENT_MEANS[check_mean(mean)]
    A = np.asarray(A, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"coefficient must be a square E x E array, got shape {A.shape}")
    E = check_E(A.shape[0])
    if not np.all(np.isfinite(A)) or A.min() <= 0:
        raise ValueError("coefficient values must be finite and > 0")
    if n % E == 0:  # every mesh cell inside one coefficient cell
        r = n // E
        return np.repeat(np.repeat(A, r, axis=0), r, axis=1)
    if E % n == 0:  # every mesh cell covers r x r whole coefficient cells
        r = E // n
        return inverse(forward(A).reshape(n, r, n, r).mean(axis=(1, 3)))
    P = projection_matrix(n, E)
    return inverse(P @ forward(A) @ P.T)
