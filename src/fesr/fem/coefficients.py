"""Coefficient maps A (SPEC 1): E x E cell-centred arrays, ``A[i, j]`` on cell
``[j/E, (j+1)/E] x [i/E, (i+1)/E]`` (row index = y).

* Random maps: every cell i.i.d., the high value with probability ``p_high``. Each sample has its
  own generator seeded by ``SeedSequence([seed, split_id, sample])``, so a map depends only on
  (seed, split, sample index), never on sharding or the MPI rank count.
* 13 named deterministic maps from the checkerboard, wave (curved bands) and stripes (straight
  bands with a stride) families, channels that cross the whole domain, and region-wise mixtures of
  three families. Everything is defined in units of E/32 cells so that any E divisible by 32
  (64, 128, ...) gives the same picture at a finer resolution.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from fesr.fem.plan import DETERMINISTIC_MAPS
from fesr.fem.positions import cell_centre_positions

SPLIT_IDS = {"train": 0, "val": 1, "test_random": 2, "test_deterministic": 3}

__all__ = ["DETERMINISTIC_MAPS", "deterministic_map", "random_map", "resolve_map_names"]


def check_E(E) -> int:
    if isinstance(E, bool) or not isinstance(E, int | np.integer) or E < 32 or E % 32:
        raise ValueError(
            f"E must be a positive multiple of 32 (coefficient cells per side), got {E!r}"
        )
    return int(E)


def check_contrast(contrast: Sequence[float]) -> tuple[float, float]:
    values = tuple(float(c) for c in contrast)
    if len(values) != 2:
        raise ValueError(f"contrast must be two values [low, high], got {contrast!r}")
    if not all(np.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"contrast values must be finite and > 0, got {list(values)}")
    return values


def split_id(split: str) -> int:
    if split not in SPLIT_IDS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLIT_IDS)}")
    return SPLIT_IDS[split]


def random_map(
    E: int, contrast: Sequence[float], p_high: float, seed: int, split: str, sample: int
) -> np.ndarray:
    """The random binary map of (seed, split, sample): E x E float64."""
    E = check_E(E)
    low, high = check_contrast(contrast)
    if not 0.0 <= float(p_high) <= 1.0:
        raise ValueError(f"p_high must lie in [0, 1], got {p_high!r}")
    if int(seed) < 0 or int(sample) < 0:
        raise ValueError(f"seed and sample must be >= 0, got seed={seed!r}, sample={sample!r}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), split_id(split), int(sample)]))
    return np.where(rng.random((E, E)) < float(p_high), high, low)


# ---- deterministic maps: boolean masks "high here" on the cell centres -------------------------


def _grid(E: int) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre coordinates X, Y (E x E) with X varying along columns and Y along rows."""
    c = cell_centre_positions(E)
    Y, X = np.meshgrid(c, c, indexing="ij")
    return X, Y


def _checkerboard(X, Y, blocks: int):
    return (np.floor(X * blocks) + np.floor(Y * blocks)) % 2 == 1


def _wave(X, Y, bands: int, amplitude: float):
    # Curved bands: level sets of y - a sin(2 pi x), high on every other band.
    return np.sin(2 * np.pi * bands * (Y - amplitude * np.sin(2 * np.pi * X))) > 0


def _stripes(t, width: float, stride: float, offset: float = 0.0):
    # Straight bands of the given width, repeating with the given stride, along coordinate t.
    return np.mod(t - offset, stride) < width


