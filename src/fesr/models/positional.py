"""Encodings of relative coordinates (Table II of NH-CSR): plain | sinusoid | ipe | lte | gabor.

Each encoding maps the offset ``rel`` (..., 2) of a query from a feature cell centre, and the
query's cell size ``cell`` (..., 2), both in units where the attention window spans [-1, 1]
(see ``fesr.models.nhcsr``), to a vector (..., out_dim). NH-CSR feeds that vector both to the
decoder's value path (eqs. 7, 9) and, through a linear map, to one attention bias per head (eq. 8).

* ``plain``: the raw offset, no parameters (the paper: "plain encoding without learnable
  parameters").
* ``sinusoid``: two SIREN layers ``sin(omega0 (W x + b))`` with SIREN's initialisation [38] and
  SIREN's first-layer omega0 = 30 (``SIREN_OMEGA0``; the config's ``omega0`` is the Gabor's).
* ``ipe``: mip-NeRF's integrated positional encoding [35]: sin/cos of the offset at fixed
  log-spaced frequencies, each attenuated by ``exp(-f^2 var / 2)``, var = cell^2 / 12 the variance
  of a uniform footprint of the query's cell. No parameters.
* ``lte``: LTE's local texture estimator [56]: ``amp_j * [cos, sin](pi (<f_j, x> + p_j(cell)))``,
  the amplitudes amp_j and frequencies f_j estimated from the feature map by a 3x3 convolution
  (LTE's amplitude and frequency estimators; read at the neighbour's cell, as LTE reads them at
  the sampled latent), the phase p_j a bias-free linear map of the cell. It is the only encoding
  that depends on the features as well as the offset: ``local_channels`` > 0, ``maps(feat)``
  gives the per-cell estimates, and ``forward`` takes them, gathered per neighbour, as ``local``.
* ``gabor`` (NH-CSR, eq. 7): two layers of WIRE's real Gabor wavelet
  ``cos(omega0 (W1 x + b1)) * exp(-(s0 (W2 x + b2))^2)``, PyTorch's default Linear initialisation
  as in WIRE. With s0 = 0 it is the cosine (SIREN-like) case, with omega0 = 0 the Gaussian case.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

PE_NAMES = ("plain", "sinusoid", "ipe", "lte", "gabor")
SIREN_OMEGA0 = 30.0  # SIREN's first-layer frequency factor


def gabor(u: torch.Tensor, v: torch.Tensor, omega0: float, s0: float) -> torch.Tensor:
    """WIRE's real Gabor wavelet cos(omega0 u) exp(-(s0 v)^2); the paper's phi(x) is u = v = x."""
    return torch.cos(omega0 * u) * torch.exp(torch.square(v) * (-s0 * s0))


class PlainEncoding(nn.Module):
    def __init__(self):
        super().__init__()
        self.out_dim = 2

    def forward(self, rel, cell, local=None):
        return rel


class GaborLayer(nn.Module):
    """One real Gabor layer: two learnable linear maps u = W1 x + b1 (carrier) and v = W2 x + b2
    (envelope), stored as one Linear of twice the width so both cost one matrix product."""

    def __init__(self, in_dim: int, out_dim: int, omega0: float, s0: float):
        super().__init__()
        self.linear = nn.Linear(in_dim, 2 * out_dim)
        with (
            torch.no_grad()
        ):  # each half initialised as its own nn.Linear(in_dim, out_dim) would be
            bound = 1.0 / math.sqrt(in_dim)
            self.linear.weight.uniform_(-bound, bound)
            self.linear.bias.uniform_(-bound, bound)
        self.omega0, self.s0 = float(omega0), float(s0)

    def forward(self, x):
        # gabor(u, v, omega0, s0) with omega0 and s0 folded into the (small) weights instead of
        # multiplying the (large) outputs: the same values and gradients, two passes fewer.
        scale = torch.cat(
            [
                self.linear.weight.new_full((self.linear.out_features // 2, 1), f)
                for f in (self.omega0, self.s0)
            ]
        )
        u, v = F.linear(x, self.linear.weight * scale, self.linear.bias * scale[:, 0]).chunk(2, -1)
        return torch.cos(u) * torch.exp(torch.square(v).neg_())


class GaborEncoding(nn.Module):
    def __init__(self, dim: int, omega0: float, s0: float):
        super().__init__()
        self.layers = nn.Sequential(
            GaborLayer(2, dim, omega0, s0), GaborLayer(dim, dim, omega0, s0)
        )
        self.out_dim = dim

    def forward(self, rel, cell, local=None):
        return self.layers(rel)


class SineLayer(nn.Module):
    """SIREN layer sin(omega0 (W x + b)) with SIREN's uniform initialisation."""

    def __init__(self, in_dim: int, out_dim: int, omega0: float, first: bool):
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)
        self.omega0 = float(omega0)
        bound = 1.0 / in_dim if first else math.sqrt(6.0 / in_dim) / max(self.omega0, 1e-6)
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound)

    def forward(self, x):
        return torch.sin(self.omega0 * self.linear(x))


