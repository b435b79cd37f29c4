"""IDM: a conditional denoising diffusion model for continuous SR (after Gao et al., CVPR 2023).

What it keeps from IDM: epsilon (noise) prediction conditioned on a *continuous* noise level
gamma = sqrt(alpha_bar) (SR3/WaveGrad style: gamma is drawn uniformly between two neighbouring
levels of the discrete schedule during training), conditioning on the interpolated input and on
the encoder features of the 2-channel image (LR field + coefficient), a denoiser whose first
stage works on the noisy field at its own (HR) resolution, a U-Net whose decoder upsamples with
*scale-aware implicit functions* (an MLP queried at the finer grid's coordinates, with the cell
size as input and its hidden layer modulated (FiLM) by the noise-level embedding plus an
embedding of the log scale ratio), and deterministic DDIM sampling (eta = 0) with ``ddim_steps``
steps. Schedules, the DDIM update, timestep embeddings and the residual and attention blocks come
from ``diffusers``; the HR stage, the cell pooling and the implicit upsampling are ours.

How it differs from the original IDM (which runs an SR3 U-Net at the target resolution):

* The diffused variable is the residual to the Q1 (exact FE) interpolant of the LR field,
  divided by ``residual_scale`` (SRDiff practice), not the HR image itself; output =
  Q1(X) + residual_scale * x_0.
* The HR stage is thin and local: two 3 x 3 convolutions (``hr_width`` channels, SiLU, the
  noise-level embedding added after the first) on the (m+1)^2 HR node grid of (x_t, Q1), zero
  padding at the border of the grid it sees (on the domain's boundary x_0 = 0, u and Q1 vanish
  there; a training patch's border is padded the same way, so its outer two node rings see
  padding in training where whole-field inference sees neighbours). Its features play the part
  of the first (full-resolution) level of IDM's U-Net:
  - *down*: they are averaged exactly over each E x E cell of the encoder's grid (the mean of
    their Q1 interpolant over the cell, a separable linear map, so any m, also m < E and
    non-integer scales), stacked with the cell mean of x_t, and enter the cell-level U-Net
    with the Q1 values at the cell centres and the encoder features;
  - *skip*: the final implicit decoder sees them at its node, so every node sees a 5 x 5 HR-node
    neighbourhood of x_t and Q1 (two 3 x 3 convolutions), plus its own x_t and Q1 value.
  The rest of the U-Net runs on the E x E cell grid, whatever the output size (IDM downsamples
  from the target resolution; here the step from the HR grid to the cells is the pooling).
* Only the last, scale-aware implicit step reaches the HR nodes: per node it sees the 4
  surrounding cells of the U-Net's output (area-weighted features and offsets, one MLP pass as
  in LINF's feature ensemble), the cell size in feature pixels, and the HR features above.
  Internal decoder steps are implicit too (ratio 2, on the cell centres of the next finer level).
* Memory at alpha = 64 (2049^2 nodes) stays bounded: sampling walks the HR grid in bands of
  about ``chunk`` nodes (whole node rows): per DDIM step, one pass computes the HR stage band by
  band (with its 2-row halo, so values equal the whole-grid ones) and accumulates the cell
  means, the U-Net runs, and a second pass decodes band by band. The HR features are kept
  between the passes when they fit in ``HR_KEEP_ELEMENTS`` floats, else recomputed per band.
* The predicted x_0 is clipped to [-clip_x0, clip_x0] at every DDIM step (SR3 clips to the
  image range [-1, 1]); with ``residual_scale`` 0.5 the default 3 is 1.5 field units, about twice
  the largest residual seen at 16x on a random map.
* Smaller: ``mults`` levels of ``res_blocks`` residual blocks, one mid block with attention
  at the coarsest level (IDM: attention at 16 x 16), an L1 noise loss (as SR3/IDM).

Training needs the HR field (``needs_full_field = True``: the loader adds ``batch["hr"]``,
(B, 1, m+1, m+1)) because the denoiser sees x_t everywhere; the loss is taken at the queried
nodes only (``coords`` are rounded to the nearest node of the m x m mesh). With patch training
(``training.patch``) ``batch["hr"]`` is the HR field cropped to the patch, and the whole
denoiser treats the patch as its field: coordinates are patch-local, the cell grid is the
patch's feature map, and every size (E, n, m) is read from the input tensors, never from the
config. The U-Net is global over what it sees, so a patch-trained model predicts whole fields
with a wider context than it was trained on (as every global method here).

Sampling: each sample's x_T is drawn on the CPU (so it does not depend on the device) from a
generator seeded by (``seed``, sample id): ``predict(inputs, alpha, chunk, seed, sample_ids)``,
``sample_ids`` defaulting to the batch positions 0..B-1. The evaluation stage passes one sample
at a time with its own ``seed`` (``fesr.evaluate.predict.sample_seed``); a fixed seed gives the
same field for any ``chunk`` and any batch composition. ``query(inputs, coords, cell)`` runs
the sampler with seed 0 on the node grid whose cell is the smallest requested cell and
interpolates that field (Q1, exact at its nodes) at ``coords``: on the node grid it equals
``predict(..., seed=0)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers import DDIMScheduler
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.resnet import Downsample2D, ResnetBlock2D
from diffusers.models.unets.unet_2d_blocks import UNetMidBlock2D

from fesr.coords import cell_centre_coords, hr_cell, node_coords, sample_nodal
from fesr.models.base import SRModel, hr_size
from fesr.models.encoders import build_encoder
from fesr.models.local import four_neighbours, gather
from fesr.models.registry import register

# HR-stage features kept between the two passes of a sampling step up to this many floats
# (B * hr_width * (m+1)^2); beyond it they are recomputed band by band (bounded memory).
HR_KEEP_ELEMENTS = 1 << 26


class ImplicitUpsample(nn.Module):
    """A scale-aware implicit function: values at any points from a cell-centred feature map.

    Input per query: the 4 surrounding cells' features and offsets, each times its area
    weight, concatenated; the cell size (in source pixels); optional per-point extras. The
    hidden layer is modulated by ``film`` (B, 2 * hidden), computed by the caller from the
    noise level and the scale ratio.

    The first layer is linear, so its feature part is applied to the map once (``project``:
    every cell through the block of each of the 4 neighbour slots) and each query gathers and
    weights 4 projected rows: the same function, without a (4 C x hidden) product per query.
    """

    def __init__(self, in_ch: int, out_ch: int, hidden: int, extra: int = 0):
        super().__init__()
        self.hidden = hidden
        # The first layer acts on concat(features, offsets, cell, extras); split in two so the
        # wide feature part is never copied into a concatenated tensor.
        self.feat_in = nn.Linear(4 * in_ch, hidden)
        self.pos_in = nn.Linear(4 * 2 + 2 + extra, hidden, bias=False)
        self.mid = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, out_ch)

    def project(self, fmap: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, H*W*4, hidden): row 4 p + k is cell p through slot k's block."""
        B, C = fmap.shape[:2]
        w = self.feat_in.weight.view(self.hidden, 4, C)
        return torch.einsum("bcp,okc->bpko", fmap.flatten(2), w).reshape(B, -1, self.hidden)

    def forward(self, proj, size, coords, cell, film, extra=None) -> torch.Tensor:
        """Values (B, Q, out_ch) at ``coords`` (B, Q, 2) from ``proj = self.project(map)``."""
        H, W = size
        B, Q = coords.shape[:2]
        nb = four_neighbours(coords, H, W)
        w = nb.weight.unsqueeze(-1)
        slot = torch.arange(4, device=coords.device)
        feat = (gather(proj, nb.index * 4 + slot) * w).sum(2)
        pos = [(nb.rel * w).reshape(B, Q, -1), cell * cell.new_tensor([W / 2.0, H / 2.0])]
        if extra is not None:
            pos.append(extra)
        h = feat + self.feat_in.bias + self.pos_in(torch.cat(pos, dim=-1))
        scale, shift = film.unsqueeze(1).chunk(2, dim=-1)
        h = F.silu(torch.addcmul(shift, h, 1.0 + scale), inplace=True)
        return self.out(F.silu(self.mid(h), inplace=True))


