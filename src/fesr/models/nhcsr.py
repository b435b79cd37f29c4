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
  (README, NH-CSR notes).
* D in eq. (8) is the per-head width dim / heads (the usual multi-head scaling).
* The positional encoding and its bias run in float32 even under autocast (bfloat16 cannot
  resolve cos(omega0 u) for |omega0 u| of several radians).
* Inference (no autograd) evaluates at most INNER_CHUNK queries at a time, whatever chunk
  ``predict`` is given: the per-neighbour temporaries stay small, and values are unchanged.
* ``predict`` (through ``query_grid``) and ``predict_branches`` take a grid path (``_grid``,
  under inference_mode). Per axis, the window indices, offsets and offset classes of every node
  (``fesr.models.local.grid_axis``: the values of ``window_neighbours``, clamped border windows
  included); the encoding's bias and value terms once per pair of (y, x) offset classes (per axis
  about m / gcd(m, map size) of them) in a table; the cell's part of the branch MLP folded into
  its bias. Tiles of about GRID_CHUNK nodes (``_tiles``): where cells hold whole numbers of
  nodes (integer scales, m >= map size), a band of rows sharing their y-window times whole
  cells of columns broadcasts K|V per cell and the terms per (row, column-in-cell), with no
  per-node gather; other tiles (border strips, short bands, non-integer scales) gather per node.
  The ``lte`` encoding depends on the features, so there the terms are computed per node (as
  they are when the table would exceed TABLE_FLOATS). Values equal the general path's
  (``query_encoded``) to float rounding.

``predict_branches`` gives, on the whole node grid, ``coarse = skip + MLP(F_LR)``,
``fine = skip + MLP(F_HR)`` (the decoder applied to one branch's features alone, the skip
included so all are fields on the same scale), ``full = skip + MLP(F_LR + F_HR)`` (= ``predict``)
and ``skip`` (the bilinear Q1 interpolant alone). Single-scale models have no ``fine`` entry.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from fesr.coords import hr_cell, node_positions, sample_cells, sample_nodal, to_network
from fesr.models.base import SRModel, hr_size
from fesr.models.encoders import build_encoder
from fesr.models.local import MLP, flatten_map, gather, grid_axis, window_neighbours
from fesr.models.positional import PE_NAMES, build_positional
from fesr.models.registry import register
from fesr.models.scs import SCS_FORMS, stochastic_cosine_similarity

