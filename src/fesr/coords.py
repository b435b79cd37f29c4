"""The one place that fixes the array and coordinate conventions of SPEC 1.

* Nodal field on an n x n mesh: array ``u[i, j] = u(x_j, y_i)``, ``x_j = j / n``, ``y_i = i / n``
  (row index is y, increasing upward). Vertex-centred: corners are nodes.
* Coefficient / feature map of size E x E: cell-centred, pixel (i, j) covers
  ``[j/E, (j+1)/E] x [i/E, (i+1)/E]``; its centre in network coordinates is ``2 (j + 0.5) / E - 1``.
* Network coordinates ``c = 2 x - 1`` in [-1, 1]. Query tensors are ``(..., 2)`` with the last axis
  ordered ``(x, y)``: the order of ``torch.nn.functional.grid_sample``, so no flip is ever needed.

Sampling a nodal array uses ``align_corners=True`` (node 0 sits at -1, node n at +1); sampling a
cell-centred map uses ``align_corners=False`` (pixel edges at -1 and +1). Mixing the two is the
classic bug here, and ``tests/test_coords.py`` guards it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def node_positions(n: int) -> np.ndarray:
    """Physical positions j / n of the n + 1 nodes of a uniform mesh on [0, 1]."""
    return np.arange(n + 1, dtype=np.float64) / n


def cell_centre_positions(E: int) -> np.ndarray:
    """Physical positions (j + 0.5) / E of the E cell centres on [0, 1]."""
    return (np.arange(E, dtype=np.float64) + 0.5) / E


def to_network(x):
    """Physical [0, 1] -> network [-1, 1]."""
    return 2.0 * x - 1.0


def node_coords(n: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Network coordinates of every node of an n x n mesh, shape ((n+1)^2, 2), ordered (x, y).

    Row-major over (i, j): reshaping predictions to (n+1, n+1) gives ``u[i, j]``.
    """
    t = torch.as_tensor(to_network(node_positions(n)), dtype=dtype, device=device)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([xx, yy], dim=-1).reshape(-1, 2)


def cell_centre_coords(E: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Network coordinates of the centres of an E x E map, shape (E, E, 2), ordered (x, y)."""
    t = torch.as_tensor(to_network(cell_centre_positions(E)), dtype=dtype, device=device)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([xx, yy], dim=-1)


def hr_cell(n: int) -> float:
    """Side of one cell of an n x n mesh in network units (LIIF's 'cell' input)."""
    return 2.0 / n


def sample_nodal(field: torch.Tensor, coords: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Interpolate a vertex-centred nodal field (B, C, n+1, n+1) at coords (B, Q, 2) -> (B, Q, C).

    ``mode='bilinear'`` is exactly the Q1 finite element interpolant.
    """
    grid = coords.unsqueeze(1)  # (B, 1, Q, 2)
    out = F.grid_sample(field, grid, mode=mode, padding_mode="border", align_corners=True)
    return out[:, :, 0, :].permute(0, 2, 1)


def sample_cells(feat: torch.Tensor, coords: torch.Tensor, mode: str = "nearest") -> torch.Tensor:
    """Sample a cell-centred map (B, C, E, E) at coords (B, Q, 2) -> (B, Q, C)."""
    grid = coords.unsqueeze(1)
    out = F.grid_sample(feat, grid, mode=mode, padding_mode="border", align_corners=False)
    return out[:, :, 0, :].permute(0, 2, 1)


def nodal_to_cell_centres(field: torch.Tensor, E: int, mode: str = "bicubic") -> torch.Tensor:
    """Interpolate a nodal field (B, C, n+1, n+1) onto the E x E cell centres -> (B, C, E, E).

    This is SPEC 2's d(X): the LR field seen on the coefficient's pixel grid.
    """
    B = field.shape[0]
    centres = cell_centre_coords(E, device=field.device, dtype=field.dtype).reshape(1, -1, 2)
    vals = sample_nodal(field, centres.expand(B, -1, -1), mode=mode)  # (B, E*E, C)
    return vals.permute(0, 2, 1).reshape(B, -1, E, E)
