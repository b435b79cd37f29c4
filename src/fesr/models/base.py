"""The interface every SR method implements.

Tensors (all on the normalised value scale of SPEC 2):

* ``inputs``: dict with ``"lr"`` (B, 1, n+1, n+1), the LR nodal field X (vertex-centred), and
  ``"image"`` (B, C, E, E), the encoder input (C = 2: d(X) and the encoded coefficient; C = 1
  without the coefficient). Built by ``fesr.data.conditioning``.
* ``coords``: (B, Q, 2) query points in [-1, 1], ordered (x, y) (see ``fesr.coords``).
* ``cell``: (B, Q, 2) the HR cell size in network units, 2 / (n * alpha) per axis.
* values: (B, Q, 1).

A method implements ``encode`` (everything computed once per input: encoder features, unfolded
maps) and ``query_encoded`` (the per-query part). ``predict`` then evaluates a whole
(n*alpha+1)^2 node grid in chunks with bounded memory, the features computed once, under
``torch.inference_mode``. A method may add ``query_grid``, a fast path for that grid only (offset
terms computed once per distinct offset, see ``fesr.models.local.grid_axis``), equal to the
chunked ``query_encoded`` loop (``tests/test_fast_predict.py``). Methods whose output is not a
per-query function (SRNO's global attention, LINF's sampling, IDM's diffusion) override
``predict``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from fesr.coords import hr_cell, node_coords


class SRModel(nn.Module):
    """Base class: a continuous SR model f(X, A, alpha)."""

    method: str = "?"

    def __init__(self, cfg: dict):
        super().__init__()
        self.cfg = dict(cfg)
        # Whether the encoder input carries the coefficient channel (the Fig. 10 ablation).
        self.uses_coefficient = bool(cfg["coefficient"])

    # -- the two parts a method implements ---------------------------------------------------
    def encode(self, inputs: dict):
        """Everything that does not depend on the query points; reused for every chunk."""
        raise NotImplementedError

    def query_encoded(self, state, coords: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """Values (B, Q, 1) at coords (B, Q, 2) from the state returned by ``encode``."""
        raise NotImplementedError

    # -- derived -------------------------------------------------------------------------------
    def query(self, inputs: dict, coords: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        return self.query_encoded(self.encode(inputs), coords, cell)

    def training_loss(self, batch: dict, step: int = 0) -> tuple[torch.Tensor, dict]:
        """Loss on a training batch (keys: lr, image, coords, cell, target (B, Q, 1), scale).

        Default: plain L1, LIIF practice. Returns (loss, {name: float}) for the history.
        """
        pred = self.query(batch, batch["coords"], batch["cell"])
        loss = F.l1_loss(pred, batch["target"])
        return loss, {"l1": float(loss.detach())}

    @torch.inference_mode()
    def predict(self, inputs: dict, alpha: float, chunk: int = 65536, state=None) -> torch.Tensor:
        """The whole field on the HR node grid, shape (B, m+1, m+1), m = round(n * alpha).

        Non-integer alpha works: the HR mesh has m = round(n * alpha) cells per side.
        ``state``: the output of ``self.encode(inputs)`` when the caller already has it (the
        evaluation stage encodes a sample once and predicts every scale from it).
        """
        lr = inputs["lr"]
        B, n = lr.shape[0], lr.shape[-1] - 1
        m = hr_size(n, alpha)
        state = self.encode(inputs) if state is None else state
        fast = self.query_grid(state, m, chunk)
        if fast is not None:
            return fast
        coords_all = node_coords(m, device=lr.device, dtype=lr.dtype)
        out = torch.empty(B, coords_all.shape[0], device=lr.device, dtype=lr.dtype)
        for start in range(0, coords_all.shape[0], chunk):
            c = coords_all[start : start + chunk].unsqueeze(0).expand(B, -1, -1)
            cell = torch.full_like(c, hr_cell(m))
            out[:, start : start + c.shape[1]] = self.query_encoded(state, c, cell)[..., 0]
        return out.reshape(B, m + 1, m + 1)

    def query_grid(self, state, m: int, chunk: int) -> torch.Tensor | None:
        """Optional fast path of ``predict``: the (B, m+1, m+1) field on the node grid
        of an m x m mesh from ``encode``'s state, or None (the default) for the general chunked
        ``query_encoded`` loop. It must equal that loop (``tests/test_fast_predict.py``); the
        grid's structure (``fesr.models.local.grid_axis``) is what makes it cheaper. ``chunk``
        bounds the nodes per pass. Called under ``torch.inference_mode``."""
        return None


def hr_size(n: int, alpha: float) -> int:
    """Cells per side of the HR mesh at scale alpha (n * alpha, rounded for non-integer alpha)."""
    if alpha <= 0:
        raise ValueError(f"scale alpha must be > 0, got {alpha}")
    return max(1, int(round(n * alpha)))
