"""IDM: a conditional denoising diffusion model for continuous SR (after Gao et al., CVPR 2023).

What it keeps from IDM: epsilon (noise) prediction conditioned on a *continuous* noise level
gamma = sqrt(alpha_bar) (SR3/WaveGrad style: gamma is drawn uniformly between two neighbouring
levels of the discrete schedule during training), conditioning on the interpolated input and on
the encoder features of the 2-channel image (LR field + coefficient), a U-Net whose decoder
upsamples with *scale-aware implicit functions* (an MLP queried at the finer grid's coordinates,
with the cell size as input and its hidden layer modulated (FiLM) by the noise-level embedding
plus an embedding of the log scale ratio), and deterministic DDIM sampling (eta = 0) with
``ddim_steps`` steps. Schedules, the DDIM update, timestep embeddings and the residual and
attention blocks come from ``diffusers``; the implicit upsampling is ours.

How it differs from the original IDM (which runs an SR3 U-Net at the target resolution):

* The diffused variable is the residual to the Q1 (exact FE) interpolant of the LR field,
  divided by ``residual_scale`` (SRDiff practice), not the HR image itself; output =
  Q1(X) + residual_scale * x_0.
* The U-Net runs on the coarse E x E grid of the encoder features, whatever the output size:
  its input is the noisy field x_t averaged onto the E x E cells (exactly: x_t is sampled on a
  K x K sub-grid of every cell, K = ceil(m / E), and averaged), the Q1 interpolant at the cell
  centres and the encoder features. Only the last, scale-aware implicit step reaches the HR
  nodes: per node it sees the 4 surrounding coarse cells (area-weighted features and offsets,
  one MLP pass as in LINF's feature ensemble), the cell size, the node's own x_t and Q1 value.
  This keeps the full-resolution part one channel thin (x_t, epsilon, Q1: three (m+1)^2 maps),
  so alpha = 64 (2049^2 nodes) fits in memory; ``chunk`` bounds the number of nodes per call of
  the final implicit decoder. Internal decoder steps are implicit too (ratio 2, on the cell
  centres of the next finer level).
* The predicted x_0 is clipped to [-clip_x0, clip_x0] at every DDIM step (SR3 clips to the
  image range [-1, 1]); with ``residual_scale`` 0.5 the default 3 is 1.5 field units, about twice
  the largest residual seen at 16x on a random map.
* Smaller: ``mults`` levels of ``res_blocks`` residual blocks, one mid block with attention
  at the coarsest level (IDM: attention at 16 x 16), an L1 noise loss (as SR3/IDM).

Training needs the whole HR field (``needs_full_field = True``: the loader adds ``batch["hr"]``,
(B, 1, m+1, m+1)) because the U-Net sees x_t everywhere; the loss is taken at the queried
nodes only (``coords`` are rounded to the nearest node of the m x m mesh).

``predict(inputs, alpha, chunk, seed)`` draws x_T for the whole grid from a generator seeded
with ``seed`` and runs DDIM: a fixed seed gives the same field for any ``chunk``.
``query(inputs, coords, cell)`` runs ``predict`` on the node grid whose cell is the smallest
requested cell and interpolates that field (Q1, exact at its nodes) at ``coords``.
"""

from __future__ import annotations

import math

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
from fesr.models.local import flatten_map, four_neighbours, gather
from fesr.models.registry import register


