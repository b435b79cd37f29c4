"""Pure-Python planning of the training part (no torch): imported by workflow/rules/train.smk.

Which models the config's tables and figures need, which dataset files a training job reads,
and the part of the config a model's training depends on (the train_config.json it gets).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from fesr.evaluate.plan import NOT_LEARNED, table1_models

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
    """Union, in first-seen order, of the models every table and figure compares (Table I's
    seed replicas, ``report.table1_seeds``, right after ``table1_methods``)."""
    names: list[str] = []
    for key in REPORT_MODEL_LISTS:
        listed = config.get("report", {}).get(key, [])
        if key == "table1_methods" and listed:
            listed = table1_models(config)
        for name in listed:
            if name not in names:
                names.append(name)
    return names


def learned_models(config: dict) -> list[str]:
    """Every trained model that learns, seed replicas and ablation variants included: fig_training
    shows each one's validation curve, so that "flat by the end" is seen for all of them."""
    return [m for m in model_names(config) if m.split("-")[0] not in NOT_LEARNED]


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
    """The part of the config training ``model`` depends on: a change elsewhere retrains nothing.

    A seed replica ``{model}-seed{k}`` gets its model's dict unchanged: ``seed`` stays the
    config's, which the datasets were made with (fesr.train checks them against it); the training
    seed, ``seed`` + k, follows from the name (``fesr.model_names.training_seed``)."""
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


def gpu_request(device: str) -> int:
    """The ``gpu`` resource of a training or inference job with this device setting.

    1 when the job will run on a GPU, so such jobs queue for the GPUs the profile declares
    (``resources: gpu=N``); 0 when it runs on the CPU and needs only its one core, so a 2-core
    machine runs two of them at once. ``auto`` looks for an NVIDIA device node, which CUDA needs
    on Linux, instead of importing torch while Snakemake plans. The SLURM profile sets ``gpu``
    per rule itself.
    """
    if device == "cpu":
        return 0
    if device == "cuda":
        return 1
    return int(any(Path("/dev").glob("nvidia[0-9]*")))
