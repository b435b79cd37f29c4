"""Method registry: model names to model classes and their resolved configs.

A *method* is an SR algorithm (``liif``, ``nhcsr``, ...); a *model* is a trained instance named
``{method}[-{variant}...]``, e.g. ``nhcsr-pe_sinusoid`` or ``nhcsr-single_scale-no_scs``. Variant
tokens override the method's config from ``config["methods"][method]``; which tokens exist and
which method accepts which is defined in ``fesr.model_names`` (pure Python, used by the config
validation too).

The tokens ``h1``/``energy``/``hom`` set the training settings ``loss`` and ``input_field`` in the
resolved config (stored in the checkpoint, part of the run hash); they are not the method's, so
``method_arguments`` leaves them out of what the model constructor gets. A model without them has
neither key, so its resolved config is what it always was.
"""

from __future__ import annotations

import copy
import importlib

# The names and their tokens live in a module without the model paths below, so that the
# config validation (fesr.validate) reads them without reaching the torch-based methods.
from fesr.model_names import (  # noqa: F401  (re-exported: the registry is their old home)
    ENCODER_TOKENS,
    METHOD_NAMES,
    PE_CHOICES,
    TOKEN_METHODS,
    model_name_errors,
    parse_model_name,
)

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
if set(METHODS) != set(METHOD_NAMES):
    raise ImportError("fesr.models.registry.METHODS and fesr.model_names.METHOD_NAMES differ")

_CLASSES: dict[str, type] = {}
# Keys of a resolved config that the training loop reads and the model does not.
TRAINING_ONLY_KEYS = ("loss", "input_field")


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


def resolve_model_config(name: str, config: dict) -> dict:
    """The full, self-contained config of model ``name``: method settings, encoder settings and
    the training facts a method needs (train scales, SCS weight). Stored in the checkpoint.

    Every key the method reads must come from the config (no paper-size fallback): a method or
    encoder section lacking a key the schema requires is refused, naming the key."""
    from fesr.config import required_keys

    method, overrides = parse_model_name(name)
    if method not in config.get("methods", {}):
        raise ValueError(f"model '{name}': the config has no 'methods.{method}' section")
    cfg = copy.deepcopy(config["methods"][method])
    _require(name, f"methods.{method}", cfg, required_keys(("methods", method)))
    cfg.update(overrides)
    cfg.setdefault("coefficient", True)
    enc = cfg.get("encoder")
    if enc is not None:
        if enc not in config.get("encoders", {}):
            raise ValueError(f"model '{name}': encoder '{enc}' has no entry in config 'encoders'")
        cfg["encoder_cfg"] = copy.deepcopy(config["encoders"][enc])
        _require(name, f"encoders.{enc}", cfg["encoder_cfg"], required_keys(("encoders", enc)))
    train = config.get("training", {})
    _require(name, "training", train, ("train_scales", "scs_lambda", "iterations"))
    _require(name, "physics", config.get("physics", {}), ("E",))
    _require(name, "<top level>", config, ("lr_n",))
    cfg.setdefault("train_scales", list(train["train_scales"]))
    cfg.setdefault("scs_lambda", train["scs_lambda"])
    cfg.setdefault("iterations", int(train["iterations"]))  # staged schedules (CLIT, LINF)
    cfg.setdefault("lr_n", int(config["lr_n"]))
    cfg.setdefault("E", int(config["physics"]["E"]))
    cfg["name"] = name
    cfg["method"] = method
    cfg["in_channels"] = 2 if cfg["coefficient"] else 1
    return cfg


def _require(name: str, where: str, section: dict, keys) -> None:
    missing = [k for k in keys if k not in section]
    if missing:
        raise ValueError(
            f"model '{name}': config '{where}' lacks {', '.join(repr(k) for k in missing)} "
            "(every setting a method reads must be in the config; see config.yaml)"
        )


def method_arguments(cfg: dict) -> dict:
    """The constructor argument of a resolved config: it without ``TRAINING_ONLY_KEYS``."""
    return {k: v for k, v in cfg.items() if k not in TRAINING_ONLY_KEYS}


def build_model(name: str, config: dict):
    """Instantiate model ``name`` (untrained) from the pipeline config."""
    return build_from_resolved(resolve_model_config(name, config))


def build_from_resolved(cfg: dict):
    """Instantiate from a config returned by ``resolve_model_config`` (e.g. from a checkpoint)."""
    return get_method_class(cfg["method"])(method_arguments(cfg))
