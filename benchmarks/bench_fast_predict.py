"""predict() time per HR node of several methods, side by side in one run, with ratios to LIIF.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_fast_predict.py --preset quick \\
        --alpha 16 64 --methods liif nhcsr lit clit linf lte metasr
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_fast_predict.py --preset paper \\
        --alpha 16 --repeats 1            # config.yaml's sizes
    # this tree against another checkout (e.g. a git worktree of an older commit):
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_fast_predict.py --base /tmp/base

Per tree and scale one subprocess (that tree's ``src`` first on the path) builds every method
at the preset's sizes (``paper``: config.yaml alone) with seeded random weights and inputs
(speed does not depend on the values), one thread (``--threads``). After a warm-up predict of
each, the repeats are interleaved (method by method, round after round), so a change in the
machine's load falls on all of them alike; the best of ``--repeats`` is kept. Times are the
thread's CPU seconds (robust on a shared machine; wall seconds are printed too), split into
``encode`` (once per field) and the query part (``predict`` given the encoded state), per HR
node. Prints one Markdown table per scale: per-node encode, query and total, and total and
query over LIIF's.
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

preset, alpha, threads, repeats, chunk = sys.argv[1:6]
methods = sys.argv[6:]
alpha, repeats, chunk = float(alpha), int(repeats), int(chunk)
torch.set_num_threads(int(threads))
config = load_config(None if preset == "paper" else preset)
n, E = config["lr_n"], config["physics"]["E"]
m = hr_size(n, alpha)
nodes = (m + 1) ** 2
models, inputs, best = {}, {}, {}
for method in methods:
    torch.manual_seed(0)
    model = build_model(method, config).eval()
    models[method] = model
    inputs[method] = {"lr": torch.rand(1, 1, n + 1, n + 1),
                      "image": torch.rand(1, 2 if model.uses_coefficient else 1, E, E)}
    model.predict(inputs[method], 2, chunk=chunk)  # warm-up
    best[method] = {}


def clock():
    return time.thread_time(), time.perf_counter()


with torch.inference_mode():
    for _ in range(repeats):
        for method, model in models.items():
            c0, w0 = clock()
            state = model.encode(inputs[method])
            c1, w1 = clock()
            model.predict(inputs[method], alpha, chunk=chunk, state=state)
            c2, w2 = clock()
            times = {"encode": c1 - c0, "query": c2 - c1, "wall": w2 - w0}
            for key, value in times.items():
                best[method][key] = min(best[method].get(key, float("inf")), value)
print(json.dumps({"m": m, "nodes": nodes, "best": best}))
"""


def run(tree: Path, methods: list[str], alpha: float, args) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree / "src"), OMP_NUM_THREADS=str(args.threads))
    cmd = [sys.executable, "-c", _CHILD, args.preset, str(alpha), str(args.threads)]
    cmd += [str(args.repeats), str(args.chunk), *methods]
    res = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        tail = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "failed"
        raise SystemExit(f"{tree}: {tail}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def table(result: dict, label: str) -> list[str]:
    nodes, best = result["nodes"], result["best"]
    us = {k: {t: v * 1e6 / nodes for t, v in b.items()} for k, b in best.items()}
    ref = us.get("liif")
    lines = [
        f"{label}: m = {result['m']}, {nodes} nodes",
        "",
        "| method | encode us/node | query us/node | total us/node | total / LIIF "
        "| query / LIIF | wall total us/node |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, t in us.items():
        total = t["encode"] + t["query"]
        if ref:
            r_total = f"{total / (ref['encode'] + ref['query']):.2f}"
            r_query = f"{t['query'] / ref['query']:.2f}"
        else:
            r_total = r_query = "-"
        lines.append(
            f"| {method} | {t['encode']:.3f} | {t['query']:.3f} | {total:.3f} | {r_total} "
            f"| {r_query} | {t['wall']:.3f} |"
        )
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", type=Path, help="another checkout to time the same way; optional")
    ap.add_argument(
        "--methods", nargs="+", default=["liif", "nhcsr", "lit", "clit", "linf", "lte", "metasr"]
    )
    ap.add_argument("--preset", default="quick", help="a preset name, or paper (config.yaml)")
    ap.add_argument("--alpha", type=float, nargs="+", default=[16.0, 64.0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=65536)
    args = ap.parse_args(argv)
    print(
        f"preset {args.preset}, {args.threads} thread(s), chunk {args.chunk}, best of "
        f"{args.repeats}, thread CPU time (wall: the whole encode + predict)"
    )
    for alpha in args.alpha:
        trees = [("this tree", ROOT)] + ([("base", args.base)] if args.base else [])
        for name, tree in trees:
            print()
            print("\n".join(table(run(tree, args.methods, alpha, args), f"{alpha:g}x, {name}")))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
