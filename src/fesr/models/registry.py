"""Method registry and model names.

A *method* is an SR algorithm (``liif``, ``nhcsr``, ...); a *model* is a trained instance named
``{method}[-{variant}...]``, e.g. ``nhcsr-pe_sinusoid`` or ``nhcsr-single_scale-no_scs``. Variant
tokens override the method's config from ``config["methods"][method]``:

============================  =====================================
token                         override
============================  =====================================
``pe_{plain,sinusoid,ipe,lte,gabor}``  ``pe``
``single_scale``/``multi_scale``       ``multi_scale`` False/True
``no_scs``                    ``scs: False``
``no_coef``                   ``coefficient: False``
``edsr``/``rdn``/``swinir``   ``encoder``
============================  =====================================
"""

from __future__ import annotations

import copy
import importlib

# method name -> module defining it (imported lazily so one method's import cost is paid alone)
METHODS = {
    "bicubic": "fesr.models.bicubic",
    "metasr": "fesr.models.metasr",
    "liif": "fesr.models.liif",
    "lte": "fesr.models.lte",
    "nhcsr": "fesr.models.nhcsr",
    "lit": "fesr.models.lit",
    "clit": "fesr.models.clit",
    "srno": "fesr.models.srno",
    "linf": "fesr.models.linf",
    "idm": "fesr.models.idm",
}
ENCODER_TOKENS = {"edsr": "edsr-baseline", "rdn": "rdn", "swinir": "swinir"}
PE_CHOICES = ("plain", "sinusoid", "ipe", "lte", "gabor")

_CLASSES: dict[str, type] = {}


def register(method: str):
    """Class decorator: ``@register("liif")``."""

    def deco(cls):
        cls.method = method
        _CLASSES[method] = cls
        return cls

    return deco


def get_method_class(method: str) -> type:
    if method not in METHODS:
        raise ValueError(f"unknown method '{method}'; expected one of {sorted(METHODS)}")
    if method not in _CLASSES:
        importlib.import_module(METHODS[method])
    return _CLASSES[method]


def parse_model_name(name: str) -> tuple[str, dict]:
    """'nhcsr-pe_sinusoid-no_scs' -> ('nhcsr', {'pe': 'sinusoid', 'scs': False})."""
    method, *tokens = name.split("-")
    if method not in METHODS:
        raise ValueError(
            f"model name '{name}': unknown method '{method}'; expected one of {sorted(METHODS)}"
        )
    overrides: dict = {}
    for tok in tokens:
        if tok.startswith("pe_") and tok[3:] in PE_CHOICES:
            overrides["pe"] = tok[3:]
        elif tok in ("single_scale", "multi_scale"):
            overrides["multi_scale"] = tok == "multi_scale"
        elif tok == "no_scs":
            overrides["scs"] = False
        elif tok == "no_coef":
            overrides["coefficient"] = False
        elif tok in ENCODER_TOKENS:
            overrides["encoder"] = ENCODER_TOKENS[tok]
        else:
            raise ValueError(
                f"model name '{name}': unknown variant '{tok}'; "
                f"expected pe_{{{','.join(PE_CHOICES)}}}, "
                "single_scale, multi_scale, no_scs, no_coef, edsr, rdn or swinir"
            )
    return method, overrides


def resolve_model_config(name: str, config: dict) -> dict:
    """The full, self-contained config of model ``name``: method settings, encoder settings and
    the training facts a method needs (train scales, SCS weight). Stored in the checkpoint."""
    method, overrides = parse_model_name(name)
    cfg = copy.deepcopy(config["methods"].get(method, {}))
    cfg.update(overrides)
    cfg.setdefault("coefficient", True)
    enc = cfg.get("encoder")
    if enc is not None:
        if enc not in config["encoders"]:
            raise ValueError(f"model '{name}': encoder '{enc}' has no entry in config 'encoders'")
        cfg["encoder_cfg"] = copy.deepcopy(config["encoders"][enc])
    train = config.get("training", {})
    cfg.setdefault("train_scales", list(train.get("train_scales", [2, 4, 8, 16])))
    cfg.setdefault("scs_lambda", train.get("scs_lambda", 0.1))
    cfg.setdefault("iterations", int(train.get("iterations", 1)))  # staged schedules (CLIT, LINF)
    cfg.setdefault("lr_n", int(config.get("lr_n", 32)))
    cfg.setdefault("E", int(config["physics"]["E"]))
    cfg["name"] = name
    cfg["method"] = method
    cfg["in_channels"] = 2 if cfg["coefficient"] else 1
    return cfg


def build_model(name: str, config: dict):
    """Instantiate model ``name`` (untrained) from the pipeline config."""
    cfg = resolve_model_config(name, config)
    return get_method_class(cfg["method"])(cfg)


def build_from_resolved(cfg: dict):
    """Instantiate from a config returned by ``resolve_model_config`` (e.g. from a checkpoint)."""
    return get_method_class(cfg["method"])(cfg)
