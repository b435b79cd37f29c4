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
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from fesr.coords import hr_cell, node_coords
from fesr.data.conditioning import make_inputs
from fesr.data.dataset import SplitReader, integer_scale

_STREAM_TRAIN, _STREAM_EPOCH, _STREAM_VAL = 1, 2, 3


@lru_cache(maxsize=8)
def _grid(m: int) -> torch.Tensor:
    return node_coords(m)


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
    ):
        if 1 not in reader.scales:
            raise ValueError(f"split '{reader.split}' must include the LR field u_x1")
        self.reader, self.u_scale = reader, float(u_scale)
        self.contrast, self.use_coefficient = tuple(contrast), bool(use_coefficient)
        self.sample_q, self.full_field = int(sample_q), bool(full_field)
        self.n = reader.node_sizes[1] - 1

    def build(self, indices, alpha, rng: np.random.Generator) -> dict:
        alpha = integer_scale(alpha)
        m = self.n * alpha
        n_nodes = (m + 1) ** 2
        grid = _grid(m)
        lr, coef, hr, q_idx, target = [], [], [], [], []
        for k in indices:
            lr.append(self.reader.field(1, k))
            coef.append(self.reader.coefficient(k))
            u = self.reader.field(alpha, k)
            # Without replacement (LIIF); with replacement only if Q exceeds the node count.
            q = rng.choice(n_nodes, size=self.sample_q, replace=self.sample_q > n_nodes)
            q_idx.append(q)  # flat node index i * (m+1) + j
            target.append(u.reshape(-1)[q])
            if self.full_field:
                hr.append(u)
        q_idx = torch.from_numpy(np.stack(q_idx))  # (B, Q)
        target = torch.from_numpy(np.stack(target)).unsqueeze(-1) / self.u_scale
        lr_t = torch.from_numpy(np.stack(lr)).unsqueeze(1) / self.u_scale
        coef_t = torch.from_numpy(np.stack(coef)).unsqueeze(1)
        batch = make_inputs(lr_t, coef_t, self.use_coefficient, self.contrast)
        coords = grid[q_idx]  # (B, Q, 2), ordered (x, y)
        batch.update(
            coords=coords,
            cell=torch.full_like(coords, hr_cell(m)),
            target=target,
            scale=float(alpha),
            index=torch.as_tensor(np.asarray(indices, dtype=np.int64)),
        )
        if self.full_field:
            batch["hr"] = torch.from_numpy(np.stack(hr)).unsqueeze(1) / self.u_scale
        return batch


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
