"""Complete, up-front validation of a pipeline configuration (run by the Snakefile before any job
is planned, and by ``fesr.config.load_config``).

Two passes, both reporting every error rather than the first one:

1. the JSON schema (``workflow/schemas/config.schema.yaml``): every key known, every value of
   the right type and range, per-method and per-encoder keys exactly those the code reads;
2. the cross-field rules the schema cannot express (``RULES`` below).

Each error is one line: the key path, the bad value and what was expected, with values shown
shortened (``reprlib``), so a message never expands a huge value. One mistake gives one error: a
rule is skipped when the schema already reports a key it reads (``RULE_READS``).

Types are strict (``STRICT_TYPES``): an integer is a Python int, not a float such as 64.0 and not
a bool; a number is a finite int or float (NaN, inf, bools and complex numbers are refused).

Memory (``rule_memory``): before any job, a lower bound of what each kind of job holds at once,
from the sizes the config sets, against the machine's physical memory (as the OS reports it)
or ``memory_budget_gib``.
Each term is one large array counted once (float32 = 4 B for the networks, 8 B for fields):

* training, per model: ``batch_size`` x [feature maps side^2 x (F_live + r^2 F) + queries
  ``sample_q`` x K x W (+ IDM: its HR grid (p alpha + 1)^2 x ``hr_width``)] x 4 B x 2 (values
  and their gradients), plus the splits preloaded (``preload_mb``); side = ``patch`` or E,
  F = the encoder's output width, F_live = what the encoder holds at once (RDN: its D block
  outputs, D x G0), r = NH-CSR's ``pixel_shuffle`` (0 without the fine branch), K = the
  neighbours a query reads (window^2 for the attention methods, else the 4 of the local
  ensemble), W = the widest layer of the method (dim, width, hidden, the encoder's F);
* evaluation, per model: the same for one whole field (side = E, ``evaluation.chunk`` queries at
  a time, no gradients) plus three HR fields in float64 (prediction, its copy, the reference) at
  the largest evaluation scale;
* data, per split: each solving rank's Q1 solver at the split's largest scale
  (``SOLVER_BYTES_PER_NODE`` per mesh node, measured) and the shard's coefficient maps;

plus ``RUNTIME_BYTES`` per process (interpreter and libraries). Being a lower bound, it refuses
only what cannot run; a job may need several times more.

    python -m fesr.validate [--configfile a.yaml ...]   # config.yaml merged with each file
"""

from __future__ import annotations

import argparse
import math
import os
import reprlib
import sys

import jsonschema

from fesr.config import ROOT, YamlError, deep_merge, load_yaml, schema
from fesr.fem.discretisation import EXACT_PRECONDITIONERS, RESIDUAL_FACTOR, residual_floor
from fesr.fem.plan import DETERMINISTIC_MAPS
from fesr.model_names import (
    LEARNED_METHODS,
    method_of,
    model_name_errors,
    model_seed,
    name_tokens,
    parse_model_name,
    seed_replicas,
    token_override,
)

REPORT_LISTS = ("table1_methods", "table2_models", "table3_models", "fig9_models", "fig10_models")
# split -> the kind it must be (the test splits are named after theirs; train/val are random)
SPLIT_KINDS = {
    "train": "random",
    "val": "random",
    "test_random": "random",
    "test_deterministic": "deterministic",
}


# The seed limits: the NetCDF attribute and the checkpoints store seed + k as a signed 64-bit
# integer; predict seeds torch (unsigned 64 bit) with seed * PREDICT_SEED_STRIDE + sample
# (fesr.evaluate.predict.SEED_STRIDE, which a test checks this equals).
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
PREDICT_SEED_STRIDE = 100003
# A file name built from a model name may add this much to it (".{name}.csv.tmp{pid}"), and
# every name component must fit the file system's NAME_MAX (255 bytes on Linux).
NAME_MAX = 255
NAME_MARGIN = 24
# HDF5 refuses a chunk of 4 GiB or more ("Bad chunk sizes"); a data file's chunk is one sample.
CHUNK_LIMIT = 2**32
# Memory estimate (module docstring).
GIB = 2**30
RUNTIME_BYTES = GIB
SOLVER_BYTES_PER_NODE = 800  # peak RSS of a Q1Solver at n = 1024 / its nodes (measured)


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
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6
_REPR.maxlevel = 3
_REPR.maxlong = 40


