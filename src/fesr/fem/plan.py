"""Pure-Python planning of the data part (no numpy, no DOLFINx): imported by the Snakefile.

Which splits, scales and shards a config asks for, the file paths of SPEC 1, and the subset of
the config that a data job needs (passed to ``python -m fesr.fem.generate`` as JSON).
"""

from __future__ import annotations

import json
import math

DETERMINISTIC_MAPS = (
    "checkerboard",
    "checkerboard_fine",
    "wave",
    "wave_dense",
    "stripes_horizontal",
    "stripes_vertical",
    "stripes_diagonal",
    "channels_cross",
    "channels_wave",
    "mix_a",
    "mix_b",
    "mix_c",
    "mix_d",
)

DATA_DIR = "results/data"


def split_size(split_cfg: dict) -> int:
    """Number of samples of a split: its ``samples``, or its number of deterministic maps."""
    if split_cfg["kind"] == "deterministic":
        maps = split_cfg.get("maps", "all")
        return len(DETERMINISTIC_MAPS) if maps == "all" else len(maps)
    return int(split_cfg["samples"])


def shard_size(split_cfg: dict) -> int:
    return int(split_cfg.get("shard_size", 50))


def num_shards(split_cfg: dict) -> int:
    return math.ceil(split_size(split_cfg) / shard_size(split_cfg))


def shard_samples(split_cfg: dict, shard: int) -> range:
    """Global sample indices of one shard."""
    size, per = split_size(split_cfg), shard_size(split_cfg)
    if not 0 <= shard < num_shards(split_cfg):
        raise ValueError(
            f"shard {shard} out of range: this split has {num_shards(split_cfg)} shards"
        )
    return range(shard * per, min((shard + 1) * per, size))


def coefficient_settings(config: dict, split: str) -> dict:
    """What the coefficient job of a split needs; Snakemake re-runs it when this changes."""
    if split not in config["splits"]:
        raise ValueError(f"unknown split {split!r}; the config has {sorted(config['splits'])}")
    split_cfg = config["splits"][split]
    return {
        "split": split,
        "seed": config["seed"],
        "physics": config["physics"],
        "split_config": {k: split_cfg[k] for k in ("kind", "samples", "maps") if k in split_cfg},
    }


def data_settings(config: dict, split: str) -> dict:
    """What a solve job of a split needs. Leaves out what cannot change the data (the rank
    count, the split's other scales), so that changing those re-runs nothing."""
    settings = coefficient_settings(config, split)
    settings["split_config"]["shard_size"] = shard_size(config["splits"][split])
    return settings | {
        "lr_n": config["lr_n"],
        "solver": config["solver"],
        "decompose_min_n": config["mpi"]["decompose_min_n"],
    }


def coefficient_path(split: str) -> str:
    return f"{DATA_DIR}/{split}/coefficient.nc"


def field_path(split: str, alpha: int) -> str:
    return f"{DATA_DIR}/{split}/u_x{alpha}.nc"


def shard_path(split: str, alpha: int, shard: int) -> str:
    return f"{DATA_DIR}/{split}/shards/u_x{alpha}_{shard}.nc"


def dataset_files(config: dict) -> list[str]:
    """Every final dataset file of the config: coefficient.nc and u_x{alpha}.nc per split, and
    u_x1_geometric.nc of train and val when a configured model trains on it (a ``hom`` model;
    ``fesr.train_plan.homogenized_train_files``)."""
    from fesr.train_plan import homogenized_train_files

    files = []
    for split, split_cfg in config["splits"].items():
        files.append(coefficient_path(split))
        files += [field_path(split, a) for a in split_cfg["scales"]]
    return files + homogenized_train_files(config)


def shard_files(config: dict, split: str, alpha) -> list[str]:
    """The shard files that make up u_x{alpha}.nc of a split."""
    return [shard_path(split, alpha, k) for k in range(num_shards(config["splits"][split]))]


def as_json(settings: dict) -> str:
    """Canonical JSON of settings (a stable Snakemake param)."""
    return json.dumps(settings, sort_keys=True)
