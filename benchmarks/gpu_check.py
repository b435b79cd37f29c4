"""A short, prepared check of the training and prediction path on one GPU (``gpu_check.sh``).

    .venv/bin/python benchmarks/gpu_check.py --device cuda          # config.yaml's sizes
    .venv/bin/python benchmarks/gpu_check.py --device cpu --tiny    # the test suite's run

For NH-CSR and LIIF at config.yaml's sizes (``--tiny``: the tiny preset's):

1. Training: ``fesr.train.train`` (the project's own loop, optimiser, schedule and, with
   ``training.amp``, bfloat16 autocast on the GPU) for ``--iterations`` iterations, once with
   ``amp: false`` and once with ``amp: true``, on a synthetic dataset in the SPEC 1 layout
   (``tests/synthetic_data.py``: analytic fields, no FE solves, so no DOLFINx is needed; speed
   does not depend on the values). Iterations per second from the run's history, the first
   ``WARMUP`` steps and the last one (which includes the validation) left out; peak memory
   (the GPU's allocator peak; on the CPU the process's peak resident set, which only grows).
2. Prediction: the checkpoint of the amp-off run (``fesr.checkpoint.load_model``) predicts one
   ``--scale`` field (64x) on the device, timed, and again on the CPU; their agreement is
   max |device - cpu| / max |cpu|.
3. The GPU-hours config.yaml's training would take: every learned model of its report lists
   (``fesr.train_plan.learned_models``) times ``training.iterations``, at the measured rate of
   its method (amp as config.yaml sets it); methods not measured here are counted at LIIF's
   rate and marked as a guess.

Prints a Markdown table; ``--json`` also writes the numbers. Budget: about 8 minutes on one GPU at
the default sizes (the CPU reference prediction at 64x is the slowest part on a small host).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the synthetic dataset writer (no DOLFINx)

METHODS = ("nhcsr", "liif")
WARMUP = 5  # training steps left out of the rate (allocator and autotuning warm-up)
TRAIN_SAMPLES = 8  # synthetic training samples per scale (batches draw from them)


def check_config(tiny: bool, iterations: int) -> dict:
    """config.yaml (or the tiny preset) with a short run: ``iterations`` steps, one validation
    and no intermediate checkpoint; everything that sets the cost of a step as configured."""
    from fesr.config import load_config

    over = {
        "training": {
            "iterations": iterations,
            "lr_milestones": [],
            "val_every": iterations,
            "checkpoint_every": iterations,
            "val_samples": 2,
        },
        "splits": {"val": {"samples": 2}},
    }
    return load_config("tiny" if tiny else None, over)


def write_data(config: dict, data_dir: Path) -> Path:
    from synthetic_data import write_dataset

    scales = sorted({1, *(int(a) for a in config["training"]["train_scales"])})
    return write_dataset(
        data_dir,
        train=TRAIN_SAMPLES,
        val=2,
        scales=scales,
        n=int(config["lr_n"]),
        E=int(config["physics"]["E"]),
    )


def peak_reset(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)


def peak_mb(dev: torch.device) -> float:
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def rate_from_history(path: Path) -> float:
    """Training iterations per second from history.csv's cumulative seconds."""
    import pandas as pd

    h = pd.read_csv(path)
    steps = h[h["iteration"] > 0].reset_index(drop=True)
    if len(steps) < 3:
        raise ValueError(f"{path}: {len(steps)} training steps; need at least 3 for a rate")
    first = min(WARMUP, len(steps) - 3)
    last = len(steps) - 2  # the last step also ran the validation
    its = steps["iteration"][last] - steps["iteration"][first]
    return float(its / (steps["seconds"][last] - steps["seconds"][first]))


def train_once(method: str, config: dict, data: Path, out: Path, dev: torch.device, amp: bool):
    from fesr.train import train

    cfg = dict(config, training=dict(config["training"], amp=amp))
    peak_reset(dev)
    t0 = time.perf_counter()
    checkpoint = train(method, cfg, data, out, device=str(dev), progress=False)
    wall = time.perf_counter() - t0
    return {
        "method": method,
        "amp": amp,
        "amp_active": amp and dev.type == "cuda",
        "it_per_s": rate_from_history(out / "history.csv"),
        "peak_mb": peak_mb(dev),
        "wall_s": wall,
        "checkpoint": str(checkpoint),
    }


def synced(dev: torch.device):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return time.perf_counter()


