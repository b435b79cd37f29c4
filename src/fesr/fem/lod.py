"""Petrov-Galerkin localized orthogonal decomposition (PG-LOD) on Q1, after Målqvist and
Peterseim (Math. Comp. 2014) and their book (Numerical Homogenization by Localized Orthogonal
Decomposition, SIAM 2020).

Problem and spaces. -div(A grad u) = f on (0,1)^2, u = 0 on the boundary, f constant (SPEC 1).
V_h: continuous Q1 on the uniform N x N fine mesh (h = 1/N) with zero boundary values, the V_h
of the DOLFINx solve (``fesr.fem.solver.Q1Solver``); the coefficient on the fine cells is its
cellwise L2 projection (``project_coefficient``), so N = E (the default) takes A as it is and
N > E repeats its cells. V_H: the same on the lr_n x lr_n coarse mesh (H = 1/lr_n). N must be a
multiple of lr_n (at least 2 lr_n), so V_H is a subspace of V_h. Nodal arrays are
(n+1) x (n+1), ``u[i, j] = u(x_j, y_i)``.

Quasi-interpolation I_H = E_H o Pi_H, as gridlod uses: Pi_H is the L2 projection onto
discontinuous Q1, coarse element by coarse element; E_H averages the four element values at
each interior coarse node and sets the boundary nodes to 0. On a square, Pi_T is the tensor
product of the 1D L2 projection onto linears, so the rows of I_H are tensor products too. I_H is
a projection onto V_H (it reproduces coarse functions), local and H1-stable, which the
exponential decay of the correctors rests on. The fine-scale space is W_h = ker(I_H) in V_h.

Element correctors. For a coarse element T, its patch U = U_k(T) is T with k layers of coarse
elements around it, clipped at the boundary, and W_h(U) = {w in W_h : w = 0 outside U}. For each
of T's four coarse shape functions phi, Q_T phi in W_h(U) solves
a_U(Q_T phi, w) = a_T(phi, w) for all w in W_h(U): a saddle point problem, fine nodes inside U
plus one Lagrange multiplier per coarse node z of the closure of U that is not on the domain
boundary ((I_H w)(z) = 0 holds by itself everywhere else). Q = sum_T Q_T. ``ideal=True`` solves
instead one global problem per coarse basis function, Q phi_j in W_h with
a(Q phi_j, w) = a(phi_j, w): no localisation; when every patch is the whole domain
(k >= lr_n - 1) the element correctors sum to it by linearity.

Coarse system and reconstruction (PG): a((1 - Q) phi_j, phi_i) u_H = (f, phi_i) over the interior
coarse nodes (a non-symmetric sparse matrix, LU-factorised), then u_ms = (1 - Q) u_H on the fine
mesh. ``u_coarse`` is u_H, ``u_fine`` is u_ms.

How it is fast. Fine nodes strictly inside a coarse element couple only to that element's
boundary nodes and to the multipliers at its four corners, and nothing about them depends on
the patch. So they are eliminated once per element and map (static condensation, batched over all
elements: one (r-1)^2 solve each, r = N / lr_n), and each patch problem is the sum of the
condensed element matrices over its elements: unknowns on the coarse mesh lines inside the patch
plus the multipliers, 172 instead of 397 for k = 2, r = 4. Patches of equal geometry (size,
clipping at the boundary, position of T) share one dof layout; a chunk of such patches is
assembled with one weighted ``bincount`` and solved with one batched dense LU
(``numpy.linalg.solve``). Systems larger than ``DENSE_MAX`` unknowns use a sparse LU per patch
instead, assembled through a CSC pattern built once per group (patches clipped to the same extent
share one factorisation). The eliminated nodes are recovered from the condensed solution by one
batched product, and Q phi_j is summed over the four T around z_j on one block per coarse node,
from which the sparse (P - Q) is built without sorting. ``workers > 1`` spreads the chunks over
processes; the chunking does not depend on it, so the result is the same to the last bit.
Measured on one core (``benchmarks/bench_lod.py``, CPU seconds per map at N = 128): 0.11 s for
k = 1, 0.42 s for k = 2, 1.2 s for k = 3; 1.9 s for k = 2 at N = 256.

Cost split. ``compute_correctors`` is the per-map set-up: element matrices, correctors, the
coarse PG matrix and its LU, and the sparse reconstruction matrix (P - Q). ``solve`` is the
per-right-hand-side part: the coarse load vector, the LU's triangular solves and one sparse
product for u_ms.

Command line: ``python -m fesr.fem.lod --coefficient results/data/S/coefficient.nc --split S
--k 2 [--fine-n N] --lr-n 32 --source 1.0 --alpha 2 4 8 --out P/u_x2.nc P/u_x4.nc P/u_x8.nc
[--coarse-out P/u_x1.nc] --u-scale-from FILE.nc [--workers W]`` computes LOD once per sample and
writes u_ms on every requested HR grid n = lr_n * alpha (Q1-prolonged where n > N, the Q1 field
at the HR nodes where n <= N) in the layout of ``fesr.evaluate.predict``: u(sample, y, x) in
physical units, seconds = setup_seconds + solve_seconds (the evaluation on the HR grid is not
counted, as for the FE baselines' interpolation), peak_mb (``fesr.evaluate.memory``), the
attributes model (``lod_k{k}``, or ``lod_k{k}_h{N}`` when N != E), split, alpha, n, u_scale
(from ``--u-scale-from``, as ``fesr.evaluate.fe_baselines`` reads it) and seed (the coefficient
file's; LOD itself is deterministic). ``--coarse-out`` writes u_H the same way on the
(lr_n+1)^2 grid (model ``lod_coarse``, alpha 1). Inputs are checked before any output is opened
(scales against file names, N against lr_n, split); outputs are written under temporary names
and renamed when complete, removed on any error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from fesr.fem.discretisation import project_coefficient

PROG = "python -m fesr.fem.lod"
# Bilinear element stiffness of -div(grad) on a square (any size in 2-D), nodes counter-clockwise
# from the bottom-left corner; CELL_CORNERS are those nodes as (row = y, column = x) offsets.
K_REF = np.array([[4, -1, -2, -1], [-1, 4, -1, -2], [-2, -1, 4, -1], [-1, -2, -1, 4]]) / 6.0
CELL_CORNERS = ((0, 0), (0, 1), (1, 1), (1, 0))
# Condensed patch systems up to this many unknowns are solved as a dense batch; larger ones
# (k >= 3 at r = 4, k >= 2 at r = 8) with one sparse LU each, which is then cheaper: 1.7 against
# 2.4 ms per patch at 352 unknowns, 0.6 against 0.6 at 172.
DENSE_MAX = 250
# Bytes of dense patch matrices held at once per chunk.
CHUNK_BYTES = 32 * 2**20


@dataclass
class LODResult:
    u_fine: np.ndarray  # (N+1, N+1) nodal reconstruction (1 - Q) u_H on the fine mesh
    u_coarse: np.ndarray  # (lr_n+1, lr_n+1) nodal u_H
    setup_seconds: float  # per coefficient map: correctors (and their assembly)
    solve_seconds: float  # per right-hand side: coarse assembly + solve + reconstruction


@dataclass
class Correctors:
    """What one coefficient map's set-up leaves for any number of right-hand sides."""

    lr_n: int
    fine_n: int
    k: int | None  # patch layers; None for the ideal (global) correctors
    reconstruction: sp.csr_matrix  # ((N+1)^2, (lr_n-1)^2): column j = (1 - Q) phi_j
    coarse_matrix: sp.csc_matrix  # ((lr_n-1)^2, (lr_n-1)^2): [i, j] = a((1 - Q) phi_j, phi_i)
    coarse_lu: spla.SuperLU
    setup_seconds: float
    timings: dict  # seconds of the set-up stages


