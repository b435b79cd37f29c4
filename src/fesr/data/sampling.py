"""Training and validation batches (SPEC 2, LIIF practice).

A training batch is a pure function of (seed, iteration): the sample order is a fresh permutation
of the split per epoch, and the batch's scale and query subsets come from a generator seeded by
(seed, iteration). Resuming at iteration k therefore needs no sampler state beyond k, and the
batch stream is the same with any number of DataLoader workers.

Batch dict (values divided by the dataset constant ``u_scale``):

* ``lr`` (B, 1, n+1, n+1), ``image`` (B, C, E, E): ``fesr.data.conditioning.make_inputs``;
* ``coords`` (B, Q, 2): ``sample_q`` distinct random HR nodes per sample, network coordinates
  ordered (x, y) (``fesr.coords.node_coords``); ``cell`` (B, Q, 2) = 2 / (n * alpha);
* ``target`` (B, Q, 1): the HR field at those nodes; ``scale``: the batch's alpha (float);
* ``hr`` (B, 1, m+1, m+1), the whole HR field, only with ``full_field=True`` (IDM);
* ``index`` (B,) the sample indices (int64), for debugging and tests.

Patch batches (``patch=P``, the LIIF family's practice): each sample is cropped to a
square of P x P coefficient cells, P a multiple of E / n so that it covers p = P n / E whole LR
cells, at a position drawn per sample and aligned to the LR cells. The batch then holds the crop
of the whole field's conditioning image (d(X) is computed on the whole field, then cropped, so a
patch pixel equals the whole-field pixel), the (p+1)^2 LR nodes, and queries among the
(p alpha + 1)^2 HR nodes of the patch. ``coords`` are PATCH-LOCAL network coordinates (the patch
is the field the model sees) and ``cell`` = 2 / (p alpha) in those units, so every quantity in
feature pixels is the same as on the whole field. ``hr`` is the HR field cropped to the patch.
``patch_origin`` (B, 2) int64 holds the LR node (row i0, column j0) of the patch's first node: LR
node (i, j) of the patch is whole-field node (i0 + i, j0 + j). Whole-field batches (``patch``
None) hold origin (0, 0) and draw nothing for it, so their stream is unchanged.

Element batches (``elements=M`` > 0, the element-gradient loss of ``fesr.element_loss``): per
sample, M distinct random HR elements of the (patch) field (with replacement only where it has
fewer), drawn from the same generator after every other draw of the batch, so the keys above are
the same with and without them. Element e of an m x m (patch) mesh is the square of lower-left
node (i, j) = divmod(e, m); its corners are ordered a (i, j), b (i, j+1), c (i+1, j+1),
d (i+1, j): counter-clockwise from the lower left, (x, y) = (0,0), (1,0), (1,1), (0,1) in units
of h. The batch then also holds

* ``element_coords`` (B, M, 4, 2): the corner nodes, the same network coordinates as ``coords``
  (patch-local with a patch); ``element_target`` (B, M, 4): the HR field there;
* ``element_coefficient`` (B, M): the coefficient on the element, the area-weighted mean of the
  coefficient cells it covers (``element_coefficients``): the cell's value when the HR mesh is
  at least as fine as the coefficient grid (n alpha >= E, nested), else the arithmetic mean of
  the (E / (n alpha))^2 cells it covers, the L2 projection the HR solve itself uses (SPEC 1);
  at n alpha < E the A-weighted element energy is then mean(A) int |grad v|^2, not the exact
  int A |grad v|^2 (grad v varies inside the element);
* ``element_h``: the element side 1 / (n alpha) in physical units (float);
* ``element_index`` (B, M) int64: flat element index i * m + j of the (patch) field.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from fesr.coords import hr_cell, node_coords
from fesr.data.conditioning import make_inputs
from fesr.data.dataset import SplitReader, integer_scale
from fesr.fem.discretisation import projection_matrix

_STREAM_TRAIN, _STREAM_EPOCH, _STREAM_VAL = 1, 2, 3


@lru_cache(maxsize=8)
def _grid(m: int) -> torch.Tensor:
    return node_coords(m)


@lru_cache(maxsize=8)
def _projection(mesh_n: int, E: int) -> np.ndarray:
    return projection_matrix(mesh_n, E)


def element_corner_nodes(elements, m: int) -> np.ndarray:
    """Flat node indices (..., 4) of the corners a, b, c, d (module docstring) of the elements
    with flat indices ``elements`` (i * m + j) on an m x m mesh of (m+1)^2 nodes."""
    i, j = np.divmod(np.asarray(elements, dtype=np.int64), m)
    a = i * (m + 1) + j
    return np.stack([a, a + 1, a + m + 2, a + m + 1], axis=-1)


def element_coefficients(coefficient: np.ndarray, mesh_n: int, rows, cols) -> np.ndarray:
    """The coefficient on the elements (rows[k], cols[k]) of a mesh_n x mesh_n mesh of the unit
    square: the area-weighted mean of the E x E coefficient cells each covers, i.e. the entries of
    ``fesr.fem.solver.project_coefficient(A, mesh_n)`` there, computed for those elements only."""
    A = np.asarray(coefficient, dtype=np.float64)
    mesh_n, E = int(mesh_n), A.shape[-1]
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    if mesh_n % E == 0:  # nested, every element inside one cell: the cell's value, exactly
        r = mesh_n // E
        return A[rows // r, cols // r]
    P = _projection(mesh_n, E)  # (mesh_n, E), rows sum to 1
    return ((P[rows] @ A) * P[cols]).sum(axis=-1)


def sample_elements(
    rng: np.random.Generator,
    field: np.ndarray,
    coefficient: np.ndarray,
    m: int,
    count: int,
    node_origin=(0, 0),
) -> dict:
    """``count`` distinct random elements of the m x m (patch) mesh whose node (0, 0) is the
    whole-field HR node ``node_origin`` (row, column); ``field`` is the whole HR field
    (N+1, N+1), ``coefficient`` the whole E x E map. Returns numpy arrays: ``index`` (count,),
    ``nodes`` (count, 4) flat (patch) node indices of the corners, ``target`` (count, 4),
    ``coefficient`` (count,). With replacement only if count exceeds m^2."""
    N = field.shape[-1] - 1
    i0, j0 = (int(v) for v in node_origin)
    if not (0 <= i0 and 0 <= j0 and i0 + m <= N and j0 + m <= N):
        raise ValueError(
            f"a {m} x {m} patch at HR node {(i0, j0)} does not fit the {N} x {N} HR mesh"
        )
    index = rng.choice(m * m, size=int(count), replace=int(count) > m * m)
    nodes = element_corner_nodes(index, m)
    ni, nj = np.divmod(nodes, m + 1)
    ei, ej = np.divmod(index, m)
    return {
        "index": index,
        "nodes": nodes,
        "target": field[i0 + ni, j0 + nj],
        "coefficient": element_coefficients(coefficient, N, i0 + ei, j0 + ej),
    }


class BatchBuilder:
    """Turns sample indices, a scale and a generator into a batch dict (see module docstring)."""

    def __init__(
        self,
        reader: SplitReader,
        u_scale: float,
        contrast,
        use_coefficient: bool,
        sample_q: int,
        full_field: bool = False,
        patch: int | None = None,
        elements: int = 0,
    ):
        if 1 not in reader.scales:
            raise ValueError(f"split '{reader.split}' must include the LR field u_x1")
        self.reader, self.u_scale = reader, float(u_scale)
        self.contrast, self.use_coefficient = tuple(contrast), bool(use_coefficient)
        self.sample_q, self.full_field = int(sample_q), bool(full_field)
        if isinstance(elements, bool) or int(elements) != elements or elements < 0:
            raise ValueError(f"elements per sample must be an integer >= 0, got {elements!r}")
        self.elements = int(elements)
        self.n = reader.node_sizes[1] - 1
        self.E = int(reader.E)
        self.patch, self.patch_lr = None, self.n  # patch side in coefficient cells, in LR cells
        if patch is not None:
            P = int(patch)
            if self.E % self.n or P < 1 or P > self.E or P % (self.E // self.n):
                raise ValueError(
                    f"training.patch must be a multiple of E / lr_n = {self.E}/{self.n} between "
                    f"1 and E = {self.E} (a patch covers whole LR cells), got {patch}"
                )
            self.patch, self.patch_lr = P, P * self.n // self.E
        # sample -> its whole-field conditioning image (C, E, E); kept only when the reader holds
        # the split in memory (a stated budget), else recomputed per batch (bounded memory)
        self._images: dict = {}

    def build(self, indices, alpha, rng: np.random.Generator) -> dict:
        alpha = integer_scale(alpha)
        indices = np.asarray(indices, dtype=np.int64)
        B, p = len(indices), self.patch_lr
        if self.patch is None:
            origin = np.zeros((B, 2), dtype=np.int64)
        else:  # LR node (row, column) of each patch's first node, aligned to the LR cells
            origin = rng.integers(0, self.n - p + 1, size=(B, 2), dtype=np.int64)
        m = p * alpha  # HR cells per side of the (patch) field
        n_nodes = (m + 1) ** 2
        lr, image, hr, q_idx, target, fields = [], [], [], [], [], []
        for k, (i0, j0) in zip(indices, origin * alpha, strict=True):
            lr_k = torch.from_numpy(self.reader.field(1, k)) / self.u_scale
            lr.append(lr_k)
            image.append(self._image(int(k), lr_k))
            u = self.reader.field(alpha, k)
            # Without replacement (LIIF); with replacement only if Q exceeds the node count.
            q = rng.choice(n_nodes, size=self.sample_q, replace=self.sample_q > n_nodes)
            q_idx.append(q)  # flat node index i * (m+1) + j of the (patch) field
            qi, qj = np.divmod(q, m + 1)
            target.append(u[i0 + qi, j0 + qj])
            if self.full_field:
                hr.append(u[i0 : i0 + m + 1, j0 : j0 + m + 1])
            if self.elements:
                fields.append(u)
        q_idx = torch.from_numpy(np.stack(q_idx))  # (B, Q)
        target = torch.from_numpy(np.stack(target)).unsqueeze(-1) / self.u_scale
        # d(X) on the whole field first: a patch pixel is then exactly the whole-field pixel
        batch = {"lr": torch.stack(lr).unsqueeze(1), "image": torch.stack(image)}
        if self.patch is not None:
            batch = self._crop(batch, origin)
        coords = _grid(m)[q_idx]  # (B, Q, 2), ordered (x, y), local to the patch
        batch.update(
            coords=coords,
            cell=torch.full_like(coords, hr_cell(m)),
            target=target,
            scale=float(alpha),
            index=torch.from_numpy(indices),
            patch_origin=torch.from_numpy(origin),
        )
        if self.full_field:
            batch["hr"] = torch.from_numpy(np.stack(hr)).unsqueeze(1) / self.u_scale
        if self.elements:  # after every other draw: the keys above do not depend on it
            batch.update(self._elements(indices, fields, origin * alpha, alpha, m, rng))
        return batch

    def _elements(self, indices, fields, node_origins, alpha: int, m: int, rng) -> dict:
        """The element keys of the module docstring for one batch."""
        drawn = [
            sample_elements(rng, u, self.reader.coefficient(k), m, self.elements, origin)
            for k, u, origin in zip(indices, fields, node_origins, strict=True)
        ]
        nodes = torch.from_numpy(np.stack([d["nodes"] for d in drawn]))  # (B, M, 4)
        target = np.stack([d["target"] for d in drawn]).astype(np.float32)
        coefficient = np.stack([d["coefficient"] for d in drawn]).astype(np.float32)
        return {
            "element_coords": _grid(m)[nodes],  # (B, M, 4, 2)
            "element_target": torch.from_numpy(target) / self.u_scale,
            "element_coefficient": torch.from_numpy(coefficient),
            "element_h": 1.0 / (self.n * alpha),
            "element_index": torch.from_numpy(np.stack([d["index"] for d in drawn])),
        }

    def _image(self, k: int, lr: torch.Tensor) -> torch.Tensor:
        """Sample k's whole-field encoder input (C, E, E) from its normalised LR field; computed
        per sample always, so cached and fresh images are bitwise the same."""
        hit = self._images.get(k)
        if hit is not None:
            return hit
        coef = torch.from_numpy(self.reader.coefficient(k))[None, None]
        image = make_inputs(lr[None, None], coef, self.use_coefficient, self.contrast)["image"][0]
        if self.reader.preloaded:
            self._images[k] = image
        return image

    def _crop(self, batch: dict, origin: np.ndarray) -> dict:
        """The LR nodes and image pixels of each sample's patch (origin in LR nodes)."""
        p, P, r = self.patch_lr, self.patch, self.E // self.n
        lr, image = batch["lr"], batch["image"]
        lr_c = torch.stack(
            [lr[b, :, i : i + p + 1, j : j + p + 1] for b, (i, j) in enumerate(origin)]
        )
        im_c = torch.stack(
            [image[b, :, i * r : i * r + P, j * r : j * r + P] for b, (i, j) in enumerate(origin)]
        )
        return {"lr": lr_c, "image": im_c}


