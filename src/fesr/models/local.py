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

import torch
import torch.nn as nn
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


def fourier_pairs(flat: torch.Tensor, K: int) -> torch.Tensor:
    """An LTE-style map (B, HW, [amplitude cos_1..K, sin_1..K, rest]) with its amplitude
    reordered to (cos_k, sin_k) pairs, ``band_fourier``'s layout: once per map, not per tile."""
    amp = flat[..., : 2 * K].unflatten(-1, (2, K)).transpose(-1, -2).flatten(-2)
    return torch.cat([amp, flat[..., 2 * K :]], dim=-1)


def band_fourier(a, b, col, amp, out) -> torch.Tensor:
    """amp * [cos, sin](a + b) on a band tile of R rows x C columns x 4 neighbours (LTE's and
    LINF's Fourier basis), (R, C, 4, K, 2) interleaved (cos_k, sin_k) in ``out`` (a real buffer
    of at least 2 R C 4 K 2 elements, the second half scratch). ``a`` (C, 4, K): the angle per
    column and neighbour; ``b`` (R, 2 X, K): the angle per row and band cell
    (``FourGrid.band_cells``: ``col`` (C*4,) picks a column's cells); ``amp`` broadcastable to
    (R, C, 4, K, 2).

    By angle addition, as one complex product e^{ia} e^{ib}: the trig of b is taken once per
    band cell instead of once per column (about m / W times fewer), and the full-size work is
    one row gather (leading-dimension ``index_select``: contiguous rows), one complex multiply
    and the amplitude. The sums round differently from the direct argument: relative
    differences ~1e-7 at unit frequencies, growing like |freq| (3e-6 at 100x)."""
    R, X2, K = b.shape
    C = a.shape[0]
    ea = torch.complex(torch.cos(a), torch.sin(a))
    # gathered as real rows: index_select on complex rows is several times slower
    eb = torch.view_as_real(torch.complex(torch.cos(b), torch.sin(b))).view(R * X2, 2 * K)
    rows = (torch.arange(R, device=col.device) * X2).unsqueeze(1) + col
    size = R * C * 4 * K * 2
    gathered = torch.index_select(eb, 0, rows.view(-1), out=out[size : 2 * size].view(-1, 2 * K))
    eb = torch.view_as_complex(gathered.view(R, C, 4, K, 2))
    z = torch.view_as_complex(out[:size].view(R, C, 4, K, 2))
    torch.mul(eb, ea, out=z)
    return torch.view_as_real(z).mul_(amp)


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


class MLP(nn.Sequential):
    """Linear layers with an activation between them (none after the last)."""

    def __init__(self, in_dim: int, hidden: list[int] | int, out_dim: int, act=nn.ReLU):
        hidden = [hidden] if isinstance(hidden, int) else list(hidden)
        layers: list[nn.Module] = []
        last = in_dim
        for h in hidden:
            layers += [nn.Linear(last, h), act()]
            last = h
        layers.append(nn.Linear(last, out_dim))
        super().__init__(*layers)


class TileMLP:
    """MLP layers (``MLP``'s Linear/ReLU list) on row blocks of at most ``rows`` rows, into
    buffers allocated once (large per-tile allocations would be page-faulted afresh every
    time); ``widths``: the input width, then each Linear's output width."""

    def __init__(self, layers, rows: int, widths: list[int], dtype, device):
        self.layers, self.widths = layers, widths
        self.bufs = [torch.empty(rows * w, dtype=dtype, device=device) for w in widths]

    def input(self, rows: int) -> torch.Tensor:
        """The first buffer, to be filled with the (rows, widths[0]) input."""
        return self.bufs[0][: rows * self.widths[0]]

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        rows, li = h.shape[0], 1
        for layer in self.layers:
            if isinstance(layer, nn.Linear):
                o = self.bufs[li][: rows * layer.out_features].view(rows, layer.out_features)
                h = torch.addmm(layer.bias, h, layer.weight.T, out=o)
                li += 1
            elif isinstance(layer, nn.ReLU):
                h = h.relu_()
            else:
                h = layer(h)
        return h
