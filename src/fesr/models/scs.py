"""Stochastic cosine similarity (SCS), eq. (10) of NH-CSR.

For every sample b of a batch of sampled HR points, draw T random groups of G points (without
replacement within a group), and take the cosine similarity between the group's predicted values
and its target values; SCS is the mean over the T draws and the B samples. The paper uses
T = G = H + 1 (H = 1/h: 33 for the 33 x 33 LR input); inspired by S3IM, which compares random
point groups with SSIM instead.

SCS is a similarity in [-1, 1], 1 when prediction and target are proportional on every group.
The paper writes the loss as ``L1 + lambda * L_scs`` with L_scs this similarity; a similarity must
be maximised, so we minimise ``L1 + lambda * (1 - SCS)``, whose SCS term is 0 at a perfect fit.
Cosine similarity is scale-invariant: it supervises the *pattern* of a group of points, the L1
term its values.

Forms (``form``): ``raw`` is eq. (10) as written, the cosine of the raw values. Here those values
are positive fields of similar size everywhere, so the raw cosine is close to 1 from the start and
its gradient small. ``centred`` removes each group's mean from prediction and target first: the
Pearson correlation of the group, which compares the variation within the group only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SCS_FORMS = ("raw", "centred")


def group_cosine_similarity(
    pred: torch.Tensor, target: torch.Tensor, index: torch.Tensor, form: str = "raw"
) -> torch.Tensor:
    """Mean cosine similarity over given point groups.

    pred, target: (B, Q) or (B, Q, 1); index: (B, T, G) point indices into Q. Returns a scalar:
    the mean over B and T of cos(pred[b, index[b, t]], target[b, index[b, t]]); with
    ``form="centred"`` each group's mean is removed first (its Pearson correlation).
    """
    if form not in SCS_FORMS:
        raise ValueError(f"SCS form '{form}'; expected one of {', '.join(SCS_FORMS)}")
    pred, target = _flat(pred), _flat(target)
    if pred.shape != target.shape:
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape"
        )
    B, T, G = index.shape
    flat = index.reshape(B, T * G)
    p = torch.gather(pred, 1, flat).view(B, T, G)
    t = torch.gather(target, 1, flat).view(B, T, G)
    if form == "centred":
        p = p - p.mean(-1, keepdim=True)
        t = t - t.mean(-1, keepdim=True)
    return F.cosine_similarity(p, t, dim=-1, eps=1e-8).mean()


def draw_groups(
    B: int, Q: int, draws: int, group: int, generator: torch.Generator | None = None, device=None
) -> torch.Tensor:
    """(B, draws, group) random point indices, distinct within each group (group <= Q)."""
    if group > Q:
        raise ValueError(f"SCS group size {group} exceeds the {Q} sampled points")
    keys = torch.rand(B, draws, Q, generator=generator)
    return keys.argsort(dim=-1)[..., :group].to(device)


def stochastic_cosine_similarity(
    pred: torch.Tensor,
    target: torch.Tensor,
    draws: int,
    group: int,
    generator: torch.Generator | None = None,
    form: str = "raw",
) -> torch.Tensor:
    """SCS of eq. (10): random groups of ``group`` points (at most all Q points), ``draws`` times.

    ``form``: ``raw`` (eq. 10) or ``centred`` (group means removed), see the module docstring.
    The indices are drawn on the CPU with ``generator`` (so a seeded generator gives the same
    groups on any device), then moved to the data's device.
    """
    pred = _flat(pred)
    B, Q = pred.shape
    index = draw_groups(B, Q, draws, min(group, Q), generator, device=pred.device)
    return group_cosine_similarity(pred, target, index, form)


def _flat(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 3 and x.shape[-1] == 1:
        return x[..., 0]
    if x.dim() != 2:
        raise ValueError(f"expected values of shape (B, Q) or (B, Q, 1), got {tuple(x.shape)}")
    return x