SHORT_MAX = 120  # characters of a value shown in a message


def short(value) -> str:
    """``repr(value)``, shortened: bounded work and length whatever the value holds."""
    text = _REPR.repr(value)
    return text if len(text) <= SHORT_MAX else text[: SHORT_MAX - 3] + "..."


def _is_integer(checker, value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(checker, value) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return isinstance(value, int) or math.isfinite(value)


STRICT_TYPES = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many(
    {"integer": _is_integer, "number": _is_number}
)
Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=STRICT_TYPES)
TYPE_TEXT = {
    "integer": "an integer (not a float such as 64.0, not a bool)",
    "number": "a finite number (not NaN, inf, a bool, a complex number or a string)",
    "string": "a string",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}


def _type_hint(value) -> str:
    """Why a value of the wrong type is what it is, when that is not plain to see."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return ""
        return (
            " (YAML reads a number without a decimal point in its mantissa, such as 1e-10, as a "
            "string: write 1.0e-10)"
        )
    return ""


def _bound_text(err) -> str | None:
    v, b = err.validator, err.validator_value
    texts = {
        "minimum": f">= {b!r}",
        "maximum": f"<= {b!r}",
        "exclusiveMinimum": f"> {b!r}",
        "exclusiveMaximum": f"< {b!r}",
        "multipleOf": f"a multiple of {b!r}",
        "enum": f"one of {short(b)}",
        "const": f"{b!r}",
        "minItems": f"at least {b} item{'s' * (b != 1)}",
        "maxItems": f"at most {b} item{'s' * (b != 1)}",
        "uniqueItems": "distinct items",
        "pattern": f"a string matching {b!r}",
        "contains": f"a list containing {_describe(b)}",
    }
    return texts.get(v)


def schema_errors(config: dict) -> list[str]:
    validator = Validator(schema())
    errors = []
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        path = list(err.absolute_path)
        if err.validator == "additionalProperties":
            allowed = sorted(err.schema.get("properties", {}))
            expected = f"expected one of {allowed}" if allowed else "this section takes no keys"
            for key in sorted(set(err.instance) - set(allowed), key=str):
                errors.append(
                    f"{key_path([*path, key])}: unknown key (value {short(err.instance[key])}); "
                    + expected
                )
        elif err.validator == "required":
            missing = [k for k in err.validator_value if k not in err.instance]
            for key in missing:
                errors.append(f"{key_path([*path, key])}: missing; this key is required")
        elif err.validator in ("oneOf", "anyOf"):  # jsonschema names the value, not the options
            options = " or ".join(_describe(sub) for sub in err.validator_value)
            errors.append(f"{key_path(path)}: {short(err.instance)}; expected {options}")
        elif err.validator == "type":
            types = (
                err.validator_value
                if isinstance(err.validator_value, list)
                else [err.validator_value]
            )
            expected = " or ".join(TYPE_TEXT.get(t, t) for t in types)
            errors.append(
                f"{key_path(path)}: {short(err.instance)}; expected {expected}"
                + _type_hint(err.instance)
            )
        elif _bound_text(err) is not None:
            errors.append(f"{key_path(path)}: {short(err.instance)}; expected {_bound_text(err)}")
        else:
            errors.append(f"{key_path(path)}: {short(err.message)}")
    return errors


def _describe(sub) -> str:
    """A short text for a sub-schema: its description, else its constraints."""
    if not isinstance(sub, dict):
        return short(sub)
    if "description" in sub:
        return sub["description"]
    if "$ref" in sub:
        return _describe(schema()["$defs"][sub["$ref"].rsplit("/", 1)[-1]])
    if set(sub) == {"const"}:
        return short(sub["const"])
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


def rule_source(c: dict) -> list[str]:
    f = c["physics"]["source"]
    if not f > 0:
        return [
            f"physics.source: {f!r}; expected a number > 0 (f = 0 makes u = 0, and the fields are "
            "normalised by their maximum, which is 0 for a source <= 0)"
        ]
    return []


def largest_scale(c: dict) -> int:
    """The largest scale any split holds."""
    return max(max(cfg["scales"]) for cfg in c["splits"].values())


def rule_solver(c: dict) -> list[str]:
    """Solver options that cannot meet the tolerance every solve is checked against
    (``fesr.fem.solver``: true relative residual <= RESIDUAL_FACTOR x rtol)."""
    sv, errors = c["solver"], []
    if sv["ksp_type"] == "preonly" and sv["pc_type"] not in EXACT_PRECONDITIONERS:
        errors.append(
            f"solver.pc_type: {sv['pc_type']!r} with ksp_type 'preonly'; 'preonly' applies the "
            "preconditioner once, which solves the system only when it is an exact factorisation "
            f"(the residual of one {sv['pc_type']} sweep stays near 1); expected pc_type "
            f"{' or '.join(map(repr, EXACT_PRECONDITIONERS))}, or ksp_type 'cg' or 'gmres'"
        )
    n = int(c["lr_n"]) * largest_scale(c)
    floor = residual_floor(n)
    if RESIDUAL_FACTOR * sv["rtol"] < floor:
        errors.append(
            f"solver.rtol: {sv['rtol']!r}; the true relative residual cannot get below about "
            f"{floor:.1e} at n = {n} (the round-off of computing b - Ax), above the "
            f"{RESIDUAL_FACTOR} x rtol every solve is checked against; expected rtol >= "
            f"{floor / RESIDUAL_FACTOR:.1e}"
        )
    return errors


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
        if not isinstance(maps, list):
            continue  # 'all', or a value the schema reports
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
        if a == 1:
            errors.append(
                f"training.train_scales[{i}]: 1; expected scales >= 2 (alpha = 1 is the LR input "
                "itself: the model would learn the identity)"
            )
            continue
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
        elif method_of(method) not in LEARNED_METHODS:
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


# -- models: where each name comes from, its identity, its seed, its file names ------------------
def model_sources(c: dict) -> dict[str, str]:
    """Every model the pipeline trains -> where the config names it first (a key path)."""
    where: dict[str, str] = {}
    for key in REPORT_LISTS:
        for i, name in enumerate(c["report"][key]):
            where.setdefault(name, f"report.{key}[{i}]")
            if key == "table1_methods":
                seeds = c["report"].get("table1_seeds", {}).get(name, 1)
                for replica in seed_replicas(name, seeds)[1:]:
                    where.setdefault(replica, f"report.table1_seeds.{name}")
    return {name: src for name, src in where.items() if not model_name_errors(name)}


def model_identity(c: dict, name: str) -> tuple:
    """What a model name means: its method, the settings it changes from the method's config and
    its seed replica; two names with one identity train the same model."""
    method, overrides = parse_model_name(name)
    cfg = c["methods"][method]
    changed = tuple(sorted((k, v) for k, v in overrides.items() if cfg.get(k) != v))
    return method, changed, model_seed(name) or 0


def rule_unique_models(c: dict) -> list[str]:
    """Models are unique once a name's tokens that restate its method's settings are dropped
    (``nhcsr-pe_gabor`` is ``nhcsr`` when methods.nhcsr.pe is gabor) and its tokens sorted."""
    errors, first = [], {}
    for name, src in model_sources(c).items():
        ident = model_identity(c, name)
        if ident not in first:
            first[ident] = (name, src)
            continue
        other, other_src = first[ident]
        method = method_of(name)
        restated = []
        for tok in name_tokens(name):
            hit = token_override(tok)
            if hit is not None and c["methods"][method].get(hit[0]) == hit[1]:
                restated.append(
                    f"'{tok}' sets {hit[0]}: {hit[1]!r}, methods.{method}'s own setting"
                )
        why = "; ".join(restated) if restated else "the same variant tokens in another order"
        errors.append(
            f"{src}: '{name}' is the same model as '{other}' ({other_src}): {why}; expected one "
            "name per model (it would be trained and shown twice)"
        )
    return errors


def _max_split_size(c: dict) -> int:
    """The most samples a split holds (a value the schema refuses counts as every map)."""
    sizes = []
    for cfg in c["splits"].values():
        if "samples" in cfg:
            sizes.append(int(cfg["samples"]))
        else:
            maps = cfg.get("maps", "all")
            sizes.append(len(maps) if isinstance(maps, list) else len(DETERMINISTIC_MAPS))
    return max(sizes)


def rule_seeds_and_names(c: dict) -> list[str]:
    """Seeds fit the generators and file formats; names built from model names fit the file
    system (one error per name: its length, else its seed)."""
    errors, seed = [], c["seed"]
    seed_max = min(INT64_MAX, (UINT64_MAX - (_max_split_size(c) - 1)) // PREDICT_SEED_STRIDE)
    if seed > seed_max:
        errors.append(
            f"seed: {short(seed)}; expected <= {seed_max} (the data files store it as a signed "
            f"64-bit integer, and prediction seeds torch with seed x {PREDICT_SEED_STRIDE} + "
            "sample, an unsigned 64-bit integer)"
        )
    for name, src in model_sources(c).items():
        size = len(name.encode())
        if size + NAME_MARGIN > NAME_MAX:
            errors.append(
                f"{src}: {short(name)} is {size} bytes; expected at most {NAME_MAX - NAME_MARGIN} "
                f"(the files named after a model add up to {NAME_MARGIN} bytes, and a file name "
                f"may have {NAME_MAX})"
            )
        elif seed <= seed_max and seed + (model_seed(name) or 0) > INT64_MAX:
            errors.append(
                f"{src}: '{name}' trains with seed {seed} + {model_seed(name)}; expected a sum "
                f"<= {INT64_MAX} (a signed 64-bit integer, as the checkpoints store it)"
            )
    return errors


def rule_chunks(c: dict) -> list[str]:
    E = c["physics"]["E"]
    if E * E * 8 >= CHUNK_LIMIT:
        return [
            f"physics.E: {E}; one coefficient map (E^2 x 8 B = {E * E * 8 / GIB:.1f} GiB) is one "
            "NetCDF chunk, which HDF5 limits to below 4 GiB; expected E <= 23168"
        ]
    return []


# -- memory (the module docstring) ---------------------------------------------------------------
def encoder_widths(c: dict, encoder: str) -> tuple[int, int]:
    """(F, F_live): the encoder's output width and the widest tensor it holds at once."""
    cfg = c["encoders"][encoder]
    if encoder == "rdn":
        return cfg["G0"], cfg["D"] * cfg["G0"]
    if encoder == "edsr-baseline":
        return cfg["n_feats"], cfg["n_feats"]
    out = cfg.get("out_dim") or cfg["embed_dim"]
    return out, max(out, int(cfg["embed_dim"] * cfg["mlp_ratio"]))


