"""docs/configuration.md, rendered from the configuration schema: every key, its type and range, its
value in config.yaml and its ``description:``.

    python -m fesr.report.config_doc [--out docs/configuration.md] [--check]

The schema (``workflow/schemas/config.schema.yaml``) is the one place each key is described;
this module only lays it out, one table per top-level section. Keys that share a sub-schema
(the four splits) are one row, ``splits.{train,val,...}.kind``. ``--check`` exits 1 when the
file differs from what the schema renders to (the test suite runs the same comparison).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fesr.config import ROOT, load_yaml, schema

OUT = ROOT / "docs" / "configuration.md"
CONFIG = ROOT / "config.yaml"

INTRO = """\
# Configuration

`config.yaml` holds the paper-scale defaults. A preset in `workflow/presets/` (`quick` for
`make run`, `study` for `make study`, `tiny` for the tests) is merged over it with `--configfile`:
nested mappings key by key, everything else replaced. Targets and other options go *before*
`--configfile`, which reads every following word as a file:
`snakemake table1 --cores 2 --configfile workflow/presets/quick.yaml`.

The Snakefile validates the merged configuration before it plans any job, so `snakemake -n`
fails on a bad configuration too, with every error listed at once (key path, bad value, what
was expected). First the schema, which refuses unknown keys at every level, then the cross-field
rules of `fesr.validate` (listed at the end). Check a configuration alone with
`python -m fesr.validate --configfile workflow/presets/quick.yaml`.

Model names (`nhcsr-pe_sinusoid`, `liif-edsr`, `nhcsr-seed2`, ...) and their variant tokens are
described in `src/fesr/model_names.py`.

