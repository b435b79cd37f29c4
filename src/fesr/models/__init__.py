"""SR methods behind one interface (base.SRModel) and a name registry (registry.build_model)."""

from fesr.models.base import SRModel
from fesr.models.registry import METHODS, build_model, parse_model_name, resolve_model_config

__all__ = ["SRModel", "METHODS", "build_model", "parse_model_name", "resolve_model_config"]
