"""NH-CSR, the proposed model (paper section III, SPEC 3), with every ablation switch.

Pipeline for a query point c (network coordinates, (x, y) in [-1, 1]) with HR cell size ``cell``:

1. Encoder (III.A): ``feat = g(image)``, image = [d(X), encoded A] (or d(X) alone when
   ``coefficient: false``), any of ``build_encoder``'s backbones. ``feat`` is J, cell-centred E x E.
2. Coarse branch on J (eqs. 7, 8): 1x1 convs give Q, K, V maps (``dim`` channels, ``heads`` heads).
   Q is sampled bilinearly at c; K and V are gathered at the ``window`` x ``window`` feature cells
   around the cell containing c (``fesr.models.local.window_neighbours``). Per head,
   ``softmax(q.k / sqrt(D) + bias) @ (V + P phi)`` with ``bias = Linear(phi(rel, cell))``, phi the
   positional encoding (``pe``) of the offset rel = c - centre (eq. 8's phi(s(r, c) - c), up to its
   sign, which a learned map absorbs). The attention output and the cell go through the branch
   MLP f_LR.
3. Fine branch (eq. 9, ``multi_scale: true``): U(J) = PixelShuffle(r)(Conv3x3(J -> r^2 C)), an
   rE x rE cell-centred map, r = ``pixel_shuffle``; the same attention with its own weights
   gives F_HR.
4. ``F = F_LR + F_HR`` (F_LR alone when single-scale), decoded by ``MLP`` (GELU, hidden[1:], 1).
5. Output = bilinear skip (Q1 interpolant of the LR nodal field, ``sample_nodal``; Fig. 2 sums the
   regressions "with the sampled LR pixels") + decoded residual.

Loss (III.E): ``L1 + scs_lambda * (1 - SCS)`` when ``scs: true``, else L1. The paper writes
``L1 + lambda L_scs`` with L_scs the similarity of eq. (10); a similarity is maximised, so we
minimise 1 - SCS (``fesr.models.scs``). SCS is logged in both cases; with SCS on, the log also
has ``scs_grad_share`` = ||d(scs_lambda (1 - SCS))/d pred|| / ||d L1/d pred|| (the SCS term's
pull relative to L1's; one ``autograd.grad`` over the small graph from the loss back to pred).

Choices the paper leaves open (and why):

* Neighbourhood: a ``window`` x ``window`` grid (default 3) centred on the query's cell, not
  LIIF's 4 neighbours: offsets reach 1.5 pixels, so a cell leaves the window only at 1.5 pixels,
  where a learned (Gabor: Gaussian-enveloped) bias can already make its weight small; and III.C
  asks to "expand the local feature aggregation". Border cells are clamped (repeated), rel stays
  the true offset to the clamped cell.
* Q, K, V are 1x1 convolutions (eq. 8's linear W_Q, W_K, W_V): spatial context comes from the
  encoder, and for the fine branch from the 3x3 expansion conv before the pixel shuffle.
* Encodings see rel and the cell in units of half the window (window / 2 pixels), so the window
  spans [-1, 1] as the inputs of SIREN and WIRE do; omega0 = 8 and s0 = 6 (WIRE's SR setting) by
  default. phi has ``pe_dim`` channels. It enters twice: a linear map gives one attention bias per
  head (eq. 8), and a second linear map P (pe_dim -> dim) adds it to each neighbour's value
  before aggregation (eqs. 7, 9 feed phi with the sampled features into f_theta). V_i + P phi_i is
  the concatenation [V_i, phi_i] under f's linear first layer, with P factored through the
  value width so the attention aggregates one vector per neighbour. So every Table II encoding
  changes what the decoder sees. ``lte`` estimates its amplitudes and frequencies from the
  branch's features at the neighbour's cell (LTE's estimators); ``sinusoid`` uses SIREN's
  omega0 = 30 (``fesr.models.positional``).
* Branch MLP f = Linear(dim + 2 -> h0), GELU, Linear(h0 -> h0), its input the attention output and
  the cell in that branch's pixels (LIIF's cell decoding). The cell is clipped from below at the
  largest training scale's cell (LTE's practice; ``cell_clip``), so out-of-distribution scales do
  not extrapolate the cell input. The clip is in feature pixels, E / (lr_n max(train_scales)) of
  the coarse map, so a training patch (a cropped map, patch-local coordinates) clips alike.
* No exact u = 0 enforcement by default (the paper has none; the skip is already 0 there); with
  ``exact_boundary: true`` the residual is zeroed on the domain boundary.
* SCS draws T = ``scs_draws`` groups of G = ``scs_group`` points per sample; both default to H + 1
  = lr_n + 1 (33) as in the paper, G capped at the number of sampled points. The groups come
  from a CPU generator seeded by the training step, so a resumed run draws the same groups.
  ``scs_form: raw`` (default) is the cosine of the raw (normalised) values, no mean removal, as
  eq. (10) writes it; ``centred`` removes each group's means (Pearson correlation). The default
  stays eq. (10) because its measured gradient share did not stay below 1% of L1's in training
  (docs/benchmarks.md, "SCS gradient share").
* D in eq. (8) is the per-head width dim / heads (the usual multi-head scaling).
* The positional encoding and its bias run in float32 even under autocast (bfloat16 cannot
  resolve cos(omega0 u) for |omega0 u| of several radians).
* Inference (no autograd) evaluates at most INNER_CHUNK queries at a time, whatever chunk
  ``predict`` is given: the per-neighbour temporaries stay small, and values are unchanged.
* ``predict`` (through ``query_grid``) and ``predict_branches`` take a grid path (``_grid``,
  under inference_mode); values equal the general path's (``query_encoded``) to float rounding.
  - The cell path (``_cell_grid``), at integer scales (the coarse map's cells hold whole numbers
    of nodes): the grid is cut into *tile cells*, the coarse map's cells
    (``fesr.models.local.CellAxis``); a tile cell's nodes share their windows' union (the fine
    branch: the union of the r x r fine cells' windows, cells outside a node's window masked by
    a -inf bias) and the patch of cells their q taps read. Per tile cell the union's keys and
    values are gathered once, from maps laid out once per field as block-diagonal head groups
    (``block_heads``: narrow heads share one product), and met by all its nodes in one matrix
    product; q is the kind's tap weights times the cells' patches (one product); the
    encoding's bias and value terms are per *kind* of tile cell and node (interior cells are
    one kind, border cells with clamped windows or taps their own), kept across fields while the
    weights are unchanged (``_kind_tables``). The softmax is shifted by one constant per tile
    (per row where a row would underflow, SOFTMAX_FLOOR) and its terms clamped at
    exp(SOFTMAX_LOW) (exp of an underflowing argument is slow); the denominators come from one
    product, the value terms meet the weights of one node of the cell across all cells. Both
    branches work on the same tile cells, so their hidden layers share one node order: the
    second layers, their sum and the decoder run in it, and only the decoded values are put in
    grid order. The cell's part of each branch MLP is folded into its bias.
  - The gather path (``_gather_grid``), elsewhere (non-integer scales, m below the fine map's
    size, the ``lte`` encoding, which depends on the features): per axis, the window indices,
    offsets and offset classes of every node (``fesr.models.local.grid_axis``); the encoding's
    terms once per pair of offset classes in a table (per node for ``lte``, or when the table
    would exceed TABLE_FLOATS); tiles of whole rows, each node's window gathered.

``predict_branches`` gives, on the whole node grid, ``coarse = skip + MLP(F_LR)``,
``fine = skip + MLP(F_HR)`` (the decoder applied to one branch's features alone, the skip
included so all are fields on the same scale), ``full = skip + MLP(F_LR + F_HR)`` (= ``predict``)
and ``skip`` (the bilinear Q1 interpolant alone). Single-scale models have no ``fine`` entry.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from fesr.config import required_keys
from fesr.coords import hr_cell, node_positions, sample_cells, sample_nodal, to_network
from fesr.models.base import SRModel, hr_size
from fesr.models.encoders import build_encoder
from fesr.models.local import (
    cell_axis,
    flatten_map,
    gather,
    grid_axis,
    q1_grid,
    window_neighbours,
)
from fesr.models.mlp import MLP
from fesr.models.positional import PE_NAMES, build_positional
from fesr.models.registry import register
from fesr.models.scs import SCS_FORMS, stochastic_cosine_similarity

# Keys of the resolved config this method reads (the schema's methods.nhcsr, its one list), and
# those every resolved config carries.
OWN_KEYS = frozenset(required_keys(("methods", "nhcsr")))
COMMON_KEYS = {
    "encoder_cfg",
    "in_channels",
    "train_scales",
    "scs_lambda",
    "iterations",
    "lr_n",
    "E",
    "name",
    "method",
    "seed",
    "device",
}
SCS_SEED = 20240229  # base seed of the per-step SCS group draws
INNER_CHUNK = 8192  # queries per pass at inference, whatever chunk predict() is given
GRID_CHUNK = 4096  # nodes per pass of the grid path: per-neighbour temporaries stay in cache
TABLE_FLOATS = 1 << 24  # largest per-offset table of encoding terms predict() builds
CELL_TILE_FLOATS = 1 << 22  # temporaries of one tile of the cell path (16 MB)
GRID_TABLES_KEPT = 8  # grids (scales) whose per-kind tables a branch keeps
HEAD_GROUP_WIDTH = 32  # heads are batched into block-diagonal groups of about this many channels
# The softmax is shifted by one constant per tile while every row's sum stays above
# SOFTMAX_FLOOR, its terms clamped below at exp(SOFTMAX_LOW): a clamped term then changes a
# weight by less than exp(SOFTMAX_LOW) / SOFTMAX_FLOOR (1e-15).
SOFTMAX_FLOOR = 1e-20
SOFTMAX_LOW = -80.0
SOFTMAX_HIGH = 30.0  # no shift while the tile's largest term is at most exp(SOFTMAX_HIGH)


def _baddbmm(bias: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """bias + a @ b, (G, T, n, k) from bias (G, 1, n, k), a (G, T, n, j), b (G, T, j, k): one
    fused product per head group."""
    G, T, n, _ = a.shape
    k = b.shape[-1]
    return (
        torch.stack([torch.baddbmm(bias[i].expand(T, n, k), a[i], b[i]) for i in range(G)])
        if G > 1
        else torch.baddbmm(bias[0].expand(T, n, k), a[0], b[0]).unsqueeze(0)
    )


def _matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b over one leading batch dimension of size 1 as a 3-D product: ``torch.bmm`` takes
    strided batches as they are, where ``torch.matmul`` on 4-D views may copy them first."""
    if a.shape[0] == 1 and b.shape[0] == 1:
        return torch.bmm(a[0], b[0]).unsqueeze(0)
    return torch.matmul(a, b)


