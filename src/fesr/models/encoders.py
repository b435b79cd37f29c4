"""Feature encoders: EDSR-baseline, RDN and SwinIR without their upsamplers.

All map a (B, C_in, E, E) image (C_in = 2: the interpolated LR field and the coefficient) to
(B, out_dim, E, E) features at the same resolution; no pretrained weights (SPEC 3).
"""

from __future__ import annotations

import torch
import torch.nn as nn


def conv3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1)


class ResBlock(nn.Module):
    def __init__(self, ch: int, res_scale: float = 1.0):
        super().__init__()
        self.body = nn.Sequential(conv3(ch, ch), nn.ReLU(inplace=True), conv3(ch, ch))
        self.res_scale = res_scale

    def forward(self, x):
        return x + self.body(x) * self.res_scale


class EDSRBaseline(nn.Module):
    """EDSR-baseline (16 residual blocks, 64 channels at paper size), global skip, no upsampler."""

    def __init__(
        self, in_channels: int, n_resblocks: int = 16, n_feats: int = 64, res_scale: float = 1.0
    ):
        super().__init__()
        self.head = conv3(in_channels, n_feats)
        self.body = nn.Sequential(
            *[ResBlock(n_feats, res_scale) for _ in range(n_resblocks)], conv3(n_feats, n_feats)
        )
        self.out_dim = n_feats

    def forward(self, x):
        x = self.head(x)
        return x + self.body(x)


class DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int):
        super().__init__()
        self.conv = nn.Sequential(conv3(cin, growth), nn.ReLU(inplace=True))

    def forward(self, x):
        return torch.cat([x, self.conv(x)], dim=1)


class RDB(nn.Module):
    """Residual dense block: C densely connected convs, 1x1 local fusion, local residual."""

    def __init__(self, g0: int, growth: int, n_layers: int):
        super().__init__()
        self.layers = nn.Sequential(*[DenseLayer(g0 + i * growth, growth) for i in range(n_layers)])
        self.fuse = nn.Conv2d(g0 + n_layers * growth, g0, 1)

    def forward(self, x):
        return x + self.fuse(self.layers(x))


class RDN(nn.Module):
    """Residual dense network (config B at paper size: D=16 blocks, C=8 layers, G=64, G0=64)."""

    def __init__(self, in_channels: int, G0: int = 64, D: int = 16, C: int = 8, G: int = 64):
        super().__init__()
        self.sfe1 = conv3(in_channels, G0)
        self.sfe2 = conv3(G0, G0)
        self.blocks = nn.ModuleList([RDB(G0, G, C) for _ in range(D)])
        self.gff = nn.Sequential(nn.Conv2d(D * G0, G0, 1), conv3(G0, G0))
        self.out_dim = G0

    def forward(self, x):
        f1 = self.sfe1(x)
        h = self.sfe2(f1)
        outs = []
        for block in self.blocks:
            h = block(h)
            outs.append(h)
        return f1 + self.gff(torch.cat(outs, dim=1))


def build_encoder(name: str, cfg: dict, in_channels: int) -> nn.Module:
    """Encoder ``name`` ('edsr-baseline' | 'rdn' | 'swinir') with hyper-parameters ``cfg``."""
    cfg = dict(cfg or {})
    if name == "edsr-baseline":
        return EDSRBaseline(in_channels, **cfg)
    if name == "rdn":
        return RDN(in_channels, **cfg)
    if name == "swinir":
        from fesr.models.swinir import SwinIREncoder

        return SwinIREncoder(in_channels, **cfg)
    raise ValueError(f"unknown encoder '{name}'; expected 'edsr-baseline', 'rdn' or 'swinir'")
