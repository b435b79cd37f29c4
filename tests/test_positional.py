"""The coordinate encodings of NH-CSR's Table II; the Gabor wavelet's special cases (III.C)."""

import math

import pytest
import torch

from fesr.models.positional import (
    PE_NAMES,
    SIREN_OMEGA0,
    GaborEncoding,
    build_positional,
    gabor,
)


def test_gabor_is_cosine_when_s0_is_zero():
    x = torch.linspace(-2, 2, 101)
    torch.testing.assert_close(gabor(x, x, omega0=8.0, s0=0.0), torch.cos(8.0 * x))


def test_gabor_is_gaussian_when_omega0_is_zero():
    x = torch.linspace(-2, 2, 101)
    torch.testing.assert_close(gabor(x, x, omega0=0.0, s0=6.0), torch.exp(-((6.0 * x) ** 2)))


def test_gabor_is_the_papers_wavelet():
    """phi(x; omega0, s0) = cos(omega0 x) exp(-(s0 x)^2) at a few hand-checked values."""
    x = torch.tensor([0.0, 0.1, 0.25])
    expected = torch.tensor([1.0, math.cos(0.8) * math.exp(-0.36), math.cos(2.0) * math.exp(-2.25)])
    torch.testing.assert_close(gabor(x, x, 8.0, 6.0), expected)


def test_gabor_encoding_layers_reduce_to_cosine_and_gaussian():
    """Two layers with s0 = 0: each is cos(omega0 (W1 x + b1)); with omega0 = 0: a Gaussian."""
    torch.manual_seed(0)
    x = torch.rand(5, 2) * 2 - 1
    for omega0, s0 in [(8.0, 0.0), (0.0, 6.0)]:
        enc = GaborEncoding(4, omega0, s0)
        h = x
        for layer in enc.layers:
            u, v = layer.linear(h).chunk(2, dim=-1)
            h = torch.cos(omega0 * u) if s0 == 0 else torch.exp(-((s0 * v) ** 2))
        torch.testing.assert_close(enc(x, None), h)


@pytest.mark.parametrize("name", PE_NAMES)
def test_every_encoding_builds_and_broadcasts(name):
    torch.manual_seed(0)
    enc = build_positional(name, 16, feat_dim=5)
    rel = torch.rand(2, 7, 9, 2) * 2 - 1
    cell = torch.full((2, 7, 1, 2), 0.1)
    local = torch.rand(2, 7, 9, getattr(enc, "local_channels", 0))
    out = enc(rel, cell, local if local.shape[-1] else None)
    assert out.shape == (2, 7, 9, enc.out_dim)
    assert torch.isfinite(out).all()


def test_ipe_attenuates_high_frequencies_with_the_cell():
    """mip-NeRF IPE: a cell damps frequency f by exp(-f^2 cell^2 / 24); zero cell = plain PE."""
    enc = build_positional("ipe", 16)
    rel = torch.tensor([[0.3, -0.2]])
    sharp = enc(rel, torch.zeros(1, 2))
    blurred = enc(rel, torch.full((1, 2), 0.5))
    f = enc.freqs
    n = len(f)
    # layout per axis: n sines then n cosines
    sin = torch.sin(rel[0].unsqueeze(-1) * f)  # (2, n)
    torch.testing.assert_close(sharp.view(2, 2 * n)[:, :n], sin)
    damp = torch.exp(-0.5 * (0.25 / 12) * f**2)
    torch.testing.assert_close(blurred.view(2, 2 * n)[:, :n], sin * damp)
    torch.testing.assert_close(
        blurred.view(2, 2 * n)[:, n:], torch.cos(rel[0].unsqueeze(-1) * f) * damp
    )


def test_plain_is_the_raw_offset_and_unknown_name_is_an_error():
    rel = torch.rand(3, 2)
    torch.testing.assert_close(build_positional("plain", 16)(rel, None), rel)
    with pytest.raises(ValueError, match="'fourier'"):
        build_positional("fourier", 16)


def test_sinusoid_uses_sirens_omega0():
    """SIREN's first layer: sin(30 (W x + b)), whatever the Gabor's omega0 is."""
    torch.manual_seed(0)
    enc = build_positional("sinusoid", 8, omega0=8.0)
    first = enc.layers[0]
    assert SIREN_OMEGA0 == 30.0 and first.omega0 == 30.0
    x = torch.rand(4, 2)
    torch.testing.assert_close(first(x), torch.sin(30.0 * first.linear(x)))


def test_lte_estimates_amplitude_and_frequency_from_the_features():
    """LTE's encoding: amp * [cos, sin](pi (fx rx + fy ry + phase(cell))), amp and (fx, fy) read
    from the local estimates (a 3x3 conv of the features), so other features give another code."""
    torch.manual_seed(0)
    enc = build_positional("lte", 8, feat_dim=3)
    n = enc.n
    assert enc.local_channels == 4 * n and enc.out_dim == 2 * n
    feat = torch.rand(1, 3, 5, 5)
    maps = enc.maps(feat)
    assert maps.shape == (1, 4 * n, 5, 5)
    local = maps[0, :, 2, 2]
    rel, cell = torch.tensor([0.3, -0.2]), torch.tensor([0.1, 0.1])
    amp, fx, fy = local[: 2 * n], local[2 * n : 3 * n], local[3 * n :]
    arg = math.pi * (fx * rel[0] + fy * rel[1] + enc.phase(cell))
    expected = amp * torch.cat([torch.cos(arg), torch.sin(arg)])
    torch.testing.assert_close(enc(rel, cell, local), expected)
    other = enc.maps(feat + 1.0)[0, :, 2, 2]
    assert not torch.allclose(enc(rel, cell, other), expected)
    with pytest.raises(ValueError, match="local estimates"):
        enc(rel, cell)
    with pytest.raises(ValueError, match="feat_dim"):
        build_positional("lte", 8)
