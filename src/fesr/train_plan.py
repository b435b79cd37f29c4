"""Pure-Python planning of the training part (no torch): imported by workflow/rules/train.smk.

Which models the config's tables and figures need, which dataset files a training job reads,
and the part of the config a model's training depends on (the train_config.json it gets).

Physics variants (``fesr.model_names``): a model with an ``h1``/``energy`` token also depends on
the config's ``physics_loss`` section, which its train_config.json then holds; one with a ``hom``
token reads ``u_x1_geometric.nc`` of the train and val splits in place of ``u_x1.nc``. Models
without them get exactly the files and train_config.json they always had.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from fesr.evaluate.plan import table1_models
from fesr.model_names import (
    DEFAULT_INPUT_FIELD,
    DEFAULT_LOSS,
    LEARNED_METHODS,
    method_of,
    model_input_field,
    model_loss,
    model_name_errors,
)

DATA_DIR = "results/data"
MODELS_DIR = "results/models"
# The sections of the config a model's training reads: its train_config.json holds these, and of
# ``methods`` only the model's method.
TRAIN_CONFIG_KEYS = ("seed", "lr_n", "physics", "training", "encoders")
# input_field -> its LR file name (fesr.data.dataset.lr_field_path, without importing numpy here)
INPUT_FIELD_FILES = {"lr": "u_x1.nc", "hom_geometric": "u_x1_geometric.nc"}
PHYSICS_LOSS = "physics_loss"  # the config section of the element-gradient loss
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
    return [m for m in model_names(config) if method_of(m) in LEARNED_METHODS]


def model_targets(config: dict) -> list[str]:
    return [f"{MODELS_DIR}/{name}/checkpoint.pt" for name in model_names(config)]


def lr_data_path(split: str, model: str) -> str:
    """The LR file model ``model`` reads on ``split``: u_x1.nc, or u_x1_geometric.nc for a
    ``hom`` model (training, validation and prediction alike). A name that is no model gets
    u_x1.nc: a Snakemake input function must not raise while rules are matched, and the job's
    CLI refuses the name itself."""
    field = DEFAULT_INPUT_FIELD if model_name_errors(model) else model_input_field(model)
    return f"{DATA_DIR}/{split}/{INPUT_FIELD_FILES[field]}"


def train_data_files(config: dict, model: str | None = None) -> list[str]:
    """Train and val splits: coefficient.nc, the LR file and u_x{alpha}.nc at the train scales.
    The LR file is ``model``'s (``lr_data_path``); u_x1.nc without a model."""
    scales = []
    for a in config["training"]["train_scales"]:
        if float(a) != int(a):
            raise ValueError(f"training.train_scales: datasets exist at integer scales, got {a}")
        if int(a) not in scales and int(a) != 1:
            scales.append(int(a))
    files = []
    for split in ("train", "val"):
        files.append(f"{DATA_DIR}/{split}/coefficient.nc")
        if model is None:
            files.append(f"{DATA_DIR}/{split}/u_x1.nc")
        else:
            files.append(lr_data_path(split, model))
        files += [f"{DATA_DIR}/{split}/u_x{a}.nc" for a in scales]
    return files


def homogenized_train_files(config: dict) -> list[str]:
    """The train and val LR files of the configured models' input fields other than ``lr``
    (none when no model has a ``hom`` token): the `data` target makes them with the rest."""
    files: list[str] = []
    for model in model_names(config):
        if method_of(model) in LEARNED_METHODS and model_input_field(model) != DEFAULT_INPUT_FIELD:
            for split in ("train", "val"):
                path = lr_data_path(split, model)
                if path not in files:
                    files.append(path)
    return files


def physics_loss_settings(config: dict) -> dict:
    """The config's ``physics_loss`` section over the schema's defaults (a config loaded outside
    Snakemake, which fills them in, may lack the section or some of its keys)."""
    from fesr.config import schema

    props = schema()["properties"][PHYSICS_LOSS]["properties"]
    given = config.get(PHYSICS_LOSS) or {}
    return {k: given.get(k, spec["default"]) for k, spec in props.items()}


def element_loss_settings(model: str, config: dict) -> tuple[str, float, int]:
    """(loss mode, weight of its gradient term, elements per sample) of model ``model``:
    ("l1", 0.0, 0) for a model without an ``h1``/``energy`` token."""
    mode = model_loss(model)
    if mode == DEFAULT_LOSS:
        return mode, 0.0, 0
    settings = physics_loss_settings(config)
    weight = settings["h1_weight" if mode == "l1+h1" else "energy_weight"]
    return mode, float(weight), int(settings["elements"])


def train_config(model: str, config: dict) -> dict:
    """The part of the config training ``model`` depends on: a change elsewhere retrains nothing.

    A seed replica ``{model}-seed{k}`` gets its model's dict unchanged: ``seed`` stays the
    config's, which the datasets were made with (fesr.train checks them against it); the training
    seed, ``seed`` + k, follows from the name (``fesr.model_names.training_seed``)."""
    method = method_of(model)
    keep = {k: config[k] for k in TRAIN_CONFIG_KEYS}
    keep["methods"] = {method: config["methods"][method]}
    if model_loss(model) != DEFAULT_LOSS:  # only these read it: the others' files stay as they were
        keep[PHYSICS_LOSS] = physics_loss_settings(config)
    return keep


def train_config_errors(config: dict) -> list[str]:
    """The errors ``fesr.validate.config_errors`` finds in a config training reads: a whole
    pipeline config or a train_config.json (``train_config``). The sections a train_config.json
    leaves out by design (the top-level keys other than ``TRAIN_CONFIG_KEYS`` and ``methods``, the
    methods other than its own) are not errors; anything else is, one line each."""
    from fesr.validate import config_errors

    present = config if isinstance(config, dict) else {}
    methods = present.get("methods")
    methods = methods if isinstance(methods, dict) else {}

    def left_out(error: str) -> bool:
        # an error about a key that is absent can only say that it is missing
        keys = error.partition(": ")[0].split(".")
        if len(keys) == 1:
            return keys[0] not in (*TRAIN_CONFIG_KEYS, "methods") and keys[0] not in present
        return len(keys) == 2 and keys[0] == "methods" and keys[1] not in methods

    return list(dict.fromkeys(e for e in config_errors(config) if not left_out(e)))


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