def _widths(value) -> list[int]:
    if isinstance(value, list):
        return [v for v in value if isinstance(v, int)]
    return [value] if isinstance(value, int) and not isinstance(value, bool) else []


def model_sizes(c: dict, name: str) -> dict:
    """The sizes of model ``name`` the memory estimate reads (F, F_live, r, K, W, hr_width)."""
    method, overrides = parse_model_name(name)
    cfg = {**c["methods"][method], **overrides}
    F, F_live = encoder_widths(c, cfg["encoder"]) if "encoder" in cfg else (1, 1)
    widths = [F]
    for key in ("dim", "width", "hidden", "proj_hidden", "decoder_hidden"):
        widths += _widths(cfg.get(key))
    fine = method == "nhcsr" and cfg["multi_scale"]
    return {
        "F": F,
        "F_live": F_live,
        "r": cfg["pixel_shuffle"] if fine else 0,
        "K": cfg["window"] ** 2 if "window" in cfg else 4,
        "W": max(widths),
        "hr_width": cfg["hr_width"] if method == "idm" else 0,
    }


def _split_bytes(c: dict, split: str, scales) -> int:
    """A split's coefficient and fields at ``scales`` as float32 (fesr.data.dataset.nbytes)."""
    E, n = c["physics"]["E"], c["lr_n"]
    per = E * E + sum((n * a + 1) ** 2 for a in scales)
    return 4 * per * int(c["splits"][split]["samples"])