class TrainBatches(IterableDataset):
    """The training batch stream from ``start`` to ``stop`` (iterations), a pure function of
    (seed, iteration). Use with ``DataLoader(stream, batch_size=None, num_workers=W)``: workers
    take iterations round-robin, which is the order the DataLoader returns them in."""

    def __init__(
        self,
        builder: BatchBuilder,
        train_scales,
        batch_size: int,
        seed: int,
        start: int = 0,
        stop: int | None = None,
    ):
        self.builder, self.batch_size, self.seed = builder, int(batch_size), int(seed)
        self.train_scales = [integer_scale(a) for a in train_scales]
        self.start, self.stop = int(start), stop
        self.n_samples = len(builder.reader)
        if self.n_samples == 0:
            raise ValueError(f"split '{builder.reader.split}' has no samples")

    def indices(self, iteration: int) -> np.ndarray:
        """Sample indices of batch ``iteration``: consecutive slices of per-epoch permutations."""
        N, B = self.n_samples, self.batch_size
        out = []
        for pos in range(iteration * B, (iteration + 1) * B):
            epoch, offset = divmod(pos, N)
            out.append(self._permutation(epoch)[offset])
        return np.asarray(out, dtype=np.int64)

    @lru_cache(maxsize=4)  # noqa: B019 - a few permutations per stream, freed with it
    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, _STREAM_EPOCH, epoch]).permutation(self.n_samples)

    def batch(self, iteration: int) -> dict:
        rng = np.random.default_rng([self.seed, _STREAM_TRAIN, int(iteration)])
        alpha = self.train_scales[int(rng.integers(len(self.train_scales)))]
        return self.builder.build(self.indices(iteration), alpha, rng)

    def state_dict(self) -> dict:
        return {
            "seed": self.seed,
            "batch_size": self.batch_size,
            "n_samples": self.n_samples,
            "train_scales": list(self.train_scales),
        }

    def check_state(self, state: dict) -> None:
        """A resumed run must draw the same stream: same seed, batch size, split size, scales."""
        if state != self.state_dict():
            raise ValueError(f"sampler state {state} does not match this run's {self.state_dict()}")

    def __iter__(self):
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        it = self.start + wid
        while self.stop is None or it < self.stop:
            yield self.batch(it)
            it += nw


def validation_batches(builder: BatchBuilder, train_scales, val_samples: int, seed: int) -> list:
    """Fixed validation batches: the first ``val_samples`` samples of the split at every training
    scale, with fixed query nodes; the same for every evaluation of every run with this seed."""
    k = min(int(val_samples), len(builder.reader))
    out = []
    for alpha in sorted({integer_scale(a) for a in train_scales}):
        rng = np.random.default_rng([int(seed), _STREAM_VAL, alpha])
        out.append(builder.build(np.arange(k), alpha, rng))
    return out
