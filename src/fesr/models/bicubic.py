"""Bicubic interpolation of the LR nodal field: the no-learning baseline (SPEC 3).

The LR field X is vertex-centred (node 0 at -1, node n at +1), so it is sampled with
``fesr.coords.sample_nodal(..., "bicubic")``: ``grid_sample`` with ``align_corners=True``.
PyTorch's bicubic is Keys' cubic convolution with a = -0.75 (as OpenCV), with the border
replicated: it passes through the nodes exactly and reproduces constants, but with a = -0.75
not even linear fields (only a = -0.5 reproduces polynomials up to degree 2), so between the
nodes its error on a smooth field is first order in h. We keep PyTorch's kernel because it is
what "bicubic" means in the SR literature the baselines come from; ``tests/test_bicubic.py``
checks it against an independent Keys-kernel implementation. The coefficient and the encoder input
are not used, and there are no parameters: the model needs no training and its checkpoint
holds only the config.
"""

from __future__ import annotations

import torch

from fesr.coords import sample_nodal
from fesr.models.base import SRModel
from fesr.models.registry import register


@register("bicubic")
class Bicubic(SRModel):
    """f(X, A, alpha)(x) = bicubic interpolant of X at x."""

    def encode(self, inputs: dict):
        return inputs["lr"]

    def query_encoded(self, state, coords: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        return sample_nodal(state, coords, "bicubic")
