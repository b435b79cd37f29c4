"""The physics-loss weights chosen on the validation split: a sweep that trains one method with
``l1+h1`` and ``l1+energy`` at several weights, scores each checkpoint on the validation maps in
the norm its loss aims at, and prints the weight to put in the schema.

    .venv/bin/python benchmarks/sweep_physics_loss_weight.py \
        --data study/results/data --models study/results/models --out /tmp/fesr-weight-sweep

Every run is the pipeline's own: ``python -m fesr.train`` on ``--models/{method}``'s
train_config.json (the study's sizes and seed) with only the ``physics_loss`` weight replaced,
then ``python -m fesr.evaluate.predict`` on ``--data/val`` at ``--scales``, which writes the same
metric rows as the test splits (rel_l2, rel_energy with the map's coefficient, rel_h1). The
method trained on L1 alone (``--models/{method}``, weight 0) and the LR field it starts from
(``fe_x1_interp``, by ``fesr.evaluate.fe_baselines``) are scored alike as references.
The choice: per loss, the smallest weight whose mean validation error in the loss's own norm
(rel_h1 for ``h1``, rel_energy for ``energy``, over the maps and scales) is within ``--tolerance``
(1%) of the lowest: where that norm is flat in the weight, the weight that distorts the L1 fit
least. The test splits are never read.
Runs already finished in ``--out`` are reused, so an interrupted sweep resumes.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
WEIGHT_KEY = {"h1": "h1_weight", "energy": "energy_weight"}
TARGET_NORM = {"h1": "rel_h1", "energy": "rel_energy"}


def run(cmd: list, log: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))
    with open(log, "w") as fh:
        done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({done.returncode}); see {log}")


def score(model: str, ckpt: Path, data: Path, scales: list, out: Path) -> pd.DataFrame:
    """Validation metrics of one checkpoint: one row per (map, scale)."""
    parts = [out / f"val_x{s}.csv" for s in scales]
    if not all(p.is_file() for p in parts):
        out.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "fesr.evaluate.predict", "--model", model]
        cmd += ["--checkpoint", ckpt, "--lr-data", data / "val" / "u_x1.nc"]
        cmd += ["--coefficient", data / "val" / "coefficient.nc", "--split", "val"]
        cmd += ["--alpha", *scales, "--out", *[out / f"val_x{s}.nc" for s in scales]]
        cmd += ["--reference", *[data / "val" / f"u_x{s}.nc" for s in scales]]
        cmd += ["--metrics-out", *parts, "--device", "cpu", "--threads", "1"]
        run([str(c) for c in cmd], out / "predict.log")
    return pd.concat([pd.read_csv(p) for p in parts], ignore_index=True)


def score_lr_field(data: Path, scales: list, like: Path, out: Path) -> pd.DataFrame:
    """The LR field's validation metrics (``fe_x1_interp``, the input every model starts from),
    from the pipeline's ``fesr.evaluate.fe_baselines``; ``like``: a prediction for u_scale."""
    parts = []
    for s in scales:
        part = out / f"lr_field_x{s}.csv"
        if not part.is_file():
            out.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, "-m", "fesr.evaluate.fe_baselines", "--split", "val"]
            cmd += ["--scale", s, "--reference", data / "val" / f"u_x{s}.nc"]
            cmd += ["--coarse", data / "val" / "u_x1.nc"]
            cmd += ["--coefficient", data / "val" / "coefficient.nc"]
            cmd += ["--u-scale-from", like, "--out", part]
            run([str(c) for c in cmd], out / f"lr_field_x{s}.log")
        rows = pd.read_csv(part)
        parts.append(rows[rows["approach"] == "fe_x1_interp"])
    return pd.concat(parts, ignore_index=True)


def train_and_score(method, mode, weight, base_cfg, args) -> dict:
    model = f"{method}-{mode}"
    folder = args.out / f"{model}-w{weight:g}"
    ckpt = folder / "checkpoint.pt"
    if not ckpt.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        cfg = json.loads(base_cfg.read_text())
        cfg["physics_loss"][WEIGHT_KEY[mode]] = weight
        cfg_path = folder / "train_config.json"
        cfg_path.write_text(json.dumps(cfg, indent=1, sort_keys=True))
        cmd = [sys.executable, "-m", "fesr.train", "--model", model, "--config-json", cfg_path]
        cmd += ["--data", args.data, "--out", folder, "--threads", "1"]
        run([str(c) for c in cmd], folder / "train.log")
    rows = score(model, ckpt, args.data, args.scales, folder / "val")
    return {"mode": mode, "weight": weight, "rows": rows}


