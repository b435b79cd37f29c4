"""IDM's cost at a preset's sizes: training s/step (whole field and patch) and predict time/memory.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_idm.py                 # quick preset
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_idm.py --alphas 16 64 --train-scales 16
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_idm.py --compare /tmp/idm_old.py

``--compare FILE`` also loads the IDM class from another file (e.g. an older idm.py) and
measures both, row by row, side by side with their ratio (new / other). Times are the best of
``--steps`` runs, in CPU seconds of the one-thread process (``time.process_time``: less
sensitive than wall time to other jobs sharing the machine) and in wall seconds. Every
measurement runs in a fresh subprocess: 'peak MB' is the growth of the process's peak resident
memory (VmHWM after - VmRSS before). Training steps use
random tensors of the real batch shapes (forward, backward, Adam step; speed does not depend on
the values); a patch batch has the shapes of the patch convention (image P x P, LR p + 1 nodes
with p = P * lr_n / E, HR field p * alpha + 1 nodes). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _model(preset: str, module: str | None):
    from fesr.config import load_config
    from fesr.models.registry import build_model, resolve_model_config

    config = load_config(preset)
    if module is None:
        return config, build_model("idm", config)
    spec = importlib.util.spec_from_file_location("idm_under_test", module)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return config, mod.IDM(resolve_model_config("idm", config))


def measure_train(preset, module, alpha, patch, steps) -> dict:
    import torch

    torch.manual_seed(0)
    config, model = _model(preset, module)
    n, E = config["lr_n"], config["physics"]["E"]
    P = E if patch is None else int(patch)
    p = P * n // E
    m = p * int(alpha)
    B, Q = config["training"]["batch_size"], config["training"]["sample_q"]
    idx = torch.stack([torch.randperm((m + 1) ** 2)[:Q] for _ in range(B)])
    from fesr.coords import node_coords

    coords = node_coords(m)[idx]
    batch = {
        "lr": torch.rand(B, 1, p + 1, p + 1),
        "image": torch.rand(B, 2, P, P),
        "hr": torch.rand(B, 1, m + 1, m + 1),
        "coords": coords,
        "cell": torch.full_like(coords, 2.0 / m),
        "target": torch.rand(B, Q, 1),
        "scale": float(alpha),
    }
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    cpu, wall = [], []
    for _ in range(steps + 1):  # the first step warms up
        c0, t0 = time.process_time(), time.perf_counter()
        opt.zero_grad()
        loss, _ = model.training_loss(batch)
        loss.backward()
        opt.step()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - t0)
    return {"cpu": min(cpu[1:]), "wall": min(wall[1:]), "m": m}


def measure_predict(preset, module, alpha, chunk) -> dict:
    import torch

    torch.manual_seed(0)
    config, model = _model(preset, module)
    model.eval()
    n, E = config["lr_n"], config["physics"]["E"]
    inputs = {"lr": torch.rand(1, 1, n + 1, n + 1), "image": torch.rand(1, 2, E, E)}
    base = _status_mb("VmRSS")
    c0, t0 = time.process_time(), time.perf_counter()
    out = model.predict(inputs, alpha, chunk=chunk)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    return {
        "cpu": cpu,
        "wall": wall,
        "us_per_node": 1e6 * cpu / out[0].numel(),
        "peak_mb": _status_mb("VmHWM") - base,
    }


def _child(args) -> dict:
    cmd = [sys.executable, __file__, "--child", json.dumps(args)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-2000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--compare", default=None, help="also measure IDM from this file")
    ap.add_argument("--train-scales", type=int, nargs="*", default=[2, 4, 8, 16])
    ap.add_argument(
        "--patch",
        type=int,
        default=None,
        help="patch side P in cells (default: the preset's training.patch, else 48)",
    )
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--no-whole", action="store_true", help="patch training steps only")
    ap.add_argument("--alphas", type=float, nargs="*", default=[16, 64])
    ap.add_argument("--chunk", type=int, default=65536)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        import torch

        torch.set_num_threads(1)
        job = json.loads(args.child)
        kind = job.pop("kind")
        fn = measure_train if kind == "train" else measure_predict
        print(json.dumps(fn(**job)))
        return
    from fesr.config import load_config

    patch = args.patch or load_config(args.preset)["training"].get("patch") or 48
    modules = [None] + ([args.compare] if args.compare else [])
    names = ["fesr.models.idm"] + ([f"--compare {args.compare}"] if args.compare else [])
    print(f"IDM, preset {args.preset}, 1 thread; columns: {' | '.join(names)}\n")

    def row(kind, cols, **job):
        out = [_child(dict(job, kind=kind, preset=args.preset, module=mod)) for mod in modules]
        cells = [f"{r[c]:.3g}" for r in out for c in cols]
        if len(out) == 2:
            cells.append(f"{out[0]['cpu'] / out[1]['cpu']:.2f}")
        return out[0], cells

    head = ["CPU s/step", "wall s/step"] * len(modules) + (["CPU ratio"] if args.compare else [])
    print("| training | alpha | HR nodes/side | " + " | ".join(head) + " |")
    print("|" + " --- |" * (3 + len(head)))
    scopes = ([] if args.no_whole else [("whole field", None)]) + [(f"patch {patch}", patch)]
    for alpha in args.train_scales:
        for label, P in scopes:
            r, cells = row("train", ["cpu", "wall"], alpha=alpha, patch=P, steps=args.steps)
            print(f"| {label} | {alpha} | {r['m'] + 1} | " + " | ".join(cells) + " |", flush=True)
    head = ["CPU s", "wall s", "CPU us/node", "peak MB"] * len(modules)
    head += ["CPU ratio"] if args.compare else []
    print("\n| predict alpha | " + " | ".join(head) + " |")
    print("|" + " --- |" * (1 + len(head)))
    for alpha in args.alphas:
        cols = ["cpu", "wall", "us_per_node", "peak_mb"]
        _, cells = row("predict", cols, alpha=alpha, chunk=args.chunk)
        print(f"| {alpha:g} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