class HRStage(nn.Module):
    """The denoiser's first stage on the HR node grid: two 3 x 3 convolutions of (x_t, Q1).

    ``forward`` computes node rows r0:r1 only, from those rows and a 2-row halo, with the same
    values as the whole grid's rows r0:r1 (zero padding at the field's border), so a sampler can
    walk the grid in bands.
    """

    halo = 2

    def __init__(self, width: int, temb: int):
        super().__init__()
        self.width = width
        self.conv1 = nn.Conv2d(2, width, 3)  # padding is explicit in forward (bands)
        self.time = nn.Linear(temb, width)
        self.conv2 = nn.Conv2d(width, width, 3)

    def forward(self, xq: torch.Tensor, tshift: torch.Tensor, r0: int, r1: int) -> torch.Tensor:
        """Features (B, width, r1 - r0, M) of rows r0:r1 of ``xq`` (B, 2, M, M) = (x_t, Q1);
        ``tshift`` (B, width): ``self.time`` of the noise-level embedding."""
        M = xq.shape[-2]
        a, b = max(r0 - 2, 0), min(r1 + 2, M)
        x = F.pad(xq[:, :, a:b], (1, 1, a - (r0 - 2), (r1 + 2) - b))
        h = F.silu(self.conv1(x) + tshift[:, :, None, None])  # rows r0-1 .. r1
        if r0 == 0 or r1 == M:  # rows outside the field are conv2's zero padding
            rows = torch.arange(r0 - 1, r1 + 1, device=h.device)
            h = h * ((rows >= 0) & (rows < M)).to(h.dtype)[:, None]
        return F.silu(self.conv2(F.pad(h, (1, 1, 0, 0))))