def predict_check(checkpoint: str, config: dict, dev: torch.device, scale: float) -> dict:
    """One field at ``scale`` on the device and on the CPU from the same checkpoint."""
    from fesr.checkpoint import load_model

    n, E = int(config["lr_n"]), int(config["physics"]["E"])
    chunk = int(config["evaluation"]["chunk"])
    model, _ = load_model(checkpoint, device=str(dev))
    g = torch.Generator().manual_seed(0)
    inputs = {
        "lr": torch.rand(1, 1, n + 1, n + 1, generator=g),
        "image": torch.rand(1, 2 if model.uses_coefficient else 1, E, E, generator=g),
    }
    on_dev = {k: v.to(dev) for k, v in inputs.items()}
    model.predict(on_dev, 2, chunk=chunk)  # warm-up
    peak_reset(dev)
    t0 = synced(dev)
    field = model.predict(on_dev, scale, chunk=chunk)
    seconds = synced(dev) - t0
    device_peak = peak_mb(dev)
    cpu_model, _ = load_model(checkpoint, device="cpu")
    t0 = time.perf_counter()
    reference = cpu_model.predict(inputs, scale, chunk=chunk)
    cpu_seconds = time.perf_counter() - t0
    diff = float((field.cpu() - reference).abs().max() / reference.abs().max().clamp_min(1e-30))
    return {
        "predict_s": seconds,
        "predict_peak_mb": device_peak,
        "cpu_predict_s": cpu_seconds,
        "rel_max_diff": diff,
        "nodes": int(reference.numel()),
    }


def gpu_hours(config: dict, rates: dict) -> list[tuple[str, int, float, bool]]:
    """(method, models, hours, guessed) for config.yaml's learned models at the given rates."""
    from fesr.model_names import method_of
    from fesr.train_plan import learned_models

    iterations = int(config["training"]["iterations"])
    counts: dict[str, int] = {}
    for name in learned_models(config):
        counts[method_of(name)] = counts.get(method_of(name), 0) + 1
    rows = []
    for method, count in counts.items():
        rate = rates.get(method, rates["liif"])
        rows.append((method, count, count * iterations / rate / 3600.0, method not in rates))
    return rows


def report(runs: list[dict], preds: dict, hours: list, dev: torch.device, amp_config: bool):
    lines = [
        f"device: {device_name(dev)}; torch {torch.__version__}",
        "",
        "| method | amp | it/s | peak MB | run wall s |",
        "|---|---|---|---|---|",
    ]
    for r in runs:
        amp = "on" if r["amp_active"] else ("off" if not r["amp"] else "on (inactive: CPU)")
        lines.append(
            f"| {r['method']} | {amp} | {r['it_per_s']:.2f} | {r['peak_mb']:.0f} "
            f"| {r['wall_s']:.1f} |"
        )
    lines += [
        "",
        "| method | nodes | predict s (device) | peak MB | predict s (CPU) | max rel. diff |",
        "|---|---|---|---|---|---|",
    ]
    for method, p in preds.items():
        lines.append(
            f"| {method} | {p['nodes']} | {p['predict_s']:.2f} | {p['predict_peak_mb']:.0f} "
            f"| {p['cpu_predict_s']:.2f} | {p['rel_max_diff']:.2e} |"
        )
    total = sum(h for _, _, h, _ in hours)
    unit = "GPU-hours" if dev.type == "cuda" else "hours on this CPU"
    lines += [
        "",
        f"config.yaml training at the measured rates (amp {'on' if amp_config else 'off'}, "
        f"as config.yaml sets it): {total:.1f} {unit}",
        "",
        f"| method | models | {unit} | rate |",
        "|---|---|---|---|",
    ]
    for method, count, h, guessed in hours:
        src = "LIIF's (not measured: a guess)" if guessed else "measured"
        lines.append(f"| {method} | {count} | {h:.1f} | {src} |")
    return "\n".join(lines)


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"{torch.cuda.get_device_name(dev)} (cuda:{dev.index or 0})"
    return f"CPU, {torch.get_num_threads()} thread(s)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    ap.add_argument("--tiny", action="store_true", help="the tiny preset's sizes (tests)")
    ap.add_argument("--iterations", type=int, default=None, help="per run (default 40; tiny 4)")
    ap.add_argument("--scale", type=float, default=64.0, help="the predicted field's scale")
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    ap.add_argument("--keep", type=Path, help="work here (data, checkpoints) and keep it")
    args = ap.parse_args(argv)
    from fesr.checkpoint import resolve_device

    dev = resolve_device(args.device)
    iterations = args.iterations or (4 if args.tiny else 40)
    if iterations < 4:
        raise SystemExit(f"--iterations {iterations}; expected at least 4 (a rate needs 3 steps)")
    config = check_config(args.tiny, iterations)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = args.keep or Path(tmp)
        t0 = time.perf_counter()
        data = write_data(config, work / "data")
        print(f"synthetic data: {time.perf_counter() - t0:.1f} s", flush=True)
        runs, preds = [], {}
        for method in args.methods:
            for amp in (False, True):
                out = work / f"{method}-amp{int(amp)}"
                runs.append(train_once(method, config, data, out, dev, amp))
                print(json.dumps(runs[-1]), flush=True)
            checkpoint = next(r for r in runs if r["method"] == method and not r["amp"])
            preds[method] = predict_check(checkpoint["checkpoint"], config, dev, args.scale)
            print(json.dumps({method: preds[method]}), flush=True)
    from fesr.config import load_config

    paper = load_config(None)
    amp_config = bool(paper["training"]["amp"])
    rates = {r["method"]: r["it_per_s"] for r in runs if r["amp"] == amp_config}
    hours = gpu_hours(paper, rates)
    print(report(runs, preds, hours, dev, amp_config))
    if args.json:
        args.json.write_text(
            json.dumps({"runs": runs, "predict": preds, "gpu_hours": hours}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
