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
``h1``/``energy``             ``loss`` ``l1+h1``/``l1+energy``
``hom``                       ``input_field: hom_geometric``
``seed{k}`` (k >= 1, last)    training seed = config ``seed`` + k
============================  =====================================

A token is valid only for a method that reads the key it overrides (``pe_*``, ``single_scale``,
``multi_scale`` and ``no_scs`` for NH-CSR; ``no_coef``, ``hom`` and the encoder tokens for every
method with an encoder; ``h1`` and ``energy`` for the per-query methods of ``LOSS_METHODS``), and
no two tokens may set the same key (``single_scale-multi_scale``, ``edsr-rdn``, ``h1-energy``, a
repeated token): otherwise a table could show an ablation that is not one.

``loss`` and ``input_field`` are training settings, not method settings: the methods' config
sections do not have them, a model without the tokens trains with ``loss: l1`` (the method's own
loss) on ``input_field: lr`` (``u_x1.nc``), and the registry keeps them out of the model
constructors. ``h1``/``energy`` add the element-gradient term of ``fesr.element_loss`` (weights
and element count: config ``physics_loss``); ``hom`` trains, validates and predicts on the
geometric-mean homogenized LR solve ``u_x1_geometric.nc`` (``fesr.data.dataset``). The term needs
a method whose output at a point depends on that point alone: SRNO (attention global over the
query set), IDM (a diffusion of the whole field) and bicubic (nothing learned) refuse them.

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
# Per-query methods, the ones the element-gradient loss applies to (fesr.element_loss's
# PER_QUERY_METHODS; kept here without torch for the config validation), and why the others
# cannot take it.
LOSS_METHODS = frozenset({"metasr", "liif", "lte", "lit", "clit", "nhcsr", "linf"})
NOT_PER_QUERY = {
    "srno": "its Galerkin attention is global over the query set, so corner queries made apart "
    "from the nodes would change the prediction",
    "idm": "it denoises the whole HR field at once, so the field cannot be queried at element "
    "corners alone",
    "bicubic": "it learns nothing",
}
LOSS_TOKENS = {"h1": "l1+h1", "energy": "l1+energy"}
INPUT_FIELD_TOKENS = {"hom": "hom_geometric"}
DEFAULT_LOSS, DEFAULT_INPUT_FIELD = "l1", "lr"  # a model name without those tokens
TOKEN_METHODS = {
    "pe": frozenset({"nhcsr"}),
    "multi_scale": frozenset({"nhcsr"}),
    "scs": frozenset({"nhcsr"}),
    "coefficient": ENCODER_METHODS,
    "encoder": ENCODER_METHODS,
    "loss": LOSS_METHODS,
    "input_field": ENCODER_METHODS,
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
    if tok in LOSS_TOKENS:
        return "loss", LOSS_TOKENS[tok]
    if tok in INPUT_FIELD_TOKENS:
        return "input_field", INPUT_FIELD_TOKENS[tok]
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


def method_of(name: str) -> str:
    """The method of a model name: ``nhcsr-pe_ipe-seed2`` -> ``nhcsr``."""
    return str(name).split("-")[0]


def name_tokens(name: str) -> list[str]:
    """The tokens after the method, in order: ``nhcsr-pe_ipe-seed2`` -> ``pe_ipe``, ``seed2``."""
    return str(name).split("-")[1:]


def replica_of(name: str) -> tuple[str, int]:
    """(model, replica number) of a model name: ``nhcsr-seed2`` -> (``nhcsr``, 2), a name without
    a seed token -> (name, 0)."""
    k = model_seed(name)
    return (str(name).rsplit("-", 1)[0], k) if k else (str(name), 0)


def replica_name(model: str, k: int) -> str:
    """Replica ``k`` of ``model``: the plain name for k = 0, else ``{model}-seed{k}``."""
    return f"{model}-{SEED_TOKEN}{int(k)}" if int(k) else model


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
                "single_scale, multi_scale, no_scs, no_coef, edsr, rdn, swinir, h1, energy, hom "
                "or seed{k}"
            )
            continue
        key = hit[0]
        if key == "loss" and method not in TOKEN_METHODS[key]:
            errors.append(
                f"model name '{name}': variant '{tok}' trains with the element-gradient loss "
                f"'{hit[1]}', which needs a per-query method "
                f"({', '.join(sorted(LOSS_METHODS))}); method '{method}' is not one: "
                f"{NOT_PER_QUERY.get(method, 'its output at a point is not that point alone')}"
            )
        elif method not in TOKEN_METHODS[key]:
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


def model_loss(name: str) -> str:
    """The training loss a model name selects: ``l1+h1``/``l1+energy`` from its ``h1``/``energy``
    token, else ``l1`` (the method's own loss). ValueError for an invalid name."""
    return parse_model_name(name)[1].get("loss", DEFAULT_LOSS)


def model_input_field(name: str) -> str:
    """The LR field a model name selects: ``hom_geometric`` from its ``hom`` token, else ``lr``.
    ValueError for an invalid name."""
    return parse_model_name(name)[1].get("input_field", DEFAULT_INPUT_FIELD)


def training_variant_base(name: str) -> str | None:
    """The model a name differs from by its training tokens alone (``h1``, ``energy``,
    ``hom``): ``nhcsr-pe_ipe-energy`` -> ``nhcsr-pe_ipe``; None for a name without them.
    ValueError for an invalid name or a seed replica (the tables pair whole methods)."""
    parse_model_name(name)
    if model_seed(name) is not None:
        raise ValueError(f"'{name}' is a seed replica; expected a model name without seed{{k}}")
    tokens = name_tokens(name)
    kept = [t for t in tokens if t not in LOSS_TOKENS and t not in INPUT_FIELD_TOKENS]
    return "-".join([method_of(name), *kept]) if len(kept) < len(tokens) else None


def seed_replicas(model: str, seeds: int) -> list[str]:
    """``model`` and its replicas 1 .. seeds - 1: ``('nhcsr', 3)`` -> nhcsr, nhcsr-seed1,
    nhcsr-seed2."""
    return [replica_name(model, k) for k in range(int(seeds))]
