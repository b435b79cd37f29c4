"""Local sampling of cell-centred feature maps at continuous query points (the LIIF family).

Every local-implicit method (Meta-SR, LIIF, LTE, LIT/CLIT, SRNO, LINF, NH-CSR) needs the same
three things: which feature cells surround a query, where their centres are, and the query's
offset from them. They live here once. Features are gathered by integer index (exact, no
interpolation rounding at cell borders) from a map flattened once per ``encode``.

Units: ``rel`` is ``(query - centre)`` measured in feature pixels (spacing 1), ordered (x, y).
The 4-neighbour weights are LIIF's local ensemble: each neighbour weighted by the area of the
rectangle between the query and the diagonally opposite neighbour, normalised to sum to 1, so
the ensemble is the bilinear interpolation of the per-neighbour predictions.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F


@dataclass
class Neighbours:
    """k neighbour cells of each query: index (B, Q, k) into H*W, centre and rel (B, Q, k, 2)."""

    index: torch.Tensor
    centre: torch.Tensor
    rel: torch.Tensor
    weight: torch.Tensor | None = None  # (B, Q, k), only for the 4-neighbour ensemble


def _cell_index(coords: torch.Tensor, size: int) -> torch.Tensor:
    """Index of the cell containing each coordinate in [-1, 1] (one axis), clamped to the map."""
    return ((coords + 1.0) * 0.5 * size).floor().clamp_(0, size - 1).long()


def _centre(index: torch.Tensor, size: int, dtype) -> torch.Tensor:
    return (2.0 * index.to(dtype) + 1.0) / size - 1.0


def _make(ix, iy, coords, H, W, weight=None) -> Neighbours:
    """Neighbours from per-axis cell indices ix, iy of shape (B, Q, k)."""
    centre = torch.stack([_centre(ix, W, coords.dtype), _centre(iy, H, coords.dtype)], dim=-1)
    rel = coords.unsqueeze(2) - centre
    rel = torch.stack([rel[..., 0] * (W / 2.0), rel[..., 1] * (H / 2.0)], dim=-1)
    return Neighbours(index=iy * W + ix, centre=centre, rel=rel, weight=weight)


def four_neighbours(coords: torch.Tensor, H: int, W: int) -> Neighbours:
    """The 4 cells whose centres surround each query (LIIF's vx, vy in {-1, +1}), with weights.

    At the map border the cells are clamped (as LIIF does), so two neighbours may coincide;
    the weights still sum to one.
    """
    fx = (coords[..., 0] + 1.0) * 0.5 * W - 0.5  # continuous index in cell-centre units
    fy = (coords[..., 1] + 1.0) * 0.5 * H - 0.5
    x0 = fx.floor().long()
    y0 = fy.floor().long()
    ix = torch.stack([x0, x0 + 1, x0, x0 + 1], dim=-1).clamp_(0, W - 1)
    iy = torch.stack([y0, y0, y0 + 1, y0 + 1], dim=-1).clamp_(0, H - 1)
    nb = _make(ix, iy, coords, H, W)
    area = (nb.rel[..., 0] * nb.rel[..., 1]).abs() + 1e-9
    area = area.flip(-1)  # the weight of a neighbour is the area opposite to it
    nb.weight = area / area.sum(-1, keepdim=True)
    return nb


def window_neighbours(coords: torch.Tensor, H: int, W: int, size: int) -> Neighbours:
    """A size x size window of cells centred on the cell containing each query (LIT's 7x7 grid).

    Indices beyond the map are clamped to the border cell (repeats), and ``rel`` is measured to
    the clamped cell, so the positional terms stay truthful.
    """
    if size % 2 != 1:
        raise ValueError(f"window size must be odd, got {size}")
    r = size // 2
    cx = _cell_index(coords[..., 0], W)
    cy = _cell_index(coords[..., 1], H)
    off = torch.arange(-r, r + 1, device=coords.device)
    oy, ox = torch.meshgrid(off, off, indexing="ij")
    ix = (cx.unsqueeze(-1) + ox.reshape(-1)).clamp_(0, W - 1)
    iy = (cy.unsqueeze(-1) + oy.reshape(-1)).clamp_(0, H - 1)
    return _make(ix, iy, coords, H, W)


@dataclass
class GridAxis:
    """One axis of the regular node grid of an m x m mesh against a feature map axis of ``size``
    cells: what ``four_neighbours`` / ``window_neighbours`` give every node, computed per axis.

    * ``index`` (m+1, k): neighbour cell of each node along this axis, clamped at the border;
    * ``rel`` (m+1, k): node minus neighbour centre in feature pixels;
    * ``cls`` (m+1,): offset class of each node: nodes of one class have exactly equal offsets
      to all k neighbours (exact rational arithmetic; clamped border nodes get classes of their
      own, so no border band needs special handling); ``rep`` (n_cls,): the first node of each
      class, whose ``rel`` stands for the class.

    ``index`` and ``rel`` are bit-identical to the general path's on ``node_coords(m)`` (same
    float operations on the same coordinates), including at exact ties. The 2-D neighbour k of
    node (i, j) (row i is y) is y-entry ``k // kx`` and x-entry ``k % kx`` (kx = 2 for
    ``four``, ``window`` otherwise): ``index2d = iy.index[i, k // kx] * W + ix.index[j, k % kx]``
    and ``rel2d = (ix.rel[j, k % kx], iy.rel[i, k // kx])``. Offset-dependent terms may be
    computed once per 2-D class ``(iy.cls[i], ix.cls[j])`` at ``rel[rep]`` and gathered: on an
    integer-scale grid an axis has about m / gcd(m, size) interior classes (16 at 64x, E = 128).
    """

    index: torch.Tensor
    rel: torch.Tensor
    cls: torch.Tensor
    rep: torch.Tensor

    @property
    def n_cls(self) -> int:
        return int(self.rep.shape[0])


def grid_axis(m: int, size: int, window: int | None = None, device=None, dtype=torch.float32):
    """Per-axis neighbours of the node grid: ``window=None`` for the 4-neighbour ensemble (two
    entries per axis, LIIF's x0 and x0 + 1), an odd ``window`` for ``window_neighbours``."""
    from fesr.coords import node_positions, to_network

    # exactly the per-axis values of fesr.coords.node_coords(m)
    t = torch.as_tensor(to_network(node_positions(m)), dtype=dtype, device=device)
    if window is None:
        x0 = ((t + 1.0) * 0.5 * size - 0.5).floor().long()
        index = torch.stack([x0, x0 + 1], dim=-1).clamp_(0, size - 1)
    else:
        if window % 2 != 1:
            raise ValueError(f"window size must be odd, got {window}")
        r = window // 2
        off = torch.arange(-r, r + 1, device=t.device)
        index = (_cell_index(t, size).unsqueeze(-1) + off).clamp_(0, size - 1)
    rel = (t.unsqueeze(-1) - _centre(index, size, dtype)) * (size / 2.0)
    # exact offsets: node j at j * size / m pixels, centre c at c + 1/2 -> numerator over 2m
    j = torch.arange(m + 1, device=t.device).unsqueeze(-1)
    num = 2 * j * size - (2 * index + 1) * m
    # offsets -> class, numbered in order of first node (torch.unique over rows is slow)
    first: dict[tuple, int] = {}
    cls = [first.setdefault(tuple(row), len(first)) for row in num.tolist()]
    rep = [0] * len(first)
    for node, c in reversed(list(enumerate(cls))):
        rep[c] = node
    as_long = dict(dtype=torch.long, device=t.device)
    return GridAxis(
        index=index, rel=rel, cls=torch.tensor(cls, **as_long), rep=torch.tensor(rep, **as_long)
    )


@dataclass
class CellAxis:
    """One axis of the node grid of an m x m mesh, cut into *tile cells* of P = m / tiles nodes
    (tile cell c: nodes [c P, (c + 1) P), the last one also node m), seen by a map of
    ``size`` = r * tiles cells with a ``window``-cell neighbourhood (integer scales; r = 1 for a
    map of the tile cells' own size, r = 2 for one pixel-shuffled by 2).

    All nodes of a tile cell draw on the same few map cells: their windows lie in the cell's
    *union* (U = r + window - 1 consecutive map cells, clamped to the map) and their bilinear
    taps in its *patch* (r + 2 cells). Tile cells of one *kind* have equal offsets from their
    nodes to their window cells and taps, so every offset-dependent term is computed once per
    kind and node of a cell; the interior cells form one kind, cells whose union or patch is
    clamped at the border kinds of their own.

    * ``kind_of``: the kind of each tile cell; ``runs``: (kind, c0, c1), consecutive tile cells
      [c0, c1) of one kind, covering the axis;
    * per kind: ``nodes`` (P, or P + 1 for the last cell), ``slots`` (nodes, window): the union
      position of each window cell of each node (``grid_axis``'s window, duplicates at a
      clamped border kept apart), ``taps`` (nodes, r + 2): the bilinear weights on the patch
      (``grid_sample``'s, border padding), ``rel`` (nodes, window): node minus window-cell
      centre in feature pixels (``grid_axis``'s, of the kind's first cell).
    """

    P: int
    r: int
    size: int
    window: int
    kind_of: list[int]
    runs: list[tuple[int, int, int]]
    nodes: list[int]
    slots: list[torch.Tensor]
    taps: list[torch.Tensor]
    rel: list[torch.Tensor]

    @property
    def union_size(self) -> int:
        return self.r + self.window - 1

    def union(self, c0: int, c1: int, device=None) -> torch.Tensor:
        """Map cells (c1 - c0, U) of the unions of tile cells [c0, c1)."""
        start = torch.arange(c0, c1, device=device) * self.r - self.window // 2
        off = torch.arange(self.union_size, device=device)
        return (start.unsqueeze(1) + off).clamp_(0, self.size - 1)

    def patch(self, c0: int, c1: int, device=None) -> torch.Tensor:
        """Map cells (c1 - c0, r + 2) of the patches of tile cells [c0, c1)."""
        start = torch.arange(c0, c1, device=device) * self.r - 1
        off = torch.arange(self.r + 2, device=device)
        return (start.unsqueeze(1) + off).clamp_(0, self.size - 1)


@lru_cache(maxsize=64)
def cell_axis(m: int, tiles: int, size: int, window: int, device=None, dtype=torch.float32):
    """The ``CellAxis`` of an m x m mesh's nodes in ``tiles`` tile cells on a ``size``-cell map,
    or None where tile cells do not hold whole numbers of nodes (non-integer scales, m < tiles)
    or a node's window or taps fall outside its cell's union or patch (float rounding).

    Pure geometry, so cached: every field predicted at one scale shares it (read-only)."""
    if m < tiles or m % tiles or size % tiles:
        return None
    from fesr.coords import node_positions, to_network

    P, r, R = m // tiles, size // tiles, window // 2
    ga = grid_axis(m, size, window, dtype=dtype)
    geometry = CellAxis(P, r, size, window, [], [], [], [], [], [])
    union, patch = geometry.union(0, tiles), geometry.patch(0, tiles)
    tile = (torch.arange(m + 1) // P).clamp_(max=tiles - 1)
    # union position of each window cell: the unclamped offset, checked against the clamped
    # union (a clamped border node that fails is searched for below)
    slots = ga.index[:, R : R + 1] - (tile * r - R).unsqueeze(1) + torch.arange(-R, R + 1)
    inside = (slots >= 0) & (slots < union.shape[1])
    found_cell = union[tile.unsqueeze(1), slots.clamp(0, union.shape[1] - 1)]
    bad = (~inside | (found_cell != ga.index)).any(1).nonzero().flatten().tolist()
    for j in bad:
        cells, used = union[tile[j]].tolist(), []
        for cell in ga.index[j].tolist():
            pick = next((s for s in range(len(cells)) if cells[s] == cell and s not in used), None)
            if pick is None:
                return None
            used.append(pick)
        slots[j] = torch.tensor(used)
    t = torch.as_tensor(to_network(node_positions(m)), dtype=dtype)
    # grid_sample's source index (align_corners=False), clamped (border padding), per node
    u = (((t + 1.0) * size - 1.0) / 2.0).clamp_(0, size - 1)
    lo = u.floor()
    w_hi = u - lo
    lo = lo.long()
    hi = (lo + 1).clamp_(max=size - 1)
    pos = torch.stack([lo, hi], 1) - (tile * r - 1).unsqueeze(1)
    if (pos < 0).any() or (pos >= r + 2).any():
        return None
    if not torch.equal(patch[tile.unsqueeze(1), pos], torch.stack([lo, hi], 1)):
        return None
    # a tile cell's kind: its nodes' offset classes (exact), window slots and tap positions,
    # and its union and patch relative to the cell (clamped or not)
    per_node = torch.cat([ga.cls.unsqueeze(1), slots, pos], 1).tolist()
    rel_union = (union - (torch.arange(tiles) * r).unsqueeze(1)).tolist()
    rel_patch = (patch - (torch.arange(tiles) * r).unsqueeze(1)).tolist()
    kind_of: list[int] = []
    first: dict[tuple, int] = {}
    for c in range(tiles):
        nodes = per_node[c * P : (c + 1) * P + (c == tiles - 1)]
        signature = (tuple(map(tuple, nodes)), tuple(rel_union[c]), tuple(rel_patch[c]))
        kind_of.append(first.setdefault(signature, len(first)))
    runs: list[tuple[int, int, int]] = []
    for c, kind in enumerate(kind_of):
        if runs and runs[-1][0] == kind:
            runs[-1] = (kind, runs[-1][1], c + 1)
        else:
            runs.append((kind, c, c + 1))
    out = CellAxis(P, r, size, window, kind_of, runs, [], [], [], [])
    for kind in range(len(first)):
        c = kind_of.index(kind)
        j0, j1 = c * P, (c + 1) * P + (c == tiles - 1)
        weights = torch.zeros(j1 - j0, r + 2, dtype=dtype)
        weights.scatter_add_(1, pos[j0:j1, :1], 1.0 - w_hi[j0:j1, None])
        weights.scatter_add_(1, pos[j0:j1, 1:], w_hi[j0:j1, None])
        out.nodes.append(j1 - j0)
        out.slots.append(slots[j0:j1].to(device))
        out.taps.append(weights.to(device))
        out.rel.append(ga.rel[j0:j1].to(device))
    return out


class FourGrid:
    """``four_neighbours`` on the node grid of an m x m mesh against an H x W map, per axis.

    Neighbour-major layout, k = 2 vy + vx (as ``four_neighbours``): per column j, ``ix`` (4, m+1)
    cell column and ``rx`` (4, m+1) x-offset in feature pixels; per row i, ``iy`` (4, m+1) cell
    row times W (so ``iy[:, i] + ix[:, j]`` are the flat cell indices) and ``ry``. ``tiles``
    walks the grid; a tile whose rows share their y-neighbours (a "band": about m / H rows)
    reads the same cells in every row, so per-cell work can be done once per band.
    """

    def __init__(self, m: int, H: int, W: int, device=None, dtype=torch.float32):
        self.m, self.H, self.W = m, H, W
        self.ax = grid_axis(m, W, device=device, dtype=dtype)
        self.ay = grid_axis(m, H, device=device, dtype=dtype)
        vx, vy = [0, 1, 0, 1], [0, 0, 1, 1]
        self.ix, self.rx = self.ax.index.T[vx], self.ax.rel.T[vx]
        self.iy, self.ry = self.ay.index.T[vy] * W, self.ay.rel.T[vy]
        # |rel_x rel_y| of the neighbour opposite to k (the area weight), per axis
        self._wx, self._wy = self.rx.abs().flip(0), self.ry.abs().flip(0)
        self._ix_host = self.ax.index.cpu()
        same = (self.ay.index[1:] == self.ay.index[:-1]).all(-1).tolist()
        starts = [0] + [i + 1 for i, s in enumerate(same) if not s]
        self.bands = list(zip(starts, starts[1:] + [m + 1], strict=True))

    def index(self, i0, i1, j0, j1) -> torch.Tensor:
        """Flat cell index (4, R, C) of the nodes [i0:i1) x [j0:j1)."""
        return self.iy[:, i0:i1].unsqueeze(2) + self.ix[:, j0:j1].unsqueeze(1)

    def weights(self, i0, i1, j0, j1) -> torch.Tensor:
        """The area weights (4, R, C), the same values as ``four_neighbours``' (up to the
        order of the 4-term sum)."""
        area = (self._wy[:, i0:i1].unsqueeze(2) * self._wx[:, j0:j1].unsqueeze(1)).add_(1e-9)
        return area.div_(area[0] + area[1] + area[2] + area[3])

    def band_cells(self, i0, j0, j1) -> tuple[torch.Tensor, torch.Tensor]:
        """For a band tile (rows from i0 sharing their cells, columns [j0:j1)): its cells
        ``cells`` (2, X) (flat indices; y-neighbour vy = 0, 1 times X consecutive columns), and
        ``col`` (C * 4,): for each (column, neighbour k) the position of its cell in
        ``cells.reshape(-1)``, so per-cell work (B, 2 X, .) is spread by ``index_select``."""
        x_lo = int(self._ix_host[j0:j1].min())  # host copy: no device sync per tile
        X = int(self._ix_host[j0:j1].max()) - x_lo + 1
        dev = self.ix.device
        cells = self.iy[[0, 2], i0, None] + torch.arange(x_lo, x_lo + X, device=dev)
        vy = torch.tensor([[0], [0], [1], [1]], device=dev)
        col = (self.ix[:, j0:j1] - x_lo + X * vy).T.reshape(-1)
        return cells, col

    def tiles(self, nodes: int):
        """(i0, i1, j0, j1, band) tiles of about ``nodes`` nodes covering the grid row-major;
        ``band``: all rows of the tile share their y-neighbours. Short bands are merged into
        one tile (band False) rather than walked one by one; a long band is cut into blocks of
        columns, each spanning all its rows."""
        n = self.m + 1
        nodes = max(1, int(nodes))
        rows = max(1, nodes // n)  # whole rows per tile
        pending = None  # consecutive short bands merged into one tile: [i0, i1, bands]
        for s0, s1 in self.bands:
            if pending is not None and s1 - pending[0] > rows:
                yield pending[0], pending[1], 0, n, pending[2] == 1
                pending = None
            if (s1 - s0) * n <= nodes:
                pending = [s0, s1, 1] if pending is None else [pending[0], s1, pending[2] + 1]
                continue
            # a long band: all its rows (if they fit) times a block of columns
            rb = min(s1 - s0, nodes)
            cb = max(1, nodes // rb)
            for j0 in range(0, n, cb):
                for i0 in range(s0, s1, rb):
                    yield i0, min(i0 + rb, s1), j0, min(j0 + cb, n), True
        if pending is not None:
            yield pending[0], pending[1], 0, n, pending[2] == 1


def q1_grid(lr: torch.Tensor, m: int, rows: int = 64) -> torch.Tensor:
    """The Q1 interpolant of the nodal field lr (B, 1, n+1, n+1) at every node of an m x m mesh,
    (B, m+1, m+1): ``sample_nodal(lr, node_coords(m))`` on the same coordinates, so the same
    values (``F.interpolate`` differs by float32 rounding of the source index, ~2e-6), a block
    of ``rows`` rows at a time."""
    from fesr.coords import node_positions, sample_nodal, to_network

    B = lr.shape[0]
    t = torch.as_tensor(to_network(node_positions(m)), dtype=lr.dtype, device=lr.device)
    out = torch.empty(B, m + 1, m + 1, dtype=lr.dtype, device=lr.device)
    for i0 in range(0, m + 1, rows):
        yy, xx = torch.meshgrid(t[i0 : i0 + rows], t, indexing="ij")
        c = torch.stack([xx, yy], dim=-1).reshape(1, -1, 2).expand(B, -1, -1)
        out[:, i0 : i0 + rows] = sample_nodal(lr, c)[..., 0].view(B, -1, m + 1)
    return out


def flatten_map(feat: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C), done once per encode so gathers are cheap per chunk."""
    return feat.flatten(2).transpose(1, 2).contiguous()


def gather(flat: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows of a flattened map (B, H*W, C) at index (B, Q, k) -> (B, Q, k, C).

    Advanced indexing, not torch.gather: no (B, C, Q) index tensor is materialised.
    """
    B = flat.shape[0]
    b = torch.arange(B, device=flat.device).view(B, *([1] * (index.dim() - 1)))
    return flat[b, index]


def unfold3x3(feat: torch.Tensor) -> torch.Tensor:
    """LIIF's feature unfolding: each cell gets its 3x3 neighbourhood's features (C -> 9C)."""
    B, C, H, W = feat.shape
    return F.unfold(feat, 3, padding=1).view(B, C * 9, H, W)