# Keys of the resolved config this method reads, and those every resolved config carries.
OWN_KEYS = {
    "encoder",
    "dim",
    "heads",
    "hidden",
    "pe",
    "pe_dim",
    "window",
    "multi_scale",
    "scs",
    "coefficient",
    "omega0",
    "s0",
    "pixel_shuffle",
    "scs_draws",
    "scs_group",
    "exact_boundary",
    "cell_clip",
    "scs_form",
}
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
        q, k, v = self.qkv(feat).split(self.dim, dim=1)
        maps = [k, v] + ([self.pe.maps(feat)] if self.local else [])
        return {"q": q, "kv": flatten_map(torch.cat(maps, dim=1)), "size": feat.shape[-2:]}

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
        # nodes per cell when cells hold whole numbers of nodes (integer scales, m >= size)
        plan["period"] = m // W if m % W == 0 and m >= W and H == W else 0
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
        B = coords.shape[0]
        q = sample_cells(st["q"], coords, mode="bilinear")
        P = plan["period"]
        if P and "table" in plan and self._regular(plan, rows, cols):
            # A band of rows sharing their y-window, and whole cells of P columns whose classes
            # repeat: K|V per cell and the encoding terms per (row, column-in-cell) broadcast.
            T = C // P
            ix = plan["ix"][cols].view(T, P, w)[:, 0]
            index = (plan["iy"][rows.start].view(1, w, 1) * W + ix.view(T, 1, w)).view(1, T, k)
            kv = gather(st["kv"], index).view(B, 1, T, 1, k, -1)
            cls = plan["inv_y"][rows].view(R, 1) * plan["ux"] + plan["inv_x"][cols][:P].view(1, P)
            terms = plan["table"][cls.view(-1)].view(1, R, 1, P, k, -1)
            out = self.attend(q.view(B, R, T, P, -1), kv, terms).view(B, R * C, -1)
        else:
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

    def _regular(self, plan: dict, rows: slice, cols: slice) -> bool:
        """Whether the tile is whole-cell regular (checked on the exact per-axis indices and
        classes, so float ties and clamped borders simply fail the check)."""
        P, C = plan["period"], cols.stop - cols.start
        if C % P or cols.start % P:
            return False
        iy = plan["iy"][rows]
        ix = plan["ix"][cols].view(C // P, P, -1)
        cx = plan["inv_x"][cols].view(C // P, P)
        return bool((iy == iy[:1]).all() and (ix == ix[:, :1]).all() and (cx == cx[:1]).all())


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

    def _grid(self, state: dict, m: int, chunk: int, branches: bool) -> dict:
        """Blocks of whole node rows; per branch, the window indices, offsets and encoding terms
        come from ``LocalAttentionBranch.grid_plan`` (per axis, and per offset class)."""
        lr = state["lr"]
        B = lr.shape[0]
        axis = torch.as_tensor(to_network(node_positions(m)), dtype=lr.dtype, device=lr.device)
        cell = max(hr_cell(m), self._cell_min(state)[0])  # square cells: either axis
        parts = [("coarse", self.coarse)] + ([("fine", self.fine)] if self.multi_scale else [])
        plans = {k: br.grid_plan(state[k], m, cell, lr.dtype) for k, br in parts}
        names = ["coarse", "fine", "full", "skip"] if branches else ["full"]
        names = [k for k in names if k != "fine" or self.multi_scale]
        out = {k: lr.new_empty(B, m + 1, m + 1) for k in names}
        for rows, cols in _tiles(plans, m, min(chunk, GRID_CHUNK), self.coarse.window // 2):
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


def _tiles(plans: dict, m: int, nodes: int, radius: int):
    """(rows, cols) tiles covering the (m+1)^2 node grid, about ``nodes`` nodes each.

    Bands are runs of rows whose y-windows agree in every branch. A band of at least a quarter
    of ``nodes`` has its interior columns (clear of the clamped border windows and the last
    node) cut into blocks of whole cells (the broadcast path of ``grid_forward``); its border
    columns go to strips of many rows. Shorter bands are merged into blocks of whole rows. Every
    other tile takes the gather path.
    """
    n = m + 1
    iy = torch.cat([p["iy"] for p in plans.values()], dim=1)
    change = (iy[1:] != iy[:-1]).any(dim=1).nonzero().flatten().add(1).tolist()
    bands = list(zip([0, *change], [*change, n], strict=True))
    periods = [p["period"] for p in plans.values()]
    L = math.lcm(*periods) if all(periods) else 0
    if L:
        lo = -(-radius * max(periods) // L) * L  # first interior column
        hi = (m - radius * max(periods)) // L * L  # end of the interior columns
    pending, strips = None, []
    for s0, s1 in bands:
        R = s1 - s0
        if L and hi - lo >= L and R * n * 4 >= nodes and R * L <= nodes:
            if pending is not None:
                yield slice(*pending), slice(0, n)
                pending = None
            width = L * max(1, nodes // (R * L))
            for j0 in range(lo, hi, width):
                yield slice(s0, s1), slice(j0, min(hi, j0 + width))
            if strips and strips[-1][1] == s0:
                strips[-1] = (strips[-1][0], s1)
            else:
                strips.append((s0, s1))
            continue
        pending = (s0, s1) if pending is None else (pending[0], s1)
        if (pending[1] - pending[0]) * n >= nodes:
            yield slice(*pending), slice(0, n)
            pending = None
    if pending is not None:
        yield slice(*pending), slice(0, n)
    for cols in (slice(0, lo), slice(hi, n)) if strips else ():
        step = max(1, nodes // (cols.stop - cols.start))
        for s0, s1 in strips:
            for i0 in range(s0, s1, step):
                yield slice(i0, min(s1, i0 + step)), cols


def _validated(cfg: dict) -> dict:
    """Every key present and every value checked; errors name the bad key and what was expected."""
    name = cfg.get("name", "nhcsr")
    unknown = set(cfg) - OWN_KEYS - COMMON_KEYS
    if unknown:
        raise ValueError(
            f"{name}: unknown nhcsr config keys {sorted(unknown)}; "
            f"expected some of {sorted(OWN_KEYS)}"
        )
    # No paper-size fallbacks: the validated pipeline config provides every key (issue 12).
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