def _feature_keys(c: dict, name: str, side_key: str) -> tuple[str, ...]:
    method, overrides = parse_model_name(name)
    cfg = {**c["methods"][method], **overrides}
    keys = [side_key]
    if model_sizes(c, name)["r"]:
        keys.append(f"methods.{method}.pixel_shuffle")
    if "encoder" in cfg:
        keys.append(f"encoders.{cfg['encoder']}")
    return tuple(keys)


# A memory term: (what, bytes, the config keys that set it).
Term = tuple[str, int, tuple[str, ...]]


def training_terms(c: dict, name: str) -> list[Term]:
    """The memory terms of a training job of model ``name`` (module docstring)."""
    t, z = c["training"], model_sizes(c, name)
    E, n, B = c["physics"]["E"], c["lr_n"], t["batch_size"]
    side = t["patch"] or E
    alpha, p = max(t["train_scales"]), side * n // E
    f32 = 4 * 2 * B  # float32 values and their gradients, per sample of the batch
    side_key = "training.patch" if t["patch"] else "physics.E"
    terms = [
        (
            f"feature maps {side}^2 x ({z['F_live']} + {z['r']}^2 x {z['F']}) x batch_size {B}",
            f32 * side * side * (z["F_live"] + z["r"] ** 2 * z["F"]),
            (*_feature_keys(c, name, side_key), "training.batch_size"),
        ),
        (
            f"queries sample_q {t['sample_q']} x {z['K']} x {z['W']} x batch_size {B}",
            f32 * t["sample_q"] * z["K"] * z["W"],
            ("training.sample_q", "training.batch_size"),
        ),
    ]
    if z["hr_width"]:
        terms.append(
            (
                f"HR grid ({p} x {alpha} + 1)^2 x hr_width {z['hr_width']} x batch_size {B}",
                f32 * (p * alpha + 1) ** 2 * z["hr_width"],
                ("methods.idm.hr_width", "training.train_scales", "training.batch_size"),
            )
        )
    scales = sorted({1, *t["train_scales"]})
    budget, preload = t["preload_mb"] << 20, 0
    for split in ("train", "val"):
        size = _split_bytes(c, split, scales)
        if preload + size <= budget:
            preload += size
    if preload:
        terms.append(("the splits preloaded", preload, ("training.preload_mb",)))
    return terms