class ImplicitUpsample(nn.Module):
    """A scale-aware implicit function: values at any points from a cell-centred feature map.

    Input per query: the 4 surrounding cells' features and offsets, each times its area
    weight, concatenated; the cell size (in source pixels); optional per-point extras. The
    hidden layer is modulated by ``film`` (B, 2 * hidden), computed by the caller from the
    noise level and the scale ratio.
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

    def forward(self, flat, size, coords, cell, film, extra=None) -> torch.Tensor:
        H, W = size
        B, Q = coords.shape[:2]
        nb = four_neighbours(coords, H, W)
        w = nb.weight.unsqueeze(-1)
        feat = (gather(flat, nb.index) * w).reshape(B, Q, -1)
        pos = [(nb.rel * w).reshape(B, Q, -1), cell * cell.new_tensor([W / 2.0, H / 2.0])]
        if extra is not None:
            pos.append(extra)
        h = self.feat_in(feat) + self.pos_in(torch.cat(pos, dim=-1))
        scale, shift = film.unsqueeze(1).chunk(2, dim=-1)
        h = F.silu(torch.addcmul(shift, h, 1.0 + scale), inplace=True)
        return self.out(F.silu(self.mid(h), inplace=True))


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
        width = int(cfg.get("width", 64))
        mults = [int(x) for x in cfg.get("mults", [1, 2, 4, 4])]
        n_res = int(cfg.get("res_blocks", 2))
        hidden = int(cfg.get("decoder_hidden", 64))
        self.residual_scale = float(cfg.get("residual_scale", 0.5))
        self.ddim_steps = int(cfg.get("ddim_steps", 50))
        self.train_timesteps = int(cfg.get("train_timesteps", 2000))
        self.schedule = dict(
            num_train_timesteps=self.train_timesteps,
            beta_start=float(cfg.get("beta_start", 1e-6)),
            beta_end=float(cfg.get("beta_end", 1e-2)),
            beta_schedule="linear",
            # SR3/diffusers practice: the predicted x_0 is clipped to the data range during
            # sampling (and the noise re-derived from it), which bounds an undertrained model.
            clip_sample=True,
            clip_sample_range=float(cfg.get("clip_x0", 3.0)),
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
        g = _groups(width)
        chans = [width * k for k in mults]
        self.conv_in = nn.Conv2d(2 + self.encoder.out_dim, chans[0], 3, padding=1)

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
            add_attention=bool(cfg.get("attention", True)),
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
        # the final step to the HR nodes; extras: the node's x_t and its Q1 value
        self.decoder = ImplicitUpsample(chans[0], 1, hidden, extra=2)
        self.decoder_film = nn.Linear(temb, 2 * hidden)

    # -- the denoiser ---------------------------------------------------------------------------
    def encode(self, inputs: dict) -> dict:
        feat = self.encoder(inputs["image"])
        E = feat.shape[-1]
        centres = cell_centre_coords(E, device=feat.device, dtype=feat.dtype).reshape(1, -1, 2)
        q1_cells = sample_nodal(inputs["lr"], centres.expand(feat.shape[0], -1, -1))
        q1_cells = q1_cells.transpose(1, 2).reshape(feat.shape[0], 1, E, E)
        return {"cond": torch.cat([q1_cells, feat], dim=1), "lr": inputs["lr"]}

    def unet(self, state: dict, xt_cells: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """The coarse U-Net: (B, 1, E, E) cell averages of x_t -> (B, width, E, E) features."""
        h = self.conv_in(torch.cat([xt_cells, state["cond"]], dim=1))
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
                h = self.up_implicit[k - 1](flatten_map(h), h.shape[-2:], c, cell, film)
                h = h.transpose(1, 2).reshape(h.shape[0], -1, Hs, Ws)
            h = torch.cat([h, skip], dim=1)
            for block in blocks:
                h = block(h, temb)
        return self.out_conv(F.silu(self.out_norm(h)))

    def _with_ratio(self, temb: torch.Tensor, ratio: float) -> torch.Tensor:
        """The noise-level embedding plus an embedding of log2(scale ratio) of an implicit step."""
        s = temb.new_full((temb.shape[0], 1), math.log2(ratio))
        return temb + self.scale_embed(s)

    def denoise_setup(self, state: dict, xt: torch.Tensor, gamma: torch.Tensor):
        """Everything of one denoising step that is not per node: (top map, size, FiLM)."""
        m = xt.shape[-1] - 1
        temb = self.time_embed(self.time_proj(1000.0 * gamma))
        top = self.unet(state, cell_average(xt, state["cond"].shape[-1]), temb)
        emb = self._with_ratio(temb, m / top.shape[-1])
        return flatten_map(top), top.shape[-2:], self.decoder_film(emb)

    def denoise_nodes(self, setup, xt_flat, q1_flat, index, coords, m) -> torch.Tensor:
        """Predicted noise (B, Q, 1) at the nodes ``index`` (B, Q) with coordinates ``coords``;
        ``xt_flat``, ``q1_flat`` (B, (m+1)^2): x_t and the Q1 interpolant at every node."""
        flat, size, film = setup
        extra = torch.stack([torch.gather(xt_flat, 1, index), torch.gather(q1_flat, 1, index)], -1)
        cell = torch.full_like(coords, hr_cell(m))
        return self.decoder(flat, size, coords, cell, film, extra)

    # -- training -------------------------------------------------------------------------------
    def training_loss(self, batch: dict, step: int = 0) -> tuple[torch.Tensor, dict]:
        if "hr" not in batch:
            raise KeyError(
                "idm: training needs the full HR field batch['hr'] (needs_full_field = True)"
            )
        hr = batch["hr"]
        B, m = hr.shape[0], hr.shape[-1] - 1
        state = self.encode(batch)
        q1 = q1_grid(batch["lr"], m)
        x0 = (hr - q1) / self.residual_scale
        t = torch.randint(1, self.train_timesteps + 1, (B,), device=hr.device)
        lo, hi = self.levels[t], self.levels[t - 1]
        gamma = lo + (hi - lo) * torch.rand(B, device=hr.device, dtype=hr.dtype)
        noise = torch.randn_like(x0)
        g = gamma.view(B, 1, 1, 1)
        xt = g * x0 + (1.0 - g**2).sqrt() * noise
        coords = batch["coords"]
        index = node_index(coords, m)
        setup = self.denoise_setup(state, xt, gamma)
        pred = self.denoise_nodes(setup, xt.flatten(1), q1.flatten(1), index, coords, m)
        target = torch.gather(noise.flatten(1), 1, index).unsqueeze(-1)
        loss = F.l1_loss(pred, target)
        return loss, {"eps_l1": float(loss.detach())}

    # -- inference ------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(
        self, inputs: dict, alpha: float, chunk: int = 65536, seed: int = 0
    ) -> torch.Tensor:
        lr = inputs["lr"]
        return self._sample(self.encode(inputs), hr_size(lr.shape[-1] - 1, alpha), chunk, seed)

    def query_encoded(self, state, coords, cell) -> torch.Tensor:
        m = max(1, int(round(2.0 / float(cell.min()))))
        field = self._sample(state, m, 65536, seed=0)
        return sample_nodal(field.unsqueeze(1), coords)

    @torch.no_grad()
    def _sample(self, state: dict, m: int, chunk: int, seed: int) -> torch.Tensor:
        lr = state["lr"]
        B, dev, dt = lr.shape[0], lr.device, lr.dtype
        gen = torch.Generator(device=dev).manual_seed(int(seed))
        x = torch.randn(B, 1, m + 1, m + 1, generator=gen, device=dev, dtype=dt)
        sched = DDIMScheduler(**self.schedule)
        sched.set_timesteps(self.ddim_steps, device=dev)
        coords_all = node_coords(m, device=dev, dtype=dt)
        N = coords_all.shape[0]
        q1_flat = q1_grid(lr, m).flatten(1)
        for t in sched.timesteps:
            gamma = sched.alphas_cumprod[int(t)].sqrt().to(dev, dt).expand(B)
            setup = self.denoise_setup(state, x, gamma)
            x_flat = x.flatten(1)
            eps = torch.empty(B, N, device=dev, dtype=dt)
            for start in range(0, N, chunk):
                stop = min(start + chunk, N)
                c = coords_all[start:stop].unsqueeze(0).expand(B, -1, -1)
                index = torch.arange(start, stop, device=dev).unsqueeze(0).expand(B, -1)
                eps[:, start:stop] = self.denoise_nodes(setup, x_flat, q1_flat, index, c, m)[..., 0]
            step = sched.step(eps.view_as(x), t, x, eta=0.0, use_clipped_model_output=True)
            x = step.prev_sample
        return x.mul_(self.residual_scale).add_(q1_flat.view_as(x))[:, 0]


def q1_grid(lr: torch.Tensor, m: int) -> torch.Tensor:
    """The Q1 interpolant of the LR nodal field (B, 1, n+1, n+1) at the nodes of an m x m mesh."""
    B = lr.shape[0]
    coords = node_coords(m, device=lr.device, dtype=lr.dtype).unsqueeze(0).expand(B, -1, -1)
    return sample_nodal(lr, coords).transpose(1, 2).reshape(B, -1, m + 1, m + 1)


def cell_average(field: torch.Tensor, E: int) -> torch.Tensor:
    """Mean of a nodal field (B, 1, m+1, m+1) over each of E x E cells -> (B, 1, E, E).

    The field (Q1 between its nodes) is sampled at the centres of a K x K sub-grid of every
    cell, K = ceil(m / E), and averaged, so every HR node near a cell contributes to its mean
    (K = 1, m <= E: the value at the cell centre).
    """
    B, m = field.shape[0], field.shape[-1] - 1
    K = max(1, math.ceil(m / E))
    centres = cell_centre_coords(K * E, device=field.device, dtype=field.dtype).reshape(1, -1, 2)
    fine = (
        sample_nodal(field, centres.expand(B, -1, -1)).transpose(1, 2).reshape(B, 1, K * E, K * E)
    )
    return F.avg_pool2d(fine, K) if K > 1 else fine


def node_index(coords: torch.Tensor, m: int) -> torch.Tensor:
    """Flat index (B, Q) of the node of an m x m mesh nearest to each coordinate."""
    ij = ((coords + 1.0) * 0.5 * m).round().long().clamp_(0, m)
    return ij[..., 1] * (m + 1) + ij[..., 0]
