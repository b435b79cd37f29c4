"""The element-gradient training term: energy-aware losses on sampled HR elements.

The energy norm of FE theory weights gradients, which an L1 loss on nodal values does not see. The
term here is computed on a few random HR elements per sample (``fesr.data.sampling``,
``elements=M``): the model is queried at their 4 corner nodes, and the Q1 element gradient of
prediction and target is compared.

On one square of side h with corner values a (0,0), b (1,0), c (1,1), d (0,1) (in units of h), the
bilinear v has d/dx v linear in y between p/h and q/h, p = b - a, q = c - d, so

    int_T |grad v|^2 = ((p^2 + pq + q^2) + (r^2 + rs + s^2)) / 3,   r = d - a, s = c - b,

independent of h in 2D (``fesr.fem.q1_grid.element_gradient_sq`` on a whole grid). The loss is

    G = mean over sampled elements T of  w_T int_T |grad e|^2 / h^2,   e = prediction - target,

with w_T = 1 (``h1``) or the coefficient on T (``energy``). Dividing by the element area h^2 makes
G the mean of w |grad e|^2 over the (patch) domain: an unbiased estimate of
|e|_{1,A}^2 / |patch| whatever the scale, so batches at 2x and at 16x weigh alike. It is squared,
not L1: its expectation is then exactly the squared (A-weighted) H1-seminorm of the error, the
numerator of ``rel_h1`` / ``rel_energy`` (``fesr.evaluate.metrics``); an L1 of element gradients
would estimate another norm (W^{1,1}). The coefficient enters as it is (values in {1, 100}), so the
``energy`` term is about 50x the ``h1`` term for the same error: the weight is set per mode
(config ``physics_loss``).

Loss modes (set by a model name's ``h1``/``energy`` token, ``fesr.model_names``): ``l1`` is the
method's own loss (``training_loss``: plain L1 for most, L1 + SCS for NH-CSR, NLL + L1 for LINF);
``l1+h1`` and ``l1+energy`` add ``weight * G``. The term needs a per-query model (the output at a
point depends on that point only), so that querying the corners apart from the nodes changes
nothing: SRNO's attention is global over the query set, IDM is a diffusion on the whole field,
bicubic learns nothing; they refuse it (``check_element_loss``).

``training_loss_with_elements`` runs the method's own loss and the corner queries on one encoding:
``shared_encoding`` makes ``model.encode(batch)`` run once for the step (same features, one
encoder cost), so the extra cost of the term is the queries alone.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

LOSS_MODES = ("l1", "l1+h1", "l1+energy")
DEFAULT_LOSS_MODE = "l1"
# Methods whose output at a query point depends on that point alone (see the module docstring).
PER_QUERY_METHODS = frozenset({"metasr", "liif", "lte", "lit", "clit", "nhcsr", "linf"})
TERM_NAMES = {"l1+h1": "h1", "l1+energy": "energy"}  # the logged name of the term per mode


def check_loss_mode(mode) -> str:
    if not isinstance(mode, str) or mode not in LOSS_MODES:
        raise ValueError(f"loss must be one of {', '.join(LOSS_MODES)}, got {mode!r}")
    return mode


def check_element_loss(method: str, mode: str, weight, elements: int) -> None:
    """Refuse a gradient term that cannot be computed as stated: a method that is not per-query,
    a negative or non-finite weight, or no elements to compute it on."""
    if check_loss_mode(mode) == "l1":
        return
    if method not in PER_QUERY_METHODS:
        methods = ", ".join(sorted(PER_QUERY_METHODS))
        raise ValueError(
            f"loss '{mode}' needs a per-query method ({methods}); method '{method}' is not one"
        )
    w = float(weight)
    if not (w >= 0 and w < float("inf")):
        raise ValueError(f"physics_loss weight must be finite and >= 0, got {weight!r}")
    if int(elements) < 1:
        raise ValueError(
            f"loss '{mode}' needs sampled elements (physics_loss.elements >= 1), got {elements!r}"
        )


def q1_element_gradient_sq(corners: torch.Tensor) -> torch.Tensor:
    """int_T |grad v|^2 of the bilinear v with corner values (..., 4) ordered a, b, c, d
    (module docstring) -> (...); independent of the element side in 2D."""
    if corners.shape[-1] != 4:
        raise ValueError(
            "element corner values must have a last axis of 4 (a, b, c, d), got shape "
            f"{tuple(corners.shape)}"
        )
    a, b, c, d = corners.unbind(-1)
    p, q, r, s = b - a, c - d, d - a, c - b
    return ((p * p + p * q + q * q) + (r * r + r * s + s * s)) / 3.0


def element_gradient_loss(
    pred_corners: torch.Tensor,
    target_corners: torch.Tensor,
    h,
    coefficient: torch.Tensor | None = None,
) -> torch.Tensor:
    """G = mean over elements of w_T int_T |grad (pred - target)|^2 / h^2 (module docstring).

    ``pred_corners``, ``target_corners``: (B, M, 4) values at the corners a, b, c, d of M elements
    per sample (a trailing axis of size 1, as model queries return, is dropped). ``h``: the element
    side in physical units, a float or a tensor broadcastable to (B, M). ``coefficient``: (B, M)
    the coefficient on each element (the ``energy`` weight), None for the unweighted ``h1`` term.
    """
    if pred_corners.shape[-1] == 1 and pred_corners.dim() == 4:
        pred_corners = pred_corners.squeeze(-1)
    if target_corners.shape[-1] == 1 and target_corners.dim() == 4:
        target_corners = target_corners.squeeze(-1)
    if pred_corners.shape != target_corners.shape:
        raise ValueError(
            f"prediction corners {tuple(pred_corners.shape)} and target corners "
            f"{tuple(target_corners.shape)} differ in shape"
        )
    # differences of neighbouring values: at least float32 (bfloat16 autocast outputs lose them)
    dtype = torch.promote_types(
        torch.promote_types(pred_corners.dtype, target_corners.dtype), torch.float32
    )
    energy = q1_element_gradient_sq(pred_corners.to(dtype) - target_corners.to(dtype))  # (B, M)
    if coefficient is not None:
        if coefficient.shape != energy.shape:
            raise ValueError(
                f"element coefficient has shape {tuple(coefficient.shape)}; expected "
                f"{tuple(energy.shape)} (one value per element)"
            )
        energy = energy * coefficient.to(dtype)
    h = torch.as_tensor(h, dtype=energy.dtype, device=energy.device)
    if not bool(torch.all(h > 0)):
        raise ValueError(f"element side h must be > 0, got {h}")
    return (energy / (h * h)).mean()


@contextmanager
def shared_encoding(model, batch: dict):
    """Within the block ``model.encode(batch)`` runs once and later calls return that state, so a
    method's own loss and extra queries share one encoding (and its graph). Other inputs are
    encoded as usual. Yields a function returning the state (encoding now if nobody has)."""
    original = model.encode
    cache = {}

    def encode(inputs):
        if inputs is not batch:
            return original(inputs)
        if "state" not in cache:
            cache["state"] = original(inputs)
        return cache["state"]

    model.encode = encode  # an instance attribute: shadows the class's method until deleted
    try:
        yield lambda: encode(batch)
    finally:
        del model.encode


def element_predictions(model, state, batch: dict) -> torch.Tensor:
    """The model at every sampled element corner, (B, M, 4), from an encoded state."""
    coords = batch["element_coords"]  # (B, M, 4, 2)
    B, M = coords.shape[:2]
    flat = coords.reshape(B, 4 * M, 2)
    cell = batch["cell"][:, :1, :].expand(B, 4 * M, 2)  # one HR cell size per batch
    return model.query_encoded(state, flat, cell).reshape(B, M, 4)


def element_term(model, state, batch: dict, mode: str) -> torch.Tensor:
    """G of ``mode`` (``l1+h1`` or ``l1+energy``) on the batch's sampled elements."""
    weight = batch["element_coefficient"] if check_loss_mode(mode) == "l1+energy" else None
    pred = element_predictions(model, state, batch)
    return element_gradient_loss(pred, batch["element_target"], batch["element_h"], weight)


def training_loss_with_elements(
    model, batch: dict, step: int, mode: str = DEFAULT_LOSS_MODE, weight: float = 0.0
) -> tuple[torch.Tensor, dict]:
    """The method's own ``training_loss`` plus ``weight`` * G of ``mode`` (plain ``training_loss``
    for ``l1``), on one encoding of the batch. The log adds the term as ``h1`` or ``energy``."""
    if check_loss_mode(mode) == "l1":
        return model.training_loss(batch, step=step)
    with shared_encoding(model, batch) as encoded:
        loss, logs = model.training_loss(batch, step=step)
        term = element_term(model, encoded(), batch, mode)
    logs = dict(logs or {})
    logs[TERM_NAMES[mode]] = float(term.detach())
    return loss + float(weight) * term, logs
