"""Inference against the solve it replaces: every method's 64x predict at the quick
preset's sizes and at paper size, and the project's own n = 2048 FE solve, in one run, on the same
machine with the same thread count.

    .venv/bin/python benchmarks/bench_inference.py                      # everything, 1 thread
    .venv/bin/python benchmarks/bench_inference.py --methods liif nhcsr --skip-paper
    .venv/bin/python benchmarks/bench_inference.py --csv docs/bench_inference.csv

Every measurement runs in a fresh child process (torch and DOLFINx never share one; each gets
torch.set_num_threads(T) and OMP_NUM_THREADS=T). Inputs are random fields of the real shapes with
random weights: speed does not depend on the values.

* Quick size (workflow/presets/quick.yaml): the whole 64x field (2049^2 nodes) is predicted and
  timed (``predict``, encode included).
* Paper size (config.yaml): a 64x field takes minutes per method on a CPU, so it is extrapolated,
  and the output says so: the encode is timed once, then ``predict`` from that encoding at two
  small scales (by default 2x and 4x, 4225 and 16641 nodes); time = encode + a + b * nodes, the
  affine fit through those two points, evaluated at 2049^2 nodes. IDM runs 2 of its 50
  diffusion steps there (each step costs the same) and its step part is scaled by 25. CLIT adds
  a second LIT stage from 16x on, so its paper-size time and (both sizes) FLOPs per node come
  from 16384 nodes of the 64x grid through ``query_encoded`` (the general path) instead.
* FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` (matrix products and convolutions, 2 per
  multiply-add; element-wise work is not counted) of ``encode`` and of ``predict`` at the two
  small scales, extrapolated affinely in the number of nodes (exact for methods whose cost is
  encode + per-field + per-node work, which is every method here). ``GFLOP/s`` is the achieved
  rate: counted FLOPs / measured seconds of the 64x field.
* GPU estimate: paper-size 64x FLOPs / an assumed sustained GPU rate (``--gpu-tflops``, default
  10 TFLOP/s: about half the FP32 peak of an A100, 19.5 TFLOP/s, without tensor cores). A lower
  bound in spirit: memory traffic and kernel launches are not modelled.
* FE solve: ``fesr.fem.solver.Q1Solver`` on one MPI rank, n = 2048, a random map (E = 128):
  ``solve_time`` as the data stage records it (coefficient + assembly + CG/BoomerAMG), the solver
  set-up (mesh, spaces, forms: once per process) printed beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

METHODS = ["bicubic", "metasr", "liif", "lte", "idm", "lit", "clit", "srno", "linf", "nhcsr"]
FIELD_ALPHA = 64
# Methods whose per-node work changes with the scale (CLIT: one LIT stage up to 8x, two from 16x
# on), so small scales do not extrapolate to 64x: their per-node FLOPs (and, at paper size, time)
# come from SUBSET_NODES nodes of the 64x grid through the general query path.
BY_SUBSET = {"clit"}
SUBSET_NODES = 16384


def _inputs(config, model):
    import torch

    n, E = config["lr_n"], config["physics"]["E"]
    gen = torch.Generator().manual_seed(0)
    return {
        "lr": torch.rand(1, 1, n + 1, n + 1, generator=gen),
        "image": torch.rand(1, 2 if model.uses_coefficient else 1, E, E, generator=gen),
    }


def _timed(fn, repeats=1):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _predict(model, inputs, alpha, chunk, state):
    import inspect

    kwargs = {"chunk": chunk}
    if "state" in inspect.signature(model.predict).parameters:
        kwargs["state"] = state
    return model.predict(inputs, alpha, **kwargs)


def measure_method(size: str, method: str, threads: int, scales, chunk: int) -> dict:
    """One method at one size (child process): times, FLOPs, extrapolations."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fesr.config import load_config
    from fesr.models.base import hr_size
    from fesr.models.registry import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = load_config("quick" if size == "quick" else None)
    model = build_model(method, config).eval()
    inputs = _inputs(config, model)
    # A diffusion model repeats the same denoising step: at paper size run 2 of its steps and
    # scale the step part (everything but encode) by steps / 2.
    steps = int(getattr(model, "ddim_steps", 0) or 0)
    step_factor = 1.0
    if size == "paper" and steps > 2:
        model.ddim_steps, step_factor = 2, steps / 2
    n = config["lr_n"]
    nodes = {a: (hr_size(n, a) + 1) ** 2 for a in (*scales, FIELD_ALPHA)}

    def count(fn) -> int:
        with FlopCounterMode(display=False) as counter:
            fn()
        return int(counter.get_total_flops())

    with torch.inference_mode():
        state = None
        try:
            if size == "paper":  # one (minutes-long) encode, timed and counted at once
                with FlopCounterMode(display=False) as counter:
                    enc_s, state = _timed(lambda: model.encode(inputs))
                enc_flops = int(counter.get_total_flops())
            else:
                enc_s, state = _timed(lambda: model.encode(inputs), 3)
                enc_flops = count(lambda: model.encode(inputs))
        except NotImplementedError:  # a method without a separate encode
            enc_s, enc_flops = 0.0, 0
        flops = {a: count(lambda a=a: _predict(model, inputs, a, chunk, state)) for a in scales}
        s1, s2 = scales
        flops = {a: f * step_factor for a, f in flops.items()}
        slope = (flops[s2] - flops[s1]) / (nodes[s2] - nodes[s1])
        field_flops = enc_flops + flops[s2] + slope * (nodes[FIELD_ALPHA] - nodes[s2])
        sub_s = None
        if method in BY_SUBSET:
            from fesr.coords import hr_cell, node_coords

            m = hr_size(n, FIELD_ALPHA)
            coords = node_coords(m)[:SUBSET_NODES].unsqueeze(0)
            cell = torch.full_like(coords, hr_cell(m))
            sub_flops = count(lambda: model.query_encoded(state, coords, cell))
            sub_s = _timed(lambda: model.query_encoded(state, coords, cell))[0]
            slope = sub_flops / SUBSET_NODES
            field_flops = enc_flops + slope * nodes[FIELD_ALPHA]
        row = {
            "method": method,
            "size": size,
            "threads": threads,
            "params": int(sum(p.numel() for p in model.parameters())),
            "encode_s": enc_s,
            "flops_per_node": slope,
            "field_gflops": field_flops / 1e9,
        }
        if size == "quick":
            _predict(model, inputs, 2, chunk, state)  # warm-up (allocator, lazy init)
            seconds, out = _timed(lambda: model.predict(inputs, FIELD_ALPHA, chunk=chunk))
            assert out.shape[-1] == hr_size(n, FIELD_ALPHA) + 1, out.shape
            row.update(field_s=seconds, measured="whole 64x field")
        else:
            t = {
                a: _timed(lambda a=a: _predict(model, inputs, a, chunk, state))[0] * step_factor
                for a in scales
            }
            per_node = (t[s2] - t[s1]) / (nodes[s2] - nodes[s1])
            if per_node <= 0:  # timing noise on a loaded machine: no per-field term then
                per_node = t[s2] / nodes[s2]
            fixed = max(0.0, t[s2] - per_node * nodes[s2])
            how = f"extrapolated from x{s1}, x{s2} ({nodes[s1]}, {nodes[s2]} nodes)"
            if step_factor != 1.0:
                how += f", 2 of {steps} diffusion steps run"
            if sub_s is not None:
                per_node, fixed = sub_s / SUBSET_NODES, 0.0
                how = f"extrapolated from {SUBSET_NODES} nodes of the 64x grid (general path)"
            row.update(field_s=enc_s + fixed + per_node * nodes[FIELD_ALPHA], measured=how)
        row["us_per_node"] = 1e6 * (row["field_s"] - enc_s) / nodes[FIELD_ALPHA]
        row["gflop_per_s"] = row["field_gflops"] / row["field_s"]
    return row


