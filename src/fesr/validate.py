"""Complete, up-front validation of a pipeline configuration (run by the Snakefile before any job
is planned, and by ``fesr.config.load_config``).

Two passes, both reporting every error rather than the first one:

1. the JSON schema (``workflow/schemas/config.schema.yaml``): every key known, every value of
   the right type and range, per-method and per-encoder keys exactly those the code reads;
2. the cross-field rules the schema cannot express (``RULES`` below).

Each error is one line: the key path, the bad value and what was expected. Pure Python (no
torch), so that ``snakemake -n`` stays fast.

    python -m fesr.validate [--configfile a.yaml ...]   # config.yaml merged with each file
"""

from __future__ import annotations

import argparse
import sys

import jsonschema

from fesr.config import ROOT, deep_merge, load_yaml, schema
from fesr.fem.plan import DETERMINISTIC_MAPS
from fesr.model_names import LEARNED_METHODS, model_name_errors, model_seed

REPORT_LISTS = ("table1_methods", "table2_models", "table3_models", "fig9_models", "fig10_models")
# split -> the kind it must be (the test splits are named after theirs; train/val are random)
SPLIT_KINDS = {
    "train": "random",
    "val": "random",
    "test_random": "random",
    "test_deterministic": "deterministic",
}


class ConfigError(ValueError):
    """An invalid configuration; ``errors`` holds one line per problem."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__(
            f"invalid configuration ({len(errors)} error{'s' * (len(errors) != 1)}):\n"
            + "\n".join(f"  {e}" for e in errors)
        )


def key_path(parts) -> str:
    """('methods', 'liif', 'hidden', 0) -> 'methods.liif.hidden[0]'."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<top level>"


# -- pass 1: the schema --------------------------------------------------------------------------
def schema_errors(config: dict) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema())
    errors = []
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        path = list(err.absolute_path)
        if err.validator == "additionalProperties":
            allowed = sorted(err.schema.get("properties", {}))
            expected = f"expected one of {allowed}" if allowed else "this section takes no keys"
            for key in sorted(set(err.instance) - set(allowed)):
                errors.append(
                    f"{key_path([*path, key])}: unknown key (value {err.instance[key]!r}); "
                    + expected
                )
        elif err.validator == "required":
            missing = [k for k in err.validator_value if k not in err.instance]
            for key in missing:
                errors.append(f"{key_path([*path, key])}: missing; this key is required")
        elif err.validator in ("oneOf", "anyOf"):  # jsonschema names the value, not the options
            options = " or ".join(_describe(sub) for sub in err.validator_value)
            errors.append(f"{key_path(path)}: {err.instance!r}; expected {options}")
        else:
            errors.append(f"{key_path(path)}: {err.message}")
    return errors


def _describe(sub: dict) -> str:
    """A short text for a sub-schema: its description, else its constraints."""
    if "description" in sub:
        return sub["description"]
    if "$ref" in sub:
        return _describe(schema()["$defs"][sub["$ref"].rsplit("/", 1)[-1]])
    return ", ".join(f"{k} {v!r}" for k, v in sub.items())


# -- pass 2: cross-field rules ------------------------------------------------------------------
def _pow2(x) -> bool:
    if not isinstance(x, int | float) or isinstance(x, bool) or x < 1 or float(x) != int(x):
        return False
    return not int(x) & (int(x) - 1)


def rule_contrast(c: dict) -> list[str]:
    lo, hi = c["physics"]["contrast"]
    if not lo < hi:
        return [f"physics.contrast: {[lo, hi]}; expected [low, high] with low < high"]
    return []


def rule_split_kinds(c: dict) -> list[str]:
    errors = []
    for split, cfg in c["splits"].items():
        kind = cfg["kind"]
        if SPLIT_KINDS.get(split, kind) != kind:
            errors.append(f"splits.{split}.kind: {kind!r}; expected {SPLIT_KINDS[split]!r}")
        if kind == "random":
            if "samples" not in cfg:
                errors.append(f"splits.{split}.samples: missing; a random split needs it")
            if "maps" in cfg:
                errors.append(
                    f"splits.{split}.maps: {cfg['maps']!r} on a random split; "
                    "maps belong to the deterministic split"
                )
        elif "samples" in cfg:
            errors.append(
                f"splits.{split}.samples: {cfg['samples']!r} on a deterministic split; "
                "its size is its number of maps"
            )
    return errors