def evaluation_terms(c: dict, name: str) -> list[Term]:
    """The memory terms of an evaluation job of model ``name`` (module docstring)."""
    z, E, n = model_sizes(c, name), c["physics"]["E"], c["lr_n"]
    alpha, chunk = max(c["evaluation"]["scales"]), c["evaluation"]["chunk"]
    m = n * alpha
    terms = [
        (
            f"feature maps {E}^2 x ({z['F_live']} + {z['r']}^2 x {z['F']})",
            4 * E * E * (z["F_live"] + z["r"] ** 2 * z["F"]),
            _feature_keys(c, name, "physics.E"),
        ),
        (
            f"queries chunk {chunk} x {z['K']} x {z['W']}",
            4 * chunk * z["K"] * z["W"],
            ("evaluation.chunk",),
        ),
        (f"3 HR fields ({m} + 1)^2 in float64", 3 * 8 * (m + 1) ** 2, ("evaluation.scales",)),
    ]
    if z["hr_width"]:
        terms.append(
            (
                f"HR grid ({m} + 1)^2 x hr_width {z['hr_width']}",
                4 * (m + 1) ** 2 * z["hr_width"],
                ("methods.idm.hr_width", "evaluation.scales"),
            )
        )
    return terms


def data_terms(c: dict, split: str) -> list[Term]:
    """The memory terms of a solve job of ``split`` at its largest scale (module docstring)."""
    cfg, E = c["splits"][split], c["physics"]["E"]
    n = c["lr_n"] * max(cfg["scales"])
    ranks = c["mpi"]["ranks"]
    solvers = ranks if n < c["mpi"]["decompose_min_n"] else 1
    shard = min(cfg.get("shard_size", 50), _max_split_size({"splits": {split: cfg}}))
    return [
        (
            f"{solvers} Q1 solver(s) at n = {n}: ({n} + 1)^2 x {SOLVER_BYTES_PER_NODE} B",
            solvers * (n + 1) ** 2 * SOLVER_BYTES_PER_NODE,
            (f"splits.{split}.scales", "mpi.decompose_min_n"),
        ),
        (
            f"{shard} coefficient maps {E}^2 in float64",
            shard * E * E * 8,
            ("physics.E", f"splits.{split}.shard_size"),
        ),
        (f"{ranks} MPI processes", (ranks - 1) * RUNTIME_BYTES, ("mpi.ranks",)),
    ]


