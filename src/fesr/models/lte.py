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
from fesr.models.liif import liif_units
from fesr.models.local import MLP, flatten_map, four_neighbours, gather
from fesr.models.registry import register


@register("lte")
class LTE(SRModel):
    def __init__(self, cfg: dict):
        super().__init__(cfg)
        if not cfg.get("encoder"):
            raise ValueError(f"lte: config needs an 'encoder', got {cfg.get('encoder')!r}")
        self.encoder = build_encoder(cfg["encoder"], cfg.get("encoder_cfg"), cfg["in_channels"])
        C = self.encoder.out_dim
        self.n_freq = int(cfg.get("n_freq", 128))
        self.amplitude = nn.Conv2d(C, 2 * self.n_freq, 3, padding=1)
        self.frequency = nn.Conv2d(C, 2 * self.n_freq, 3, padding=1)
        self.phase = nn.Linear(2, self.n_freq, bias=False)
        self.imnet = MLP(2 * self.n_freq, cfg.get("hidden", [256, 256, 256]), 1)
        scales = cfg.get("train_scales") or []
        if not scales:
            raise ValueError("lte: config needs 'train_scales' (for the test-time cell clipping)")
        # smallest cell seen in training, in network units
        self.min_cell = hr_cell(int(cfg["lr_n"]) * max(float(s) for s in scales))

    def encode(self, inputs: dict):
        feat = self.encoder(inputs["image"])
        freq = self.frequency(feat)  # channels (fx_1, fy_1, fx_2, fy_2, ...), LTE's layout
        # stored as [amplitude, all fx, all fy] so a query needs no (Q, K, 2) tensor
        maps = torch.cat([self.amplitude(feat), freq[:, 0::2], freq[:, 1::2]], dim=1)
        return {"flat": flatten_map(maps), "size": tuple(feat.shape[-2:]), "lr": inputs["lr"]}

    def query_encoded(self, state, coords: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        H, W = state["size"]
        K = self.n_freq
        cell = cell.clamp(min=self.min_cell)
        nb = four_neighbours(coords, H, W)
        rel, rel_cell = liif_units(nb.rel, cell, H, W)
        phase = self.phase(rel_cell)  # (B, Q, K)
        out = sample_nodal(state["lr"], coords, "bilinear")
        for k in range(4):
            amp, fx, fy = gather(state["flat"], nb.index[..., k]).split([2 * K, K, K], dim=-1)
            arg = torch.addcmul(phase, fx, rel[:, :, k, :1])
            arg = torch.addcmul(arg, fy, rel[:, :, k, 1:]).mul_(math.pi)
            pred = self.imnet(amp * torch.cat([torch.cos(arg), torch.sin(arg)], dim=-1))
            out = out + pred * nb.weight[..., k : k + 1]
        return out