def rule_maps(c: dict) -> list[str]:
    errors = []
    for split, cfg in c["splits"].items():
        maps = cfg.get("maps", "all")
        if maps == "all":
            continue
        for i, name in enumerate(maps):
            if name not in DETERMINISTIC_MAPS:
                errors.append(
                    f"splits.{split}.maps[{i}]: unknown map {name!r}; expected 'all' or names "
                    f"from {list(DETERMINISTIC_MAPS)}"
                )
    return errors


def rule_split_scales(c: dict) -> list[str]:
    errors, top = [], [int(s) for s in c["scales"]]
    for split, cfg in c["splits"].items():
        for i, s in enumerate(cfg["scales"]):
            if s not in top:
                errors.append(f"splits.{split}.scales[{i}]: {s}; expected one of scales {top}")
    return errors


def rule_train_scales(c: dict) -> list[str]:
    errors = []
    for i, a in enumerate(c["training"]["train_scales"]):
        if not _pow2(a):
            errors.append(
                f"training.train_scales[{i}]: {a!r}; expected a power of two (datasets exist "
                "only at the splits' power-of-two scales)"
            )
            continue
        for split in ("train", "val"):
            have = c["splits"][split]["scales"]
            if int(a) not in have:
                errors.append(
                    f"training.train_scales[{i}]: {a!r} is not among splits.{split}.scales {have}"
                )
    return errors


def rule_eval_scales(c: dict) -> list[str]:
    errors = []
    for i, s in enumerate(c["evaluation"]["scales"]):
        if not _pow2(s):
            errors.append(f"evaluation.scales[{i}]: {s!r}; expected a power of two")
            continue
        for split in c["evaluation"]["splits"]:
            have = c["splits"][split]["scales"]
            if s not in have:
                errors.append(
                    f"evaluation.scales[{i}]: {s} is not among splits.{split}.scales {have}"
                )
    return errors


def rule_training_schedule(c: dict) -> list[str]:
    t, errors = c["training"], []
    its = t["iterations"]
    ms = t["lr_milestones"]
    if list(ms) != sorted(ms):
        errors.append(f"training.lr_milestones: {ms}; expected increasing iteration numbers")
    for i, m in enumerate(ms):
        if m >= its:
            errors.append(
                f"training.lr_milestones[{i}]: {m}; expected < training.iterations ({its}), "
                "or the step never happens"
            )
    val = c["splits"]["val"].get("samples")
    if val is not None and t["val_samples"] > val:
        errors.append(
            f"training.val_samples: {t['val_samples']}; expected <= splits.val.samples ({val})"
        )
    return errors


