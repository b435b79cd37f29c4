"""Encodings of relative coordinates (Table II of NH-CSR): plain | sinusoid | ipe | lte | gabor.

Each encoding maps the offset ``rel`` (..., 2) of a query from a feature cell centre, and the
query's cell size ``cell`` (..., 2), both in units where the attention window spans [-1, 1]
(see ``fesr.models.nhcsr``), to a vector (..., out_dim). A method turns that vector into what it
needs (NH-CSR: a linear map to one attention bias per head, eq. 8).

* ``plain``: the raw offset, no parameters (the paper: "plain encoding without learnable
  parameters"); the bias is then a linear function of the offset.
* ``sinusoid``: two SIREN layers ``sin(omega0 (W x + b))`` with SIREN's initialisation [38].
* ``ipe``: mip-NeRF's integrated positional encoding [35]: sin/cos of the offset at fixed
  log-spaced frequencies, each attenuated by ``exp(-f^2 var / 2)``, var = cell^2 / 12 the variance
  of a uniform footprint of the query's cell. No parameters.
* ``lte``: LTE-style [56]: ``cos/sin(pi (<f_j, x> + p_j(cell)))`` with learned frequencies f_j and
  a phase from a bias-free linear map of the cell. LTE estimates its frequencies from the feature
  map; here they are global parameters, because the encoding must depend on position only.
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


def gabor(u: torch.Tensor, v: torch.Tensor, omega0: float, s0: float) -> torch.Tensor:
    """WIRE's real Gabor wavelet cos(omega0 u) exp(-(s0 v)^2); the paper's phi(x) is u = v = x."""
    return torch.cos(omega0 * u) * torch.exp(torch.square(v) * (-s0 * s0))


class PlainEncoding(nn.Module):
    def __init__(self):
        super().__init__()
        self.out_dim = 2

    def forward(self, rel, cell):
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

    def forward(self, rel, cell):
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

    def forward(self, rel, cell):
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

    def forward(self, rel, cell):
        cell = cell.expand_as(rel)
        arg = rel.unsqueeze(-1) * self.freqs  # (..., 2, n)
        var = (cell**2 / 12.0).unsqueeze(-1)  # uniform footprint of the query's cell
        damp = torch.exp(-0.5 * var * self.freqs**2)
        enc = torch.cat([torch.sin(arg) * damp, torch.cos(arg) * damp], dim=-1)
        return enc.flatten(-2)


class LTEEncoding(nn.Module):
    """cos/sin(pi (<f_j, rel> + phase_j(cell))): f_j learned (init N(0, 3^2)), phase linear."""

    def __init__(self, dim: int):
        super().__init__()
        n = max(1, dim // 2)
        self.freq = nn.Parameter(torch.randn(n, 2) * 3.0)
        self.phase = nn.Linear(2, n, bias=False)
        self.out_dim = 2 * n

    def forward(self, rel, cell):
        arg = math.pi * (rel @ self.freq.t() + self.phase(cell))
        return torch.cat([torch.cos(arg), torch.sin(arg)], dim=-1)


def build_positional(name: str, dim: int, omega0: float = 8.0, s0: float = 6.0) -> nn.Module:
    """Encoding ``name`` (one of PE_NAMES) of width about ``dim``; ``.out_dim`` is exact."""
    if name == "plain":
        return PlainEncoding()
    if name == "sinusoid":
        return SinusoidEncoding(dim, omega0)
    if name == "ipe":
        return IntegratedEncoding(dim)
    if name == "lte":
        return LTEEncoding(dim)
    if name == "gabor":
        return GaborEncoding(dim, omega0, s0)
    raise ValueError(f"unknown positional encoding '{name}'; expected one of {', '.join(PE_NAMES)}")
