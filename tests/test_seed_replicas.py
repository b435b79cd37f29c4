"""Seed replicas ``{model}-seed{k}``: trained like their model with the seed + k, planned
for Table I and table_cost by ``report.table1_seeds``, and only what Table I needs planned by
``snakemake table1``. The workflow checks are real Snakemake dry runs (nothing is run)."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import netCDF4
import pytest
import torch
from synthetic_data import write_dataset

from fesr import train_plan
from fesr.checkpoint import load_checkpoint
from fesr.cli import UsageError
from fesr.config import load_config, load_yaml
from fesr.evaluate import plan
from fesr.models.registry import resolve_model_config
from fesr.train import check_train_inputs, train

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
# the study preset is layered over the quick one, as `make study` gives them
STUDY_LAYERS = [ROOT / "workflow/presets/quick.yaml", ROOT / "workflow/presets/study.yaml"]


def test_replica_train_config_equals_its_model_and_only_the_seed_differs(tiny_config):
    """nhcsr-seed2: the same train_config.json and model config as nhcsr, training seed + 2."""
    from fesr.model_names import training_seed

    config = copy.deepcopy(tiny_config)
    config["seed"] = 5
    assert train_plan.train_config("nhcsr-seed2", config) == train_plan.train_config(
        "nhcsr", config
    )
    base, replica = (resolve_model_config(n, config) for n in ("nhcsr", "nhcsr-seed2"))
    assert replica.pop("name") == "nhcsr-seed2" and base.pop("name") == "nhcsr"
    assert replica == base
    assert (training_seed("nhcsr", 5), training_seed("nhcsr-seed2", 5)) == (5, 7)


@pytest.fixture(scope="module")
def seeded_data(tmp_path_factory):
    """Synthetic train/val splits whose files say they were made with seed 0."""
    data = write_dataset(tmp_path_factory.mktemp("data"), train=4, val=2, scales=(1, 2, 4))
    for path in data.rglob("*.nc"):
        with netCDF4.Dataset(path, "a") as ds:
            ds.setncattr("seed", 0)
    return data


@pytest.fixture()
def config(tiny_config):
    cfg = copy.deepcopy(tiny_config)
    cfg["seed"] = 0
    cfg["training"].update(
        iterations=2, lr_milestones=[1], val_every=1, checkpoint_every=2, val_samples=2
    )
    return cfg


def test_replica_is_accepted_on_the_config_seeds_data(config, seeded_data, tmp_path):
    """The datasets keep the config seed: a replica's inputs check passes, a changed seed fails."""
    check_train_inputs("liif-seed1", config, seeded_data, tmp_path / "liif-seed1", "cpu")
    with pytest.raises(UsageError, match="seed"):
        check_train_inputs("liif", {**config, "seed": 1}, seeded_data, tmp_path / "liif", "cpu")


def test_replica_trains_as_its_model_with_the_seed_plus_k(config, seeded_data, tmp_path):
    """liif-seed1 at seed 0 == liif at seed 1 (bitwise on CPU), != liif at seed 0."""
    torch.set_num_threads(1)

    def run(name, seed, out):
        cfg = {**config, "seed": seed}
        path = train(name, cfg, seeded_data, tmp_path / out, device="cpu", progress=False)
        return load_checkpoint(path)

    replica, shifted, base = run("liif-seed1", 0, "r"), run("liif", 1, "s"), run("liif", 0, "b")
    assert replica["seed"] == shifted["seed"] == 1 and base["seed"] == 0
    sd = replica["state_dict"]
    assert all(torch.equal(sd[k], shifted["state_dict"][k]) for k in sd)
    assert not all(torch.equal(sd[k], base["state_dict"][k]) for k in sd)


