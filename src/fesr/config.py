"""Load the pipeline configuration outside Snakemake (tests, benchmarks, notebooks).

Merges ``config.yaml`` with an optional preset exactly as ``--configfile`` does (nested dicts
are merged key by key, everything else replaced) and validates against the JSON schema.
"""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def deep_merge(base: dict, over: dict) -> dict:
    """Return base updated recursively by over (Snakemake's --configfile semantics)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_yaml(path) -> dict:
    with open(path) as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def validate(config: dict) -> dict:
    """Validate against the pipeline schema; raise ValueError naming the bad key and value."""
    try:
        jsonschema.validate(config, load_yaml(SCHEMA))
    except jsonschema.ValidationError as err:
        where = "/".join(str(p) for p in err.absolute_path) or "<top level>"
        raise ValueError(f"invalid config at '{where}': {err.message}") from None
    return config


def load_config(preset: str | None = None, overrides: dict | None = None) -> dict:
    """config.yaml, merged with ``workflow/presets/{preset}.yaml`` and overrides, validated."""
    config = load_yaml(ROOT / "config.yaml")
    if preset is not None:
        path = Path(preset)
        if not path.suffix:
            path = ROOT / "workflow" / "presets" / f"{preset}.yaml"
        config = deep_merge(config, load_yaml(path))
    if overrides:
        config = deep_merge(config, overrides)
    return validate(config)