def rule_patch(c: dict) -> list[str]:
    """A training patch covers whole LR cells and fits in the field (fesr.data.sampling)."""
    P = c["training"].get("patch")
    if P is None:
        return []
    E, n = int(c["physics"]["E"]), int(c["lr_n"])
    if P > E or P % (E // n):
        return [
            f"training.patch: {P}; expected a multiple of E / lr_n = {E // n} (whole LR cells) "
            f"and at most E = {E}, or null (whole fields)"
        ]
    return []


def rule_report_models(c: dict) -> list[str]:
    errors = []
    for key in REPORT_LISTS:
        for i, name in enumerate(c["report"][key]):
            errors += [f"report.{key}[{i}]: {e}" for e in model_name_errors(name)]
    return errors


def rule_table1_seeds(c: dict) -> list[str]:
    """Seed replicas exist only of Table I's learned methods (``{method}-seed{k}``), and only
    through ``report.table1_seeds`` (Table I groups them under their method)."""
    errors, methods = [], c["report"]["table1_methods"]
    for i, name in enumerate(methods):
        if model_seed(name) is not None:
            errors.append(
                f"report.table1_methods[{i}]: '{name}' is a seed replica; expected the plain "
                "name, with its number of seeds in report.table1_seeds"
            )
    for method in c["report"].get("table1_seeds", {}):
        if method not in methods:
            errors.append(
                f"report.table1_seeds.{method}: not in report.table1_methods {methods}; "
                "expected a Table I method"
            )
        elif method.split("-")[0] not in LEARNED_METHODS:
            errors.append(
                f"report.table1_seeds.{method}: '{method}' learns nothing, so its seeds give "
                "the same model; expected a learned method"
            )
    return errors


def _heads_divide(where: str, dim: int, heads: int, dim_key: str = "dim") -> list[str]:
    if dim % heads:
        return [f"{where}.{dim_key}: {dim} is not divisible by {where}.heads ({heads})"]
    return []


def rule_method_shapes(c: dict) -> list[str]:
    """Value combinations a method's constructor would refuse at train time."""
    m, errors = c["methods"], []
    for name in ("nhcsr", "lit", "clit"):
        errors += _heads_divide(f"methods.{name}", m[name]["dim"], m[name]["heads"])
    errors += _heads_divide("methods.srno", m["srno"]["width"], m["srno"]["heads"], "width")
    for name in ("nhcsr", "lit", "clit"):
        w = m[name]["window"]
        if w % 2 == 0:
            errors.append(f"methods.{name}.window: {w}; expected an odd number")
    clit = m["clit"]
    fr = clit["cumulative"]["stage_iterations"]
    if len(fr) != clit["stages"]:
        errors.append(
            f"methods.clit.cumulative.stage_iterations: {fr}; expected {clit['stages']} "
            "fractions (one per stage, methods.clit.stages)"
        )
    idm = m["idm"]
    if not idm["beta_start"] < idm["beta_end"]:
        errors.append(
            f"methods.idm.beta_start: {idm['beta_start']}; expected < methods.idm.beta_end "
            f"({idm['beta_end']})"
        )
    if idm["ddim_steps"] > idm["train_timesteps"]:
        errors.append(
            f"methods.idm.ddim_steps: {idm['ddim_steps']}; expected <= "
            f"methods.idm.train_timesteps ({idm['train_timesteps']})"
        )
    return errors


def rule_encoders(c: dict) -> list[str]:
    """SwinIR: one head count per stage, each dividing the embedding width."""
    sw, errors = c["encoders"]["swinir"], []
    depths, heads = sw["depths"], sw["num_heads"]
    if len(depths) != len(heads):
        errors.append(
            f"encoders.swinir.num_heads: {heads}; expected one entry per stage of "
            f"encoders.swinir.depths {depths}"
        )
    for i, h in enumerate(heads):
        if sw["embed_dim"] % h:
            errors.append(
                f"encoders.swinir.num_heads[{i}]: {h} does not divide "
                f"encoders.swinir.embed_dim ({sw['embed_dim']})"
            )
    return errors


RULES = (
    rule_contrast,
    rule_split_kinds,
    rule_maps,
    rule_split_scales,
    rule_train_scales,
    rule_eval_scales,
    rule_training_schedule,
    rule_patch,
    rule_report_models,
    rule_table1_seeds,
    rule_method_shapes,
    rule_encoders,
)


def cross_field_errors(config: dict) -> list[str]:
    errors = []
    for rule in RULES:
        try:
            errors += rule(config)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            pass  # a section the schema pass already reports as malformed
    return errors


def config_errors(config: dict) -> list[str]:
    """Every error of ``config`` (schema first, then the cross-field rules), one line each."""
    if not isinstance(config, dict):
        return [f"<top level>: {type(config).__name__}; expected a mapping"]
    return schema_errors(config) + cross_field_errors(config)


def check_config(config: dict) -> dict:
    """``config`` unchanged, or ConfigError listing every error."""
    errors = config_errors(config)
    if errors:
        raise ConfigError(errors)
    return config


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Validate config.yaml merged with config files.")
    ap.add_argument("--configfile", nargs="*", default=[], help="merged over config.yaml in order")
    args = ap.parse_args(argv)
    config = load_yaml(ROOT / "config.yaml")
    for path in args.configfile:
        config = deep_merge(config, load_yaml(path))
    errors = config_errors(config)
    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        return 1
    print("configuration valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
