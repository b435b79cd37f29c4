"""SwinIR as a feature encoder (Liang et al. 2021), without its upsampler, written here.

timm is not used: it pulls torchvision, which has no CPU wheel on this package index.

Structure (SwinIR's classical-SR body, as the LIIF family uses it with ``no_upsampling``):

* shallow feature extraction: one 3x3 conv ``in_channels -> embed_dim``;
* deep features: residual Swin transformer blocks (RSTB). Each RSTB is ``depth`` Swin layers
  (window multi-head self-attention with a learned relative position bias, alternating with
  shifted windows whose cross-boundary pairs are masked out; pre-LayerNorm; MLP with GELU),
  then a 3x3 conv, plus the RSTB's own residual;
* a final LayerNorm, a 3x3 conv after the body, and the long skip from the shallow features;
* with ``out_dim`` set, a 3x3 conv to ``out_dim`` features and LeakyReLU (SwinIR's
  ``conv_before_upsample``, which the LIIF-family repositories keep when they drop the
  upsampler).

Output ``(B, out_dim, H, W)`` at the input resolution (``out_dim = embed_dim`` without the final
conv). ``config.yaml`` holds the classical-SR size the LIIF family uses: embed_dim 180, six RSTBs
of six layers with six heads, window 8, mlp_ratio 2, drop-path 0.1, then 64 features (about
11.6M parameters with our 2 input channels); the presets shrink it.

Choices where SwinIR leaves room:

* The input is reflect-padded to a multiple of ``window_size`` (SwinIR's ``check_image_size``)
  and the features are cropped back, so any E works.
* No mean subtraction / ``img_range``: our fields are already normalised (SPEC 2).
* Stochastic depth (``drop_path``, SwinIR's ``drop_path_rate``): the residual branches of
  layer l of L are dropped per sample with probability ``drop_path * l / (L - 1)`` in training
  (SwinIR's linear rule), scaled by 1 / keep; identity in eval. No other dropout (SwinIR's
  defaults are 0).
* Shifted windows are used only when the padded map holds more than one window per side;
  otherwise a shift would wrap a single window onto itself (SwinIR does the same).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, ws*ws, C)."""
    B, H, W, C = x.shape
    x = x.view(B, H // ws, ws, W // ws, ws, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, C)


def window_reverse(windows: torch.Tensor, ws: int, H: int, W: int) -> torch.Tensor:
    """(B * nW, ws*ws, C) -> (B, H, W, C)."""
    C = windows.shape[-1]
    B = windows.shape[0] // ((H // ws) * (W // ws))
    x = windows.view(B, H // ws, W // ws, ws, ws, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(B, H, W, C)


def relative_position_index(ws: int) -> torch.Tensor:
    """(ws*ws, ws*ws) index into the (2ws-1)^2 bias table for every pair of window positions."""
    yy, xx = torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")
    pos = torch.stack([yy.flatten(), xx.flatten()])  # (2, ws*ws)
    rel = pos[:, :, None] - pos[:, None, :] + (ws - 1)  # each axis in [0, 2ws-2]
    return rel[0] * (2 * ws - 1) + rel[1]


def shifted_window_mask(H: int, W: int, ws: int, shift: int, device) -> torch.Tensor:
    """(nW, ws*ws, ws*ws) additive mask: -100 between tokens that the cyclic shift brought
    together from different image regions, 0 otherwise."""
    region = torch.zeros(1, H, W, 1, device=device)
    label = 0
    for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for wsl in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            region[:, hs, wsl, :] = label
            label += 1
    win = window_partition(region, ws).squeeze(-1)  # (nW, ws*ws)
    diff = win[:, None, :] - win[:, :, None]
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside a window, with a learned relative position bias."""

    def __init__(self, dim: int, ws: int, heads: int):
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"SwinIR: embed_dim {dim} must be divisible by num_heads {heads}")
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        self.register_buffer("rel_index", relative_position_index(ws), persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        Bw, N, C = x.shape
        qkv = self.qkv(x).view(Bw, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (Bw, heads, N, d)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.bias_table[self.rel_index.view(-1)].view(N, N, -1).permute(2, 0, 1)
        attn = attn + bias.unsqueeze(0)
        if mask is not None:
            nW = mask.shape[0]
            attn = attn.view(Bw // nW, nW, self.heads, N, N) + mask[None, :, None]
            attn = attn.view(Bw, self.heads, N, N)
        out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(Bw, N, C))


class DropPath(nn.Module):
    """Stochastic depth: zero a residual branch per sample with probability p (training only)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"SwinIR: drop_path must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class SwinBlock(nn.Module):
    """Pre-norm Swin layer: (shifted) window attention + MLP, each with a residual."""

    def __init__(
        self, dim: int, heads: int, ws: int, shift: int, mlp_ratio: float, drop_path: float = 0.0
    ):
        super().__init__()
        self.ws, self.shift = ws, shift
        self.drop_path = DropPath(drop_path)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, ws, heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, H: int, W: int, mask: torch.Tensor | None = None):
        """x (B, H*W, C); ``mask`` from ``shifted_window_mask`` (built here if not given)."""
        B, L, C = x.shape
        ws = self.ws
        shift = self.shift if min(H, W) > ws else 0
        h = self.norm1(x).view(B, H, W, C)
        if shift:
            h = torch.roll(h, shifts=(-shift, -shift), dims=(1, 2))
            if mask is None:
                mask = shifted_window_mask(H, W, ws, shift, x.device)
            mask = mask.to(x.dtype)
        else:
            mask = None
        h = window_reverse(self.attn(window_partition(h, ws), mask), ws, H, W)
        if shift:
            h = torch.roll(h, shifts=(shift, shift), dims=(1, 2))
        x = x + self.drop_path(h.reshape(B, L, C))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class RSTB(nn.Module):
    """Residual Swin transformer block: ``depth`` Swin layers, a 3x3 conv, a residual."""

    def __init__(self, dim: int, depth: int, heads: int, ws: int, mlp_ratio: float, drop_path=None):
        super().__init__()
        rates = list(drop_path) if drop_path is not None else [0.0] * depth
        self.blocks = nn.ModuleList(
            [
                SwinBlock(dim, heads, ws, 0 if i % 2 == 0 else ws // 2, mlp_ratio, rates[i])
                for i in range(depth)
            ]
        )
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor, H: int, W: int, mask=None) -> torch.Tensor:
        h = x
        for blk in self.blocks:
            h = blk(h, H, W, mask)
        B, L, C = h.shape
        h = self.conv(h.transpose(1, 2).reshape(B, C, H, W)).flatten(2).transpose(1, 2)
        return x + h


class SwinIREncoder(nn.Module):
    """SwinIR body as an encoder: (B, in_channels, H, W) -> (B, out_dim, H, W)."""

    def __init__(
        self,
        in_channels: int,
        embed_dim: int = 60,
        depths=(6, 6, 6, 6),
        num_heads=(6, 6, 6, 6),
        window_size: int = 8,
        mlp_ratio: float = 2.0,
        drop_path: float = 0.0,
        out_dim: int | None = None,
    ):
        super().__init__()
        depths, num_heads = list(depths), list(num_heads)
        if len(depths) != len(num_heads):
            raise ValueError(f"SwinIR: depths {depths} and num_heads {num_heads} differ in length")
        if window_size < 1:
            raise ValueError(f"SwinIR: window_size must be >= 1, got {window_size}")
        self.window_size = int(window_size)
        self.out_dim = int(embed_dim if out_dim is None else out_dim)
        self.conv_first = nn.Conv2d(in_channels, embed_dim, 3, padding=1)
        self.embed_norm = nn.LayerNorm(embed_dim)  # SwinIR's patch_norm
        # SwinIR's linear stochastic-depth rule over all layers of all RSTBs
        total = sum(depths)
        rates = [float(drop_path) * i / max(total - 1, 1) for i in range(total)]
        starts = [sum(depths[:i]) for i in range(len(depths))]
        self.layers = nn.ModuleList(
            [
                RSTB(embed_dim, d, h, self.window_size, mlp_ratio, rates[s : s + d])
                for d, h, s in zip(depths, num_heads, starts, strict=True)
            ]
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, padding=1)
        self.conv_out = (
            None
            if out_dim is None
            else nn.Sequential(nn.Conv2d(embed_dim, self.out_dim, 3, padding=1), nn.LeakyReLU())
        )
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        # SwinIR's initialisation: truncated normal linears, unit LayerNorms.
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[-2:]
        ws = self.window_size
        ph, pw = (-H) % ws, (-W) % ws
        if ph or pw:
            mode = "reflect" if ph < H and pw < W else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        Hp, Wp = H + ph, W + pw
        shallow = self.conv_first(x)
        t = self.embed_norm(shallow.flatten(2).transpose(1, 2))  # (B, Hp*Wp, C)
        # one mask for every shifted block (all shift by window_size // 2)
        mask = None
        if self.window_size // 2 and min(Hp, Wp) > ws:
            mask = shifted_window_mask(Hp, Wp, ws, ws // 2, x.device)
        for layer in self.layers:
            t = layer(t, Hp, Wp, mask)
        t = self.norm(t)
        deep = t.transpose(1, 2).reshape(shallow.shape)
        out = self.conv_after_body(deep) + shallow
        if self.conv_out is not None:
            out = self.conv_out(out)
        return out[..., :H, :W]
