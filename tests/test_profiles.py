"""The execution profiles parse, name only rules that exist, and say what the issue asks:
local runs cap a `gpu` resource; on SLURM, training asks for a GPU and MPI rules use srun."""

from pathlib import Path

import pytest
import yaml
from workflow_rules import load_rules

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "profiles"


def profile(name: str) -> dict:
    return yaml.safe_load((PROFILES / name / "config.yaml").read_text())


def _kv(entries) -> dict:
    """`resources:` as a list of "name=value" strings or as a mapping."""
    if isinstance(entries, dict):
        return entries
    return dict(e.split("=", 1) for e in entries or [])


@pytest.fixture(scope="module")
def rules():
    # the rules of a machine whose training and inference jobs run on a GPU: those declare gpu=1
    # (on a CPU-only machine they declare none; tests/test_gpu_resource.py)
    return load_rules("cuda")


@pytest.mark.parametrize("name", ["default", "slurm"])
def test_profile_rules_exist(name, rules):
    prof = profile(name)
    for key in ("set-resources", "set-threads"):
        unknown = sorted(set(prof.get(key) or {}) - set(rules))
        assert not unknown, f"profiles/{name} {key} names rules that do not exist: {unknown}"


def test_default_profile_caps_gpu_jobs(rules):
    prof = profile("default")
    assert "executor" not in prof, "the default (workflow) profile must stay local"
    assert int(_kv(prof["resources"])["gpu"]) >= 1
    gpu_rules = [n for n, r in rules.items() if r["resources"].get("gpu")]
    assert "train" in gpu_rules, f"rule train does not declare resources gpu=1: {gpu_rules}"


def test_slurm_profile(rules):
    prof = profile("slurm")
    assert prof["executor"] == "slurm"
    assert prof["default-resources"]["slurm_partition"]
    per_rule = prof["set-resources"]
    assert per_rule["train"]["gpu"] == 1
    mpi_rules = [n for n, r in rules.items() if "mpi" in r["resources"]]
    assert mpi_rules, "no rule declares an `mpi` resource"
    for name in mpi_rules:
        assert str(per_rule.get(name, {}).get("mpi", "")).startswith("srun"), (
            f"MPI rule {name} does not get `mpi: srun` in profiles/slurm"
        )
        assert isinstance(rules[name]["resources"].get("tasks"), int), name
    # Every rule that declares a GPU is sent to the GPU partition with one GPU.
    gpu_partition = per_rule["train"]["slurm_partition"]
    for name, rule in rules.items():
        if rule["resources"].get("gpu"):
            got = per_rule.get(name, {})
            assert got.get("slurm_partition") == gpu_partition and got.get("gpu") == 1, (
                f"rule {name} declares gpu=1 but profiles/slurm does not send it to the "
                f"{gpu_partition!r} partition with gpu: 1"
            )
    # A runtime for every rule that is submitted (local rules run on the login node).
    for name, res in per_rule.items():
        assert "runtime" in res or "runtime" in prof["default-resources"], name
