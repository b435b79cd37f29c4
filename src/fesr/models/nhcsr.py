"""NH-CSR, the proposed model (paper section III, SPEC 3), with every ablation switch.

Pipeline for a query point c (network coordinates, (x, y) in [-1, 1]) with HR cell size ``cell``:

1. Encoder (III.A): ``feat = g(image)``, image = [d(X), encoded A] (or d(X) alone when
   ``coefficient: false``), any of ``build_encoder``'s backbones. ``feat`` is J, cell-centred E x E.
2. Coarse branch on J (eqs. 7, 8): 1x1 convs give Q, K, V maps (``dim`` channels, ``heads`` heads).
   Q is sampled bilinearly at c; K and V are gathered at the ``window`` x ``window`` feature cells
   around the cell containing c (``fesr.models.local.window_neighbours``). Per head,
   ``softmax(q.k / sqrt(D) + bias) @ V`` with ``bias = Linear(phi(rel, cell))``, phi the positional
   encoding (``pe``) of the offset rel = c - centre (eq. 8's phi(s(r, c) - c), up to its sign, which
   a learned map absorbs). The attention output and the cell go through the branch MLP f_LR.
3. Fine branch (eq. 9, ``multi_scale: true``): U(J) = PixelShuffle(r)(Conv3x3(J -> r^2 C)), an
   rE x rE cell-centred map, r = ``pixel_shuffle``; the same attention with its own weights
   gives F_HR.
4. ``F = F_LR + F_HR`` (F_LR alone when single-scale), decoded by ``MLP`` (GELU, hidden[1:], 1).
5. Output = bilinear skip (Q1 interpolant of the LR nodal field, ``sample_nodal``; Fig. 2 sums the
   regressions "with the sampled LR pixels") + decoded residual.

Loss (III.E): ``L1 + scs_lambda * (1 - SCS)`` when ``scs: true``, else L1. The paper writes
``L1 + lambda L_scs`` with L_scs the similarity of eq. (10); a similarity is maximised, so we
minimise 1 - SCS (``fesr.models.scs``). SCS is logged in both cases.

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
  default. phi has ``pe_dim`` channels and a linear map gives one bias per head. phi enters only as
  the attention bias (eq. 8), not as an MLP input (eq. 7 is the unweighted special case).
* Branch MLP f = Linear(dim + 2 -> h0), GELU, Linear(h0 -> h0), its input the attention output and
  the cell in that branch's pixels (LIIF's cell decoding). The cell is clipped from below at the
  largest training scale's cell (LTE's practice; ``cell_clip``), so out-of-distribution scales do
  not extrapolate the cell input.
* No exact u = 0 enforcement by default (the paper has none; the skip is already 0 there); with
  ``exact_boundary: true`` the residual is zeroed on the domain boundary.
* SCS draws T = ``scs_draws`` groups of G = ``scs_group`` points per sample; both default to H + 1
  = lr_n + 1 (33) as in the paper, G capped at the number of sampled points. The groups come
  from a CPU generator seeded by the training step, so a resumed run draws the same groups.
  The cosine is of the raw (normalised) values, no mean removal, as eq. (10) writes it.
* D in eq. (8) is the per-head width dim / heads (the usual multi-head scaling).
* The positional encoding and its bias run in float32 even under autocast (bfloat16 cannot
  resolve cos(omega0 u) for |omega0 u| of several radians).
* Inference (no autograd) evaluates at most INNER_CHUNK queries at a time, whatever chunk
  ``predict`` is given: the per-neighbour temporaries stay small, and values are unchanged.

``predict_branches`` gives, on the whole node grid, ``coarse = skip + MLP(F_LR)``,
``fine = skip + MLP(F_HR)`` (the decoder applied to one branch's features alone, the skip
included so all are fields on the same scale), ``full = skip + MLP(F_LR + F_HR)`` (= ``predict``)
and ``skip`` (the bilinear Q1 interpolant alone). Single-scale models have no ``fine`` entry.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from fesr.coords import hr_cell, node_coords, sample_cells, sample_nodal
from fesr.models.base import SRModel, hr_size
from fesr.models.encoders import build_encoder
from fesr.models.local import MLP, flatten_map, gather, window_neighbours
from fesr.models.positional import PE_NAMES, build_positional
from fesr.models.registry import register
from fesr.models.scs import stochastic_cosine_similarity

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
        self.pe = build_positional(pe, pe_dim, omega0, s0)
        self.bias = nn.Linear(self.pe.out_dim, heads)
        self.mlp = MLP(dim + 2, [out_dim], out_dim, act=nn.GELU)

    def prepare(self, feat: torch.Tensor) -> dict:
        """Per-input part: the Q map (sampled per query) and the flattened K|V map (gathered)."""
        q, k, v = self.qkv(feat).split(self.dim, dim=1)
        return {"q": q, "kv": flatten_map(torch.cat([k, v], dim=1)), "size": feat.shape[-2:]}

    def forward(self, st: dict, coords: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        H, W = st["size"]
        nb = window_neighbours(coords, H, W, self.window)
        B, Q, k = nb.index.shape
        h, d = self.heads, self.dim // self.heads
        q = sample_cells(st["q"], coords, mode="bilinear").view(B, Q, h, d)
        key, val = gather(st["kv"], nb.index).view(B, Q, k, 2, h, d).unbind(3)
        cell_px = torch.stack([cell[..., 0] * (W / 2.0), cell[..., 1] * (H / 2.0)], dim=-1)
        # The encoding in float32 even under autocast: cos(omega0 u) of a bfloat16 u is too coarse.
        with torch.autocast(coords.device.type, enabled=False):
            rel, cpx = nb.rel.float() / self.half, cell_px.float().unsqueeze(2) / self.half
            bias = self.bias(self.pe(rel, cpx))  # (B, Q, k, heads)
        # Broadcast products, not einsum: on the CPU einsum copies K and V into bmm layout.
        logits = (q.unsqueeze(2) * key).sum(-1) * d**-0.5 + bias
        attn = logits.softmax(dim=2).unsqueeze(-1)
        out = (attn * val).sum(2).reshape(B, Q, self.dim)
        return self.mlp(torch.cat([out, cell_px], dim=-1))


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
        self.exact_boundary = cfg["exact_boundary"]
        # Smallest cell seen in training (largest training scale); queries below it are clipped.
        self.cell_min = 2.0 / (cfg["lr_n"] * max(cfg["train_scales"])) if cfg["cell_clip"] else 0.0

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
        """L1 + scs_lambda * (1 - SCS) (plain L1 when ``scs`` is off); see the module docstring."""
        pred = self.query(batch, batch["coords"], batch["cell"])
        target = batch["target"]
        l1 = F.l1_loss(pred, target)
        gen = torch.Generator().manual_seed(SCS_SEED + int(step))
        with torch.set_grad_enabled(self.use_scs and torch.is_grad_enabled()):
            scs = stochastic_cosine_similarity(pred, target, self.scs_draws, self.scs_group, gen)
        loss = l1 + self.scs_lambda * (1.0 - scs) if self.use_scs else l1
        return loss, {"l1": float(l1.detach()), "scs": float(scs.detach())}

    # -- Fig. 8: the branches separately -------------------------------------------------------
    @torch.no_grad()
    def predict_branches(self, inputs: dict, alpha: float, chunk: int = 65536) -> dict:
        """Fields (B, m+1, m+1) on the node grid: coarse, fine, full, skip (module docstring)."""
        lr = inputs["lr"]
        B, n = lr.shape[0], lr.shape[-1] - 1
        m = hr_size(n, alpha)
        state = self.encode(inputs)
        coords_all = node_coords(m, device=lr.device, dtype=lr.dtype)
        names = (
            ["coarse", "fine", "full", "skip"] if self.multi_scale else ["coarse", "full", "skip"]
        )
        out = {
            k: torch.empty(B, coords_all.shape[0], device=lr.device, dtype=lr.dtype) for k in names
        }
        step = min(chunk, INNER_CHUNK)
        for start in range(0, coords_all.shape[0], step):
            c = coords_all[start : start + step].unsqueeze(0).expand(B, -1, -1)
            cell = torch.full_like(c, hr_cell(m))
            skip, mask, f_lr, f_hr = self._features(state, c, cell)
            sl = slice(start, start + c.shape[1])
            out["skip"][:, sl] = skip[..., 0]
            out["coarse"][:, sl] = (skip + mask * self.decoder(f_lr))[..., 0]
            if f_hr is None:
                out["full"][:, sl] = out["coarse"][:, sl]
            else:
                out["fine"][:, sl] = (skip + mask * self.decoder(f_hr))[..., 0]
                out["full"][:, sl] = (skip + mask * self.decoder(f_lr + f_hr))[..., 0]
        return {k: v.reshape(B, m + 1, m + 1) for k, v in out.items()}

    # -- internals -------------------------------------------------------------------------
    def _features(self, state, coords, cell):
        """Skip (B, Q, 1), boundary mask, F_LR and F_HR (None when single-scale)."""
        skip = sample_nodal(state["lr"], coords, "bilinear")
        if self.exact_boundary:
            mask = (coords.abs() < 1.0 - 1e-6).all(dim=-1, keepdim=True).to(skip.dtype)
        else:
            mask = torch.ones_like(skip)
        cell = cell.clamp(min=self.cell_min)
        f_lr = self.coarse(state["coarse"], coords, cell)
        f_hr = self.fine(state["fine"], coords, cell) if self.multi_scale else None
        return skip, mask, f_lr, f_hr


def _validated(cfg: dict) -> dict:
    """Defaults filled in, every value checked; errors name the bad key and what was expected."""
    name = cfg.get("name", "nhcsr")
    unknown = set(cfg) - OWN_KEYS - COMMON_KEYS
    if unknown:
        raise ValueError(
            f"{name}: unknown nhcsr config keys {sorted(unknown)}; "
            f"expected some of {sorted(OWN_KEYS)}"
        )
    out = {
        "pe": "gabor",
        "pe_dim": 64,
        "window": 3,
        "multi_scale": True,
        "scs": True,
        "omega0": 8.0,
        "s0": 6.0,
        "pixel_shuffle": 2,
        "exact_boundary": False,
        "cell_clip": True,
        "scs_lambda": 0.1,
        "train_scales": [2, 4, 8, 16],
        "lr_n": 32,
    }
    out.update(cfg)
    for key in ("encoder", "dim", "heads", "hidden", "in_channels"):
        if key not in out:
            raise ValueError(f"{name}: config key '{key}' is missing")
    out.setdefault("scs_draws", out["lr_n"] + 1)
    out.setdefault("scs_group", out["lr_n"] + 1)
    if out["pe"] not in PE_NAMES:
        raise ValueError(f"{name}: pe '{out['pe']}'; expected one of {', '.join(PE_NAMES)}")
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
