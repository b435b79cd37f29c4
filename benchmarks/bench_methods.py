"""Per-method training throughput and predict() time / peak memory at every scale.

    .venv/bin/python benchmarks/bench_methods.py --preset quick --alphas 2 4 8 16 32 64
    .venv/bin/python benchmarks/bench_methods.py --methods nhcsr --paper-train-iters 3

Each (method, alpha) predict runs in a fresh subprocess, so 'peak MB' is the growth of the
process's peak resident memory during predict() (VmHWM after - VmRSS before), which includes
PyTorch's CPU allocations that tracemalloc cannot see. Inputs are random fields of the real shapes:
speed and memory do not depend on the values. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def _status_mb(field: str) -> float:
    """A memory field of /proc/self/status in MB. VmHWM (the peak) starts afresh in each
    process image, unlike ru_maxrss, which Linux carries across fork and exec."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _inputs(config, model, batch):
    import torch

    n, E = config["lr_n"], config["physics"]["E"]
    return {
        "lr": torch.rand(batch, 1, n + 1, n + 1),
        "image": torch.rand(batch, 2 if model.uses_coefficient else 1, E, E),
    }


def measure_predict(preset: str, method: str, alpha: float, chunk: int) -> dict:
    import torch

    from fesr.config import load_config
    from fesr.models.registry import build_model

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    config = load_config(preset)
    model = build_model(method, config).eval()
    inputs = _inputs(config, model, 1)
    model.predict(inputs, 2, chunk=chunk)  # warm-up (allocator, lazy init)
    before = _status_mb("VmRSS")
    t0 = time.perf_counter()
    out = model.predict(inputs, alpha, chunk=chunk)
    seconds = time.perf_counter() - t0
    peak = _status_mb("VmHWM")
    return {"seconds": seconds, "peak_mb": max(0.0, peak - before), "shape": list(out.shape)}


def measure_training(preset: str, method: str, iters: int, batch: int, q: int) -> float:
    """Samples per second of training_loss + backward + Adam step at the preset's sizes."""
    import torch

    from fesr.config import load_config
    from fesr.models.registry import build_model

    config = load_config(preset)
    model = build_model(method, config).train()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return float("nan")
    opt = torch.optim.Adam(params, lr=1e-4)
    n = config["lr_n"]
    scale = 4
    inputs = _inputs(config, model, batch)
    coords = torch.rand(batch, q, 2) * 2 - 1
    batch_d = dict(
        inputs,
        coords=coords,
        cell=torch.full_like(coords, 2 / (n * scale)),
        target=torch.rand(batch, q, 1),
        scale=float(scale),
    )
    if getattr(model, "needs_full_field", False):
        m = n * scale
        batch_d["hr"] = torch.rand(batch, 1, m + 1, m + 1)
    times = []
    for step in range(iters + 1):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss, _ = model.training_loss(batch_d, step=step)
        loss.backward()
        opt.step()
        if step:  # the first step pays one-off costs
            times.append(time.perf_counter() - t0)
    return batch / (sum(times) / len(times))


def main() -> None:
    from fesr.models.registry import METHODS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--methods", nargs="*", default=list(METHODS))
    ap.add_argument("--alphas", nargs="*", type=float, default=[2, 4, 8, 16, 32, 64])
    ap.add_argument("--chunk", type=int, default=65536)
    ap.add_argument("--train-iters", type=int, default=5)
    ap.add_argument(
        "--paper-train-iters",
        type=int,
        default=0,
        help="also time this many training steps at config.yaml (paper) sizes",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:  # one predict measurement in a fresh process
        method, alpha = args.child.split(":")
        print(json.dumps(measure_predict(args.preset, method, float(alpha), args.chunk)))
        return

    from fesr.config import load_config

    cfg = load_config(args.preset)["training"]
    print(
        f"| method | train samples/s ({args.preset}) |"
        + ("" if not args.paper_train_iters else " train samples/s (paper) |")
        + "".join(f" predict {a:g}x s / peak MB |" for a in args.alphas)
    )
    print("|---" * (2 + bool(args.paper_train_iters) + len(args.alphas)) + "|")
    for method in args.methods:
        rate = measure_training(
            args.preset, method, args.train_iters, cfg["batch_size"], cfg["sample_q"]
        )
        row = [method, f"{rate:.1f}"]
        if args.paper_train_iters:
            row.append(f"{measure_training(None, method, args.paper_train_iters, 4, 2304):.2f}")
        for a in args.alphas:
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--preset",
                    args.preset,
                    "--chunk",
                    str(args.chunk),
                    "--child",
                    f"{method}:{a}",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode:
                row.append("failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:60])
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            row.append(f"{r['seconds']:.2f} / {r['peak_mb']:.0f}")
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
