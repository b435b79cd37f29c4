"""The physics variants of a model name (``fesr.model_names``): ``h1``/``energy`` train with the
element-gradient loss of ``fesr.element_loss``, ``hom`` on the geometric-mean homogenized LR solve.

Names and refusals; a model without the tokens keeps its train_config.json, resolved config, data
files and run hash; ``nhcsr-energy`` and ``liif-hom`` train and predict through the real CLIs on
synthetic NetCDF files (tests/synthetic_data.py; the ``hom`` file is the LR file with other
values and the attribute the data stage writes, so that what the model saw can be told apart);
``liif-hom`` through the real Snakemake DAG at tiny size (slow).
"""

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from synthetic_data import write_dataset

from fesr.checkpoint import config_hash, load_checkpoint
from fesr.element_loss import PER_QUERY_METHODS
from fesr.fem.plan import dataset_files
from fesr.model_names import (
    LOSS_METHODS,
    model_input_field,
    model_loss,
    model_name_errors,
    parse_model_name,
)
from fesr.models.registry import build_model, resolve_model_config
from fesr.train_plan import (
    TRAIN_CONFIG_KEYS,
    element_loss_settings,
    model_names,
    physics_loss_settings,
    train_config,
    train_data_files,
)

ROOT = Path(__file__).resolve().parents[1]
HOM_FACTOR = 0.37  # the synthetic homogenized LR file is the LR file times this


# -- names ----------------------------------------------------------------------------------------
def test_physics_tokens_set_loss_and_input_field():
    assert parse_model_name("nhcsr-energy") == ("nhcsr", {"loss": "l1+energy"})
    assert parse_model_name("liif-h1-hom") == (
        "liif",
        {"loss": "l1+h1", "input_field": "hom_geometric"},
    )
    assert parse_model_name("nhcsr-energy-seed1") == ("nhcsr", {"loss": "l1+energy"})
    assert model_loss("nhcsr-energy-seed1") == "l1+energy" and model_loss("nhcsr") == "l1"
    assert model_input_field("srno-hom") == "hom_geometric" and model_input_field("liif") == "lr"
    # the pure-Python list the validation reads is the one the loss module enforces
    assert LOSS_METHODS == PER_QUERY_METHODS


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("srno-energy", ["per-query", "'srno' is not one", "global over the query set"]),
        ("idm-h1", ["per-query", "'idm' is not one", "whole HR field"]),
        ("bicubic-energy", ["per-query", "learns nothing"]),
        ("nhcsr-h1-energy", ["'energy' contradicts 'h1'", "'loss'"]),
        ("nhcsr-energy-energy", ["'energy' repeats 'energy'"]),
        ("bicubic-hom", ["'input_field'", "'bicubic' does not have"]),
        ("nhcsr-hom-hom", ["'hom' repeats 'hom'"]),
    ],
)
def test_physics_token_refusals(name, words):
    errors = model_name_errors(name)
    assert len(errors) == 1, errors
    for word in words:
        assert word in errors[0], (word, errors[0])
    with pytest.raises(ValueError, match="model name"):
        parse_model_name(name)


def test_unknown_token_message_lists_the_physics_tokens():
    (error,) = model_name_errors("liif-energetic")
    assert "h1, energy, hom" in error


# -- models without the tokens are what they were -------------------------------------------------
def test_plain_models_train_config_resolved_config_and_files_unchanged(tiny_config):
    plain = [m for m in model_names(tiny_config)]
    assert "nhcsr" in plain
    for model in plain:
        method = parse_model_name(model)[0]
        # the train_config.json formula without the physics tokens, written out
        expected = {k: tiny_config[k] for k in TRAIN_CONFIG_KEYS}
        expected["methods"] = {method: tiny_config["methods"][method]}
        got = train_config(model, tiny_config)
        assert "physics_loss" not in got
        assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True), model
        cfg = resolve_model_config(model, tiny_config)
        assert "loss" not in cfg and "input_field" not in cfg, model
        assert element_loss_settings(model, tiny_config) == ("l1", 0.0, 0)
        assert train_data_files(tiny_config, model) == train_data_files(tiny_config)
    assert not any("geometric" in f for f in train_data_files(tiny_config))
    assert not any("geometric" in f for f in dataset_files(tiny_config))