# -- sizes ----------------------------------------------------------------------------------------
def _positive_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_sizes(E: int, lr_n, k, fine_n) -> tuple[int, int | None, int]:
    """(lr_n, k, N) checked: N defaults to E and must be a multiple of lr_n, at least 2 lr_n."""
    lr_n = _positive_int("lr_n", lr_n, 2)
    if k is not None:
        k = _positive_int("patch layers k", k, 0)
    N = int(E) if fine_n is None else _positive_int("fine mesh size fine_n", fine_n, 1)
    if N % lr_n or N // lr_n < 2:
        raise ValueError(
            f"fine mesh N = {N}{' (the coefficient size E)' if fine_n is None else ''} must be a "
            f"multiple of the coarse mesh lr_n = {lr_n} and at least 2 * lr_n = {2 * lr_n}"
        )
    return lr_n, k, N


def _check_coefficient(A) -> np.ndarray:
    A = np.asarray(A, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"coefficient must be a square E x E array, got shape {A.shape}")
    return A


# -- one coarse element: reference data (depends on r = N / lr_n only) -----------------------------
def projection_1d(r: int) -> np.ndarray:
    """(2, r+1): the L2 projection of a fine P1 function on one coarse interval onto linears.

    Row a gives the coefficient of the coarse hat a (0: left, 1: right) from the r+1 fine nodal
    values: (V^T M V)^{-1} V^T M with M the fine 1D mass matrix and V the fine nodal values of
    the two coarse hats (V^T M V is then the coarse mass matrix). The scale h cancels.
    """
    M = np.zeros((r + 1, r + 1))
    for c in range(r):
        M[c : c + 2, c : c + 2] += np.array([[2.0, 1.0], [1.0, 2.0]]) / 6.0
    t = np.arange(r + 1) / r
    V = np.stack([1.0 - t, t], axis=1)
    return np.linalg.solve(V.T @ M @ V, V.T @ M)


@dataclass(frozen=True)
class _Element:
    r: int
    interior: np.ndarray  # local node indices strictly inside, row-major (py, px)
    skeleton: np.ndarray  # local node indices on the element boundary, row-major
    cell_pattern: sp.csr_matrix  # (r*r, nL*nL): K_REF of each fine cell placed in the element
    phi: np.ndarray  # (nL, 4): the four coarse shape functions at the fine nodes
    constraint: np.ndarray  # (4, nL): this element's share of I_H at its corners