def dry_run(config_files, *targets) -> tuple[Counter, str]:
    """Jobs per rule of a real ``snakemake -n`` in an empty directory, and its output."""
    with tempfile.TemporaryDirectory() as work:
        cmd = [str(SNAKEMAKE), "-n", *targets, "-s", str(ROOT / "Snakefile"), "-d", work]
        cmd += ["--cores", "2", "--configfile", str(ROOT / "config.yaml"), *map(str, config_files)]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    stats = out.split("Job stats:")[1].split("\n\n")[0]
    jobs = Counter({m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)})
    del jobs["total"]
    return jobs, out


def planned_models(out: str, rule: str) -> set[str]:
    """The ``model`` wildcard of every planned job of ``rule``."""
    blocks = out.split("rule ")[1:]
    return {
        m[1]
        for b in blocks
        if b.startswith(f"{rule}:")
        for m in re.finditer(r"wildcards: model=([\w-]+)", b)
    }


def test_study_plans_three_seeds_of_nhcsr_liif_lit_and_their_physics_variants():
    config = load_config(STUDY_LAYERS[0], load_yaml(STUDY_LAYERS[1]))
    seeded = ("nhcsr", "liif", "lit", "nhcsr-energy", "nhcsr-hom", "liif-energy", "liif-hom")
    assert {m: 3 for m in seeded} == config["report"]["table1_seeds"]
    replicas = {f"{m}-seed{k}" for m in seeded for k in (1, 2)}
    assert replicas <= set(train_plan.model_names(config))
    jobs, out = dry_run(STUDY_LAYERS)
    trained = planned_models(out, "train")
    assert trained == set(train_plan.model_names(config)) and replicas <= trained
    assert not any("seed" in m for m in trained - replicas)  # 1 seed for every other method
    predicted = planned_models(out, "predict")
    assert replicas <= predicted
    # every replica on every evaluation split and scale, as its method
    for m in replicas:
        for sp in plan.eval_splits(config):
            for s in plan.eval_scales(config):
                assert f"{plan.metric_part(m, sp, s)}" in out
    assert jobs["table1"] == jobs["table_cost"] == 1
    table_cost = out.split("rule table_cost:")[1].split("\n\n")[0]
    assert plan.metric_part("nhcsr-seed2", "test_random", 64) in table_cost
    # the study's data: >= 200 training maps, >= 20 random and all 13 deterministic test maps
    splits = config["splits"]
    assert splits["train"]["samples"] >= 200 and splits["test_random"]["samples"] >= 20
    assert splits["test_deterministic"]["maps"] == "all"


def test_table1_alone_plans_only_what_table1_needs(tiny_config, tmp_path):
    """Table I's models (with replicas) on every split and scale and the FE baselines with the
    fields other solvers compute (LOD, early-stopped CG, corrected SR): no ablation model, no
    figure, no other table."""
    seeds = tmp_path / "seeds.yaml"
    seeds.write_text("report: {table1_seeds: {nhcsr: 2}}\n")
    tiny = ROOT / "workflow/presets/tiny.yaml"
    jobs, out = dry_run([tiny, seeds], "table1")
    config = load_config("tiny", {"report": {"table1_seeds": {"nhcsr": 2}}})
    models = plan.table1_models(config)
    methods = plan.table1_methods(config)
    assert models == [r for m in methods for r in ([m, "nhcsr-seed1"] if m == "nhcsr" else [m])]
    assert planned_models(out, "train") == set(models)
    assert planned_models(out, "predict") == set(models)
    splits = plan.eval_splits(config)
    assert jobs["predict"] == len(models) * len(splits)
    assert jobs["table1"] == 1
    allowed = {"table1", "train", "model_config", "predict", "evaluated_scale"}
    allowed |= {"fe_baselines_part"} | {r for r in jobs if r.startswith("data_")}
    allowed |= {"lod_predict", "fe_partial", "sr_correct"}
    assert set(jobs) <= allowed, f"table1 planned {set(jobs) - allowed}"
    assert jobs["fe_baselines_part"] == len(plan.baseline_parts(config))
