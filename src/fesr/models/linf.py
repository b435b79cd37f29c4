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

from fesr.coords import hr_cell, sample_nodal
from fesr.models.base import SRModel, hr_size
from fesr.models.encoders import build_encoder
from fesr.models.flows import ConditionalFlow
from fesr.models.fourier import band_fourier, fourier_pairs
from fesr.models.liif import GRID_TILE_ELEMS
from fesr.models.local import FourGrid, flatten_map, four_neighbours, gather, q1_grid
from fesr.models.mlp import MLP
from fesr.models.registry import register


@register("linf")
class LINF(SRModel):
    def __init__(self, cfg: dict):
        super().__init__(cfg)
        patch = int(cfg["patch"])
        if patch != 1:
            raise ValueError(f"linf: patch={patch} is not supported; expected 1 (pixel-based flow)")
        self.encoder = build_encoder(cfg["encoder"], cfg.get("encoder_cfg"), cfg["in_channels"])
        C = self.encoder.out_dim
        K = int(cfg["n_freq"])
        hidden = cfg["hidden"]
        hidden = [hidden] * 3 if isinstance(hidden, int) else list(hidden)
        self.n_freq = K
        self.amplitude = nn.Conv2d(C, 2 * K, 3, padding=1)
        self.frequency = nn.Conv2d(C, 2 * K, 3, padding=1)
        self.phase = nn.Linear(2, K, bias=False)
        self.flow = ConditionalFlow(dim=patch * patch, layers=int(cfg["flow_layers"]))
        # MLP(8K -> hidden -> cond) with its first layer split over the cos and sin halves of the
        # ensemble, so the (Q, 8K) concatenation is never materialised.
        self.cond_cos = nn.Linear(4 * K, hidden[0])
        self.cond_sin = nn.Linear(4 * K, hidden[0], bias=False)
        self.cond_net = MLP(hidden[0], hidden[1:], self.flow.cond_dim)
        self.nll_weight = float(cfg["nll_weight"])
        self.l1_weight = float(cfg["l1_weight"])
        self.stage1_steps = int(round(float(cfg["stage1_fraction"]) * int(cfg["iterations"])))
        scales = cfg["train_scales"]
        # smallest training cell in feature pixels: invariant under patch cropping
        self.min_cell_px = float(cfg["E"]) / (int(cfg["lr_n"]) * max(scales))

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
        cell_px = (cell * cell.new_tensor([W / 2.0, H / 2.0])).clamp(min=self.min_cell_px)
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
    @torch.inference_mode()
    def predict(
        self,
        inputs: dict,
        alpha: float,
        chunk: int = 65536,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
        state=None,
    ) -> torch.Tensor:
        """The (B, m+1, m+1) field at temperature tau (0: deterministic; > 0: one sample).

        For tau > 0 the latent of every node is drawn up front from ``generator`` (or the
        global RNG), so chunking never changes the sample. ``state``: ``encode(inputs)`` if the
        caller has it.
        """
        lr = inputs["lr"]
        m = hr_size(lr.shape[-1] - 1, alpha)
        state = self.encode(inputs) if state is None else state
        return self._predict_encoded(state, lr, m, chunk, temperature, generator)

    def _predict_encoded(self, state, lr, m, chunk, temperature, generator) -> torch.Tensor:
        if temperature < 0:
            raise ValueError(f"linf: temperature must be >= 0, got {temperature}")
        B = lr.shape[0]
        N = (m + 1) ** 2
        z_all = None
        if temperature > 0:
            z_all = torch.randn(
                B, N, self.flow.dim, generator=generator, device=lr.device, dtype=lr.dtype
            )
            z_all.mul_(temperature)
        return self._grid(state, lr, m, chunk, z_all)

    def _grid(self, state, lr, m: int, chunk: int, z_all) -> torch.Tensor:
        """``query_encoded`` at every node (latents ``z_all`` (B, N, dim) or None), fast: as
        in LTE's grid path, fx rel_x is formed once per band of rows sharing their
        cells (``FourGrid``) and the argument completed in ``conditioning``'s order, the phase
        of the constant cell once, the Q1 skip once for the grid; cos and sin go to contiguous
        buffers and the ensemble's two first-layer products to one accumulator; in a band tile
        the trig is split by angle addition (the fy rel_y part once per cell, ``band_fourier``,
        its interleaved cos / sin into one product with both first layers). Equal to
        ``query_encoded`` on ``node_coords(m)`` up to float rounding."""
        H, W = state["size"]
        maps = state["maps"]
        B, K, dt, dev = maps.shape[0], self.n_freq, maps.dtype, maps.device
        grid = FourGrid(m, H, W, device=dev, dtype=dt)
        cell = torch.full((1, 1, 2), hr_cell(m), dtype=dt, device=dev)
        cell_px = (cell * cell.new_tensor([W / 2.0, H / 2.0])).clamp(min=self.min_cell_px)
        phase = math.pi * self.phase(cell_px)[0, 0]  # (K,)
        rx, ry = math.pi * grid.rx.T, math.pi * grid.ry.T  # (m+1, 4), node-major
        hidden = self.cond_cos.out_features
        tile = min(chunk, max(1, GRID_TILE_ELEMS // (8 * K)))
        bufs = torch.empty(4, tile * 4 * K, dtype=dt, device=dev)
        argbuf, cosbuf, sinbuf = bufs[:3]
        pairs = fourier_pairs(maps, K)  # the band path's amplitude layout
        # both first layers as one on band_fourier's (neighbour, k, cos / sin) features
        w_pairs = torch.stack(
            [self.cond_cos.weight.view(hidden, 4, K), self.cond_sin.weight.view(hidden, 4, K)], -1
        ).view(hidden, 8 * K)
        ampbuf = torch.empty(tile * 8 * K, dtype=dt, device=dev)
        hbuf = torch.empty(tile * hidden, dtype=dt, device=dev)
        out = q1_grid(lr, m)
        zero = torch.zeros(tile, self.flow.dim, dtype=dt, device=dev)
        z_grid = None if z_all is None else z_all.view(B, m + 1, m + 1, -1)
        for i0, i1, j0, j1, band in grid.tiles(tile):
            R, C = i1 - i0, j1 - j0
            n = R * C
            wgt = grid.weights(i0, i1, j0, j1).permute(1, 2, 0).unsqueeze(-1)  # (R, C, 4, 1)
            idx = grid.index(i0, i0 + 1 if band else i1, j0, j1).permute(1, 2, 0).reshape(-1)
            if band:
                cells, col = grid.band_cells(i0, j0, j1)
            for b in range(B):
                g = (pairs if band else maps)[b].index_select(0, idx)  # band: one row
                g = g.view(-1, C, 4, 4 * K)
                amp, fx, fy = g.split([2 * K, K, K], dim=-1)
                # every (R, C, 4, .) result into a contiguous buffer: SLEEF's cos / sin and the
                # products run ~3x slower on the strided layouts broadcasting would pick
                shape = (R, C, 4, K)
                h = hbuf[: n * hidden].view(n, hidden)
                if band:  # the trig split by angle addition, as LTE's
                    a = (fx * rx[None, j0:j1, :, None]).add_(phase)  # (1, C, 4, K)
                    fyb = maps[b, cells.reshape(-1), 3 * K :].view(2, -1, K)
                    yb = ry[i0:i1][:, [0, 2], None, None] * fyb  # (R, 2, X, K)
                    amp = amp.view(C, 4, K, 2)  # already (cos_k, sin_k) pairs
                    basis = band_fourier(a[0], yb.flatten(1, 2), col, amp, bufs.view(-1))
                    basis = basis.mul_(wgt.unsqueeze(-1))  # the ensemble weight
                    torch.addmm(self.cond_cos.bias, basis.view(n, 8 * K), w_pairs.T, out=h)
                else:
                    arg = argbuf[: n * 4 * K].view(shape)
                    a = fx * rx[None, j0:j1, :, None]
                    torch.addcmul(a, fy, ry[i0:i1, None, :, None], out=arg).add_(phase)
                    # the ensemble weight scales the amplitude
                    amp = torch.mul(amp, wgt, out=ampbuf[: n * 8 * K].view(R, C, 4, 2 * K))
                    cb = torch.cos(arg, out=cosbuf[: n * 4 * K].view(shape)).mul_(amp[..., :K])
                    sb = torch.sin(arg, out=sinbuf[: n * 4 * K].view(shape)).mul_(amp[..., K:])
                    torch.addmm(
                        self.cond_cos.bias, cb.view(n, 4 * K), self.cond_cos.weight.T, out=h
                    )
                    h.addmm_(sb.view(n, 4 * K), self.cond_sin.weight.T)
                cond = self.cond_net(h.relu_())
                z = zero[:n] if z_grid is None else z_grid[b, i0:i1, j0:j1].reshape(n, -1)
                out[b, i0:i1, j0:j1] += self.flow.inverse(z, cond).view(R, C)
        return out

    @torch.inference_mode()
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