This file is generated from `workflow/schemas/config.schema.yaml` by
`python -m fesr.report.config_doc`; edit the schema's `description:` fields, not this file.
"""


def resolve(node: dict, root: dict) -> dict:
    """Follow a local ``$ref`` (``#/$defs/name``); other nodes come back unchanged."""
    ref = node.get("$ref")
    if not ref:
        return node
    if not ref.startswith("#/$defs/"):
        raise ValueError(f"schema: only local '#/$defs/...' references are supported, got {ref!r}")
    target = root["$defs"][ref.split("/")[-1]]
    extra = {k: v for k, v in node.items() if k != "$ref"}
    return {**target, **extra}


def compact(value) -> str:
    """A YAML-like flow rendering of a config value (lists and mappings on one line)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(compact(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {compact(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def constraint(node: dict, root: dict) -> str:
    """Type and range of a leaf: 'integer, >= 1', 'one of cg, gmres', 'list of integer, ...'."""
    node = resolve(node, root)
    if "oneOf" in node:
        return " or ".join(constraint(alt, root) for alt in node["oneOf"])
    if "const" in node:
        return f"exactly {compact(node['const'])}"
    if "enum" in node:
        return "one of " + ", ".join(compact(v) for v in node["enum"])
    kind = node.get("type", "any")
    kind = " or ".join(kind) if isinstance(kind, list) else kind
    parts = [kind]
    bounds = (
        ("minimum", ">="),
        ("exclusiveMinimum", ">"),
        ("maximum", "<="),
        ("exclusiveMaximum", "<"),
        ("multipleOf", "multiple of"),
    )
    parts += [f"{sign} {compact(node[key])}" for key, sign in bounds if key in node]
    if kind == "array":
        items = node.get("items")
        parts = [f"list of {constraint(items, root)}" if items else "list"]
        if "minItems" in node:
            n = node["minItems"]
            parts.append(f"at least {n} item{'s' * (n != 1)}")
        if "maxItems" in node:
            parts.append(f"at most {node['maxItems']}")
        if node.get("uniqueItems"):
            parts.append("distinct")
        if "contains" in node:
            contained = constraint(node["contains"], root).removeprefix("exactly ")
            parts.append(f"containing {contained}")
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        parts = [f"mapping to {constraint(node['additionalProperties'], root)}"]
    return ", ".join(parts)


def is_section(node: dict) -> bool:
    """An object with named keys of its own (rendered as rows of its keys, not as one row)."""
    return node.get("type") == "object" and bool(node.get("properties"))


def lookup(config: dict, path: tuple[str, ...]):
    node = config
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def rows(node: dict, root: dict, path: tuple[str, ...], config: dict, required=True):
    """(key path, constraint, config.yaml value, description) for every key under ``node``."""
    node = resolve(node, root)
    out = []
    props = node.get("properties", {})
    needed = set(node.get("required", []))
    # siblings that share one sub-schema (the splits) become one row per key of it
    groups: dict[str, list[str]] = {}
    for key, sub in props.items():
        groups.setdefault(sub.get("$ref", f"own:{key}"), []).append(key)
    for keys in groups.values():
        sub = props[keys[0]]
        if len(keys) > 1 and is_section(resolve(sub, root)):
            label = "{" + ",".join(keys) + "}"
            inner = rows(sub, root, (*path, label), {}, True)
            for key_path, cons, _, desc in inner:
                tail = key_path.split(label + ".", 1)[1].split(".")
                values = {k: lookup(config, (*path, k, *tail)) for k in keys}
                shown = {k: v for k, v in values.items() if v is not None}
                if len(shown) == len(keys) and len(set(map(compact, shown.values()))) == 1:
                    value = compact(next(iter(shown.values())))
                else:
                    value = "; ".join(f"{k}: {compact(v)}" for k, v in shown.items())
                out.append((key_path, cons, value, desc))
            continue
        for key in keys:
            sub = props[key]
            resolved = resolve(sub, root)
            here = (*path, key)
            if is_section(resolved):
                out.append((".".join(here), "mapping", "", describe(sub, root, key in needed)))
                out += rows(sub, root, here, config)
                continue
            value = lookup(config, here)
            out.append(
                (
                    ".".join(here),
                    constraint(sub, root),
                    "" if value is None else compact(value),
                    describe(sub, root, key in needed),
                )
            )
    return out


def describe(node: dict, root: dict, required: bool) -> str:
    text = node.get("description") or resolve(node, root).get("description") or ""
    text = " ".join(str(text).split())
    if "default" in node:
        text += f" (optional, default {compact(node['default'])})"
    elif not required:
        text += " (optional)"
    return text.strip()


def missing_descriptions(root: dict | None = None) -> list[str]:
    """Key paths whose schema entry has no ``description:``."""
    root = schema() if root is None else root
    return [key for key, _, _, desc in rows(root, root, (), {}) if not desc.split(" (optional")[0]]


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def rule_lines() -> list[str]:
    from fesr.validate import RULES

    lines = ["## Cross-field rules", "", "Checked after the schema (`fesr.validate.RULES`):", ""]
    for rule in RULES:
        doc = " ".join((rule.__doc__ or "").split()).replace("``", "`")
        lines.append(f"* `{rule.__name__}`" + (f": {doc}" if doc else ""))
    return lines + [""]


def table(rows_) -> list[str]:
    lines = ["| key | type and range | config.yaml | meaning |", "|---|---|---|---|"]
    lines += [f"| `{k}` | {cell(c)} | {cell(v)} | {cell(d)} |" for k, c, v, d in rows_]
    return lines + [""]


def render() -> str:
    root = schema()
    config = load_yaml(CONFIG)
    lines = [INTRO]
    plain = [
        (key, constraint(sub, root), compact(config.get(key)), describe(sub, root, True))
        for key, sub in root["properties"].items()
        if not is_section(resolve(sub, root))
    ]
    lines += ["## Top-level keys", "", *table(plain)]
    for section, sub in root["properties"].items():
        if not is_section(resolve(sub, root)):
            continue
        lines += [f"## `{section}`", ""]
        desc = describe(sub, root, True)
        if desc:
            lines += [desc[0].upper() + desc[1:] + ".", ""]
        lines += table(rows(sub, root, (section,), config))
    lines += rule_lines()
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--check", action="store_true", help="exit 1 if the file is not current")
    a = ap.parse_args(argv)
    text = render()
    if a.check:
        current = a.out.read_text(encoding="utf-8") if a.out.is_file() else ""
        if current != text:
            print(
                f"{a.out} is not current: run `python -m fesr.report.config_doc`", file=sys.stderr
            )
            return 1
        print(f"{a.out} is current")
        return 0
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text, encoding="utf-8")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