def head_group(heads: int, head_dim: int) -> int:
    """Heads per block-diagonal group: narrow heads share one matrix product (fewer, larger
    products); wide heads each get their own (the zero blocks would cost more than they save)."""
    g = max(1, min(heads, HEAD_GROUP_WIDTH // max(1, head_dim)))
    while heads % g:
        g -= 1
    return g


def block_heads(x: torch.Tensor, g: int) -> torch.Tensor:
    """(..., heads, d) -> (heads / g, ..., g, g d): each group of g heads as a block-diagonal
    (g, g d) matrix, head hh in row hh at columns hh d .. (hh + 1) d; contiguous, so that
    gathers of its rows are plain row copies."""
    *lead, h, d = x.shape
    if g == 1:
        return x.movedim(-2, 0).unsqueeze(-2).contiguous()
    G = h // g
    heads = torch.arange(g, device=x.device)
    mask = (heads.unsqueeze(1) == heads.repeat_interleave(d).unsqueeze(0)).to(x.dtype)
    out = x.new_empty(G, *lead, g, g * d)
    rows = x.reshape(*lead, G, 1, g * d).movedim(-3, 0)
    return torch.mul(rows, mask, out=out)


class LocalAttentionBranch(nn.Module):
    """One feature-sampling branch: local attention over a cell-centred map, then the branch MLP."""

    def __init__(
        self,
        in_dim: int,
        dim: int,
        heads: int,
        out_dim: int,
        pe: str,
        pe_dim: int,
        window: int,
        omega0: float,
        s0: float,
    ):
        super().__init__()
        self.dim, self.heads, self.window = dim, heads, window
        self.half = window / 2.0  # encodings see offsets in units of half the window
        self.qkv = nn.Conv2d(in_dim, 3 * dim, 1)
        self.pe = build_positional(pe, pe_dim, omega0, s0, feat_dim=in_dim)
        self.local = int(getattr(self.pe, "local_channels", 0))  # lte: per-cell estimates
        self.bias = nn.Linear(self.pe.out_dim, heads)  # eq. 8: phi as attention bias
        self.value_pe = nn.Linear(self.pe.out_dim, dim)  # eqs. 7, 9: phi in the value path
        self.mlp = MLP(dim + 2, [out_dim], out_dim, act=nn.GELU)

    def prepare(self, feat: torch.Tensor) -> dict:
        """Per-input part: the Q map (sampled per query) and the flattened K|V map (gathered)."""
        qkv = self.qkv(feat)
        if self.local:
            maps = torch.cat([qkv[:, self.dim :], self.pe.maps(feat)], dim=1)
            return {"q": qkv[:, : self.dim], "kv": flatten_map(maps), "size": feat.shape[-2:]}
        # one channels-last copy; K|V are its rows' last 2 dim channels (a strided view)
        flat = flatten_map(qkv)
        return {"q": qkv[:, : self.dim], "kv": flat[..., self.dim :], "size": feat.shape[-2:]}

    def pe_terms(self, rel, cell_px, local=None) -> torch.Tensor:
        """[bias (heads) | value term (dim)] (..., heads + dim) of offsets rel (feature pixels)."""
        # The encoding in float32 even under autocast: cos(omega0 u) of a bfloat16 u is too coarse.
        with torch.autocast(rel.device.type, enabled=False):
            loc = None if local is None else local.float()
            phi = self.pe(rel.float() / self.half, cell_px.float() / self.half, loc)
            weight = torch.cat([self.bias.weight, self.value_pe.weight])
            return F.linear(phi, weight, torch.cat([self.bias.bias, self.value_pe.bias]))

    def attend(self, q, kv, terms) -> torch.Tensor:
        """Attention of q (..., dim) over the gathered kv (..., k, 2 dim [+ local]) with the
        encoding's terms (..., k, heads + dim) -> (..., dim); the leading dims broadcast."""
        h, d = self.heads, self.dim // self.heads
        key = kv[..., : self.dim].unflatten(-1, (h, d))
        val = (kv[..., self.dim : 2 * self.dim] + terms[..., h:]).unflatten(-1, (h, d))
        # Broadcast products, not einsum: on the CPU einsum copies K and V into bmm layout.
        logits = (q.unflatten(-1, (h, d)).unsqueeze(-3) * key).sum(-1).mul_(d**-0.5)
        attn = logits.add_(terms[..., :h]).softmax(dim=-2).unsqueeze(-1)
        return (attn * val).sum(-3).flatten(-2)

    def forward(self, st: dict, coords: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """The general path: arbitrary query points (training, and the reference of predict)."""
        H, W = st["size"]
        nb = window_neighbours(coords, H, W, self.window)
        q = sample_cells(st["q"], coords, mode="bilinear")
        kv = gather(st["kv"], nb.index)
        cell_px = torch.stack([cell[..., 0] * (W / 2.0), cell[..., 1] * (H / 2.0)], dim=-1)
        local = kv[..., 2 * self.dim :] if self.local else None
        terms = self.pe_terms(nb.rel, cell_px.unsqueeze(2), local)
        return self.mlp(torch.cat([self.attend(q, kv, terms), cell_px], dim=-1))

    # -- the regular node grid (predict only) --------------------------------------------------
    def grid_plan(self, st: dict, m: int, cell: float, dtype=torch.float32) -> dict:
        """Per-axis neighbour indices and offsets of the (m+1)^2 node grid
        (``fesr.models.local.grid_axis``: the values of ``window_neighbours``, clamped border
        windows included) and, for an encoding of the offset alone, its terms once per pair of
        (x, y) offset classes. ``cell`` is the (clipped) node spacing in network units."""
        H, W = st["size"]
        device = st["kv"].device
        ax = grid_axis(m, W, self.window, device=device, dtype=dtype)
        ay = grid_axis(m, H, self.window, device=device, dtype=dtype)
        cell_px = torch.tensor([cell * W / 2.0, cell * H / 2.0], dtype=dtype, device=device)
        plan = {"ix": ax.index, "iy": ay.index, "cell_px": cell_px, "W": W}
        plan["relx"], plan["rely"] = ax.rel, ay.rel
        ux, inv_x = ax.rel[ax.rep], ax.cls
        uy, inv_y = ay.rel[ay.rep], ay.cls
        k, width = self.window**2, self.heads + self.dim
        small = ux.shape[0] * uy.shape[0] * 4 <= (m + 1) ** 2  # a table worth building
        if not self.local and small and ux.shape[0] * uy.shape[0] * k * width <= TABLE_FLOATS:
            w = self.window
            rel = torch.stack(
                [
                    ux.view(1, -1, 1, w).expand(uy.shape[0], -1, w, -1),
                    uy.view(-1, 1, w, 1).expand(-1, ux.shape[0], -1, w),
                ],
                dim=-1,
            ).reshape(uy.shape[0], ux.shape[0], k, 2)
            table = self.pe_terms(rel, cell_px.view(1, 1, 1, 2))
            plan["table"] = table.reshape(-1, k * width)
            plan["inv_x"], plan["inv_y"], plan["ux"] = inv_x, inv_y, ux.shape[0]
        # the cell's part of the branch MLP's first layer is a constant on the grid
        lin = self.mlp[0]
        plan["w1"] = lin.weight[:, : self.dim].contiguous()
        plan["b1"] = lin.bias + lin.weight[:, self.dim :] @ cell_px
        return plan

    def grid_forward(self, st: dict, plan: dict, rows: slice, cols: slice, coords: torch.Tensor):
        """The branch output at the nodes rows x cols (coords (B, R*C, 2), row-major)."""
        k, w, W = self.window**2, self.window, plan["W"]
        R, C = rows.stop - rows.start, cols.stop - cols.start
        q = sample_cells(st["q"], coords, mode="bilinear")
        ix, iy = plan["ix"][cols], plan["iy"][rows]
        index = (iy.view(R, 1, w, 1) * W + ix.view(1, C, 1, w)).view(1, R * C, k)
        kv = gather(st["kv"], index)
        if "table" in plan:
            cls = plan["inv_y"][rows].view(R, 1) * plan["ux"] + plan["inv_x"][cols].view(1, C)
            terms = plan["table"][cls.view(-1)].view(1, R * C, k, -1)
        else:
            rel = torch.stack(
                [
                    plan["relx"][cols].view(1, C, 1, w).expand(R, -1, w, -1),
                    plan["rely"][rows].view(R, 1, w, 1).expand(-1, C, -1, w),
                ],
                dim=-1,
            ).reshape(1, R * C, k, 2)
            local = kv[..., 2 * self.dim :] if self.local else None
            terms = self.pe_terms(rel, plan["cell_px"].view(1, 1, 1, 2), local)
        out = self.attend(q, kv, terms)
        h = F.linear(out, plan["w1"], plan["b1"])
        for layer in list(self.mlp)[1:]:
            h = layer(h)
        return h

    # -- the node grid in tile cells (integer scales) --------------------------------------------
    def cell_plan(self, st: dict, m: int, tiles: tuple[int, int], cell: float, dtype=torch.float32):
        """What ``cell_block`` needs for the (m+1)^2 node grid cut into tiles[0] x tiles[1] tile
        cells (``fesr.models.local.CellAxis``), or None where tile cells do not hold whole
        numbers of nodes or the encoding depends on the features (lte). ``cell`` is the
        (clipped) node spacing in network units.

        Once per field: q, channels last and pre-scaled by 1 / sqrt(d); per map cell its keys
        and its [values | ones] as block-diagonal head groups (``block_heads``), so a window
        gather yields the matrices of the attention products directly, the ones columns giving
        the softmax's denominators."""
        if self.local:
            return None
        H, W = st["size"]
        device = st["kv"].device
        ay = cell_axis(m, tiles[0], H, self.window, device=device, dtype=dtype)
        ax = cell_axis(m, tiles[1], W, self.window, device=device, dtype=dtype)
        if ax is None or ay is None:
            return None
        h, dim = self.heads, self.dim
        d, g = dim // h, head_group(h, dim // h)
        kv = st["kv"]
        B = kv.shape[0]
        U = ay.union_size * ax.union_size
        # sums each head's softmax terms over the union, once per channel of the head
        heads = torch.arange(g, device=device)
        ones = (heads.repeat(U).unsqueeze(1) == heads.repeat_interleave(d).unsqueeze(0)).to(dtype)
        uy, ux = ay.union(0, tiles[0], device), ax.union(0, tiles[1], device)
        py, px = ay.patch(0, tiles[0], device), ax.patch(0, tiles[1], device)
        cell_px = torch.tensor([cell * W / 2.0, cell * H / 2.0], dtype=dtype, device=device)
        lin = self.mlp[0]
        return {
            "ax": ax,
            "ay": ay,
            "g": g,
            "cell_px": cell_px,
            "q": flatten_map(st["q"]).mul_(d**-0.5),
            "kbd": block_heads(kv[..., :dim].reshape(B, -1, h, d), g),  # (G, B, HW, g, g d)
            "vbd": block_heads(kv[..., dim : 2 * dim].reshape(B, -1, h, d), g),
            "ones": ones,  # (U g, g d)
            # the map cells of each tile cell's union (cy, cx, slot y, slot x), and of its
            # patch, tap-major (tap y, tap x, cy, cx)
            "union": uy[:, None, :, None] * W + ux[None, :, None, :],
            "patch": py.T[:, None, :, None] * W + px.T[None, :, None, :],
            "w1": lin.weight[:, :dim].contiguous(),
            "b1": lin.bias + lin.weight[:, dim:] @ cell_px,
            "kinds": self._kind_tables(m, tiles, cell, dtype, device),
        }

    def _kind_tables(self, m: int, tiles, cell: float, dtype, device) -> dict:
        """The per-kind tables of ``_kind`` for one grid, kept while the parameters are the
        same ones, unchanged (an optimiser step or a loaded state bumps their versions): they
        depend on the encoding's weights and the grid only, so every field predicted at one
        scale shares them."""
        key = (m, tuple(tiles), cell, dtype, str(device))
        params = tuple((p.data_ptr(), p._version) for p in self.parameters())
        cache = self.__dict__.setdefault("_grid_tables", {})
        if cache.get(key, (None,))[0] != params:
            if len(cache) >= GRID_TABLES_KEPT:
                cache.pop(next(iter(cache)))
            cache[key] = (params, {})
        return cache[key][1]

    def _kind(self, plan: dict, ky: int, kx: int) -> dict:
        """Per 2-D kind of tile cell, once: q's tap weights (n, patch) on the cell's patch, the
        encoding's attention bias (heads / g, n, union g), -inf outside each node's window, and
        its value terms as block-diagonal head groups (n, heads / g, union g, g d), for the n
        nodes of a cell of that kind."""
        if (ky, kx) in plan["kinds"]:
            return plan["kinds"][(ky, kx)]
        ax, ay, g = plan["ax"], plan["ay"], plan["g"]
        ny, nx, w = ay.nodes[ky], ax.nodes[kx], self.window
        n, k, h, d = ny * nx, w * w, self.heads, self.dim // self.heads
        G, U = h // g, ay.union_size * ax.union_size
        rel = torch.stack(
            [
                ax.rel[kx].view(1, nx, 1, w).expand(ny, nx, w, w),
                ay.rel[ky].view(ny, 1, w, 1).expand(ny, nx, w, w),
            ],
            dim=-1,
        ).reshape(n, k, 2)
        terms = self.pe_terms(rel, plan["cell_px"].view(1, 1, 2))
        slot = ay.slots[ky].view(ny, 1, w, 1) * ax.union_size + ax.slots[kx].view(1, nx, 1, w)
        slot = slot.reshape(n, k, 1)
        bias = terms.new_full((n, U, h), float("-inf"))
        bias.scatter_(1, slot.expand(n, k, h), terms[..., :h])
        value = terms.new_zeros(n, U, self.dim)
        value.scatter_(1, slot.expand(n, k, self.dim), terms[..., h:])
        taps = ay.taps[ky].view(ny, 1, -1, 1) * ax.taps[kx].view(1, nx, 1, -1)
        plan["kinds"][(ky, kx)] = out = {
            "n": n,
            "bias": bias.view(n, U, G, g).permute(2, 0, 1, 3).reshape(G, 1, n, U * g),
            "pbd": block_heads(value.view(n, U, h, d), g)
            .permute(1, 0, 2, 3, 4)
            .reshape(n, G, U * g, g * d),
            "taps": taps.reshape(n, -1),
        }
        return out

    def cell_block(self, plan: dict, b: int, ky: int, kx: int, rows, cols) -> torch.Tensor:
        """The branch MLP's hidden layer after its GELU, (T n, out_dim), on the tile cells
        rows [a0, a1) x cols [c0, c1) (T of them) of one kind (ky, kx) of sample b; nodes
        ordered (cell row, cell column, node row, node column).

        Every node of a cell meets its cell's union of windows in one matrix product per head
        group (keys and values gathered once per cell, not per node; cells outside a node's
        window carry a -inf bias); q is the tap weights (per kind) times the cells' patches of
        the q map, one product; the encoding's value terms meet the attention weights of one
        node of the cell across all cells, one product per node of the cell. The softmax is
        shifted by one constant per tile (exact unless a row would underflow; then per row, as
        ``torch.softmax``) and normalised after the value product."""
        kind = self._kind(plan, ky, kx)
        (a0, a1), (c0, c1) = rows, cols
        T, n = (a1 - a0) * (c1 - c0), kind["n"]
        dim, g = self.dim, plan["g"]
        gd = g * (dim // self.heads)
        G = self.heads // g
        patch = plan["patch"][:, :, a0:a1, c0:c1].reshape(-1)
        qp = plan["q"][b].index_select(0, patch).view(-1, T * dim)
        q = (kind["taps"] @ qp).view(n, T, G, gd).permute(2, 1, 0, 3)  # (G, T, n, g d)
        union = plan["union"][a0:a1, c0:c1].reshape(-1)
        kbd = plan["kbd"][:, b].index_select(1, union).view(G, T, -1, gd)
        vbd = plan["vbd"][:, b].index_select(1, union).view(G, T, -1, gd)
        for exact in (False, True):
            e = _baddbmm(kind["bias"], q, kbd.transpose(-1, -2))  # (G, T, n, U g)
            if exact:
                per_row = e.view(G, T, n, -1, g)
                per_row.sub_(per_row.amax(-2, keepdim=True))
            else:
                top = float(e.amax())
                if top > SOFTMAX_HIGH:
                    e.sub_(top)
                # clamped: exp of a value below about -87 takes a slow path (it underflows)
                e.clamp_(min=SOFTMAX_LOW)
            e.exp_()
            den = torch.matmul(e, plan["ones"])  # (G, T, n, g d): per head, per channel
            if exact or float(den.amin()) >= SOFTMAX_FLOOR:
                break
        z = _matmul(e, vbd)  # (G, T, n, g d)
        z.add_(_matmul(e.permute(2, 0, 1, 3), kind["pbd"]).permute(1, 2, 0, 3)).div_(den)
        z = z.permute(1, 2, 0, 3).reshape(T * n, dim)
        return torch.ops.aten.gelu_(torch.addmm(plan["b1"], z, plan["w1"].T))


@register("nhcsr")
class NHCSR(SRModel):
    """Coefficient-conditioned encoder, Gabor-biased local attention, coarse + fine branches."""

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        cfg = _validated(self.cfg)
        self.encoder = build_encoder(cfg["encoder"], cfg.get("encoder_cfg"), cfg["in_channels"])
        C = self.encoder.out_dim
        hidden = list(cfg["hidden"])
        branch = dict(
            dim=cfg["dim"],
            heads=cfg["heads"],
            out_dim=hidden[0],
            pe=cfg["pe"],
            pe_dim=cfg["pe_dim"],
            window=cfg["window"],
            omega0=cfg["omega0"],
            s0=cfg["s0"],
        )
        self.coarse = LocalAttentionBranch(C, **branch)
        self.multi_scale = cfg["multi_scale"]
        if self.multi_scale:
            r = cfg["pixel_shuffle"]
            self.expand = nn.Sequential(nn.Conv2d(C, C * r * r, 3, padding=1), nn.PixelShuffle(r))
            self.fine = LocalAttentionBranch(C, **branch)
        self.decoder = nn.Sequential(nn.GELU(), MLP(hidden[0], hidden[1:], 1, act=nn.GELU))
        self.in_channels = cfg["in_channels"]
        self.use_scs = cfg["scs"]
        self.scs_lambda = float(cfg["scs_lambda"])
        self.scs_draws, self.scs_group = cfg["scs_draws"], cfg["scs_group"]
        self.scs_form = cfg["scs_form"]
        self.exact_boundary = cfg["exact_boundary"]
        # Smallest cell seen in training (largest training scale) in coarse-map feature pixels,
        # invariant under patch cropping; queries below it are clipped.
        top = max(cfg["train_scales"])
        self.cell_min_px = cfg["E"] / (cfg["lr_n"] * top) if cfg["cell_clip"] else 0.0

    # -- SRModel interface ---------------------------------------------------------------------
    def encode(self, inputs: dict) -> dict:
        image = inputs["image"]
        if image.dim() != 4 or image.shape[1] != self.in_channels:
            raise ValueError(
                f"{self.cfg.get('name', 'nhcsr')}: image of shape {tuple(image.shape)}; expected "
                f"(B, {self.in_channels}, E, E) (coefficient={self.uses_coefficient})"
            )
        feat = self.encoder(image)
        state = {"lr": inputs["lr"], "coarse": self.coarse.prepare(feat)}
        if self.multi_scale:
            state["fine"] = self.fine.prepare(self.expand(feat))
        return state

    def query_encoded(self, state, coords, cell):
        if torch.is_grad_enabled() or coords.shape[1] <= INNER_CHUNK:
            return self._query(state, coords, cell)
        # Inference: sub-chunks keep every per-neighbour temporary small (cache-resident, reused
        # by the allocator instead of fresh pages per chunk); queries are independent, so the
        # values are those of one pass.
        pieces = zip(coords.split(INNER_CHUNK, 1), cell.split(INNER_CHUNK, 1), strict=True)
        return torch.cat([self._query(state, c, s) for c, s in pieces], dim=1)

    def _query(self, state, coords, cell):
        skip, mask, f_lr, f_hr = self._features(state, coords, cell)
        feats = f_lr if f_hr is None else f_lr + f_hr
        return skip + mask * self.decoder(feats)

    def training_loss(self, batch: dict, step: int = 0):
        """L1 + scs_lambda * (1 - SCS) (plain L1 when ``scs`` is off); see the module docstring.

        With SCS on and gradients enabled, the log also has ``scs_grad_share``: the norm of the
        SCS term's gradient with respect to the predictions over that of the L1 term.
        """
        pred = self.query(batch, batch["coords"], batch["cell"])
        target = batch["target"]
        l1 = F.l1_loss(pred, target)
        gen = torch.Generator().manual_seed(SCS_SEED + int(step))
        train_scs = self.use_scs and torch.is_grad_enabled()
        with torch.set_grad_enabled(train_scs):
            scs = stochastic_cosine_similarity(
                pred, target, self.scs_draws, self.scs_group, gen, form=self.scs_form
            )
        logs = {"l1": float(l1.detach()), "scs": float(scs.detach())}
        if not self.use_scs:
            return l1, logs
        term = self.scs_lambda * (1.0 - scs)
        if train_scs and pred.requires_grad:
            # Only the small graph from the loss back to pred is walked; no RNG is touched.
            (g_scs,) = torch.autograd.grad(term, pred, retain_graph=True)
            # L1's gradient with respect to pred is sign(pred - target) / N.
            g_l1 = torch.sign(pred.detach() - target).norm() / pred.numel()
            logs["scs_grad_share"] = float(g_scs.norm() / g_l1.clamp_min(1e-30))
        return l1 + term, logs

    # -- the node grid: predict and Fig. 8's branches ------------------------------------------
    def query_grid(self, state, m: int, chunk: int) -> torch.Tensor:
        """``predict``'s grid path (``_grid``); equals the general path."""
        return self._grid(state, m, chunk, branches=False)["full"]

    @torch.inference_mode()
    def predict_branches(self, inputs: dict, alpha: float, chunk: int = 65536) -> dict:
        """Fields (B, m+1, m+1) on the node grid: coarse, fine, full, skip (module docstring)."""
        m = hr_size(inputs["lr"].shape[-1] - 1, alpha)
        return self._grid(self.encode(inputs), m, chunk, branches=True)

    def _cell_grid(self, state: dict, m: int, chunk: int, branches: bool) -> dict | None:
        """The grid in tiles of whole tile cells (the coarse map's cells; integer scales), or
        None where a branch has no ``cell_plan``. Both branches work on the same tile cells (the
        fine one on each cell's union of r x r fine windows), so their hidden layers share one
        node order: the branches' second layers, their sum and the decoder run on it directly,
        and only the decoded values are put in grid order."""
        lr = state["lr"]
        B, dt = lr.shape[0], lr.dtype
        cell = max(hr_cell(m), self._cell_min(state)[0])  # square cells: either axis
        tiles = tuple(state["coarse"]["size"])
        parts = [("coarse", self.coarse)] + ([("fine", self.fine)] if self.multi_scale else [])
        plans = {}
        for key, br in parts:
            plans[key] = br.cell_plan(state[key], m, tiles, cell, dt)
            if plans[key] is None:
                return None
        runs = {
            axis: _joint_runs([plans[key][axis].kind_of for key, _ in parts])
            for axis in ("ay", "ax")
        }
        second = [br.mlp[2] for _, br in parts]
        b2 = sum(lin.bias for lin in second[1:]) + second[0].bias
        U = max(p["ay"].union_size * p["ax"].union_size for p in plans.values())
        per_node = 2 * U * self.coarse.heads + 4 * self.coarse.dim + 6 * second[0].in_features
        budget = max(1, min(int(chunk), CELL_TILE_FLOATS // per_node))
        names = [key for key, _ in parts] + ["full"] if branches else ["full"]
        out = {key: lr.new_empty(B, m + 1, m + 1) for key in names}
        P = plans["coarse"]["ay"].P, plans["coarse"]["ax"].P
        for b in range(B):
            for kinds_y, a0, a1 in runs["ay"]:
                for kinds_x, c0, c1 in runs["ax"]:
                    ny = plans["coarse"]["ay"].nodes[kinds_y[0]]
                    nx = plans["coarse"]["ax"].nodes[kinds_x[0]]
                    cells = max(1, budget // (ny * nx))
                    tx = min(c1 - c0, cells)
                    ty = max(1, min(a1 - a0, cells // tx))
                    for t0 in range(a0, a1, ty):
                        for s0 in range(c0, c1, tx):
                            rows, cols = (t0, min(t0 + ty, a1)), (s0, min(s0 + tx, c1))
                            hidden = [
                                br.cell_block(plans[key], b, kinds_y[i], kinds_x[i], rows, cols)
                                for i, (key, br) in enumerate(parts)
                            ]
                            if branches:
                                feats = [
                                    torch.addmm(lin.bias, hid, lin.weight.T)
                                    for lin, hid in zip(second, hidden, strict=True)
                                ]
                                vals = dict(zip([key for key, _ in parts], feats, strict=True))
                                vals["full"] = feats[0].clone()  # the GELUs run in place
                                for f in feats[1:]:
                                    vals["full"] += f
                            else:  # the branches' sum accumulated in one product's output
                                full = torch.addmm(b2, hidden[0], second[0].weight.T)
                                for lin, hid in zip(second[1:], hidden[1:], strict=True):
                                    full.addmm_(hid, lin.weight.T)
                                vals = {"full": full}
                            Ty, Tx = rows[1] - rows[0], cols[1] - cols[0]
                            i0, j0 = rows[0] * P[0], cols[0] * P[1]
                            for key in names:
                                v = self._decode_(vals[key]).view(Ty, Tx, ny, nx)
                                dst = out[key][b, i0 : i0 + Ty * ny, j0 : j0 + Tx * nx]
                                dst.view(Ty, ny, Tx, nx).copy_(v.permute(0, 2, 1, 3))
        skip = q1_grid(lr, m)
        for key in names:
            if self.exact_boundary:
                v = out[key]
                v[:, 0], v[:, -1], v[:, :, 0], v[:, :, -1] = 0.0, 0.0, 0.0, 0.0
            out[key].add_(skip)
        if branches:
            out["skip"] = skip
        return out

    def _grid(self, state: dict, m: int, chunk: int, branches: bool) -> dict:
        """The cell path where it applies (``_cell_grid``), else ``_gather_grid``."""
        fast = self._cell_grid(state, m, chunk, branches)
        return fast if fast is not None else self._gather_grid(state, m, chunk, branches)

    def _gather_grid(self, state: dict, m: int, chunk: int, branches: bool) -> dict:
        """Blocks of whole node rows, each node's window gathered; per branch, the window
        indices, offsets and encoding terms come from ``LocalAttentionBranch.grid_plan`` (per
        axis, and per offset class)."""
        lr = state["lr"]
        B = lr.shape[0]
        axis = torch.as_tensor(to_network(node_positions(m)), dtype=lr.dtype, device=lr.device)
        cell = max(hr_cell(m), self._cell_min(state)[0])  # square cells: either axis
        parts = [("coarse", self.coarse)] + ([("fine", self.fine)] if self.multi_scale else [])
        plans = {k: br.grid_plan(state[k], m, cell, lr.dtype) for k, br in parts}
        names = ["coarse", "fine", "full", "skip"] if branches else ["full"]
        names = [k for k in names if k != "fine" or self.multi_scale]
        out = {k: lr.new_empty(B, m + 1, m + 1) for k in names}
        for rows, cols in _tiles(m, min(chunk, GRID_CHUNK)):
            R, C = rows.stop - rows.start, cols.stop - cols.start
            c = torch.stack(
                [axis[cols].view(1, -1).expand(R, -1), axis[rows].view(-1, 1).expand(-1, C)],
                dim=-1,
            ).view(1, -1, 2)
            c = c.expand(B, -1, -1)
            skip = sample_nodal(lr, c, "bilinear")
            mask = self._mask(c, skip)
            f = {k: br.grid_forward(state[k], plans[k], rows, cols, c) for k, br in parts}
            feats = f["coarse"] if not self.multi_scale else f["coarse"] + f["fine"]
            out["full"][:, rows, cols] = (skip + mask * self.decoder(feats)).view(B, R, C)
            if branches:
                out["skip"][:, rows, cols] = skip.view(B, R, C)
                for k in f:
                    out[k][:, rows, cols] = (skip + mask * self.decoder(f[k])).view(B, R, C)
        return out

    def _decode_(self, feats: torch.Tensor) -> torch.Tensor:
        """``self.decoder(feats)`` (inference), its GELUs in place on its own temporaries (the
        first one on ``feats``, which it overwrites)."""
        h = feats
        for layer in [self.decoder[0], *self.decoder[1]]:
            if isinstance(layer, nn.GELU) and layer.approximate == "none":
                h = torch.ops.aten.gelu_(h)
            else:
                h = layer(h)
        return h

    # -- internals -------------------------------------------------------------------------
    def _features(self, state, coords, cell):
        """Skip (B, Q, 1), boundary mask, F_LR and F_HR (None when single-scale)."""
        skip = sample_nodal(state["lr"], coords, "bilinear")
        mask = self._mask(coords, skip)
        cell = torch.maximum(cell, cell.new_tensor(self._cell_min(state)))
        f_lr = self.coarse(state["coarse"], coords, cell)
        f_hr = self.fine(state["fine"], coords, cell) if self.multi_scale else None
        return skip, mask, f_lr, f_hr

    def _mask(self, coords, skip):
        """1, or 0 on the domain boundary with ``exact_boundary``."""
        if not self.exact_boundary:
            return torch.ones_like(skip)
        return (coords.abs() < 1.0 - 1e-6).all(dim=-1, keepdim=True).to(skip.dtype)

    def _cell_min(self, state) -> tuple[float, float]:
        """The clipping cell in network units (x, y): ``cell_min_px`` coarse-map pixels."""
        H, W = state["coarse"]["size"]
        return (self.cell_min_px * 2.0 / W, self.cell_min_px * 2.0 / H)


def _joint_runs(kinds: list[list[int]]) -> list[tuple[tuple[int, ...], int, int]]:
    """Runs (kinds, c0, c1) of consecutive tile cells whose kinds agree in every branch."""
    runs: list[tuple[tuple[int, ...], int, int]] = []
    for c, joint in enumerate(zip(*kinds, strict=True)):
        if runs and runs[-1][0] == joint:
            runs[-1] = (joint, runs[-1][1], c + 1)
        else:
            runs.append((joint, c, c + 1))
    return runs


def _tiles(m: int, nodes: int):
    """(rows, cols) tiles covering the (m+1)^2 node grid row-major, at most ``nodes`` nodes
    each: blocks of whole rows, or pieces of a row when a row is longer."""
    n = m + 1
    if nodes >= n:
        step = nodes // n
        for i0 in range(0, n, step):
            yield slice(i0, min(n, i0 + step)), slice(0, n)
        return
    for i in range(n):
        for j0 in range(0, n, nodes):
            yield slice(i, i + 1), slice(j0, min(n, j0 + nodes))


def _validated(cfg: dict) -> dict:
    """Every key present and every value checked; errors name the bad key and what was expected."""
    name = cfg.get("name", "nhcsr")
    unknown = set(cfg) - OWN_KEYS - COMMON_KEYS
    if unknown:
        raise ValueError(
            f"{name}: unknown nhcsr config keys {sorted(unknown)}; "
            f"expected some of {sorted(OWN_KEYS)}"
        )
    # No paper-size fallbacks: the validated pipeline config provides every key.
    missing = sorted(
        (OWN_KEYS | {"train_scales", "scs_lambda", "lr_n", "E", "in_channels"}) - set(cfg)
    )
    if missing:
        raise ValueError(f"{name}: config keys {missing} are missing")
    out = dict(cfg)
    if out["pe"] not in PE_NAMES:
        raise ValueError(f"{name}: pe '{out['pe']}'; expected one of {', '.join(PE_NAMES)}")
    if out["scs_form"] not in SCS_FORMS:
        raise ValueError(
            f"{name}: scs_form '{out['scs_form']}'; expected one of {', '.join(SCS_FORMS)}"
        )
    if out["dim"] % out["heads"]:
        raise ValueError(f"{name}: dim {out['dim']} is not divisible by heads {out['heads']}")
    if not isinstance(out["window"], int) or out["window"] < 1 or out["window"] % 2 == 0:
        raise ValueError(f"{name}: window {out['window']!r}; expected an odd integer >= 1")
    if not isinstance(out["pixel_shuffle"], int) or out["pixel_shuffle"] < 2:
        raise ValueError(
            f"{name}: pixel_shuffle {out['pixel_shuffle']!r}; expected an integer >= 2"
        )
    if not out["hidden"]:
        raise ValueError(f"{name}: hidden must list at least one layer width")
    for key in ("scs_draws", "scs_group"):
        if int(out[key]) < 1:
            raise ValueError(f"{name}: {key} {out[key]!r}; expected an integer >= 1")
    return out