def test_plain_run_hash_is_the_five_key_hash(tiny_config):
    from fesr.train import RUNTIME_KEYS, run_hash

    cfg = resolve_model_config("nhcsr", tiny_config)
    tcfg = dict(tiny_config["training"])
    old = config_hash(
        {
            "model_cfg": cfg,
            "training": {k: v for k, v in tcfg.items() if k not in RUNTIME_KEYS},
            "seed": 7,
            "u_scale": 0.5,
            "n_train": 8,
        }
    )
    assert run_hash(cfg, tcfg, 7, 0.5, 8) == old
    energy = element_loss_settings("nhcsr-energy", tiny_config)
    energy_cfg = resolve_model_config("nhcsr-energy", tiny_config)
    assert run_hash(energy_cfg, tcfg, 7, 0.5, 8, energy) != old
    heavier = (energy[0], 2 * energy[1], energy[2])
    assert run_hash(energy_cfg, tcfg, 7, 0.5, 8, heavier) != run_hash(
        energy_cfg, tcfg, 7, 0.5, 8, energy
    )


def test_physics_models_config_and_files(tiny_config):
    schema_defaults = physics_loss_settings({})
    assert set(schema_defaults) == {"h1_weight", "energy_weight", "elements"}
    got = train_config("nhcsr-energy", tiny_config)
    assert got.pop("physics_loss") == schema_defaults
    assert got == train_config("nhcsr", tiny_config)
    given = copy.deepcopy(tiny_config) | {"physics_loss": {"energy_weight": 0.5}}
    assert element_loss_settings("nhcsr-energy", given) == (
        "l1+energy",
        0.5,
        schema_defaults["elements"],
    )
    assert element_loss_settings("liif-h1", given)[1] == schema_defaults["h1_weight"]
    assert "physics_loss" not in train_config("liif-hom", given)
    cfg = resolve_model_config("liif-hom", tiny_config)
    assert cfg.pop("input_field") == "hom_geometric"
    assert cfg | {"name": "liif"} == resolve_model_config("liif", tiny_config)
    files = train_data_files(tiny_config, "liif-hom")
    assert "results/data/train/u_x1_geometric.nc" in files
    assert "results/data/val/u_x1_geometric.nc" in files
    assert not any(f.endswith("/u_x1.nc") for f in files)
    with_hom = copy.deepcopy(tiny_config)
    with_hom["report"]["table1_methods"] = [*with_hom["report"]["table1_methods"], "liif-hom"]
    extra = sorted(set(dataset_files(with_hom)) - set(dataset_files(tiny_config)))
    assert extra == ["results/data/train/u_x1_geometric.nc", "results/data/val/u_x1_geometric.nc"]


def test_registry_keeps_training_keys_out_of_the_constructor(tiny_config):
    # NH-CSR refuses unknown config keys: it builds only if loss and input_field are left out
    model = build_model("nhcsr-energy-hom", tiny_config)
    assert "loss" not in model.cfg and "input_field" not in model.cfg
    plain = build_model("nhcsr", tiny_config)
    assert [p.shape for p in model.parameters()] == [p.shape for p in plain.parameters()]


# -- the real CLIs on synthetic files -------------------------------------------------------------
def write_homogenized(data_dir: Path) -> None:
    """u_x1_geometric.nc of train and val: u_x1.nc times HOM_FACTOR, with the attribute
    ``effective_mean`` the data stage writes."""
    for split in ("train", "val"):
        src = data_dir / split / "u_x1.nc"
        dst = data_dir / split / "u_x1_geometric.nc"
        shutil.copy(src, dst)
        with netCDF4.Dataset(dst, "a") as nc:
            nc["u"][:] = np.asarray(nc["u"][:]) * HOM_FACTOR
            nc.setncattr("effective_mean", "geometric")
            if "u_max" in nc.ncattrs():
                nc.setncattr("u_max", float(nc.getncattr("u_max")) * HOM_FACTOR)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = write_dataset(tmp_path_factory.mktemp("physics_data"), train=6, val=2, scales=(1, 2, 4))
    write_homogenized(root)
    return root


@pytest.fixture(scope="module")
def config(tiny_config):
    cfg = copy.deepcopy(tiny_config)
    cfg["training"].update(iterations=3, val_every=1, checkpoint_every=3, lr_milestones=[2])
    return cfg


def run_cli(module: str, *argv) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, argv)],
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )


def train_cli(model: str, config: dict, data_dir: Path, out: Path) -> subprocess.CompletedProcess:
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "train_config.json"
    cfg_path.write_text(json.dumps(train_config(model, config)))
    return run_cli(
        "fesr.train",
        "--model",
        model,
        "--config-json",
        cfg_path,
        "--data",
        data_dir,
        "--out",
        out,
        "--device",
        "cpu",
        "--threads",
        "1",
        "--no-progress",
    )


def predict_cli(model: str, ckpt: Path, lr: Path, coefficient: Path, out: Path):
    return run_cli(
        "fesr.evaluate.predict",
        "--model",
        model,
        "--checkpoint",
        ckpt,
        "--lr-data",
        lr,
        "--coefficient",
        coefficient,
        "--alpha",
        2,
        "--out",
        out,
        "--chunk",
        1000,
        "--device",
        "cpu",
    )


