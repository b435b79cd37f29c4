"""Training and inference jobs ask Snakemake for a GPU only where they will use one, so a
CPU-only machine runs them side by side (one core each) instead of one at a time behind a
``gpu=1`` queue. Real ``snakemake -n`` runs of the tiny preset with the device forced each way."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from test_seed_replicas import ROOT, dry_run

from fesr.train_plan import gpu_request

TINY = ROOT / "workflow/presets/tiny.yaml"
GPU_RULES = ("train", "predict", "complexity_part", "fig8")


def planned_gpu(out: str) -> dict[str, set[int]]:
    """The ``gpu`` resource of every planned job, per rule."""
    found: dict[str, set[int]] = {}
    for block in out.split("rule ")[1:]:
        rule = block.split(":", 1)[0]
        hit = re.search(r"resources: [^\n]*\bgpu=(\d+)", block.split("\n\n")[0])
        if hit:
            found.setdefault(rule, set()).add(int(hit[1]))
    return found


@pytest.mark.parametrize("device, gpus", [("cpu", 0), ("cuda", 1)])
def test_jobs_request_a_gpu_only_when_they_run_on_one(device, gpus, tmp_path):
    override = tmp_path / "device.yaml"
    override.write_text(
        yaml.safe_dump({"training": {"device": device}, "evaluation": {"device": device}})
    )
    _, out = dry_run([TINY, override], "-p")
    found = planned_gpu(out)
    assert set(GPU_RULES) <= set(found), sorted(found)
    assert all(found[rule] == {gpus} for rule in GPU_RULES), found
    # the data and report rules never hold a GPU
    assert set(found) == set(GPU_RULES), sorted(found)


def test_auto_follows_the_machine():
    assert gpu_request("cpu") == 0 and gpu_request("cuda") == 1
    has_device = any(p.name[len("nvidia") :].isdigit() for p in Path("/dev").glob("nvidia*"))
    assert gpu_request("auto") == int(has_device)
