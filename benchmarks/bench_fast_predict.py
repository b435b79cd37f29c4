"""predict() time per HR node, this tree against another checkout, side by side in one run.

    git worktree add /tmp/base_fast 237b859   # the code before the fast paths (once)
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_fast_predict.py --base /tmp/base_fast \\
        --methods liif lte metasr srno linf bicubic --alpha 16

Each (tree, method) runs in its own subprocess with that tree's ``src`` first on the path, one
thread (``--threads``), the quick preset's model sizes, seeded random weights and inputs (speed
does not depend on the values). A warm-up predict at 2x precedes the timing; the best of
``--repeats`` runs is reported, as process CPU time (robust on a shared machine) and wall time,
per HR node, the encoder included. Prints a Markdown table: before, after, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, sys, time
import torch
from fesr.config import load_config
from fesr.models.base import hr_size
from fesr.models.registry import build_model

method, preset, alpha, threads, repeats, chunk = sys.argv[1:7]
alpha, repeats, chunk = float(alpha), int(repeats), int(chunk)
torch.set_num_threads(int(threads))
torch.manual_seed(0)
config = load_config(preset)
model = build_model(method, config).eval()
n, E = config["lr_n"], config["physics"]["E"]
inputs = {"lr": torch.rand(1, 1, n + 1, n + 1),
          "image": torch.rand(1, 2 if model.uses_coefficient else 1, E, E)}
model.predict(inputs, 2, chunk=chunk)
best, best_cpu = float("inf"), float("inf")
for _ in range(repeats):
    t0, c0 = time.perf_counter(), time.process_time()
    model.predict(inputs, alpha, chunk=chunk)
    best = min(best, time.perf_counter() - t0)
    best_cpu = min(best_cpu, time.process_time() - c0)
m = hr_size(n, alpha)
nodes = (m + 1) ** 2
print(json.dumps({"seconds": best, "us_per_node": best / nodes * 1e6,
                  "cpu_us_per_node": best_cpu / nodes * 1e6, "m": m}))
"""


def run(tree: Path, method: str, args) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree / "src"), OMP_NUM_THREADS=str(args.threads))
    cmd = [
        sys.executable,
        "-c",
        _CHILD,
        method,
        args.preset,
        str(args.alpha),
        str(args.threads),
        str(args.repeats),
        str(args.chunk),
    ]
    res = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        return {"error": res.stderr.strip().splitlines()[-1] if res.stderr else "failed"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", type=Path, help="another checkout (the code before); optional")
    ap.add_argument("--methods", nargs="+", default=["liif", "lte", "metasr", "srno", "linf"])
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=65536)
    args = ap.parse_args(argv)

    print(
        f"preset {args.preset}, alpha {args.alpha:g}, {args.threads} thread(s), "
        f"chunk {args.chunk}, best of {args.repeats}"
    )
    # CPU time of the (single-threaded) process is the primary number: on a shared machine the
    # wall time also counts the time other processes hold the core.
    print(
        "| method | before CPU us/node | after CPU us/node | after / before "
        "| before wall | after wall |"
    )
    print("|---|---|---|---|---|---|")
    for method in args.methods:
        before = run(args.base, method, args) if args.base else {}
        after = run(ROOT, method, args)
        b, a = before.get("cpu_us_per_node"), after.get("cpu_us_per_node")
        ratio = f"{a / b:.2f}" if a and b else "-"
        fb = f"{b:.3f}" if b else before.get("error", "-")
        fa = f"{a:.3f}" if a else after.get("error", "-")
        wb, wa = before.get("us_per_node"), after.get("us_per_node")
        wb = f"{wb:.3f}" if wb else "-"
        wa = f"{wa:.3f}" if wa else "-"
        print(f"| {method} | {fb} | {fa} | {ratio} | {wb} | {wa} |", flush=True)


if __name__ == "__main__":
    main()