def test_nhcsr_energy_trains_and_predicts_through_the_clis(config, data_dir, tmp_path):
    res = train_cli("nhcsr-energy", config, data_dir, tmp_path / "nhcsr-energy")
    assert res.returncode == 0, res.stderr[-3000:]
    ckpt = load_checkpoint(tmp_path / "nhcsr-energy" / "checkpoint.pt")
    weight = physics_loss_settings({})["energy_weight"]
    assert ckpt["physics_loss"] == {
        "loss": "l1+energy",
        "weight": weight,
        "elements": physics_loss_settings({})["elements"],
    }
    assert ckpt["model_cfg"]["loss"] == "l1+energy" and ckpt["data"]["input_field"] == "lr"
    hist = pd.read_csv(tmp_path / "nhcsr-energy" / "history.csv").iloc[1:]
    assert len(hist) == 3 and (hist["energy"] > 0).all()
    # the logged loss is NH-CSR's own (L1 + lambda (1 - SCS)) plus weight * G
    lam = config["training"]["scs_lambda"]
    own = hist["l1"] + lam * (1.0 - hist["scs"])
    np.testing.assert_allclose(hist["loss"], own + weight * hist["energy"], rtol=1e-5)
    assert not np.allclose(hist["loss"], own, rtol=1e-3)  # the term is there and counted

    out = tmp_path / "pred" / "u_x2.nc"
    val = data_dir / "val"
    res = predict_cli(
        "nhcsr-energy",
        tmp_path / "nhcsr-energy/checkpoint.pt",
        val / "u_x1.nc",
        val / "coefficient.nc",
        out,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    with netCDF4.Dataset(out) as nc:
        assert nc["u"].shape == (2, 65, 65) and np.isfinite(nc["u"][:]).all()


def test_energy_token_refused_by_the_train_cli_for_srno(config, data_dir, tmp_path):
    (tmp_path / "srno-energy").mkdir()
    cfg_path = tmp_path / "srno-energy" / "train_config.json"
    cfg_path.write_text(json.dumps(train_config("srno", config)))
    res = run_cli(
        "fesr.train",
        "--model",
        "srno-energy",
        "--config-json",
        cfg_path,
        "--data",
        data_dir,
        "--out",
        tmp_path / "srno-energy",
    )
    assert res.returncode == 2, res.stderr[-2000:]
    assert "per-query" in res.stderr and "srno" in res.stderr


def test_liif_hom_trains_on_the_homogenized_field_and_predicts(config, data_dir, tmp_path):
    from fesr.data import BatchBuilder
    from fesr.data.dataset import u_scale
    from fesr.models.registry import build_from_resolved
    from fesr.train import build_run, open_splits, seed_everything, validation_loss

    res = train_cli("liif-hom", config, data_dir, tmp_path / "liif-hom")
    assert res.returncode == 0, res.stderr[-3000:]
    ckpt = load_checkpoint(tmp_path / "liif-hom" / "checkpoint.pt")
    assert ckpt["data"]["input_field"] == "hom_geometric" and "physics_loss" not in ckpt
    res = train_cli("liif", config, data_dir, tmp_path / "liif")
    assert res.returncode == 0, res.stderr[-3000:]
    plain = load_checkpoint(tmp_path / "liif" / "checkpoint.pt")
    assert plain["config_hash"] != ckpt["config_hash"]

    # what training saw: the batches of the run are the homogenized file's values
    scales = [float(a) for a in config["training"]["train_scales"]]
    scale = u_scale(data_dir, scales)
    assert scale == pytest.approx(ckpt["u_scale"])
    readers = open_splits(data_dir, scales, 0, 0, "hom_geometric")
    try:
        run = build_run(
            "liif-hom",
            ckpt["model_cfg"],
            config,
            torch.device("cpu"),
            data_dir,
            readers,
            scale,
            ckpt["seed"],
            ckpt["config_hash"],
            tmp_path / "x",
        )
        for split, reader in zip(("train", "val"), readers, strict=True):
            with netCDF4.Dataset(data_dir / split / "u_x1_geometric.nc") as nc:
                hom = np.asarray(nc["u"][:], dtype=np.float32)
            with netCDF4.Dataset(data_dir / split / "u_x1.nc") as nc:
                lr = np.asarray(nc["u"][:], dtype=np.float32)
            builder = (
                run.builder
                if split == "train"
                else BatchBuilder(reader, scale, config["physics"]["contrast"], True, 8)
            )
            batch = builder.build(np.array([0, 1]), 2, np.random.default_rng(0))
            p = batch["lr"].shape[-1]  # a training patch: the LR nodes from patch_origin
            want, other = [], []
            for k, (i, j) in enumerate(batch["patch_origin"].tolist()):
                want.append(hom[k, i : i + p, j : j + p] / scale)
                other.append(lr[k, i : i + p, j : j + p] / scale)
            got = batch["lr"][:, 0].numpy()
            np.testing.assert_allclose(got, np.stack(want), rtol=1e-6)
            assert not np.allclose(got, np.stack(other), rtol=1e-3)
        # the checkpoint's first validation loss is the untrained model's on those batches
        seed_everything(ckpt["seed"])
        fresh = build_from_resolved(ckpt["model_cfg"])
        val0 = validation_loss(fresh, run.val_batches, torch.device("cpu"), ckpt["seed"])
        assert float(ckpt["history"][0, 2]) == pytest.approx(val0, rel=1e-6)
        assert float(plain["history"][0, 2]) != pytest.approx(val0, rel=1e-3)
    finally:
        for reader in readers:
            reader.close()

    val = data_dir / "val"
    ckpt_path = tmp_path / "liif-hom" / "checkpoint.pt"
    out = tmp_path / "pred" / "u_x2.nc"
    res = predict_cli("liif-hom", ckpt_path, val / "u_x1_geometric.nc", val / "coefficient.nc", out)
    assert res.returncode == 0, res.stderr[-3000:]
    with netCDF4.Dataset(out) as nc:
        assert nc["u"].shape == (2, 65, 65) and np.isfinite(nc["u"][:]).all()
    # the other LR file is refused, naming both sides
    bad = tmp_path / "bad" / "u_x2.nc"
    res = predict_cli("liif-hom", ckpt_path, val / "u_x1.nc", val / "coefficient.nc", bad)
    assert res.returncode == 2 and not bad.exists()
    assert "none (arithmetic)" in res.stderr and "hom_geometric" in res.stderr
    assert str(ckpt_path) in res.stderr
    res = predict_cli(
        "liif",
        tmp_path / "liif" / "checkpoint.pt",
        val / "u_x1_geometric.nc",
        val / "coefficient.nc",
        bad,
    )
    assert res.returncode == 2 and not bad.exists()
    assert "effective_mean geometric" in res.stderr and "input_field 'lr'" in res.stderr


def test_hom_train_cli_refuses_a_missing_or_wrong_homogenized_file(config, data_dir, tmp_path):
    broken = tmp_path / "data"
    shutil.copytree(data_dir, broken)
    shutil.copy(broken / "val" / "u_x1.nc", broken / "val" / "u_x1_geometric.nc")
    res = train_cli("liif-hom", config, broken, tmp_path / "liif-hom")
    assert res.returncode == 2, res.stderr[-2000:]
    assert "u_x1_geometric.nc" in res.stderr and "expects geometric" in res.stderr
    (broken / "val" / "u_x1_geometric.nc").unlink()
    res = train_cli("liif-hom", config, broken, tmp_path / "liif-hom")
    assert res.returncode != 0 and "u_x1_geometric.nc" in res.stderr


# -- the real Snakemake DAG -----------------------------------------------------------------------
@pytest.mark.slow
def test_hom_model_through_the_snakemake_dag(tmp_path):
    """liif-hom in Table I of the tiny preset: its train job reads the homogenized train and val
    solves, its predict job the homogenized test solve, and its metric part is written."""
    from tiny_dag import SNAKEMAKE

    tiny = yaml.safe_load((ROOT / "workflow/presets/tiny.yaml").read_text())
    overlay = tmp_path / "overlay.yaml"
    methods = ["liif", "liif-hom"]
    overlay.write_text(yaml.safe_dump({"report": {"table1_methods": methods}}))
    assert tiny["report"].get("table1_methods") != methods
    work = tmp_path / "work"
    target = "results/metrics/parts/liif-hom/test_random/x2.csv"
    cmd = [str(SNAKEMAKE), target, "-s", str(ROOT / "Snakefile"), "-d", str(work), "--cores", "2"]
    cmd += ["--configfile", str(ROOT / "config.yaml"), str(ROOT / "workflow/presets/tiny.yaml")]
    cmd += [str(overlay)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, check=False)
    assert res.returncode == 0, res.stderr[-5000:]
    parts = pd.read_csv(work / target)
    assert len(parts) == 2 and np.isfinite(parts.select_dtypes("number")).all().all()
    ckpt = load_checkpoint(work / "results/models/liif-hom/checkpoint.pt")
    assert ckpt["data"]["input_field"] == "hom_geometric"
    for split in ("train", "val", "test_random"):
        with netCDF4.Dataset(work / f"results/data/{split}/u_x1_geometric.nc") as nc:
            assert nc.getncattr("effective_mean") == "geometric"
    # only the model that reads them made the train and val ones: liif was not needed here
    assert not (work / "results/models/liif/checkpoint.pt").exists()
