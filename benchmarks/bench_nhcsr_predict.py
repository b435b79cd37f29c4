"""NH-CSR's grid ``predict`` against its general path, side by side in one run.

The general path is chunked ``query_encoded`` on every node, each (query, neighbour) pair
encoding its own offset. The grid path (``NHCSR.query_grid``, which ``predict`` uses) is, at
integer scales, the cell path (``NHCSR._cell_grid``: per tile cell one gather of its union of
windows, per-kind offset terms, the attention as matrix products) and otherwise the gather path
(``NHCSR._gather_grid``: per-axis windows, per-offset-class terms). Same model, same random
input, one thread; times are thread CPU seconds (the machine is shared; wall seconds are printed
too) and include ``encode``. ``--preset paper``: config.yaml's sizes.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_nhcsr_predict.py --scale 16
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_nhcsr_predict.py --scale 64 --fast-only
    # where the grid path's time goes: torch.profiler's operators, by self CPU time
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_nhcsr_predict.py --scale 16 --profile
"""

from __future__ import annotations

import argparse
import time

import torch

from fesr.config import load_config
from fesr.coords import hr_cell, node_coords
from fesr.models.base import hr_size
from fesr.models.registry import build_model

FIELD_64X = 2049**2  # nodes of the 64x field (n = 2048)


def timed(fn) -> tuple[float, float]:
    cpu, wall = time.thread_time(), time.perf_counter()
    fn()
    return time.thread_time() - cpu, time.perf_counter() - wall


@torch.inference_mode()
def general_predict(model, inputs: dict, alpha: float, chunk: int = 65536) -> torch.Tensor:
    """The general path: chunked ``query_encoded`` on ``node_coords(m)`` (the reference)."""
    lr = inputs["lr"]
    m = hr_size(lr.shape[-1] - 1, alpha)
    state = model.encode(inputs)
    coords = node_coords(m).unsqueeze(0)
    out = [
        model.query_encoded(state, c, torch.full_like(c, hr_cell(m)))[..., 0]
        for c in coords.split(chunk, dim=1)
    ]
    return torch.cat(out, dim=1).view(1, m + 1, m + 1)


def profile(model, inputs: dict, alpha: float, nodes: int, rows: int = 20) -> None:
    """torch.profiler over one grid predict (encode included), operators by self CPU time; the
    profiler's times are wall times per operator (inflated on a loaded machine, and by the
    profiler itself), so their shares are what to read."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    model.predict(inputs, alpha)  # warm-up: the per-scale tables
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        model.predict(inputs, alpha)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    print(f"profile of one {alpha:g}x grid predict ({nodes} nodes): {total / 1e6:.3f} s in all")
    print("| operator | calls | self s | share | ns/node |")
    print("|---|---|---|---|---|")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:rows]:
        us = e.self_cpu_time_total
        print(
            f"| {e.key} | {e.count} | {us / 1e6:.3f} | {us / total:.0%} | {us * 1e3 / nodes:.1f} |"
        )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--model", default="nhcsr")
    ap.add_argument("--scale", type=float, default=16.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--fast-only", action="store_true", help="skip the (slow) general path")
    ap.add_argument("--profile", action="store_true", help="profile one grid predict, print it")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cfg = load_config(None if args.preset == "paper" else args.preset)
    torch.manual_seed(0)
    model = build_model(args.model, cfg).eval()
    n, E = cfg["lr_n"], cfg["physics"]["E"]
    inputs = {
        "lr": torch.rand(1, 1, n + 1, n + 1),
        "image": torch.rand(1, 2 if model.uses_coefficient else 1, E, E),
    }
    m = round(n * args.scale)
    nodes = (m + 1) ** 2
    if args.profile:
        profile(model, inputs, args.scale, nodes)
        return
    paths = {"grid": lambda: model.predict(inputs, args.scale)}
    if not args.fast_only:
        paths["general"] = lambda: general_predict(model, inputs, args.scale)
        with torch.no_grad():
            diff = (paths["grid"]() - paths["general"]()).abs().max().item()
        print(f"max |grid - general| = {diff:.2e}")
    model.predict(inputs, 2)  # warm-up
    best = {}
    for _ in range(args.repeats):
        for name, fn in paths.items():
            cpu, wall = timed(fn)
            if name not in best or cpu < best[name][0]:
                best[name] = (cpu, wall)
    print(f"{args.model} ({args.preset} sizes), {args.scale:g}x: {nodes} nodes, 1 thread")
    for name, (cpu, wall) in best.items():
        us = cpu / nodes * 1e6
        print(
            f"  {name:8s} cpu {cpu:7.2f} s  wall {wall:7.2f} s  {us:6.2f} us/node  "
            f"64x field ~{us * FIELD_64X * 1e-6:6.1f} s"
        )
    if "general" in best:
        print(f"  general / grid: {best['general'][0] / best['grid'][0]:.2f}")


if __name__ == "__main__":
    main()
