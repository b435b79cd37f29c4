"""A small conditional normalizing flow on short vectors (LINF's flow model, paper sec. 3.1).

Direction: ``forward`` maps data x (a local texture patch, here the residual to the Q1
interpolant) to the latent z and returns log|det dz/dx|; ``inverse`` maps z back to x.
Each of the ``L`` layers is

    h <- W h + b                 (``InvertibleLinear``: a dense d x d matrix, log-det by slogdet)
    h <- a(c) * h + phi(c)       (``AffineInjector``: a = sigmoid(s(c) + 2) + 1e-4, SRFlow's form)

where ``c`` is the per-query conditioning produced outside the flow. For a 1 x 1 patch
(d = 1, the arbitrary-scale setting of the paper) W is a single scalar, so the dense layer is a
learned global scale and shift and its log-det is log|w|; the flow is then a composition of
monotone affine maps, i.e. a conditional Gaussian in disguise, exactly as in the paper's
pixel-based model. Nothing here assumes d = 1; the tests exercise d > 1 as well.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn


class InvertibleLinear(nn.Module):
    """h -> W h + b with a dense d x d W, initialised to a random rotation (Glow)."""

    def __init__(self, dim: int):
        super().__init__()
        if dim == 1:
            w = torch.ones(1, 1)
        else:
            w, _ = torch.linalg.qr(torch.randn(dim, dim))
        self.weight = nn.Parameter(w)
        self.bias = nn.Parameter(torch.zeros(dim))

    def logdet(self) -> torch.Tensor:
        return torch.linalg.slogdet(self.weight)[1]

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.weight.T + self.bias

    def inverse(self, h: torch.Tensor) -> torch.Tensor:
        # Solve instead of forming W^-1: d is tiny, but this stays accurate if W drifts.
        rhs = (h - self.bias).reshape(-1, h.shape[-1]).T
        return torch.linalg.solve(self.weight, rhs).T.reshape(h.shape)


def injector_scale(raw: torch.Tensor) -> torch.Tensor:
    """SRFlow's bounded scale: in (1e-4, 1 + 1e-4), so an injector never blows up."""
    return torch.sigmoid(raw + 2.0) + 1e-4


class ConditionalFlow(nn.Module):
    """``layers`` x (InvertibleLinear, AffineInjector) on d-dim vectors, base N(0, I).

    The injector parameters come from outside: ``cond`` has shape (..., layers, 2, d) holding
    (raw scale s, shift phi) per layer. ``cond_dim`` says how many numbers to produce.
    """

    def __init__(self, dim: int, layers: int):
        super().__init__()
        if dim < 1 or layers < 1:
            raise ValueError(f"flow needs dim >= 1 and layers >= 1, got dim={dim}, layers={layers}")
        self.dim = dim
        self.layers = layers
        self.linears = nn.ModuleList([InvertibleLinear(dim) for _ in range(layers)])

    @property
    def cond_dim(self) -> int:
        return self.layers * 2 * self.dim

    def _split(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = cond.reshape(*cond.shape[:-1], self.layers, 2, self.dim)
        return injector_scale(c[..., 0, :]), c[..., 1, :]

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (..., d) -> (z (..., d), log|det dz/dx| (...))."""
        scale, shift = self._split(cond)
        h = x
        logdet = torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)
        for k, lin in enumerate(self.linears):
            h = lin(h)
            h = scale[..., k, :] * h + shift[..., k, :]
            logdet = logdet + lin.logdet() + torch.log(scale[..., k, :]).sum(-1)
        return h, logdet

    def inverse(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """z (..., d) -> x (..., d), the exact inverse of ``forward``."""
        scale, shift = self._split(cond)
        h = z
        for k in reversed(range(self.layers)):
            h = (h - shift[..., k, :]) / scale[..., k, :]
            h = self.linears[k].inverse(h)
        return h

    def nll(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """-log p(x | cond) per vector (...), in nats, divided by d (per value)."""
        z, logdet = self.forward(x, cond)
        log_pz = -0.5 * (z**2).sum(-1) - 0.5 * self.dim * math.log(2.0 * math.pi)
        return -(log_pz + logdet) / self.dim