def _mask(name: str, E: int) -> np.ndarray:
    X, Y = _grid(E)
    u = 1.0 / 32  # one "unit" = E/32 cells
    if name == "checkerboard":
        return _checkerboard(X, Y, 8)
    if name == "checkerboard_fine":
        return _checkerboard(X, Y, 32)
    if name == "wave":
        return _wave(X, Y, bands=4, amplitude=0.08)
    if name == "wave_dense":
        return _wave(X, Y, bands=10, amplitude=0.15)
    if name == "stripes_horizontal":
        return _stripes(Y, 2 * u, 6 * u, offset=u)
    if name == "stripes_vertical":
        return _stripes(X, 2 * u, 6 * u, offset=u)
    if name == "stripes_diagonal":
        return _stripes((X + Y) / np.sqrt(2), 2 * u, 8 * u)
    if name == "channels_cross":
        # Two horizontal and two vertical high channels from boundary to boundary on a low
        # background holding isolated high inclusions.
        channels = (np.abs(Y - 1 / 3) < 1.5 * u) | (np.abs(Y - 2 / 3) < 1.5 * u)
        channels |= (np.abs(X - 1 / 3) < 1.5 * u) | (np.abs(X - 2 / 3) < 1.5 * u)
        inclusions = _stripes(X, 2 * u, 8 * u, 3 * u) & _stripes(Y, 2 * u, 8 * u, 3 * u)
        return channels | inclusions
    if name == "channels_wave":
        # Three wavy high channels crossing the domain from left to right.
        centres = Y - 0.1 * np.sin(2 * np.pi * X)
        return np.any([np.abs(centres - c) < 1.5 * u for c in (0.3, 0.55, 0.8)], axis=0)
    if name.startswith("mix_"):
        return _mixture(name, X, Y, E)
    raise ValueError(
        f"unknown deterministic map {name!r}; valid names: {', '.join(DETERMINISTIC_MAPS)}"
    )


def _mixture(name: str, X, Y, E: int) -> np.ndarray:
    """Region-wise combination of three families; regions are unions of whole cells."""
    if name == "mix_a":  # vertical thirds: checkerboard | wave | vertical stripes
        region = np.minimum((X * 3).astype(int), 2)
        parts = ("checkerboard", "wave", "stripes_vertical")
    elif name == "mix_b":  # disc / ring / outside: dense wave, fine checkerboard, diagonal stripes
        r = np.hypot(X - 0.5, Y - 0.5)
        region = np.digitize(r, [0.2, 0.38])
        parts = ("wave_dense", "checkerboard_fine", "stripes_diagonal")
    elif name == "mix_c":  # diagonal regions: checkerboard, vertical stripes, wave
        region = np.digitize(X + Y, [2 / 3, 4 / 3])
        parts = ("checkerboard", "stripes_vertical", "wave")
    elif name == "mix_d":  # horizontal thirds; the middle stripes are channels across the domain
        region = np.minimum((Y * 3).astype(int), 2)
        parts = ("checkerboard_fine", "stripes_horizontal", "wave")
    else:
        raise ValueError(
            f"unknown deterministic map {name!r}; valid names: {', '.join(DETERMINISTIC_MAPS)}"
        )
    masks = [_mask(p, E) for p in parts]
    return np.choose(region, masks)


def deterministic_map(name: str, E: int, contrast: Sequence[float]) -> np.ndarray:
    """The named deterministic map: E x E float64 with values contrast[0] (low) / contrast[1]."""
    if name not in DETERMINISTIC_MAPS:
        raise ValueError(
            f"unknown deterministic map {name!r}; valid names: {', '.join(DETERMINISTIC_MAPS)}"
        )
    E = check_E(E)
    low, high = check_contrast(contrast)
    return np.where(_mask(name, E), high, low)


def resolve_map_names(maps) -> tuple[str, ...]:
    """Config ``maps`` ('all' or a list of names) -> tuple of validated names."""
    if maps == "all":
        return DETERMINISTIC_MAPS
    if isinstance(maps, str) or not isinstance(maps, Sequence) or not maps:
        raise ValueError(f"maps must be 'all' or a non-empty list of names, got {maps!r}")
    bad = [m for m in maps if m not in DETERMINISTIC_MAPS]
    if bad:
        raise ValueError(
            f"unknown deterministic map(s) {bad}; valid names: {', '.join(DETERMINISTIC_MAPS)}"
        )
    return tuple(maps)


def split_map_source(
    split: str, split_cfg: dict, physics: dict, seed: int
) -> tuple[int, Callable[[int], np.ndarray], tuple[str, ...] | None]:
    """(number of samples, sample index -> map, map names or None) of one split's config."""
    E, contrast = check_E(physics["E"]), check_contrast(physics["contrast"])
    if split_cfg["kind"] == "deterministic":
        names = resolve_map_names(split_cfg.get("maps", "all"))
        return len(names), lambda k: deterministic_map(names[k], E, contrast), names
    if split_cfg["kind"] != "random":
        raise ValueError(
            f"split kind must be 'random' or 'deterministic', got {split_cfg['kind']!r}"
        )
    n = int(split_cfg["samples"])
    return n, lambda k: random_map(E, contrast, physics["p_high"], seed, split, k), None
