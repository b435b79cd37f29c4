"""benchmarks/gpu_check.py: its CPU mode runs end to end, and its arithmetic is right.

The GPU run itself (``benchmarks/gpu_check.sh``) needs a GPU; its CPU mode (``--device cpu
--tiny``) is the same code on the tiny preset's sizes: the project's training loop with amp off
and on (inactive on the CPU), the 64x prediction on the device and on the CPU (here the same
device, so they agree exactly), and the GPU-hours estimate.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_cpu_mode_runs_end_to_end(tmp_path):
    out = tmp_path / "check.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    runs = {(r["method"], r["amp"]): r for r in result["runs"]}
    assert set(runs) == {(m, a) for m in ("nhcsr", "liif") for a in (False, True)}
    for r in runs.values():
        assert r["it_per_s"] > 0 and r["peak_mb"] > 0 and not r["amp_active"]
    for method in ("nhcsr", "liif"):
        p = result["predict"][method]
        assert p["nodes"] == (32 * 64 + 1) ** 2  # one 64x field of the tiny preset's LR mesh
        assert p["rel_max_diff"] == 0.0  # device and reference are both the CPU here
    assert "| nhcsr | off |" in proc.stdout and "hours on this CPU" in proc.stdout


def test_rate_leaves_out_the_warm_up_and_the_validating_last_step(tmp_path):
    gpu_check = _module()
    # 12 steps: the first WARMUP slow, the last one with a validation, 0.5 s per step between
    seconds = [0.0]
    for it in range(1, 13):
        step = 3.0 if it <= gpu_check.WARMUP else 0.5
        seconds.append(seconds[-1] + step + (10.0 if it == 12 else 0.0))
    rows = ["iteration,loss,val_loss,lr,seconds"]
    rows += [f"{it},0.1,,0.001,{s}" for it, s in enumerate(seconds)]
    (tmp_path / "history.csv").write_text("\n".join(rows) + "\n")
    assert gpu_check.rate_from_history(tmp_path / "history.csv") == pytest.approx(2.0)


def test_gpu_hours_count_every_learned_model_at_its_methods_rate(tiny_config):
    from fesr.model_names import method_of
    from fesr.train_plan import learned_models

    gpu_check = _module()
    rates = {"liif": 2.0, "nhcsr": 0.5}
    rows = gpu_check.gpu_hours(tiny_config, rates)
    iterations = tiny_config["training"]["iterations"]
    models = learned_models(tiny_config)
    assert sum(count for _, count, _, _ in rows) == len(models)
    for method, count, hours, guessed in rows:
        assert count == sum(method_of(m) == method for m in models)
        rate = rates.get(method, rates["liif"])
        assert hours == pytest.approx(count * iterations / rate / 3600)
        assert guessed == (method not in rates)
