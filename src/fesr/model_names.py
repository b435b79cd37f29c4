"""Model names ``{method}[-{variant}...]`` and their variant tokens (pure Python, no torch).

Which methods exist and which variant tokens each accepts; ``fesr.models.registry`` maps the
names to their modules and builds the models. A token overrides one key of the method's config:

============================  =====================================
token                         override
============================  =====================================
``pe_{plain,sinusoid,ipe,lte,gabor}``  ``pe``
``single_scale``/``multi_scale``       ``multi_scale`` False/True
``no_scs``                    ``scs: False``
``no_coef``                   ``coefficient: False``
``edsr``/``rdn``/``swinir``   ``encoder``
``seed{k}`` (k >= 1, last)    training seed = config ``seed`` + k
============================  =====================================

A token is valid only for a method that reads the key it overrides (``pe_*``, ``single_scale``,
``multi_scale`` and ``no_scs`` for NH-CSR; ``no_coef`` and the encoder tokens for every method
with an encoder), and no two tokens may set the same key (``single_scale-multi_scale``,
``edsr-rdn``, a repeated token): otherwise a table could show an ablation that is not one.

``seed{k}`` names a seed replica: ``nhcsr-seed2`` is ``nhcsr`` trained with the seed
``config["seed"] + 2`` (``training_seed``); the plain name is replica 0. It is no method-config
key (``parse_model_name`` leaves it out; ``model_seed`` reads it), applies to every learned
method, and comes last, so that each replica has one name. The datasets keep the config seed.
"""

from __future__ import annotations

METHOD_NAMES = ("bicubic", "metasr", "liif", "lte", "nhcsr", "lit", "clit", "srno", "linf", "idm")
ENCODER_TOKENS = {"edsr": "edsr-baseline", "rdn": "rdn", "swinir": "swinir"}
PE_CHOICES = ("plain", "sinusoid", "ipe", "lte", "gabor")
# The methods that read the key each kind of variant token overrides.
ENCODER_METHODS = frozenset(METHOD_NAMES) - {"bicubic"}
TOKEN_METHODS = {
    "pe": frozenset({"nhcsr"}),
    "multi_scale": frozenset({"nhcsr"}),
    "scs": frozenset({"nhcsr"}),
    "coefficient": ENCODER_METHODS,
    "encoder": ENCODER_METHODS,
}
SEED_TOKEN = "seed"  # seed{k}: replica k of a model (see the module docstring)
LEARNED_METHODS = ENCODER_METHODS  # every method with an encoder learns; bicubic does not


def token_override(tok: str) -> tuple[str, object] | None:
    """(config key, value) a variant token sets, or None for an unknown token."""
    if tok.startswith("pe_") and tok[3:] in PE_CHOICES:
        return "pe", tok[3:]
    if tok in ("single_scale", "multi_scale"):
        return "multi_scale", tok == "multi_scale"
    if tok == "no_scs":
        return "scs", False
    if tok == "no_coef":
        return "coefficient", False
    if tok in ENCODER_TOKENS:
        return "encoder", ENCODER_TOKENS[tok]
    return None


def _seed_number(tok: str) -> int | None:
    """k of a token ``seed{k}`` (k >= 1, no leading zeros), else None."""
    k = tok[len(SEED_TOKEN) :]
    if tok.startswith(SEED_TOKEN) and k.isascii() and k.isdigit() and k[0] != "0":
        return int(k)
    return None


def _seed_token_errors(name: str, method: str, tok: str, last: bool) -> list[str]:
    if _seed_number(tok) is None:
        return [
            f"model name '{name}': seed token '{tok}'; expected seed{{k}} with k a positive "
            f"integer without leading zeros (replica 0 is the plain name '{method}')"
        ]
    if method not in LEARNED_METHODS:
        return [
            f"model name '{name}': variant '{tok}' sets the training seed, which method "
            f"'{method}' does not have (it learns nothing); it applies to "
            f"{', '.join(sorted(LEARNED_METHODS))}"
        ]
    if not last:
        return [
            f"model name '{name}': seed token '{tok}' is not last; expected the seed replica "
            "token at the end of the name (one name per replica)"
        ]
    return []


def model_seed(name: str) -> int | None:
    """k of a valid replica name ``{model}-seed{k}``, None for the plain name (replica 0)."""
    tokens = str(name).split("-")
    return _seed_number(tokens[-1]) if len(tokens) > 1 else None


def training_seed(name: str, config_seed: int) -> int:
    """The seed model ``name`` trains with: the config's ``seed`` plus its replica number."""
    return int(config_seed) + (model_seed(name) or 0)


def model_name_errors(name: str) -> list[str]:
    """Every problem of a model name (unknown method or token, a token its method does not read,
    two tokens setting the same key, a malformed or misplaced seed token); empty when the name
    is valid."""
    method, *tokens = str(name).split("-")
    if method not in METHOD_NAMES:
        return [
            f"model name '{name}': unknown method '{method}'; "
            f"expected one of {sorted(METHOD_NAMES)}"
        ]
    errors, seen = [], {}
    for i, tok in enumerate(tokens):
        if tok.startswith(SEED_TOKEN):
            errors += _seed_token_errors(name, method, tok, i == len(tokens) - 1)
            continue
        hit = token_override(tok)
        if hit is None:
            errors.append(
                f"model name '{name}': unknown variant '{tok}'; "
                f"expected pe_{{{','.join(PE_CHOICES)}}}, "
                "single_scale, multi_scale, no_scs, no_coef, edsr, rdn, swinir or seed{k}"
            )
            continue
        key = hit[0]
        if method not in TOKEN_METHODS[key]:
            users = sorted(TOKEN_METHODS[key])
            errors.append(
                f"model name '{name}': variant '{tok}' sets '{key}', which method '{method}' "
                f"does not have; it applies to {', '.join(users)}"
            )
        elif key in seen:
            what = "repeats" if seen[key] == tok else "contradicts"
            errors.append(
                f"model name '{name}': variant '{tok}' {what} '{seen[key]}' (both set '{key}')"
            )
        seen.setdefault(key, tok)
    return errors


def parse_model_name(name: str) -> tuple[str, dict]:
    """'nhcsr-pe_sinusoid-no_scs' -> ('nhcsr', {'pe': 'sinusoid', 'scs': False}).

    The method-config overrides only: a seed token is left out (``model_seed`` reads it).
    Raises ValueError for an invalid name (see ``model_name_errors``)."""
    errors = model_name_errors(name)
    if errors:
        raise ValueError("; ".join(errors))
    method, *tokens = name.split("-")
    if model_seed(name) is not None:
        tokens = tokens[:-1]
    return method, dict(token_override(tok) for tok in tokens)


def seed_replicas(model: str, seeds: int) -> list[str]:
    """``model`` and its replicas 1 .. seeds - 1: ``('nhcsr', 3)`` -> nhcsr, nhcsr-seed1,
    nhcsr-seed2."""
    return [model] + [f"{model}-{SEED_TOKEN}{k}" for k in range(1, int(seeds))]
