"""Pure-Python planning of the training part (no torch): imported by workflow/rules/train.smk.

Which models the config's tables and figures need, which dataset files a training job reads,
and the part of the config a model's training depends on (the train_config.json it gets).
"""

from __future__ import annotations

import json
import os

DATA_DIR = "results/data"
MODELS_DIR = "results/models"
# The config lists of the report whose union the `models` target trains.
REPORT_MODEL_LISTS = (
    "table1_methods",
    "table2_models",
    "table3_models",
    "fig9_models",
    "fig10_models",
)


def model_names(config: dict) -> list[str]:
    """Union, in first-seen order, of the models every table and figure compares."""
    names: list[str] = []
    for key in REPORT_MODEL_LISTS:
        for name in config.get("report", {}).get(key, []):
            if name not in names:
                names.append(name)
    return names


def model_targets(config: dict) -> list[str]:
    return [f"{MODELS_DIR}/{name}/checkpoint.pt" for name in model_names(config)]


def train_data_files(config: dict) -> list[str]:
    """Train and val splits: coefficient.nc and u_x{alpha}.nc at alpha = 1 and the train scales."""
    scales = [1]
    for a in config["training"]["train_scales"]:
        if float(a) != int(a):
            raise ValueError(f"training.train_scales: datasets exist at integer scales, got {a}")
        if int(a) not in scales:
            scales.append(int(a))
    files = []
    for split in ("train", "val"):
        files.append(f"{DATA_DIR}/{split}/coefficient.nc")
        files += [f"{DATA_DIR}/{split}/u_x{a}.nc" for a in scales]
    return files


def train_config(model: str, config: dict) -> dict:
    """The part of the config training ``model`` depends on: a change elsewhere retrains nothing."""
    method = model.split("-")[0]
    keep = {k: config[k] for k in ("seed", "lr_n", "physics", "training", "encoders")}
    keep["methods"] = {method: config["methods"].get(method, {})}
    return keep


def write_json_atomic(obj, path, log=None) -> None:
    """``obj`` as JSON at ``path`` (temporary name, then rename)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)
    if log is not None:
        with open(log, "w") as fh:
            print(f"wrote {path}", file=fh)