def memory_budget(c: dict) -> tuple[int, str]:
    """(bytes, how to say it): ``memory_budget_gib``, else the machine's memory."""
    gib = c.get("memory_budget_gib")
    if gib is not None:
        return int(gib * GIB), f"memory_budget_gib ({gib:g} GiB)"
    # the physical memory from the OS (POSIX): no psutil, which not every rule's environment has
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return total, f"this machine's {total / GIB:.1f} GiB (memory_budget_gib plans for another)"


def job_bytes(terms: list[Term]) -> int:
    return RUNTIME_BYTES + sum(b for _, b, _ in terms)


def size_text(size: int) -> str:
    return f"{size / GIB:.1f} GiB" if size >= GIB else f"{size / 2**20:.1f} MiB"


def _memory_error(job: str, terms: list[Term], budget: str) -> str:
    what, size, keys = max(terms, key=lambda t: t[1])
    return (
        f"{keys[0]}: {job} needs at least {size_text(job_bytes(terms))} of memory, more than "
        f"{budget}; its largest part: {what} = {size_text(size)} (set by "
        f"{', '.join(keys)}); expected sizes that fit (fesr.validate's docstring: the estimate)"
    )


def rule_memory(c: dict) -> list[str]:
    """One error per kind of job (training, evaluation, data) whose estimate exceeds the budget,
    naming the largest such job."""
    budget, budget_text = memory_budget(c)
    models = list(model_sources(c))
    learned = [m for m in models if method_of(m) in LEARNED_METHODS]
    jobs = (
        ("the training job of model '{}'", learned, training_terms),
        ("the evaluation job of model '{}'", models, evaluation_terms),
        ("a solve job of split {}", list(c["splits"]), data_terms),
    )
    errors = []
    for job, items, terms_of in jobs:
        over = sorted(
            ((job_bytes(terms_of(c, x)), x) for x in items if job_bytes(terms_of(c, x)) > budget),
            reverse=True,
        )
        if over:
            what = job.format(over[0][1])
            if len(over) > 1:
                what += f" (and {len(over) - 1} more)"
            errors.append(_memory_error(what, terms_of(c, over[0][1]), budget_text))
    return errors


