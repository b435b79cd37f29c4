"""Multi-layer perceptrons of the local-implicit decoders.

``MLP`` is the plain stack every method's decoder is built from (its parameter names, ``0.weight``
and so on, are those of ``nn.Sequential``). ``TileMLP`` runs the same layers on row blocks of a
grid path's tiles into buffers allocated once, so a tile costs no fresh page-faulted memory.
"""

from __future__ import annotations

import torch
import torch.nn as nn


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
