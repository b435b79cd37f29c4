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
============================  =====================================

A token is valid only for a method that reads the key it overrides (``pe_*``, ``single_scale``,
``multi_scale`` and ``no_scs`` for NH-CSR; ``no_coef`` and the encoder tokens for every method
with an encoder), and no two tokens may set the same key (``single_scale-multi_scale``,
``edsr-rdn``, a repeated token): otherwise a table could show an ablation that is not one.
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


def model_name_errors(name: str) -> list[str]:
    """Every problem of a model name (unknown method or token, a token its method does not read,
    two tokens setting the same key); empty when the name is valid."""
    method, *tokens = str(name).split("-")
    if method not in METHOD_NAMES:
        return [
            f"model name '{name}': unknown method '{method}'; "
            f"expected one of {sorted(METHOD_NAMES)}"
        ]
    errors, seen = [], {}
    for tok in tokens:
        hit = token_override(tok)
        if hit is None:
            errors.append(
                f"model name '{name}': unknown variant '{tok}'; "
                f"expected pe_{{{','.join(PE_CHOICES)}}}, "
                "single_scale, multi_scale, no_scs, no_coef, edsr, rdn or swinir"
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

    Raises ValueError for an invalid name (see ``model_name_errors``)."""
    errors = model_name_errors(name)
    if errors:
        raise ValueError("; ".join(errors))
    method, *tokens = name.split("-")
    return method, dict(token_override(tok) for tok in tokens)