RULES = (
    rule_contrast,
    rule_source,
    rule_split_kinds,
    rule_maps,
    rule_split_scales,
    rule_train_scales,
    rule_eval_scales,
    rule_training_schedule,
    rule_patch,
    rule_report_models,
    rule_table1_seeds,
    rule_unique_models,
    rule_seeds_and_names,
    rule_method_shapes,
    rule_encoders,
    rule_solver,
    rule_chunks,
    rule_memory,
)
_REPORT_KEYS = tuple(f"report.{k}" for k in REPORT_LISTS)
_MODEL_KEYS = (*_REPORT_KEYS, "report.table1_seeds", "methods")
# The key paths each rule reads ('*': any key): a rule is skipped when the schema reports an error
# at, under or above one of them, so that one mistake is one error.
RULE_READS = {
    rule_contrast: ("physics.contrast",),
    rule_source: ("physics.source",),
    rule_split_kinds: ("splits.*.kind", "splits.*.samples", "splits.*.maps"),
    rule_maps: ("splits.*.maps",),
    rule_split_scales: ("scales", "splits.*.scales"),
    rule_train_scales: ("training.train_scales", "splits.train.scales", "splits.val.scales"),
    rule_eval_scales: ("evaluation.scales", "evaluation.splits", "splits.*.scales"),
    rule_training_schedule: (
        "training.iterations",
        "training.lr_milestones",
        "training.val_samples",
        "splits.val.samples",
    ),
    rule_patch: ("training.patch", "physics.E", "lr_n"),
    rule_report_models: _REPORT_KEYS,
    rule_table1_seeds: ("report.table1_methods", "report.table1_seeds"),
    rule_unique_models: _MODEL_KEYS,
    rule_seeds_and_names: ("seed", *_MODEL_KEYS, "splits.*.samples"),
    rule_method_shapes: ("methods",),
    rule_encoders: ("encoders.swinir",),
    rule_solver: ("solver", "lr_n", "splits.*.scales"),
    rule_chunks: ("physics.E",),
    rule_memory: (
        "memory_budget_gib",
        "physics",
        "lr_n",
        "splits",
        "training",
        "encoders",
        "methods",
        "evaluation",
        "mpi",
        *_MODEL_KEYS,
    ),
}


def _components(path: str) -> list[str]:
    return [p for p in path.replace("[", ".").replace("]", "").split(".") if p]


def _overlaps(error_path: str, read: str) -> bool:
    """Whether a schema error at ``error_path`` touches key path ``read`` (at, under or above)."""
    if error_path == "<top level>":
        return True
    a, b = _components(error_path), _components(read)
    return all(x == y or y == "*" for x, y in zip(a, b, strict=False))


def cross_field_errors(config: dict, schema_found: list[str] = ()) -> list[str]:
    """The cross-field rules' errors; ``schema_found``: the schema pass's errors, whose keys the
    rules then leave alone."""
    bad = [e.split(": ", 1)[0] for e in schema_found]
    errors = []
    for rule in RULES:
        if any(_overlaps(p, read) for p in bad for read in RULE_READS[rule]):
            continue
        try:
            errors += rule(config)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            pass  # a section the schema pass already reports as malformed
    return errors


def config_errors(config: dict) -> list[str]:
    """Every error of ``config`` (schema first, then the cross-field rules), one line each."""
    if not isinstance(config, dict):
        return [f"<top level>: {type(config).__name__}; expected a mapping"]
    found = schema_errors(config)
    return found + cross_field_errors(config, found)


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
    try:
        config = load_yaml(ROOT / "config.yaml")
        for path in args.configfile:
            config = deep_merge(config, load_yaml(path))
    except YamlError as err:
        errors = err.errors
    else:
        errors = config_errors(config)
    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        return 1
    print("configuration valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