def measure_fe(n: int, threads: int) -> dict:
    """The data stage's solve at n on one rank (child process)."""
    from mpi4py import MPI

    from fesr.fem.coefficients import random_map
    from fesr.fem.solver import Q1Solver

    t0 = time.perf_counter()
    solver = Q1Solver(MPI.COMM_WORLD, n, rtol=1e-10)
    setup = time.perf_counter() - t0
    A = random_map(128, (1.0, 100.0), 0.5, 0, "test_random", 0)
    result = solver.solve(A)
    solver.close()
    return {
        "n": n,
        "threads": threads,
        "setup_s": setup,
        "solve_s": result.solve_time,
        **{f"{k}_s": v for k, v in result.timings.items()},
        "iterations": result.iterations,
    }


def child(spec: dict, threads: int, timeout: float) -> dict | None:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    cmd = [sys.executable, __file__, "--child", json.dumps(spec), "--threads", str(threads)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        print(f"  {spec}: timed out after {timeout:.0f} s", flush=True)
        return None
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT="):
            return json.loads(line[len("RESULT=") :])
    print(f"  {spec} failed:\n{proc.stderr[-2000:]}", flush=True)
    return None


def report(rows, fe, gpu_tflops: float) -> str:
    solve = fe["solve_s"] if fe else float("nan")
    lines = [
        f"FE solve n = {fe['n']}, 1 rank: {solve:.1f} s (solve_time: coefficient + assembly + "
        f"CG/BoomerAMG, {fe['iterations']} iterations); solver set-up {fe['setup_s']:.1f} s"
        if fe
        else "FE solve: not measured",
        "",
        "| method | size | 64x field s | / FE solve | encode s | us/node | MFLOP/node "
        "| 64x GFLOP | GFLOP/s | GPU est. s | how |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        gpu = r["field_gflops"] / (gpu_tflops * 1e3)
        lines.append(
            f"| {r['method']} | {r['size']} | {r['field_s']:.2f} | {r['field_s'] / solve:.2f} | "
            f"{r['encode_s']:.3f} | {r['us_per_node']:.2f} | {r['flops_per_node'] / 1e6:.3f} | "
            f"{r['field_gflops']:.1f} | {r['gflop_per_s']:.2f} | {gpu:.3f} | {r['measured']} |"
        )
    lines.append(
        f"\nGPU est. = 64x GFLOP / an assumed sustained {gpu_tflops:g} TFLOP/s; FLOPs count matrix "
        "products and convolutions only (torch FlopCounterMode)."
    )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--chunk", type=int, default=65536)
    ap.add_argument("--scales", type=int, nargs=2, default=[2, 4], help="paper-size fit scales")
    ap.add_argument("--fe-n", type=int, default=2048)
    ap.add_argument("--skip-fe", action="store_true")
    ap.add_argument("--skip-quick", action="store_true")
    ap.add_argument("--skip-paper", action="store_true")
    ap.add_argument("--gpu-tflops", type=float, default=10.0)
    ap.add_argument("--timeout", type=float, default=1800, help="per child process [s]")
    ap.add_argument("--csv", type=Path, help="also write the rows here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        spec = json.loads(a.child)
        if spec["kind"] == "fe":
            out = measure_fe(spec["n"], a.threads)
        else:
            out = measure_method(spec["size"], spec["method"], a.threads, spec["scales"], a.chunk)
        print("RESULT=" + json.dumps(out), flush=True)
        return

    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {a.threads} "
        f"thread(s), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        flush=True,
    )
    fe = None if a.skip_fe else child({"kind": "fe", "n": a.fe_n}, a.threads, a.timeout)
    if fe:
        print(f"  fe n={fe['n']}: {fe['solve_s']:.1f} s", flush=True)
    rows = []
    sizes = [s for s, skip in (("quick", a.skip_quick), ("paper", a.skip_paper)) if not skip]
    for size in sizes:
        for method in a.methods:
            spec = {"kind": "method", "size": size, "method": method, "scales": a.scales}
            r = child(spec, a.threads, a.timeout)
            if r:
                print(f"  {method} {size}: {r['field_s']:.2f} s ({r['measured']})", flush=True)
                rows.append(r)
    print()
    print(report(rows, fe, a.gpu_tflops))
    if a.csv:
        import pandas as pd

        df = pd.DataFrame(rows)
        df["fe_solve_s"] = fe["solve_s"] if fe else float("nan")
        df["ratio_to_fe"] = df["field_s"] / df["fe_solve_s"]
        df["gpu_tflops_assumed"] = a.gpu_tflops
        df["gpu_est_s"] = df["field_gflops"] / (a.gpu_tflops * 1e3)
        a.csv.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(a.csv, index=False)
        print(f"\nwrote {a.csv}")


if __name__ == "__main__":
    main()
