"""Training throughput: samples/s of the real training loop per method, today's code
against this checkout, whole fields and patches, 1 and 2 threads; paper-size seconds and FLOPs
per iteration.

    .venv/bin/python benchmarks/bench_train.py --data results/data            # quick sizes
    .venv/bin/python benchmarks/bench_train.py --methods liif nhcsr --paper-iters 2

Every figure comes from ``fesr.train.train`` (batch building from NetCDF, conditioning, the
training step, the optimizer), timed from its history.csv: the first iteration (one-off costs)
and the last (final validation) are excluded. "Before" is the last commit with whole-field
training only (``BASE_REV``), checked out with ``git worktree add --detach /tmp/fesr-base
BASE_REV`` (``--base``, ``--base-rev``; made if missing) and run in a
subprocess with that checkout's ``src`` first on the path and its own quick preset, at the same
batch size and ``sample_q``; the ratio is this checkout's patch training over today's whole-field
training, both with one thread. Run both in one invocation: the machine is shared, so only
figures measured side by side compare.

Quick sizes: the preset's models, data ``--data`` (e.g. results/data of the quick preset) or
analytic fields at the preset's sizes. Paper sizes (``--paper-iters`` > 0): config.yaml's models
on analytic fields, batch 32, patch 48: seconds per iteration on this CPU, and the FLOPs of one
training step (forward + backward; ``torch.utils.flop_counter.FlopCounterMode`` counts matmuls
and convolutions, not elementwise work) to estimate GPU time.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _paths(src: str | None) -> None:
    sys.path.insert(0, str(ROOT / "tests"))  # synthetic_data: SPEC 1 files without FE solves
    sys.path.insert(0, str(src or ROOT / "src"))


def make_data(config: dict, folder: Path, samples: int) -> Path:
    from synthetic_data import write_split

    scales = sorted({1, *[int(a) for a in config["training"]["train_scales"]]})
    kw = dict(n=config["lr_n"], E=config["physics"]["E"])
    write_split(folder, "train", samples, scales, seed=0, **kw)
    write_split(folder, "val", max(2, config["training"]["val_samples"]), scales, seed=1, **kw)
    return folder


def loop_rate(method: str, config: dict, data: Path, iters: int, threads: int) -> dict:
    """Samples/s and seconds per iteration of ``train`` on ``data``, steady state."""
    import pandas as pd
    import torch

    from fesr.train import train

    torch.set_num_threads(threads)
    cfg = copy.deepcopy(config)
    t = cfg["training"]
    # +2: the first iteration pays one-off costs, the last one runs the final validation
    t.update(iterations=iters + 2, val_every=10**9, checkpoint_every=10**9, device="cpu")
    t.update(val_samples=1, lr_milestones=[])  # the final validation is not timed: keep it cheap
    with tempfile.TemporaryDirectory() as out:
        train(method, cfg, data, out, progress=False)
        hist = pd.read_csv(Path(out) / "history.csv")
    hist = hist[hist["iteration"] >= 1]  # today's code has no row 0 (the untrained model)
    if len(hist) < 3:  # no parameters (bicubic)
        return {"sps": float("nan"), "s_per_it": float("nan")}
    seconds = float(hist["seconds"].iloc[-2] - hist["seconds"].iloc[0])
    return {"sps": (len(hist) - 2) * t["batch_size"] / seconds, "s_per_it": seconds / iters}


def step_flops(method: str, config: dict, data: Path) -> float:
    """FLOPs (matmul/conv) of one training step, forward + backward, on one training batch."""
    import numpy as np
    from torch.utils.flop_counter import FlopCounterMode

    from fesr.data import BatchBuilder, SplitReader, u_scale
    from fesr.models.registry import build_model

    t = config["training"]
    scales = [int(a) for a in t["train_scales"]]
    model = build_model(method, config)
    if not any(p.requires_grad for p in model.parameters()):
        return float("nan")
    reader = SplitReader(data, "train", [1, *scales])
    builder = BatchBuilder(
        reader,
        u_scale(data, scales),
        config["physics"]["contrast"],
        model.uses_coefficient,
        t["sample_q"],
        full_field=bool(getattr(model, "needs_full_field", False)),
        patch=t.get("patch"),
    )
    total = []
    for alpha in scales:  # the cost of a step depends on the batch's scale: average over them
        batch = builder.build(
            np.arange(t["batch_size"]) % len(reader), alpha, np.random.default_rng(0)
        )
        with FlopCounterMode(display=False) as counter:
            loss, _ = model.training_loss(batch, step=0)
            loss.backward()
        total.append(counter.get_total_flops())
        model.zero_grad(set_to_none=True)
    reader.close()
    return float(np.mean(total))


def worker(args) -> None:
    """One measurement in this process (today's code runs this in a subprocess)."""
    _paths(args.src)
    from fesr.config import deep_merge, load_config

    preset = None if args.preset == "paper" else args.preset  # "paper": config.yaml alone
    config = deep_merge(load_config(preset), json.loads(args.overrides))
    print(json.dumps(loop_rate(args.worker, config, Path(args.data), args.iters, args.threads)))


def in_subprocess(src, method, preset, overrides, data, iters, threads) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", method]
    cmd += ["--preset", preset, "--overrides", json.dumps(overrides), "--data", str(data)]
    cmd += ["--iters", str(iters), "--threads", str(threads)]
    if src:
        cmd += ["--src", str(src)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH="")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if res.returncode != 0:
        raise RuntimeError(res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "failed")
    return json.loads(res.stdout.strip().splitlines()[-1])


# The last commit before patch training: the "before" of the 10x comparison.
BASE_REV = "237b859"


def base_checkout(path: Path, rev: str = BASE_REV) -> Path:
    """The code before: a detached worktree of ``rev`` (git metadata only; this tree untouched)."""
    if not (path / "src" / "fesr").exists():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev],
            check=True,
            capture_output=True,
        )
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--methods", nargs="*", default=None)
    ap.add_argument("--data", type=Path, default=None, help="dataset folder (default: synthetic)")
    ap.add_argument("--samples", type=int, default=16, help="synthetic train samples")
    ap.add_argument("--iters", type=int, default=5, help="timed iterations per figure")
    ap.add_argument("--base", type=Path, default=Path("/tmp/fesr-base"), help="'before' checkout")
    ap.add_argument("--base-rev", default=BASE_REV, help="commit of the 'before' checkout")
    ap.add_argument("--no-base", action="store_true", help="skip today's figures")
    ap.add_argument("--paper-iters", type=int, default=0, help="also time config.yaml sizes")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-quick", action="store_true", help="paper sizes only")
    ap.add_argument("--paper-batch", type=int, default=32, help="measured batch at paper sizes")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--overrides", default="{}", help=argparse.SUPPRESS)
    ap.add_argument("--src", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    _paths(None)
    from fesr.config import load_config
    from fesr.models.registry import METHODS

    methods = args.methods or [m for m in METHODS if m != "bicubic"]
    quick = load_config(args.preset)
    t = quick["training"]
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or make_data(quick, Path(tmp) / "quick", args.samples)
        if args.skip_quick:
            return paper(methods, Path(tmp) / "paper", args)
        base = None if args.no_base else base_checkout(args.base, args.base_rev)
        # today's preset batch and sample_q, so that samples/s compare like for like
        base_t = t if base is None else _base_training(base, args.preset)
        same = {"batch_size": base_t["batch_size"], "sample_q": base_t["sample_q"]}
        P = t.get("patch")
        print(
            f"\n### quick sizes ({args.preset} models), batch {same['batch_size']}, sample_q "
            f"{same['sample_q']}, patch {P}, {args.iters} timed iterations, data "
            f"{data if args.data else 'synthetic'}; training samples/s"
        )
        cols = ["today, whole, 1 thr", "now, whole, 1 thr", f"now, patch {P}, 1 thr"]
        cols += [
            f"now, patch {P}, 2 thr",
            "patch 1 thr / today",
            f"now, preset batch {t['batch_size']}, 1 thr",
        ]
        print("\n| method | " + " | ".join(cols) + " |\n|---" * 1 + "|---" * len(cols) + "|")
        for m in methods:
            row = []
            runs = [
                (base, {"training": {**same, "patch": None}}, 1),
                (None, {"training": {**same, "patch": None}}, 1),
                (None, {"training": {**same, "patch": P}}, 1),
                (None, {"training": {**same, "patch": P}}, 2),
            ]
            for i, (src, over, thr) in enumerate(runs):
                if i == 0 and base is None:
                    row.append(float("nan"))
                    continue
                try:
                    row.append(
                        in_subprocess(src, m, args.preset, over, data, args.iters, thr)["sps"]
                    )
                except Exception as err:  # report and go on with the other figures
                    print(f"<!-- {m}: {err} -->", file=sys.stderr)
                    row.append(float("nan"))
            row.append(row[2] / row[0] if row[0] == row[0] else float("nan"))
            own = in_subprocess(None, m, args.preset, {}, data, args.iters, 1)["sps"]
            row.append(own)
            cells = [f"{v:.1f}" for v in row[:4]] + [f"{row[4]:.1f}x", f"{row[5]:.1f}"]
            print(f"| {m} | " + " | ".join(cells) + " |", flush=True)

        if args.paper_iters:
            paper(methods, Path(tmp) / "paper", args)


def _base_training(base: Path, preset: str) -> dict:
    """Today's preset training section, read as YAML from the base checkout (no import)."""
    import yaml

    with open(base / "config.yaml") as fh:
        cfg = yaml.safe_load(fh)["training"]
    with open(base / "workflow" / "presets" / f"{preset}.yaml") as fh:
        cfg.update(yaml.safe_load(fh).get("training", {}))
    return cfg


def paper(methods, folder: Path, args) -> None:
    """config.yaml's sizes. ``--paper-batch`` below 32 measures that batch and scales the figures
    to batch 32 (per-sample cost is flat in the batch on the CPU; FLOPs are exactly linear): a
    paper-size RDN needs about 16 GB of activations at batch 32, more than a shared laptop has."""
    import torch

    from fesr.config import load_config

    config = load_config(None)
    t = config["training"]
    B, full = args.paper_batch, t["batch_size"]
    config["training"]["batch_size"] = B
    data = make_data(config, folder, max(4, min(args.samples, B)))
    print(
        f"\n### paper sizes (config.yaml), batch {full} (measured at batch {B}, scaled by "
        f"{full / B:g}), patch {t['patch']}, sample_q {t['sample_q']}, {args.paper_iters} timed "
        f"iterations, {args.threads} thread(s)\n"
        f"\n| method | s / iteration of batch {full} (CPU) | GFLOP / iteration (fwd + bwd, "
        "matmul/conv) |\n|---|---|---|"
    )
    torch.set_num_threads(args.threads)
    over = {"training": {"batch_size": B}}
    for m in methods:
        try:
            rate = in_subprocess(None, m, "paper", over, data, args.paper_iters, args.threads)
            flops = step_flops(m, config, data) * full / B
            print(f"| {m} | {rate['s_per_it'] * full / B:.1f} | {flops / 1e9:.0f} |", flush=True)
        except Exception as err:
            print(f"| {m} | failed: {str(err)[:80]} | |", flush=True)


if __name__ == "__main__":
    main()
