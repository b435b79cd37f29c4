"""Load the pipeline configuration outside Snakemake (tests, benchmarks, notebooks).

Merges ``config.yaml`` with an optional preset exactly as ``--configfile`` does (nested dicts
are merged key by key, everything else replaced) and validates the result exactly as the
Snakefile does: the JSON schema, then the cross-field rules (``fesr.validate``).

Configuration files are read strictly (``load_yaml``, ``yaml_file_errors``): a key written twice
in one mapping is an error naming the key and both lines (PyYAML keeps the last value silently),
and a YAML alias (``*name``) is refused where the parser meets it, before anything is built from
it, so an alias bomb costs nothing; each error is one line ``{file}:{line}: ...``.
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


class YamlError(ValueError):
    """A configuration file that is not strict YAML; ``errors`` holds one line per problem."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that records duplicate keys and refuses aliases (see the docstring)."""

    def __init__(self, stream, path="<string>"):
        super().__init__(stream)
        self.path = str(path)
        self.problems: list[tuple[int, str]] = []  # (line, error)

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise YamlError(
                [
                    f"{self.path}:{event.start_mark.line + 1}: YAML alias '*{event.anchor}' "
                    "refused; expected the value written out (an alias can expand a small file "
                    "into an enormous configuration)"
                ]
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first_line = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    continue  # SafeConstructor reports an unhashable key itself
                line = key_node.start_mark.line + 1
                if key in first_line:
                    text = (
                        f"{self.path}:{line}: duplicate key {key!r} (first at line "
                        f"{first_line[key]}); expected each key once per mapping (YAML would "
                        "keep the last value silently)"
                    )
                    self.problems.append((line, text))
                else:
                    first_line[key] = line
        return super().construct_mapping(node, deep=deep)


def _read_strict(path):
    """(data, problems): the parsed file and its duplicate-key errors; YamlError for an alias,
    a syntax error or an unreadable file."""
    try:
        with open(path, encoding="utf-8") as fh:
            loader = StrictLoader(fh, path)
            try:
                data = loader.get_single_data()
            finally:
                loader.dispose()
    except OSError as err:
        raise YamlError([f"{path}: cannot be read: {err.strerror or err}"]) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        what = " ".join(str(p) for p in (err.context, err.problem) if p) if mark else str(err)
        raise YamlError([f"{where}: not valid YAML: {what}"]) from None
    return data, [text for _, text in sorted(loader.problems)]


def yaml_file_errors(path) -> list[str]:
    """Every strictness error of one configuration file (empty when it loads cleanly)."""
    try:
        data, problems = _read_strict(path)
    except YamlError as err:
        return err.errors
    if not problems and not isinstance(data, dict):
        problems = [f"{path}: expected a mapping at the top level, got {type(data).__name__}"]
    return problems


def load_yaml(path) -> dict:
    """A configuration file read strictly (module docstring); YamlError listing every problem."""
    data, problems = _read_strict(path)
    if problems:
        raise YamlError(problems)
    if not isinstance(data, dict):
        raise YamlError([f"{path}: expected a mapping at the top level, got {type(data).__name__}"])
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