class SinusoidEncoding(nn.Module):
    def __init__(self, dim: int, omega0: float):
        super().__init__()
        self.layers = nn.Sequential(
            SineLayer(2, dim, omega0, True), SineLayer(dim, dim, omega0, False)
        )
        self.out_dim = dim

    def forward(self, rel, cell, local=None):
        return self.layers(rel)


class IntegratedEncoding(nn.Module):
    """mip-NeRF IPE with ``dim // 4`` frequencies pi * 2^k, k evenly spaced in [0, max_log2]."""

    def __init__(self, dim: int, max_log2: float = 6.0):
        super().__init__()
        n = max(1, dim // 4)
        self.register_buffer(
            "freqs", math.pi * 2.0 ** torch.linspace(0.0, max_log2, n), persistent=False
        )
        self.out_dim = 4 * n

    def forward(self, rel, cell, local=None):
        cell = cell.expand_as(rel)
        arg = rel.unsqueeze(-1) * self.freqs  # (..., 2, n)
        var = (cell**2 / 12.0).unsqueeze(-1)  # uniform footprint of the query's cell
        damp = torch.exp(-0.5 * var * self.freqs**2)
        enc = torch.cat([torch.sin(arg) * damp, torch.cos(arg) * damp], dim=-1)
        return enc.flatten(-2)


class LTEEncoding(nn.Module):
    """LTE's estimator: amp * [cos, sin](pi (<f_j, rel> + phase_j(cell))), amp and f from a 3x3
    conv of the features (``maps``), the phase a bias-free linear map of the cell."""

    def __init__(self, dim: int, feat_dim: int):
        super().__init__()
        n = max(1, dim // 2)
        self.n = n
        # channels [amplitude (2n: cos and sin terms), fx (n), fy (n)], as LTE's two convs
        self.estimator = nn.Conv2d(feat_dim, 4 * n, 3, padding=1)
        self.phase = nn.Linear(2, n, bias=False)
        self.local_channels = 4 * n
        self.out_dim = 2 * n

    def maps(self, feat: torch.Tensor) -> torch.Tensor:
        return self.estimator(feat)

    def forward(self, rel, cell, local=None):
        if local is None:
            raise ValueError("the lte encoding needs the local estimates (maps(feat) at the cell)")
        amp, fx, fy = local.split([2 * self.n, self.n, self.n], dim=-1)
        arg = torch.addcmul(self.phase(cell).expand_as(fx), fx, rel[..., :1])
        arg = torch.addcmul(arg, fy, rel[..., 1:]).mul_(math.pi)
        return amp * torch.cat([torch.cos(arg), torch.sin(arg)], dim=-1)


def build_positional(
    name: str, dim: int, omega0: float = 8.0, s0: float = 6.0, feat_dim: int | None = None
) -> nn.Module:
    """Encoding ``name`` (one of PE_NAMES) of width about ``dim``; ``.out_dim`` is exact.

    ``omega0`` and ``s0`` are the Gabor's; ``feat_dim`` (the feature channels) is needed by lte.
    """
    if name == "plain":
        return PlainEncoding()
    if name == "sinusoid":
        return SinusoidEncoding(dim, SIREN_OMEGA0)
    if name == "ipe":
        return IntegratedEncoding(dim)
    if name == "lte":
        if feat_dim is None:
            raise ValueError("the lte encoding needs feat_dim (the feature map's channels)")
        return LTEEncoding(dim, feat_dim)
    if name == "gabor":
        return GaborEncoding(dim, omega0, s0)
    raise ValueError(f"unknown positional encoding '{name}'; expected one of {', '.join(PE_NAMES)}")
