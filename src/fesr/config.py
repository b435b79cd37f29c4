"""Load the pipeline configuration outside Snakemake (tests, benchmarks, notebooks).

Merges ``config.yaml`` with an optional preset exactly as ``--configfile`` does (nested dicts
are merged key by key, everything else replaced) and validates the result exactly as the
Snakefile does: the JSON schema, then the cross-field rules (``fesr.validate``).
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path

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


@cache
def _schema() -> dict:
    return load_yaml(SCHEMA)


def schema() -> dict:
    """The pipeline's JSON schema (a fresh copy: callers may modify it)."""
    return copy.deepcopy(_schema())


def required_keys(path: tuple[str, ...]) -> list[str]:
    """The keys the schema requires of the object at ``path``, e.g. ("methods", "liif")."""
    node = _schema()
    for key in path:
        node = node.get("properties", {}).get(key, {})
    return list(node.get("required", []))


def validate(config: dict) -> dict:
    """Validate against the schema and the cross-field rules of ``fesr.validate``; raise
    ValueError listing every error (each names the key path, the bad value and what was
    expected)."""
    from fesr.validate import config_errors

    errors = config_errors(config)
    if errors:
        raise ValueError("invalid config:\n" + "\n".join(f"  {e}" for e in errors))
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