def summary(rows: pd.DataFrame, scales: list) -> dict:
    out = {}
    for norm in ("rel_l2", "rel_energy", "rel_h1"):
        for s in scales:
            out[f"{norm} x{s}"] = float(rows.loc[rows["scale"] == s, norm].mean())
        out[f"{norm} mean"] = float(rows[norm].mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="dataset folder with train and val")
    ap.add_argument("--models", type=Path, required=True, help="folder of the trained models")
    ap.add_argument("--method", default="liif", help="the method swept (a local method)")
    ap.add_argument("--h1-weights", type=float, nargs="+", default=[0.003, 0.03, 0.3, 3.0])
    ap.add_argument("--energy-weights", type=float, nargs="+", default=[0.0002, 0.002, 0.02, 0.2])
    ap.add_argument("--scales", type=int, nargs="+", default=[8, 16], help="validation scales")
    ap.add_argument("--out", type=Path, required=True, help="folder of the sweep's runs")
    ap.add_argument("--jobs", type=int, default=2, help="runs at once (one thread each)")
    ap.add_argument(
        "--tolerance", type=float, default=0.01, help="relative slack over the lowest error"
    )
    args = ap.parse_args()
    args.data, args.models, args.out = (
        args.data.resolve(),
        args.models.resolve(),
        args.out.resolve(),
    )

    # the study's config of the method's energy variant: sizes, seed and both weights
    base_cfg = args.models / f"{args.method}-energy" / "train_config.json"
    reference = args.models / args.method / "checkpoint.pt"
    for path in (base_cfg, reference, args.data / "val" / "u_x1.nc"):
        if not path.is_file():
            raise SystemExit(
                f"sweep_physics_loss_weight: '{path}' not found (train the study first)"
            )
    grid = [("h1", w) for w in args.h1_weights] + [("energy", w) for w in args.energy_weights]
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(lambda mw: train_and_score(args.method, *mw, base_cfg, args), grid))
    ref = summary(
        score(args.method, reference, args.data, args.scales, args.out / "l1" / "val"), args.scales
    )
    like = args.out / "l1" / "val" / f"val_x{args.scales[0]}.nc"
    lr_field = summary(
        score_lr_field(args.data, args.scales, like, args.out / "lr_field"), args.scales
    )

    cols = [f"{n} {c}" for n in ("rel_l2", "rel_energy", "rel_h1") for c in ("mean",)]
    cols += [f"{n} x{s}" for n in ("rel_energy", "rel_h1") for s in args.scales]
    print(
        f"{args.method} on {args.data}/val ({len(runs[0]['rows']) // len(args.scales)} maps), "
        f"scales {args.scales}; validation means per weight:\n"
    )
    print("| loss | weight | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    print(
        "| LR field (fe_x1_interp) | - | " + " | ".join(f"{lr_field[c]:.4g}" for c in cols) + " |"
    )
    print("| l1 | 0 | " + " | ".join(f"{ref[c]:.4g}" for c in cols) + " |")
    for r in runs:
        s = summary(r["rows"], args.scales)
        r["summary"] = s
        print(
            f"| l1+{r['mode']} | {r['weight']:g} | "
            + " | ".join(f"{s[c]:.4g}" for c in cols)
            + " |"
        )
    for mode in ("h1", "energy"):
        key = f"{TARGET_NORM[mode]} mean"
        mine = [r for r in runs if r["mode"] == mode]
        lowest = min(r["summary"][key] for r in mine)
        near = [r for r in mine if r["summary"][key] <= lowest * (1 + args.tolerance)]
        best = min(near, key=lambda r: r["weight"])
        print(
            f"\nchosen physics_loss.{WEIGHT_KEY[mode]}: {best['weight']:g} (validation "
            f"{key} {best['summary'][key]:.4g}, lowest {lowest:.4g}, tolerance "
            f"{args.tolerance:g}; L1 alone {ref[key]:.4g})"
        )


if __name__ == "__main__":
    main()