@lru_cache(maxsize=8)
def _element(r: int) -> _Element:
    side = r + 1
    py, px = np.divmod(np.arange(side * side), side)
    inside = (py > 0) & (py < r) & (px > 0) & (px < r)
    rows, cols, vals = [], [], []
    for c in range(r * r):
        cy, cx = divmod(c, r)
        nodes = np.array([(cy + dy) * side + (cx + dx) for dy, dx in CELL_CORNERS])
        rows.append(np.full(16, c))
        cols.append((nodes[:, None] * side * side + nodes[None, :]).reshape(-1))
        vals.append(K_REF.reshape(-1))
    pattern = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(r * r, side**4),
    )
    t = np.arange(side) / r
    V = np.stack([1.0 - t, t], axis=1)  # corner a = 2 ay + ax, local node = py * side + px
    R1 = projection_1d(r)
    return _Element(
        r=r,
        interior=np.flatnonzero(inside),
        skeleton=np.flatnonzero(~inside),
        cell_pattern=pattern,
        phi=np.kron(V, V),
        constraint=0.25 * np.kron(R1, R1),
    )


def _element_data(cells: np.ndarray, lr_n: int, r: int) -> dict:
    """Condensed matrices of every coarse element (batched): eliminate its interior fine nodes.

    Local condensed dofs: the 4r boundary fine nodes (``skeleton`` order), then the multipliers
    of the four corners. Returns Me (condensed saddle matrix), rhs (condensed a_T(phi_a, .)),
    XSC = K_II^{-1} [K_IS, C_I^T], Xb = K_II^{-1} b_I (to recover the interior) and bphi = K^e phi
    (for the coarse matrix), each stacked over the lr_n^2 elements (e = ei * lr_n + ej).
    """
    el = _element(r)
    side = r + 1
    a = cells.reshape(lr_n, r, lr_n, r).transpose(0, 2, 1, 3).reshape(lr_n * lr_n, r * r)
    Ke = np.ascontiguousarray((el.cell_pattern.T @ a.T).T).reshape(-1, side * side, side * side)
    I, S = el.interior, el.skeleton
    bphi = Ke @ el.phi
    Kii = Ke[:, I][:, :, I]
    Kis = Ke[:, I][:, :, S]
    Kss = Ke[:, S][:, :, S]
    Ci, Cs = el.constraint[:, I], el.constraint[:, S]
    ns = len(S)
    rhs_i = np.concatenate([Kis, np.broadcast_to(Ci.T, (len(Ke), len(I), 4)), bphi[:, I]], axis=2)
    Y = np.linalg.solve(Kii, rhs_i)
    XS, XC, Xb = Y[:, :, :ns], Y[:, :, ns : ns + 4], Y[:, :, ns + 4 :]
    KsiT = Kis.transpose(0, 2, 1)
    Me = np.empty((len(Ke), ns + 4, ns + 4))
    Me[:, :ns, :ns] = Kss - KsiT @ XS
    Me[:, :ns, ns:] = Cs.T - KsiT @ XC
    Me[:, ns:, :ns] = Me[:, :ns, ns:].transpose(0, 2, 1)
    Me[:, ns:, ns:] = -(Ci @ XC)
    rhs = np.concatenate([bphi[:, S] - KsiT @ Xb, -(Ci @ Xb)], axis=1)
    return {
        "Me": Me,
        "rhs": rhs,
        "XSC": np.ascontiguousarray(Y[:, :, : ns + 4]),
        "Xb": np.ascontiguousarray(Xb),
        "bphi": bphi,
        "phi_K_phi": el.phi.T @ bphi,  # (Ne, 4, 4): the element's coarse stiffness
    }


# -- patches: groups of equal geometry -------------------------------------------------------------
@dataclass
class _Group:
    """Patches of one geometry: size h x w elements, clipping, the T's inside (one layout)."""

    h: int
    w: int
    n_skel: int
    nd: int  # condensed unknowns: skeleton fine nodes + multipliers
    elem_dofs: np.ndarray  # (nE, 4r+4) condensed element dof -> patch dof (nd = dropped)
    dense_target: np.ndarray  # (nE (4r+4)^2,) flat index in the nd x nd matrix (-1 = dropped)
    sparse_take: np.ndarray  # element matrix entries in CSC order of the patch matrix
    sparse_starts: np.ndarray  # where each CSC entry's run of summands starts in sparse_take
    sparse_indices: np.ndarray  # CSC row indices
    sparse_indptr: np.ndarray  # CSC column pointers
    t_epos: np.ndarray  # (nT,) element position of each T in the patch
    grid_skel: np.ndarray  # (n_skel,) patch grid index of each skeleton dof
    grid_interior: np.ndarray  # (nE, (r-1)^2) patch grid indices of the element interiors
    grid_local: np.ndarray  # (nE, (r+1)^2) patch grid indices of each element's nodes
    grid_size: int  # fine nodes of the patch grid, (h r + 1) (w r + 1)
    origins: np.ndarray  # (B, 2) first element (row, column) of each patch
    elem_ids: np.ndarray  # (B, nE) global element ids


def _patch_extent(t: int, k: int, n: int) -> tuple[int, int]:
    return max(0, t - k), min(n, t + k + 1)


@lru_cache(maxsize=16)
def _groups(lr_n: int, k: int, r: int) -> tuple[_Group, ...]:
    by_extent: dict[tuple, list] = {}
    for ti in range(lr_n):
        i0, i1 = _patch_extent(ti, k, lr_n)
        for tj in range(lr_n):
            j0, j1 = _patch_extent(tj, k, lr_n)
            by_extent.setdefault((i0, i1, j0, j1), []).append((ti - i0, tj - j0))
    by_key: dict[tuple, list] = {}
    for (i0, i1, j0, j1), ts in by_extent.items():
        flags = (i0 == 0, i1 == lr_n, j0 == 0, j1 == lr_n)
        by_key.setdefault((i1 - i0, j1 - j0, flags, tuple(ts)), []).append((i0, j0))
    return tuple(
        _layout(h, w, flags, ts, np.array(origins), lr_n, r)
        for (h, w, flags, ts), origins in sorted(by_key.items())
    )


