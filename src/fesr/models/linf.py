"""LINF: local implicit normalizing flow (Yao et al., CVPR 2023), pixel-based (1 x 1 patch).

Pipeline per query point x_q with cell c (HR node and HR cell size):

1. Local texture estimator (as LTE): two 3x3 convs on the encoder features give an amplitude
   map A (2K channels) and a frequency map F (K pairs (fx, fy)); the phase P = Linear(2 -> K,
   no bias)(c). For each of the 4 feature cells j around x_q (LIIF's neighbours):
   ``A_j * [cos(pi (F_j . r_j + P)), sin(pi (F_j . r_j + P))]`` with r_j the offset in feature
   pixels.
2. Fourier feature ensemble (paper eq. 9): the 4 vectors, each multiplied by its area weight,
   concatenated (8K numbers) -> MLP (``hidden`` x 3, ReLU) -> the injector parameters of the
   flow (one MLP pass per query, not four).
3. Flow (``fesr.models.flows``): ``flow_layers`` x (invertible dense linear, affine injector
   with scale sigmoid(s + 2) + 1e-4), base N(0, I), on the residual r = u(x_q) - Q1(X)(x_q) to
   the Q1 (bilinear, exact FE) interpolant of the LR field. The output is Q1(X) + f^-1(z).

Sampling: z ~ N(0, tau^2). tau = 0 (``query``, default ``predict``) is the deterministic
fidelity output used for the metrics; tau > 0 draws samples.

Training (``training_loss``): stage 1 (the first ``stage1_fraction`` of the configured
iterations) minimises the NLL only; stage 2 minimises ``nll_weight`` * NLL + ``l1_weight`` *
L1(tau = 0 output, target) (paper eq. 10 with its weights 5e-4 and 1; the VGG term has
weight 0 in the paper's arbitrary-scale runs and no meaning for PDE fields, so it is absent).
The NLL is in nats per value (the paper does not state its normalisation). The paper's
stage 2 also uses a lower learning rate (5e-5); the shared training loop owns the learning rate,
so here only the loss changes between the stages.

Choices where the paper is open or does not fit this data:

* Patch size 1 only (``patch: 1``). The 3 x 3 patch model of the paper's generative
  experiments needs patch-shaped query sets, which the query interface (arbitrary points) does
  not have; for one value the dense linear layer is a scalar scale (log-det log|w|).
* The cell fed to the phase is clipped to the smallest cell seen in training (largest training
  scale), as LTE does at test time for out-of-distribution scales.
* The target here is a deterministic function of the input, so the learned density sharpens
  as the fit improves; the injector scale's floor (1e-4 per layer) bounds it.
* Noise for tau > 0 is drawn for the whole node grid in one call before chunking (per node,
  row-major), so a fixed generator seed gives the same sample for any ``chunk``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from fesr.coords import hr_cell, node_coords, sample_nodal
from fesr.models.base import SRModel, hr_size
from fesr.models.encoders import build_encoder
from fesr.models.flows import ConditionalFlow
from fesr.models.local import MLP, flatten_map, four_neighbours, gather
from fesr.models.registry import register


@register("linf")
class LINF(SRModel):
    def __init__(self, cfg: dict):
        super().__init__(cfg)
        patch = int(cfg.get("patch", 1))
        if patch != 1:
            raise ValueError(f"linf: patch={patch} is not supported; expected 1 (pixel-based flow)")
        self.encoder = build_encoder(cfg["encoder"], cfg.get("encoder_cfg"), cfg["in_channels"])
        C = self.encoder.out_dim
        K = int(cfg.get("n_freq", 128))
        hidden = cfg.get("hidden", 256)
        hidden = [hidden] * 3 if isinstance(hidden, int) else list(hidden)
        self.n_freq = K
        self.amplitude = nn.Conv2d(C, 2 * K, 3, padding=1)
        self.frequency = nn.Conv2d(C, 2 * K, 3, padding=1)
        self.phase = nn.Linear(2, K, bias=False)
        self.flow = ConditionalFlow(dim=patch * patch, layers=int(cfg.get("flow_layers", 10)))
        # MLP(8K -> hidden -> cond) with its first layer split over the cos and sin halves of the
        # ensemble, so the (Q, 8K) concatenation is never materialised.
        self.cond_cos = nn.Linear(4 * K, hidden[0])
        self.cond_sin = nn.Linear(4 * K, hidden[0], bias=False)
        self.cond_net = MLP(hidden[0], hidden[1:], self.flow.cond_dim)
        self.nll_weight = float(cfg.get("nll_weight", 5e-4))
        self.l1_weight = float(cfg.get("l1_weight", 1.0))
        self.stage1_steps = int(
            round(float(cfg.get("stage1_fraction", 0.5)) * int(cfg.get("iterations", 1)))
        )
        scales = cfg.get("train_scales") or [4]
        self.min_cell = hr_cell(int(cfg.get("lr_n", 32)) * max(scales))

    # -- conditioning ---------------------------------------------------------------------------
    def encode(self, inputs: dict) -> dict:
        feat = self.encoder(inputs["image"])
        # One flattened map [amplitude (2K) | fx (K) | fy (K)]: a single gather per query chunk.
        maps = torch.cat([self.amplitude(feat), self.frequency(feat)], dim=1)
        return {"maps": flatten_map(maps), "size": feat.shape[-2:], "lr": inputs["lr"]}

    def conditioning(self, state: dict, coords: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """Injector parameters (B, Q, flow.cond_dim) from the Fourier feature ensemble."""
        H, W = state["size"]
        K = self.n_freq
        nb = four_neighbours(coords, H, W)
        B, Q = coords.shape[:2]
        amp, fx, fy = gather(state["maps"], nb.index).split([2 * K, K, K], dim=-1)  # (B, Q, 4, .)
        cell_px = cell.clamp(min=self.min_cell) * cell.new_tensor([W / 2.0, H / 2.0])
        rel = (math.pi * nb.rel).unsqueeze(-2)  # (B, Q, 4, 1, 2)
        phase = math.pi * self.phase(cell_px).unsqueeze(2)  # (B, Q, 1, K)
        arg = torch.addcmul(fx * rel[..., 0], fy, rel[..., 1]).add_(phase)
        amp = amp * nb.weight.unsqueeze(-1)  # the ensemble weight scales the amplitude
        h = self.cond_cos((amp[..., :K] * torch.cos(arg)).reshape(B, Q, -1))
        h = h + self.cond_sin((amp[..., K:] * torch.sin(arg)).reshape(B, Q, -1))
        return self.cond_net(F.relu(h, inplace=True))

    def query_encoded(self, state, coords, cell, z: torch.Tensor | None = None) -> torch.Tensor:
        """Values (B, Q, 1); ``z`` (B, Q, 1) is the latent (None: zero, the tau = 0 output)."""
        cond = self.conditioning(state, coords, cell)
        if z is None:
            z = coords.new_zeros(*coords.shape[:2], self.flow.dim)
        return self.flow.inverse(z, cond) + sample_nodal(state["lr"], coords)

    # -- training -------------------------------------------------------------------------------
    def training_loss(self, batch: dict, step: int = 0) -> tuple[torch.Tensor, dict]:
        state = self.encode(batch)
        coords, target = batch["coords"], batch["target"]
        cond = self.conditioning(state, coords, batch["cell"])
        base = sample_nodal(batch["lr"], coords)
        nll = self.flow.nll(target - base, cond).mean()
        if step < self.stage1_steps:
            return nll, {"nll": float(nll.detach()), "stage": 1.0}
        fidelity = self.flow.inverse(torch.zeros_like(target), cond) + base
        l1 = F.l1_loss(fidelity, target)
        loss = self.nll_weight * nll + self.l1_weight * l1
        return loss, {"nll": float(nll.detach()), "l1": float(l1.detach()), "stage": 2.0}

    # -- inference ------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(
        self,
        inputs: dict,
        alpha: float,
        chunk: int = 65536,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The (B, m+1, m+1) field at temperature tau (0: deterministic; > 0: one sample).

        For tau > 0 the latent of every node is drawn up front from ``generator`` (or the
        global RNG), so chunking never changes the sample.
        """
        lr = inputs["lr"]
        m = hr_size(lr.shape[-1] - 1, alpha)
        return self._predict_encoded(self.encode(inputs), lr, m, chunk, temperature, generator)

    def _predict_encoded(self, state, lr, m, chunk, temperature, generator) -> torch.Tensor:
        if temperature < 0:
            raise ValueError(f"linf: temperature must be >= 0, got {temperature}")
        B = lr.shape[0]
        coords_all = node_coords(m, device=lr.device, dtype=lr.dtype)
        N = coords_all.shape[0]
        z_all = None
        if temperature > 0:
            z_all = torch.randn(
                B, N, self.flow.dim, generator=generator, device=lr.device, dtype=lr.dtype
            )
            z_all.mul_(temperature)
        out = torch.empty(B, N, device=lr.device, dtype=lr.dtype)
        for start in range(0, N, chunk):
            c = coords_all[start : start + chunk].unsqueeze(0).expand(B, -1, -1)
            cell = torch.full_like(c, hr_cell(m))
            z = None if z_all is None else z_all[:, start : start + c.shape[1]]
            out[:, start : start + c.shape[1]] = self.query_encoded(state, c, cell, z)[..., 0]
        return out.reshape(B, m + 1, m + 1)

    @torch.no_grad()
    def sample(
        self,
        inputs: dict,
        alpha: float,
        n_samples: int,
        temperature: float = 0.8,
        seed: int = 0,
        chunk: int = 65536,
    ) -> torch.Tensor:
        """``n_samples`` draws (n_samples, B, m+1, m+1) from one generator seeded with ``seed``;
        their per-node standard deviation is the spread of predictions."""
        if n_samples < 1:
            raise ValueError(f"linf: n_samples must be >= 1, got {n_samples}")
        lr = inputs["lr"]
        m = hr_size(lr.shape[-1] - 1, alpha)
        state = self.encode(inputs)
        gen = torch.Generator(device=lr.device).manual_seed(int(seed))
        draws = [
            self._predict_encoded(state, lr, m, chunk, temperature, gen) for _ in range(n_samples)
        ]
        return torch.stack(draws)