@dataclass
class StepSetup:
    """What one denoising step computes once for all nodes."""

    proj: torch.Tensor  # the U-Net's top map through the decoder's first layer (project)
    size: tuple  # its (H, W)
    film: torch.Tensor  # (B, 2 * hidden) for the final implicit decoder
    tshift: torch.Tensor  # (B, hr_width) the HR stage's noise-level shift
    hr: torch.Tensor | None  # (B, hr_width, M, M) the HR features if kept, else None


def _groups(width: int) -> int:
    """GroupNorm groups dividing every channel count (all are multiples of width)."""
    g = math.gcd(width, 32)
    return g // 2 if g == width and g > 1 else g


@register("idm")
class IDM(SRModel):
    needs_full_field = True

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.encoder = build_encoder(cfg["encoder"], cfg.get("encoder_cfg"), cfg["in_channels"])
        width = int(cfg["width"])
        mults = [int(x) for x in cfg["mults"]]
        n_res = int(cfg["res_blocks"])
        hidden = int(cfg["decoder_hidden"])
        hr_width = int(cfg["hr_width"])
        self.residual_scale = float(cfg["residual_scale"])
        self.ddim_steps = int(cfg["ddim_steps"])
        self.train_timesteps = int(cfg["train_timesteps"])
        self.schedule = dict(
            num_train_timesteps=self.train_timesteps,
            beta_start=float(cfg["beta_start"]),
            beta_end=float(cfg["beta_end"]),
            beta_schedule="linear",
            # SR3/diffusers practice: the predicted x_0 is clipped to the data range during
            # sampling (and the noise re-derived from it), which bounds an undertrained model.
            clip_sample=True,
            clip_sample_range=float(cfg["clip_x0"]),
            set_alpha_to_one=True,
            prediction_type="epsilon",
            timestep_spacing="trailing",  # the first DDIM step starts from pure noise (t = T - 1)
        )
        alphas_cumprod = DDIMScheduler(**self.schedule).alphas_cumprod
        final = float(alphas_cumprod[-1])
        if final > 0.05:
            raise ValueError(
                f"idm: the noise schedule ends at alpha_bar = {final:.3g}; expected <= 0.05 "
                "(x_T ~ N(0, I)): raise beta_end or train_timesteps"
            )
        # gamma bounds per discrete step t = 1..T: levels[t] = sqrt(alpha_bar_t), levels[0] = 1
        self.register_buffer(
            "levels", torch.cat([torch.ones(1), alphas_cumprod.sqrt()]), persistent=False
        )

        temb = 4 * width
        self.time_proj = Timesteps(width, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(width, temb)
        self.scale_embed = nn.Sequential(nn.Linear(1, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.hr = HRStage(hr_width, temb)
        g = _groups(width)
        chans = [width * k for k in mults]
        # input: the cell means of the HR features and of x_t, Q1 at the centres, encoder features
        self.conv_in = nn.Conv2d(hr_width + 2 + self.encoder.out_dim, chans[0], 3, padding=1)

        def res(cin, cout):
            return ResnetBlock2D(in_channels=cin, out_channels=cout, temb_channels=temb, groups=g)

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        last = chans[0]
        for i, ch in enumerate(chans):
            self.down.append(nn.ModuleList([res(last if j == 0 else ch, ch) for j in range(n_res)]))
            last = ch
            if i < len(chans) - 1:
                self.downsample.append(Downsample2D(ch, use_conv=True, out_channels=ch, padding=1))
        self.mid = UNetMidBlock2D(
            last,
            temb,
            resnet_groups=g,
            attention_head_dim=last,
            add_attention=bool(cfg["attention"]),
        )
        self.up_implicit = nn.ModuleList()  # from level i + 1 to level i
        self.up = nn.ModuleList()
        self.films = nn.ModuleList()
        for i in reversed(range(len(chans))):
            if i < len(chans) - 1:
                self.up_implicit.append(ImplicitUpsample(last, chans[i], hidden))
                self.films.append(nn.Linear(temb, 2 * hidden))
            self.up.append(
                nn.ModuleList(
                    [res(2 * chans[i] if j == 0 else chans[i], chans[i]) for j in range(n_res)]
                )
            )
            last = chans[i]
        self.out_norm = nn.GroupNorm(g, chans[0])
        self.out_conv = nn.Conv2d(chans[0], chans[0], 3, padding=1)
        # the final step to the HR nodes; extras: the HR features, x_t and Q1 at the node
        self.decoder = ImplicitUpsample(chans[0], 1, hidden, extra=hr_width + 2)
        self.decoder_film = nn.Linear(temb, 2 * hidden)

    # -- the denoiser ---------------------------------------------------------------------------
    def encode(self, inputs: dict) -> dict:
        feat = self.encoder(inputs["image"])
        E = feat.shape[-1]
        centres = cell_centre_coords(E, device=feat.device, dtype=feat.dtype).reshape(1, -1, 2)
        q1_cells = sample_nodal(inputs["lr"], centres.expand(feat.shape[0], -1, -1))
        q1_cells = q1_cells.transpose(1, 2).reshape(feat.shape[0], 1, E, E)
        return {"cond": torch.cat([q1_cells, feat], dim=1), "lr": inputs["lr"]}

    def unet(self, state: dict, pooled: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """The cell-level U-Net: (B, hr_width + 1, E, E) cell means -> (B, width, E, E)."""
        h = self.conv_in(torch.cat([pooled, state["cond"]], dim=1))
        skips = []
        for i, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, temb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.mid(h, temb)
        up_emb = self._with_ratio(temb, 2.0)
        for k, blocks in enumerate(self.up):
            skip = skips.pop()
            if k > 0:  # implicit upsampling onto the skip's cell centres
                Hs, Ws = skip.shape[-2:]
                c = (
                    cell_centre_coords(Hs, device=h.device, dtype=h.dtype)
                    .reshape(1, -1, 2)
                    .expand(h.shape[0], -1, -1)
                )
                cell = torch.full_like(c, hr_cell(Hs))
                film = self.films[k - 1](up_emb)
                up = self.up_implicit[k - 1]
                h = up(up.project(h), h.shape[-2:], c, cell, film)
                h = h.transpose(1, 2).reshape(h.shape[0], -1, Hs, Ws)
            h = torch.cat([h, skip], dim=1)
            for block in blocks:
                h = block(h, temb)
        return self.out_conv(F.silu(self.out_norm(h)))

    def _with_ratio(self, temb: torch.Tensor, ratio: float) -> torch.Tensor:
        """The noise-level embedding plus an embedding of log2(scale ratio) of an implicit step."""
        s = temb.new_full((temb.shape[0], 1), math.log2(ratio))
        return temb + self.scale_embed(s)

    def step_setup(
        self, state: dict, xq: torch.Tensor, gamma: torch.Tensor, rows: int, keep: bool
    ) -> StepSetup:
        """Everything of one denoising step that is not per node. ``xq`` (B, 2, M, M): x_t and
        the Q1 interpolant at the HR nodes. The HR stage runs in bands of ``rows`` node rows;
        ``keep``: return its features (training; sampling when they fit) instead of
        recomputing them per band in ``denoise_rows``."""
        M, E = xq.shape[-1], state["cond"].shape[-1]
        temb = self.time_embed(self.time_proj(1000.0 * gamma))
        tshift = self.hr.time(temb)
        wt = cell_weights(M - 1, E).to(xq.device, xq.dtype)  # (E, M)
        idx, w = cell_taps(M - 1, E)
        idx, w = idx.to(xq.device), w.to(xq.device, xq.dtype)
        pooled = 0.0
        # written band by band: no list of bands concatenated at the end (twice the memory)
        hr = xq.new_empty(xq.shape[0], self.hr.width, M, M) if keep and rows < M else None
        for r0 in range(0, M, rows):
            r1 = min(r0 + rows, M)
            band = torch.cat([self.hr(xq, tshift, r0, r1), xq[:, :1, r0:r1]], dim=1)
            # Exact cell means, separable: along y (a band's rows) densely; along x through the
            # few taps of each cell when sampling, densely in training (the backward of the
            # taps' gather is a slow scatter, the dense product's is a matmul).
            if torch.is_grad_enabled():
                along_x = band @ wt.T
            else:
                along_x = torch.einsum("bcyel,el->bcye", band[..., idx], w)
            pooled = pooled + wt[:, r0:r1] @ along_x
            if keep and hr is not None:
                hr[:, :, r0:r1] = band[:, :-1]
            elif keep:  # one band: the whole grid
                hr = band[:, :-1]
        top = self.unet(state, pooled, temb)
        emb = self._with_ratio(temb, (M - 1) / top.shape[-1])
        proj = self.decoder.project(top)
        return StepSetup(proj, top.shape[-2:], self.decoder_film(emb), tshift, hr)

    def denoise_nodes(self, setup: StepSetup, extra, coords, m: int) -> torch.Tensor:
        """Predicted noise (B, Q, 1) at nodes with coordinates ``coords`` (B, Q, 2) of an m x m
        mesh; ``extra`` (B, Q, hr_width + 2): the HR features, x_t and Q1 at those nodes."""
        cell = torch.full_like(coords, hr_cell(m))
        return self.decoder(setup.proj, setup.size, coords, cell, setup.film, extra)

    def denoise_rows(self, setup: StepSetup, xq, r0: int, r1: int, coords) -> torch.Tensor:
        """Predicted noise (B, (r1 - r0) * M) at node rows r0:r1; ``coords`` ((r1-r0) * M, 2)."""
        B, M = xq.shape[0], xq.shape[-1]
        hr = setup.hr[:, :, r0:r1] if setup.hr is not None else self.hr(xq, setup.tshift, r0, r1)
        extra = torch.cat([hr, xq[:, :, r0:r1]], dim=1).flatten(2).transpose(1, 2)
        c = coords.unsqueeze(0).expand(B, -1, -1)
        return self.denoise_nodes(setup, extra, c, M - 1)[..., 0]

    # -- training -------------------------------------------------------------------------------
    def training_loss(self, batch: dict, step: int = 0) -> tuple[torch.Tensor, dict]:
        if "hr" not in batch:
            raise KeyError("idm: training needs the HR field batch['hr'] (needs_full_field = True)")
        hr = batch["hr"]
        B, M = hr.shape[0], hr.shape[-1]
        state = self.encode(batch)
        q1 = q1_grid(batch["lr"], M - 1)
        x0 = (hr - q1) / self.residual_scale
        t = torch.randint(1, self.train_timesteps + 1, (B,), device=hr.device)
        lo, hi = self.levels[t], self.levels[t - 1]
        gamma = lo + (hi - lo) * torch.rand(B, device=hr.device, dtype=hr.dtype)
        noise = torch.randn_like(x0)
        g = gamma.view(B, 1, 1, 1)
        xq = torch.cat([g * x0 + (1.0 - g**2).sqrt() * noise, q1], dim=1)
        coords = batch["coords"]
        index = node_index(coords, M - 1)
        setup = self.step_setup(state, xq, gamma, rows=M, keep=True)
        every = torch.cat([setup.hr, xq], dim=1).flatten(2)  # (B, hr_width + 2, M * M)
        extra = torch.gather(every, 2, index.unsqueeze(1).expand(-1, every.shape[1], -1))
        pred = self.denoise_nodes(setup, extra.transpose(1, 2), coords, M - 1)
        target = torch.gather(noise.flatten(1), 1, index).unsqueeze(-1)
        loss = F.l1_loss(pred, target)
        return loss, {"eps_l1": float(loss.detach())}

    # -- inference ------------------------------------------------------------------------------
    @torch.inference_mode()
    def predict(
        self,
        inputs: dict,
        alpha: float,
        chunk: int = 65536,
        seed: int = 0,
        sample_ids=None,
        state=None,
    ) -> torch.Tensor:
        """DDIM from x_T seeded by (seed, sample id) per sample: see the module docstring."""
        lr = inputs["lr"]
        m = hr_size(lr.shape[-1] - 1, alpha)
        state = self.encode(inputs) if state is None else state
        noise = initial_noise(lr.shape[0], m, seed, sample_ids).to(lr.device, lr.dtype)
        return self._sample(state, m, chunk, noise)

    def query_encoded(self, state, coords, cell) -> torch.Tensor:
        m = max(1, int(round(2.0 / float(cell.min()))))
        lr = state["lr"]
        noise = initial_noise(lr.shape[0], m, 0).to(lr.device, lr.dtype)
        field = self._sample(state, m, 65536, noise)
        return sample_nodal(field.unsqueeze(1), coords)

    @torch.no_grad()
    def _sample(self, state: dict, m: int, chunk: int, noise: torch.Tensor) -> torch.Tensor:
        """DDIM from x_T = ``noise`` (B, 1, m+1, m+1) -> the field (B, m+1, m+1)."""
        lr = state["lr"]
        B, M, dev, dt = lr.shape[0], m + 1, lr.device, lr.dtype
        sched = DDIMScheduler(**self.schedule)
        sched.set_timesteps(self.ddim_steps, device=dev)
        coords_all = node_coords(m, device=dev, dtype=dt)
        rows = max(1, min(M, chunk // M))
        keep = B * self.hr.width * M * M <= HR_KEEP_ELEMENTS
        xq = torch.empty(B, 2, M, M, device=dev, dtype=dt)
        xq[:, 1:] = q1_grid(lr, m)
        x = noise
        eps = torch.empty(B, M * M, device=dev, dtype=dt)
        for t in sched.timesteps:
            gamma = sched.alphas_cumprod[int(t)].sqrt().to(dev, dt).expand(B)
            xq[:, :1] = x
            setup = self.step_setup(state, xq, gamma, rows, keep)
            for r0 in range(0, M, rows):
                r1 = min(r0 + rows, M)
                eps[:, r0 * M : r1 * M] = self.denoise_rows(
                    setup, xq, r0, r1, coords_all[r0 * M : r1 * M]
                )
            del setup
            step = sched.step(eps.view_as(x), t, x, eta=0.0, use_clipped_model_output=True)
            x = step.prev_sample
        return x.mul_(self.residual_scale).add_(xq[:, 1:])[:, 0]


def noise_seed(seed: int, sample_id: int) -> int:
    """The generator seed of one sample's x_T: a hash of (seed, sample id), both >= 0."""
    if int(seed) < 0 or int(sample_id) < 0:
        raise ValueError(f"idm: seed and sample id must be >= 0, got {seed}, {sample_id}")
    return int(np.random.SeedSequence([int(seed), int(sample_id)]).generate_state(1)[0])


def initial_noise(batch: int, m: int, seed: int, sample_ids=None) -> torch.Tensor:
    """x_T (batch, 1, m+1, m+1) on the CPU: sample b from a generator seeded by
    ``noise_seed(seed, sample_ids[b])``; ``sample_ids`` defaults to 0..batch-1."""
    ids = range(batch) if sample_ids is None else [int(s) for s in sample_ids]
    if len(ids) != batch:
        raise ValueError(f"idm: {len(ids)} sample ids for a batch of {batch}")
    out = torch.empty(batch, 1, m + 1, m + 1)
    for b, sid in enumerate(ids):
        g = torch.Generator().manual_seed(noise_seed(seed, sid))
        out[b] = torch.randn(1, m + 1, m + 1, generator=g)
    return out


def q1_grid(lr: torch.Tensor, m: int) -> torch.Tensor:
    """The Q1 interpolant of the LR nodal field (B, 1, n+1, n+1) at the nodes of an m x m mesh."""
    B = lr.shape[0]
    coords = node_coords(m, device=lr.device, dtype=lr.dtype).unsqueeze(0).expand(B, -1, -1)
    return sample_nodal(lr, coords).transpose(1, 2).reshape(B, -1, m + 1, m + 1)


@lru_cache(maxsize=16)
def _cell_weights64(m: int, E: int) -> np.ndarray:
    t = np.arange(m + 1) / m  # node positions
    edges = np.arange(E + 1) / E

    def antiderivative(s):  # of the unit hat function max(0, 1 - |s|)
        s = np.clip(s, -1.0, 1.0)
        return np.where(s <= 0, 0.5 * (s + 1.0) ** 2, 1.0 - 0.5 * (1.0 - s) ** 2)

    prim = antiderivative((edges[:, None] - t[None, :]) * m)  # (E + 1, m + 1)
    return (prim[1:] - prim[:-1]) * (E / m)


def cell_weights(m: int, E: int) -> torch.Tensor:
    """(E, m+1) float64: row e holds the weights of the m+1 nodes in the mean over cell e (of
    E equal cells of [0, 1]) of their piecewise-linear interpolant; rows sum to one. The mean of
    a Q1 field over the cells of an E x E grid is ``W @ field @ W.T``."""
    # a fresh tensor per call: a cached one made under inference_mode could not enter autograd
    return torch.from_numpy(_cell_weights64(int(m), int(E)).copy())


@lru_cache(maxsize=16)
def _cell_taps64(m: int, E: int) -> tuple[np.ndarray, np.ndarray]:
    W = _cell_weights64(m, E)
    nz = W != 0
    first = nz.argmax(1)
    last = m - nz[:, ::-1].argmax(1)
    idx = first[:, None] + np.arange(int((last - first).max()) + 1)
    inside = idx <= last[:, None]
    idx = np.minimum(idx, m)
    return idx, np.where(inside, np.take_along_axis(W, idx, 1), 0.0)


def cell_taps(m: int, E: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``cell_weights(m, E)`` as taps: node indices (E, L) int64 and weights (E, L) float64,
    L = the most nodes any cell's mean involves (about m / E + 2); padding taps weigh 0. The mean
    along one axis of a nodal array f (..., m+1) is ``(f[..., idx] * w).sum(-1)``, without the
    dense (m+1) x E product."""
    idx, w = _cell_taps64(int(m), int(E))
    return torch.from_numpy(idx.copy()), torch.from_numpy(w.copy())


def cell_average(field: torch.Tensor, E: int) -> torch.Tensor:
    """Exact mean of a nodal field (B, C, m+1, m+1) (Q1 between its nodes) over each of E x E
    cells -> (B, C, E, E)."""
    w = cell_weights(field.shape[-1] - 1, E).to(field.device, field.dtype)
    return w @ field @ w.T


def node_index(coords: torch.Tensor, m: int) -> torch.Tensor:
    """Flat index (B, Q) of the node of an m x m mesh nearest to each coordinate."""
    ij = ((coords + 1.0) * 0.5 * m).round().long().clamp_(0, m)
    return ij[..., 1] * (m + 1) + ij[..., 0]