def _layout(h, w, flags, ts, origins, lr_n, r) -> _Group:
    el = _element(r)
    side = r + 1
    gy, gx = h * r + 1, w * r + 1
    py, px = np.divmod(np.arange(gy * gx), gx)
    inner = (py > 0) & (py < h * r) & (px > 0) & (px < w * r)
    skel = inner & ((py % r == 0) | (px % r == 0))
    skel_id = np.full(gy * gx, -1)
    skel_id[skel] = np.arange(skel.sum())
    n_skel = int(skel.sum())
    bottom, top, left, right = flags
    cy, cx = np.divmod(np.arange((h + 1) * (w + 1)), w + 1)
    free = ~((bottom & (cy == 0)) | (top & (cy == h)) | (left & (cx == 0)) | (right & (cx == w)))
    lam_id = np.full((h + 1) * (w + 1), -1)
    lam_id[free] = n_skel + np.arange(free.sum())
    nd = n_skel + int(free.sum())
    lpy, lpx = np.divmod(np.arange(side * side), side)
    ey, ex = np.divmod(np.arange(h * w), w)
    grid_local = (ey[:, None] * r + lpy[None]) * gx + ex[:, None] * r + lpx[None]
    corner_y = ey[:, None] + np.array([0, 0, 1, 1])[None]
    corner_x = ex[:, None] + np.array([0, 1, 0, 1])[None]
    elem_dofs = np.concatenate(
        [skel_id[grid_local[:, el.skeleton]], lam_id[corner_y * (w + 1) + corner_x]], axis=1
    )
    dense_target = np.where(
        (elem_dofs[:, :, None] >= 0) & (elem_dofs[:, None, :] >= 0),
        elem_dofs[:, :, None] * nd + elem_dofs[:, None, :],
        -1,
    ).reshape(-1)
    # the same sum as a CSC pattern: summands sorted by (column, row), one run per entry
    kept = np.flatnonzero(dense_target >= 0)
    key = (dense_target[kept] % nd) * nd + dense_target[kept] // nd
    order = np.argsort(key, kind="stable")
    key = key[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    entry_col = key[starts] // nd
    elem_dofs[elem_dofs < 0] = nd
    ts = np.array(ts)
    elem_rows = origins[:, 0, None] + ey[None]
    elem_cols = origins[:, 1, None] + ex[None]
    return _Group(
        h=h,
        w=w,
        n_skel=n_skel,
        nd=nd,
        elem_dofs=elem_dofs,
        dense_target=dense_target,
        sparse_take=kept[order],
        sparse_starts=starts,
        sparse_indices=key[starts] % nd,
        sparse_indptr=np.searchsorted(entry_col, np.arange(nd + 1)),
        t_epos=ts[:, 0] * w + ts[:, 1],
        grid_skel=np.flatnonzero(skel),
        grid_interior=grid_local[:, el.interior],
        grid_local=grid_local,
        grid_size=gy * gx,
        origins=origins,
        elem_ids=elem_rows * lr_n + elem_cols,
    )


def _chunks(groups) -> list[tuple[int, int, int]]:
    """(group, start, stop) work items; independent of the number of workers."""
    out = []
    for g, group in enumerate(groups):
        size = len(group.origins)
        nE, m = group.elem_dofs.shape
        ncols = 4 * len(group.t_epos)
        per_patch = nE * m * m + ncols * (group.grid_size + group.grid_local.size + 2 * nE * m)
        if group.nd <= DENSE_MAX:
            per_patch += (group.nd + 1) ** 2
        step = max(1, CHUNK_BYTES // (8 * per_patch))
        out += [(g, s, min(size, s + step)) for s in range(0, size, step)]
    return out


def _solve_chunk(group: _Group, elem_ids: np.ndarray, el: dict, r: int):
    """Correctors of one chunk of patches of ``group``.

    Returns grid (B, 4 nT, (h r + 1)(w r + 1)): Q_T phi_c of each T in the patch and each of its
    corners c, at the patch's fine nodes (row-major); and acorr (B, nE, 4 nT, 4):
    a_e(Q_T phi_c, phi_a) on each element e of the patch, for its corners a.
    """
    B, nE = elem_ids.shape
    nd, nt = group.nd, len(group.t_epos)
    ncols = 4 * nt
    dofs = group.elem_dofs
    # right-hand sides: a_T(phi_c, .) condensed, T's element only
    R = np.zeros((B, nd + 1, ncols))
    for t, epos in enumerate(group.t_epos):
        R[:, dofs[epos], 4 * t : 4 * t + 4] += el["rhs"][elem_ids[:, epos]]
    Me = el["Me"][elem_ids]  # (B, nE, m, m)
    if nd <= DENSE_MAX:
        # one weighted bincount assembles the stack; dropped dofs go to one spare slot
        target = group.dense_target
        offsets = (np.arange(B) * nd * nd)[:, None]
        index = np.where(target[None] < 0, B * nd * nd, offsets + target[None])
        M = np.bincount(index.reshape(-1), Me.reshape(-1), minlength=B * nd * nd + 1)
        X = np.linalg.solve(M[: B * nd * nd].reshape(B, nd, nd), R[:, :nd])
    else:
        data = np.add.reduceat(Me.reshape(B, -1)[:, group.sparse_take], group.sparse_starts, axis=1)
        X = np.empty((B, nd, ncols))
        for b in range(B):
            Mb = sp.csc_matrix((data[b], group.sparse_indices, group.sparse_indptr), shape=(nd, nd))
            # quasi-definite (SPD skeleton block, negative definite multiplier block after the
            # condensation, r >= 3): diagonal pivots are stable, and keeping them keeps the fill
            # low; a diagonal under 0.01 x its column's largest entry is still pivoted away
            lu = spla.splu(Mb, diag_pivot_thresh=0.01, options={"SymmetricMode": True})
            X[b] = lu.solve(R[b, :nd])
    Xpad = np.concatenate([X, np.zeros((B, 1, ncols))], axis=1)
    local = Xpad[:, dofs]  # (B, nE, 4r+4, ncols): condensed element values
    q_int = -(el["XSC"][elem_ids] @ local)  # (B, nE, (r-1)^2, ncols)
    for t, epos in enumerate(group.t_epos):
        q_int[:, epos, :, 4 * t : 4 * t + 4] += el["Xb"][elem_ids[:, epos]]
    gy, gx = group.h * r + 1, group.w * r + 1
    grid = np.zeros((B, ncols, gy * gx))
    grid[:, :, group.grid_skel] = X[:, : group.n_skel].transpose(0, 2, 1)
    grid[:, :, group.grid_interior] = q_int.transpose(0, 3, 1, 2)
    q_local = grid[:, :, group.grid_local].transpose(0, 2, 1, 3)  # (B, nE, ncols, nL)
    acorr = q_local @ el["bphi"][elem_ids]  # (B, nE, ncols, 4)
    return grid, acorr


def _solve_chunks(groups, items, el, r):
    return [
        _solve_chunk(groups[g], groups[g].elem_ids[start:stop], el, r) for g, start, stop in items
    ]


def _warm(_):
    return os.getpid()


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A started pool of ``workers`` processes (spawned: safe beside threads and MPI) to pass to
    ``compute_correctors`` for many maps; the caller shuts it down."""
    import multiprocessing

    workers = _positive_int("workers", workers, 1)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    list(pool.map(_warm, range(workers)))
    return pool


def _run_chunks(groups, items, el, r, workers, pool):
    if workers <= 1 or len(items) < 2:
        return _solve_chunks(groups, items, el, r)
    # contiguous runs of items of about equal work, estimated as B nd^3 per chunk
    cost = np.array([(stop - start) * groups[g].nd ** 3 for g, start, stop in items], float)
    edges = np.searchsorted(np.cumsum(cost), np.arange(1, workers) * cost.sum() / workers)
    parts = [p for p in np.split(np.arange(len(items)), edges) if len(p)]
    own = pool is None
    pool = worker_pool(workers) if own else pool
    try:
        futures = [
            pool.submit(_solve_chunks, groups, [items[i] for i in part], el, r) for part in parts
        ]
        return [res for f in futures for res in f.result()]
    finally:
        if own:
            pool.shutdown()


# -- global pieces --------------------------------------------------------------------------------
def _interior(n: int) -> np.ndarray:
    """Flat indices of the interior nodes of an (n+1)^2 grid, row-major."""
    i, j = np.divmod(np.arange((n + 1) ** 2), n + 1)
    return np.flatnonzero((i > 0) & (i < n) & (j > 0) & (j < n))


def _coarse_index(lr_n: int) -> np.ndarray:
    """Full coarse node id -> interior unknown id (-1 on the boundary)."""
    out = np.full((lr_n + 1) ** 2, -1)
    out[_interior(lr_n)] = np.arange((lr_n - 1) ** 2)
    return out


def prolongation(lr_n: int, N: int) -> sp.csr_matrix:
    """((N+1)^2, (lr_n+1)^2): coarse Q1 nodal values -> the same function at the fine nodes."""
    t = np.arange(N + 1) * (lr_n / N)
    P1 = np.maximum(0.0, 1.0 - np.abs(t[:, None] - np.arange(lr_n + 1)[None]))
    P1 = sp.csr_matrix(P1)
    return sp.kron(P1, P1, format="csr")


def stiffness(cells: np.ndarray) -> sp.csr_matrix:
    """Global Q1 stiffness ((N+1)^2 square) of a cellwise constant coefficient (N x N), no BCs."""
    N = cells.shape[0]
    ci, cj = np.meshgrid(np.arange(N), np.arange(N), indexing="ij")
    nodes = np.stack([(ci + dy) * (N + 1) + cj + dx for dy, dx in CELL_CORNERS], axis=-1)
    nodes = nodes.reshape(-1, 4)
    vals = cells.reshape(-1, 1, 1) * K_REF[None]
    rows = np.repeat(nodes, 4, axis=1).reshape(-1)
    cols = np.tile(nodes, (1, 4)).reshape(-1)
    size = (N + 1) ** 2
    return sp.csr_matrix((vals.reshape(-1), (rows, cols)), shape=(size, size))


def quasi_interpolation(lr_n: int, N: int) -> sp.csr_matrix:
    """I_H = E_H o Pi_H as a ((lr_n+1)^2, (N+1)^2) matrix: fine nodal values -> coarse ones."""
    r = N // lr_n
    R1 = projection_1d(r)
    C1 = np.zeros((lr_n + 1, N + 1))
    for e in range(lr_n):  # element e = [e H, (e+1) H]: its share at its two nodes, averaged
        C1[e, e * r : e * r + r + 1] += 0.5 * R1[0]
        C1[e + 1, e * r : e * r + r + 1] += 0.5 * R1[1]
    C1[[0, lr_n]] = 0.0  # E_H: zero boundary values
    C1 = sp.csr_matrix(C1)
    return sp.kron(C1, C1, format="csr")


# -- set-up and solve -----------------------------------------------------------------------------
def compute_correctors(
    A,
    lr_n: int,
    k: int | None,
    fine_n: int | None = None,
    workers: int = 1,
    ideal: bool = False,
    pool: ProcessPoolExecutor | None = None,
) -> Correctors:
    """The per-map set-up of PG-LOD (module docstring): correctors on patches of ``k`` layers
    (``ideal=True``: the global correctors, ``k`` ignored), the coarse PG matrix and its LU.

    ``workers > 1`` spreads the patch groups over processes (``pool``: an existing
    ``worker_pool`` to reuse; otherwise one is started and shut down here, outside the timing).
    """
    A = _check_coefficient(A)
    lr_n, k, N = check_sizes(A.shape[0], lr_n, None if ideal else k, fine_n)
    if not ideal and k is None:
        raise ValueError("patch layers k must be given unless ideal=True")
    workers = _positive_int("workers", workers, 1)
    own_pool = workers > 1 and pool is None and not ideal
    if own_pool:
        pool = worker_pool(workers)
    try:
        t0 = time.perf_counter()
        cells = project_coefficient(A, N)
        if ideal:
            R, AH, timings = _ideal_system(cells, lr_n, N)
        else:
            R, AH, timings = _local_system(cells, lr_n, k, N, workers, pool)
        t = time.perf_counter()
        lu = spla.splu(AH)
        timings["coarse_lu"] = time.perf_counter() - t
        seconds = time.perf_counter() - t0
    finally:
        if own_pool:
            pool.shutdown()
    return Correctors(lr_n, N, None if ideal else k, R, AH, lu, seconds, timings)


def _local_system(cells, lr_n, k, N, workers, pool):
    r = N // lr_n
    timings = {}
    t = time.perf_counter()
    el = _element_data(cells, lr_n, r)
    groups = _groups(lr_n, k, r)
    timings["elements"] = time.perf_counter() - t
    t = time.perf_counter()
    items = _chunks(groups)
    results = _run_chunks(groups, items, el, r, workers, pool)
    timings["patches"] = time.perf_counter() - t

    t = time.perf_counter()
    index = _coarse_index(lr_n)
    nc = (lr_n - 1) ** 2
    corner = np.array([0, 1, lr_n + 1, lr_n + 2])  # corner a = 2 ay + ax of an element
    e_i, e_j = np.divmod(np.arange(lr_n * lr_n), lr_n)
    elem_corner = (e_i * (lr_n + 1) + e_j)[:, None] + corner[None]  # (Ne, 4) coarse node ids
    # Q phi_j summed over the (up to four) T around coarse node z_j, on a block of side
    # (2k+2) r + 1 fine nodes centred on z_j that holds every one of those patches
    L = (2 * k + 2) * r + 1
    blocks = np.zeros(((lr_n + 1) ** 2, L, L))
    c_rows, c_cols, c_vals = [], [], []
    for (g, start, stop), (grid, acorr) in zip(items, results, strict=True):
        group = groups[g]
        elem_ids = group.elem_ids[start:stop]
        gy, gx = group.h * r + 1, group.w * r + 1
        node = elem_corner[elem_ids[:, group.t_epos]].reshape(len(elem_ids), -1)  # (B, 4 nT)
        col = index[node]
        for n_t, (ty, tx) in enumerate(zip(*np.divmod(group.t_epos, group.w), strict=True)):
            for a, (ay, ax) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
                c = 4 * n_t + a
                sel = col[:, c] >= 0
                oy, ox = (k + 1 - ay - ty) * r, (k + 1 - ax - tx) * r
                blocks[node[sel, c], oy : oy + gy, ox : ox + gx] += grid[sel, c].reshape(-1, gy, gx)
        row = index[elem_corner[elem_ids]]  # (B, nE, 4)
        shape = acorr.shape  # (B, nE, ncols, 4)
        rows_b = np.broadcast_to(row[:, :, None, :], shape)
        cols_b = np.broadcast_to(col[:, None, :, None], shape)
        keep = (rows_b >= 0) & (cols_b >= 0)
        c_rows.append(rows_b[keep])
        c_cols.append(cols_b[keep])
        c_vals.append(acorr[keep])
    R = _reconstruction(blocks, lr_n, k, N)
    timings["reconstruction"] = time.perf_counter() - t

    t = time.perf_counter()
    base_rows = np.broadcast_to(index[elem_corner][:, :, None], (lr_n * lr_n, 4, 4))
    base_cols = np.broadcast_to(index[elem_corner][:, None, :], (lr_n * lr_n, 4, 4))
    keep = (base_rows >= 0) & (base_cols >= 0)
    rows = np.concatenate([base_rows[keep], *c_rows])
    cols = np.concatenate([base_cols[keep], *c_cols])
    # phi_K_phi[e, a, b] = a_e(phi_b, phi_a): row = test corner a, column = trial corner b
    vals = np.concatenate([el["phi_K_phi"][keep], *[-v for v in c_vals]])
    AH = sp.csc_matrix((vals, (rows, cols)), shape=(nc, nc))
    timings["coarse_matrix"] = time.perf_counter() - t
    return R, AH, timings


def _reconstruction(blocks, lr_n, k, N) -> sp.csr_matrix:
    """(P - Q) as CSR from the per-node blocks of Q (``_local_system``)."""
    r = N // lr_n
    L = blocks.shape[1]
    inner = _interior(lr_n)
    zi, zj = np.divmod(inner, lr_n + 1)
    t = np.arange(L)
    hat = np.maximum(0.0, 1.0 - np.abs(t - (k + 1) * r) / r)
    values = np.outer(hat, hat)[None] - blocks[inner]
    fine_y = (zi - 1 - k)[:, None] * r + t[None]  # (nc, L) fine row of each block row
    fine_x = (zj - 1 - k)[:, None] * r + t[None]
    in_y, in_x = (fine_y > 0) & (fine_y < N), (fine_x > 0) & (fine_x < N)
    mask = in_y[:, :, None] & in_x[:, None, :]
    fine = fine_y[:, :, None] * (N + 1) + fine_x[:, None, :]
    indptr = np.concatenate([[0], np.cumsum(mask.sum(axis=(1, 2)))])
    R = sp.csc_matrix((values[mask], fine[mask], indptr), shape=((N + 1) ** 2, len(inner)))
    return R.tocsr()


def _ideal_system(cells, lr_n, N):
    """Global correctors: [K C^T; C 0] [Q; lambda] = [K P; 0] on the interior fine nodes."""
    t = time.perf_counter()
    K = stiffness(cells)
    fine = _interior(N)
    P = prolongation(lr_n, N)[:, _interior(lr_n)]
    C = quasi_interpolation(lr_n, N)[_interior(lr_n)][:, fine]
    Kff = K[fine][:, fine]
    saddle = sp.bmat([[Kff, C.T], [C, None]], format="csc")
    rhs = np.zeros((saddle.shape[0], P.shape[1]))
    rhs[: len(fine)] = (K @ P)[fine].toarray()
    X = spla.splu(saddle).solve(rhs)
    Q = np.zeros(P.shape)
    Q[fine] = X[: len(fine)]
    R = sp.csr_matrix(P.toarray() - Q)
    AH = sp.csc_matrix(P.T @ (K @ R))
    return R, AH, {"ideal": time.perf_counter() - t}


def solve(correctors: Correctors, source: float = 1.0) -> LODResult:
    """The per-right-hand-side part: (f, phi_i) = f H^2, coarse LU solve, u_ms = (1 - Q) u_H."""
    t0 = time.perf_counter()
    lr_n, N = correctors.lr_n, correctors.fine_n
    load = np.full((lr_n - 1) ** 2, float(source) / lr_n**2)
    u_int = correctors.coarse_lu.solve(load)
    u_fine = (correctors.reconstruction @ u_int).reshape(N + 1, N + 1)
    seconds = time.perf_counter() - t0
    u_coarse = np.zeros((lr_n + 1) ** 2)
    u_coarse[_interior(lr_n)] = u_int
    return LODResult(
        u_fine=u_fine,
        u_coarse=u_coarse.reshape(lr_n + 1, lr_n + 1),
        setup_seconds=correctors.setup_seconds,
        solve_seconds=seconds,
    )


def lod_solve(
    A, lr_n: int, k: int, source: float = 1.0, fine_n: int | None = None, workers: int = 1
) -> LODResult:
    """PG-LOD of -div(A grad u) = source, u = 0 on the boundary: set-up, then one solve."""
    return solve(compute_correctors(A, lr_n, k, fine_n, workers), source)


# -- command line ---------------------------------------------------------------------------------
def default_model_name(k: int, fine_n: int | None, E: int) -> str:
    """``lod_k{k}`` on the coefficient's own mesh, ``lod_k{k}_h{N}`` on a finer one."""
    return f"lod_k{k}" if fine_n is None or int(fine_n) == int(E) else f"lod_k{k}_h{fine_n}"


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    ap.add_argument("--coefficient", required=True, help="the split's coefficient.nc")
    ap.add_argument("--split", required=True)
    ap.add_argument("--k", type=int, required=True, help="patch layers")
    ap.add_argument("--fine-n", type=int, help="fine mesh N (default: the coefficient's E)")
    ap.add_argument("--lr-n", type=int, default=32, help="coarse mesh")
    ap.add_argument("--source", type=float, default=1.0, help="f (config physics.source)")
    ap.add_argument("--alpha", type=int, nargs="+", required=True, help="HR scales to write")
    ap.add_argument("--out", nargs="+", required=True, help="one prediction file per --alpha")
    ap.add_argument("--coarse-out", help="u_H on the (lr_n+1)^2 grid, model lod_coarse")
    ap.add_argument("--u-scale-from", required=True, help="prediction (u_scale) or data (u_max)")
    ap.add_argument("--model", help="model attribute (default lod_k{k}, lod_k{k}_h{N})")
    ap.add_argument("--workers", type=int, default=1, help="processes for the patches")
    return ap.parse_args(argv)


def _check_cli(a, coef_ds) -> tuple[int, int, str | None]:
    """Every check before work: (E, N, data seed); UsageError naming the bad value."""
    from fesr.cli import UsageError, check_match
    from fesr.evaluate.predict import OUT_NAME, check_scales

    check_scales(a.alpha, a.out)
    E = int(coef_ds["A"].shape[-1])
    try:
        _, _, N = check_sizes(E, a.lr_n, a.k, a.fine_n)
        _positive_int("--workers", a.workers, 1)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if not np.isfinite(a.source):
        raise UsageError(f"--source {a.source}: expected a finite number")
    src = f"coefficient file {a.coefficient}"
    if coef_ds.attrs.get("split") is not None:
        check_match("split", ("--split", a.split), (src, str(coef_ds.attrs["split"])))
    if a.coarse_out is not None:
        named = OUT_NAME.search(os.path.basename(a.coarse_out))
        if named and int(named.group(1)) != 1:
            raise UsageError(
                f"--coarse-out {a.coarse_out}: the coarse field is the LR grid (u_x1.nc), "
                f"not scale {named.group(1)}"
            )
    paths = [*a.out, *([a.coarse_out] if a.coarse_out else [])]
    if len({os.path.abspath(p) for p in paths}) != len(paths):
        raise UsageError(f"an output file is named twice: {' '.join(paths)}")
    seed = coef_ds.attrs.get("seed")
    return E, N, (seed.item() if isinstance(seed, np.generic) else seed)


def _create(path, m, samples, attrs):
    from fesr.evaluate.predict import create_output

    nc = create_output(path, m, samples, attrs)
    nc["seconds"].long_name = "LOD wall time per sample: setup_seconds + solve_seconds [s]"
    nc["peak_mb"].long_name = "peak memory added by the LOD set-up and solve per sample [MiB]"
    for name, doc in (
        ("setup_seconds", "per map: element matrices, correctors, coarse matrix and its LU [s]"),
        ("solve_seconds", "per right-hand side: load vector, coarse solve, reconstruction [s]"),
    ):
        v = nc.createVariable(name, "f8", ("sample",))
        v.long_name = doc
    return nc


def run_split(a) -> None:
    from datetime import UTC, datetime

    from tqdm import tqdm

    from fesr.evaluate.fe_baselines import read_u_scale
    from fesr.evaluate.io import atomic_target, open_fields, read_sample
    from fesr.evaluate.memory import PeakMemory
    from fesr.fem.q1_grid import interpolate_nodal

    coef_ds = open_fields(a.coefficient, ("A",), what="coefficient file")
    try:
        E, N, seed = _check_cli(a, coef_ds)
        u_scale = read_u_scale(a.u_scale_from)
        nsamp = int(coef_ds["A"].shape[0])
        samples = (
            np.asarray(coef_ds["sample"].values) if "sample" in coef_ds.coords else np.arange(nsamp)
        )
        model = a.model or default_model_name(a.k, a.fine_n, E)
        base = {
            "model": model,
            "method": "pg-lod",
            "split": str(a.split),
            "k": int(a.k),
            "fine_n": int(N),
            "E": int(E),
            "lr_n": int(a.lr_n),
            "source": float(a.source),
            "u_scale": float(u_scale),
            "coefficient": str(a.coefficient),
            "seed": int(seed) if seed is not None else 0,
            "workers": int(a.workers),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        targets = [
            (out, int(alpha), a.lr_n * int(alpha), model)
            for alpha, out in zip(a.alpha, a.out, strict=True)
        ]
        if a.coarse_out:
            targets.append((a.coarse_out, 1, a.lr_n, "lod_coarse"))
        tmps = [atomic_target(out) for out, *_ in targets]
        files, done, pool = [], False, None
        try:
            for (_, alpha, m, name), tmp in zip(targets, tmps, strict=True):
                attrs = base | {"model": name, "alpha": alpha, "n": m}
                files.append(_create(tmp, m, samples, attrs))
            if a.workers > 1:
                pool = worker_pool(a.workers)
            label = " ".join(f"x{alpha}" for _, alpha, *_ in targets)
            for s in tqdm(range(nsamp), desc=f"{model} {a.split} {label}"):
                A = read_sample(coef_ds, s, "A")
                with PeakMemory("cpu") as pm:
                    corr = compute_correctors(A, a.lr_n, a.k, N, a.workers, pool=pool)
                    res = solve(corr, a.source)
                for (_, alpha, m, _), nc in zip(targets, files, strict=True):
                    field = res.u_coarse if alpha == 1 else interpolate_nodal(res.u_fine, m)
                    nc["u"][s] = field.astype(np.float32)
                    nc["seconds"][s] = res.setup_seconds + res.solve_seconds
                    nc["setup_seconds"][s] = res.setup_seconds
                    nc["solve_seconds"][s] = res.solve_seconds
                    nc["peak_mb"][s] = pm.peak_mb
            done = True
        finally:
            if pool is not None:
                pool.shutdown()
            for nc in files:
                nc.close()
            if not done:
                for tmp in tmps:
                    tmp.unlink(missing_ok=True)  # never leave a half-written prediction behind
        for tmp, (out, *_) in zip(tmps, targets, strict=True):
            os.replace(tmp, out)
    finally:
        coef_ds.close()


def main(argv=None) -> None:
    run_split(parse_args(argv))


if __name__ == "__main__":
    from fesr.cli import run_main

    sys.exit(run_main(PROG, main))
