"""LTE: local texture estimator (Lee and Jin 2022), single output channel.

Faithful to the reference facts (``/work/shared/reference-implementations.md``):

* two 3x3 convs on the encoder features: amplitude (C -> 2K) and frequency (C -> 2K, i.e. K
  pairs (fx, fy)), K = ``n_freq`` (128 at paper size); phase = bias-free linear(2 -> K) of the
  cell. Both maps are computed and flattened once per ``encode``; no feature unfold.
* for each of the 4 surrounding feature cells (LIIF's local ensemble, area weights):
  basis = [cos, sin](pi * (freq . rel + phase)), times the amplitude -> MLP (256 x 3, ReLU) -> 1;
  rel and cell in LIIF's units (network-coordinate differences times the map size);
* global skip: the bilinear (Q1) interpolant of the LR nodal field at the query is added.
* cell clipping: the cell is clipped below at the cell of the largest training scale, so an
  out-of-distribution scale (32x, 64x) sees the phase of the largest scale it was trained on.
  The bound is in feature pixels, E / (lr_n * max scale), so it is the same on a training patch.

Choices: the clipping is applied always, not only in ``eval()``: during training every cell is
at least that large (the scales come from ``train_scales``), so it changes nothing there and
keeps ``query`` identical in both modes. The cell is the HR node spacing 2 / (n alpha).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from fesr.coords import hr_cell, sample_nodal
from fesr.models.base import SRModel
from fesr.models.encoders import build_encoder
from fesr.models.fourier import band_fourier, fourier_pairs
from fesr.models.liif import GRID_TILE_ELEMS, liif_units
from fesr.models.local import FourGrid, flatten_map, four_neighbours, gather, q1_grid
from fesr.models.mlp import MLP, TileMLP
from fesr.models.registry import register


@register("lte")
class LTE(SRModel):
    def __init__(self, cfg: dict):
        super().__init__(cfg)
        if not cfg.get("encoder"):
            raise ValueError(f"lte: config needs an 'encoder', got {cfg.get('encoder')!r}")
        self.encoder = build_encoder(cfg["encoder"], cfg.get("encoder_cfg"), cfg["in_channels"])
        C = self.encoder.out_dim
        self.n_freq = int(cfg["n_freq"])
        self.amplitude = nn.Conv2d(C, 2 * self.n_freq, 3, padding=1)
        self.frequency = nn.Conv2d(C, 2 * self.n_freq, 3, padding=1)
        self.phase = nn.Linear(2, self.n_freq, bias=False)
        self.imnet = MLP(2 * self.n_freq, cfg["hidden"], 1)
        scales = cfg["train_scales"]
        if not scales:
            raise ValueError("lte: config needs 'train_scales' (for the test-time cell clipping)")
        # smallest cell seen in training, in FEATURE PIXELS (E / (lr_n * max scale)): invariant
        # under patch cropping, unlike network units of the whole field
        self.min_cell_px = float(cfg["E"]) / (int(cfg["lr_n"]) * max(float(s) for s in scales))

    def encode(self, inputs: dict):
        feat = self.encoder(inputs["image"])
        freq = self.frequency(feat)  # channels (fx_1, fy_1, fx_2, fy_2, ...), LTE's layout
        # stored as [amplitude, all fx, all fy] so a query needs no (Q, K, 2) tensor
        maps = torch.cat([self.amplitude(feat), freq[:, 0::2], freq[:, 1::2]], dim=1)
        return {"flat": flatten_map(maps), "size": tuple(feat.shape[-2:]), "lr": inputs["lr"]}

    def clip_cell(self, cell: torch.Tensor, H: int, W: int) -> torch.Tensor:
        """The cell (network units) clipped below at the smallest training cell."""
        return torch.maximum(cell, cell.new_tensor([2.0 / W, 2.0 / H]) * self.min_cell_px)

    def query_encoded(self, state, coords: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        H, W = state["size"]
        K = self.n_freq
        nb = four_neighbours(coords, H, W)
        rel, rel_cell = liif_units(nb.rel, self.clip_cell(cell, H, W), H, W)
        phase = self.phase(rel_cell)  # (B, Q, K)
        out = sample_nodal(state["lr"], coords, "bilinear")
        for k in range(4):
            amp, fx, fy = gather(state["flat"], nb.index[..., k]).split([2 * K, K, K], dim=-1)
            arg = torch.addcmul(phase, fx, rel[:, :, k, :1])
            arg = torch.addcmul(arg, fy, rel[:, :, k, 1:]).mul_(math.pi)
            pred = self.imnet(amp * torch.cat([torch.cos(arg), torch.sin(arg)], dim=-1))
            out = out + pred * nb.weight[..., k : k + 1]
        return out

    def query_grid(self, state, m: int, chunk: int) -> torch.Tensor:
        """The node grid, fast. Per neighbour, the argument phase + fx rel_x + fy rel_y
        is formed in the same order as ``query_encoded``, but phase + fx rel_x once per band of
        rows sharing their cells (``FourGrid``) and broadcast over the band's rows, and in a
        band tile the trig split by angle addition (``band_fourier``, interleaved cos / sin into
        one first-layer product); the phase of the (constant) cell once; the Q1 skip once for
        the grid. Outside bands cos and sin go to contiguous preallocated buffers and the first
        layer takes them as its two halves. The 4 neighbours of a tile go through the MLP as one
        matrix. Equal to ``query_encoded`` on ``node_coords(m)`` up to float rounding."""
        H, W = state["size"]
        flat = state["flat"]
        B, K = flat.shape[0], self.n_freq
        dt, dev = flat.dtype, flat.device
        grid = FourGrid(m, H, W, device=dev, dtype=dt)
        cell = self.clip_cell(torch.full((1, 1, 2), hr_cell(m), dtype=dt, device=dev), H, W)
        rx, _ = liif_units(grid.rx.T, cell, H, W)  # (m+1, 4), node-major
        ry, rel_cell = liif_units(grid.ry.T, cell, H, W)
        phase = self.phase(rel_cell)[0, 0]  # (K,)
        first, rest = self.imnet[0], list(self.imnet)[1:]
        w_cos, w_sin = first.weight[:, :K].T, first.weight[:, K:].T
        # the first layer's columns as (cos_k, sin_k) pairs, for band_fourier's layout
        w_pairs = first.weight.view(-1, 2, K).transpose(1, 2).reshape(-1, 2 * K).T
        widths = [first.out_features] + [
            layer.out_features for layer in rest if isinstance(layer, nn.Linear)
        ]
        tile = min(chunk, max(1, GRID_TILE_ELEMS // (4 * max(widths + [2 * K]))))
        run = TileMLP(rest, 4 * tile, widths, dt, dev)
        # contiguous buffers: SLEEF's cos / sin and the products run ~2x slower on the strided
        # layouts that broadcasting or a half of a (., 2K) basis would give them
        bufs = torch.empty(4, 4 * tile * K, dtype=dt, device=dev)
        argbuf, cosbuf, sinbuf = bufs[:3]
        gbuf = torch.empty(4 * tile, 4 * K, dtype=dt, device=dev)  # the gathered cell rows
        pairs = fourier_pairs(flat, K)  # the band path's amplitude layout
        out = q1_grid(state["lr"], m)
        for i0, i1, j0, j1, band in grid.tiles(tile):
            R, C = i1 - i0, j1 - j0
            n, shape = R * C * 4, (R, C, 4, K)
            wgt = grid.weights(i0, i1, j0, j1).permute(1, 2, 0)  # (R, C, 4)
            idx = grid.index(i0, i0 + 1 if band else i1, j0, j1).permute(1, 2, 0).reshape(-1)
            if band:
                cells, col = grid.band_cells(i0, j0, j1)
            for b in range(B):
                g = torch.index_select(  # band: one row
                    (pairs if band else flat)[b], 0, idx, out=gbuf[: idx.shape[0]]
                )
                amp, fx, fy = g.view(-1, C, 4, 4 * K).split([2 * K, K, K], dim=-1)
                h = run.input(n).view(n, -1)
                if band:
                    basis = self._band_basis(
                        flat[b], cells, col, amp, fx, phase, rx, ry, bufs, (i0, i1, j0, j1)
                    )
                    torch.addmm(first.bias, basis.view(n, 2 * K), w_pairs, out=h)
                else:
                    arg = torch.addcmul(phase, fx, rx[None, j0:j1, :, None])
                    arg = torch.addcmul(
                        arg,
                        fy.contiguous(),
                        ry[i0:i1, None, :, None],
                        out=argbuf[: n * K].view(shape),
                    ).mul_(math.pi)
                    cos = torch.cos(arg, out=cosbuf[: n * K].view(shape)).mul_(amp[..., :K])
                    sin = torch.sin(arg, out=sinbuf[: n * K].view(shape)).mul_(amp[..., K:])
                    # the first layer on [cos, sin] as its two halves: no strided (., 2K) basis
                    torch.addmm(first.bias, cos.view(n, K), w_cos, out=h)
                    h.addmm_(sin.view(n, K), w_sin)
                pred = run(h).view(R, C, 4)
                out[b, i0:i1, j0:j1] += (pred * wgt).sum(-1)
        return out

    def _band_basis(self, flat, cells, col, amp, fx, phase, rx, ry, bufs, tile):
        """amp * [cos, sin](pi (phase + fx rel_x + fy rel_y)) for a band tile (rows sharing their
        cells), (R, C, 4, K, 2): a = pi (phase + fx rel_x) per column (one band row), b = pi fy
        rel_y per (row, cell), combined by ``band_fourier``."""
        i0, i1, j0, j1 = tile
        K = self.n_freq
        C = fx.shape[1]
        a = torch.addcmul(phase, fx, rx[None, j0:j1, :, None]).mul_(math.pi)  # (1, C, 4, K)
        fy = flat[cells.reshape(-1), 3 * K :].view(2, -1, K)
        b = (math.pi * ry[i0:i1, [0, 2], None, None]) * fy  # (R, 2, X, K), rel_y of vy = 0, 1
        amp = amp.view(C, 4, K, 2)  # already (cos_k, sin_k) pairs
        return band_fourier(a[0], b.flatten(1, 2), col, amp, bufs.view(-1))
