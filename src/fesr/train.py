"""Train one model: ``python -m fesr.train --model NAME --config-json CFG --data DIR --out DIR``.

Adam with a MultiStepLR schedule, batch size and iterations from ``config["training"]``; GPU when
present (``amp``: bfloat16 autocast on the GPU only), CPU otherwise. The loss is the method's
``training_loss(batch, step)``. Every ``val_every`` steps the validation loss is measured: the
L1 error of ``query`` at fixed nodes of fixed validation samples at every training scale (the
same metric for every method and variant, so that e.g. Fig. 9 compares with/without SCS fairly;
a method may define ``validation_loss(batch)`` instead). Every ``checkpoint_every`` steps the full
state (weights, optimizer, scheduler, RNGs, history) goes to ``{out}/resume.pt``; a rerun with
the same config resumes from it exactly, because the batch stream is a pure function of the
iteration. At the end ``{out}/checkpoint.pt`` and ``{out}/history.csv`` are written and the
resume file removed. Deterministic on CPU for a given seed and thread count.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from fesr.checkpoint import (
    config_hash,
    load_checkpoint,
    rng_states,
    save_checkpoint,
    set_rng_states,
)
from fesr.data.dataset import SplitReader, u_scale
from fesr.data.sampling import BatchBuilder, TrainBatches, validation_batches
from fesr.models.registry import build_from_resolved, resolve_model_config

HISTORY_COLUMNS = ["iteration", "loss", "val_loss", "lr", "seconds"]
REQUIRED_TRAINING = (
    "batch_size",
    "iterations",
    "lr",
    "lr_milestones",
    "lr_gamma",
    "sample_q",
    "train_scales",
    "val_every",
    "val_samples",
    "checkpoint_every",
)
# Keys that do not change what is learned: a run may resume across a change of these.
RUNTIME_KEYS = ("device", "num_workers", "val_every", "checkpoint_every", "val_samples")


def resolve_device(choice: str | None) -> torch.device:
    choice = choice or "auto"
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA device is available")
    if choice not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got '{choice}'")
    return torch.device(choice)


def _to(batch: dict, device) -> dict:
    return {
        k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
    }


def _check_training(tcfg: dict) -> None:
    missing = [k for k in REQUIRED_TRAINING if k not in tcfg]
    if missing:
        raise ValueError(f"config 'training' lacks {missing}")
    for key in ("batch_size", "iterations", "sample_q", "val_every", "checkpoint_every"):
        if int(tcfg[key]) < 1:
            raise ValueError(f"training.{key} must be >= 1, got {tcfg[key]}")


@torch.no_grad()
def validation_loss(model, batches: list, device, seed: int) -> float:
    """Mean over the fixed validation batches of the L1 error of ``query`` (or the method's own
    ``validation_loss``); RNG use inside is isolated so the training stream is unaffected."""
    was_training = model.training
    model.eval()
    devices = [torch.cuda.current_device()] if device.type == "cuda" else []
    losses = []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for cpu_batch in batches:
            batch = _to(cpu_batch, device)
            if hasattr(model, "validation_loss"):
                loss = model.validation_loss(batch)
            else:
                pred = model.query(batch, batch["coords"], batch["cell"])
                loss = torch.nn.functional.l1_loss(pred.float(), batch["target"].float())
            losses.append(float(loss))
    model.train(was_training)
    return float(np.mean(losses))


def write_history(path: Path, rows: torch.Tensor) -> None:
    """history.csv (iteration, loss, val_loss, lr, seconds), written atomically."""
    df = pd.DataFrame(rows.numpy(), columns=HISTORY_COLUMNS)
    df["iteration"] = df["iteration"].astype(np.int64)
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_csv(tmp, index=False, float_format="%.9g")
    tmp.replace(path)


def train(
    model_name: str,
    config: dict,
    data_dir,
    out_dir,
    *,
    device: str | None = None,
    stop_at: int | None = None,
    progress: bool = True,
    cache_mb: int = 1024,
) -> Path:
    """Train ``model_name`` on ``data_dir``'s train split; returns ``{out_dir}/checkpoint.pt``.

    ``stop_at`` ends the run after that many completed iterations, leaving the resume file as an
    interruption would (tests, time-boxed jobs). ``cache_mb`` bounds the decoded-sample cache.
    """
    tcfg = dict(config["training"])
    _check_training(tcfg)
    seed = int(config.get("seed", 0))
    contrast = [float(c) for c in config["physics"]["contrast"]]
    model_cfg = resolve_model_config(model_name, config)
    dev = resolve_device(device or tcfg.get("device", "auto"))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final_path, resume_path = out_dir / "checkpoint.pt", out_dir / "resume.pt"
    history_path = out_dir / "history.csv"

    train_scales = [float(a) for a in tcfg["train_scales"]]
    scale = u_scale(data_dir, train_scales)
    cache = int(cache_mb) << 20
    train_reader = SplitReader(data_dir, "train", [1, *train_scales], cache_bytes=cache)
    val_reader = SplitReader(data_dir, "val", [1, *train_scales], cache_bytes=0)
    for reader in (train_reader, val_reader):
        if (
            reader.E != int(config["physics"]["E"])
            or reader.node_sizes[1] != int(config["lr_n"]) + 1
        ):
            raise ValueError(
                f"{data_dir}/{reader.split}: E={reader.E}, LR nodes {reader.node_sizes[1]}; the "
                f"config expects E={config['physics']['E']}, lr_n={config['lr_n']}"
            )
    learned = {k: v for k, v in tcfg.items() if k not in RUNTIME_KEYS}
    chash = config_hash(
        {
            "model_cfg": model_cfg,
            "training": learned,
            "seed": seed,
            "u_scale": scale,
            "n_train": len(train_reader),
        }
    )

    if final_path.exists():
        try:
            done = load_checkpoint(final_path)
        except ValueError:
            done = None
        if done is not None and done.get("complete") and done.get("config_hash") == chash:
            print(f"{final_path}: already trained with this config; nothing to do")
            return final_path

    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    # Bitwise determinism on CPU. On the GPU some kernels (grid_sample's backward) have no
    # deterministic version, and forcing the others only costs speed: left to cuDNN's defaults.
    if dev.type == "cpu":
        torch.use_deterministic_algorithms(True)
    try:
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        model = build_from_resolved(model_cfg).to(dev)
        full_field = bool(getattr(model, "needs_full_field", False))
        builder = BatchBuilder(
            train_reader,
            scale,
            contrast,
            model.uses_coefficient,
            tcfg["sample_q"],
            full_field=full_field,
        )
        val_builder = BatchBuilder(
            val_reader,
            scale,
            contrast,
            model.uses_coefficient,
            tcfg["sample_q"],
            full_field=full_field,
        )
        val_batches = validation_batches(val_builder, train_scales, tcfg["val_samples"], seed)
        common = dict(
            model_name=model_name,
            method=model_cfg["method"],
            model_cfg=model_cfg,
            u_scale=scale,
            contrast=contrast,
            config_hash=chash,
            train_config=tcfg,
            seed=seed,
            data={
                "dir": str(data_dir),
                "n_train": len(train_reader),
                "n_val": len(val_reader),
                "E": train_reader.E,
                "lr_n": train_reader.node_sizes[1] - 1,
            },
        )
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:  # bicubic: nothing to learn; record its validation loss once
            t0 = time.perf_counter()
            val = validation_loss(model, val_batches, dev, seed)
            rows = torch.tensor(
                [[0, math.nan, val, 0.0, time.perf_counter() - t0]], dtype=torch.float64
            )
            save_checkpoint(
                final_path,
                **common,
                state_dict=model.state_dict(),
                optimizer={},
                scheduler={},
                iteration=0,
                complete=True,
                rng=rng_states(),
                sampler={},
                history=rows,
                seconds=float(rows[0, 4]),
            )
            write_history(history_path, rows)
            resume_path.unlink(missing_ok=True)
            return final_path
        return _loop(
            model,
            params,
            tcfg,
            dev,
            builder,
            val_batches,
            seed,
            common,
            final_path,
            resume_path,
            history_path,
            stop_at,
            progress,
        )
    finally:
        torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)
        train_reader.close()
        val_reader.close()


def _loop(
    model,
    params,
    tcfg,
    dev,
    builder,
    val_batches,
    seed,
    common,
    final_path,
    resume_path,
    history_path,
    stop_at,
    progress,
) -> Path:
    iterations = int(tcfg["iterations"])
    opt = torch.optim.Adam(params, lr=float(tcfg["lr"]))
    sched = torch.optim.lr_scheduler.MultiStepLR(
        opt, milestones=[int(m) for m in tcfg["lr_milestones"]], gamma=float(tcfg["lr_gamma"])
    )
    stream = TrainBatches(builder, tcfg["train_scales"], tcfg["batch_size"], seed)
    start, rows, seconds = 0, [], 0.0
    if resume_path.exists():
        try:
            # on the CPU: RNG states must stay CPU tensors; load_state_dict moves the rest
            state = load_checkpoint(resume_path, map_location="cpu")
        except ValueError as err:
            print(f"ignoring unreadable resume file: {err}", file=sys.stderr)
            state = None
        if state is not None and state.get("config_hash") == common["config_hash"]:
            model.load_state_dict(state["state_dict"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            stream.check_state(state["sampler"])
            set_rng_states(state["rng"])
            start, seconds = int(state["iteration"]), float(state["seconds"])
            rows = [r for r in state["history"].tolist()]
            print(f"resuming {common['model_name']} at iteration {start}/{iterations}")
        elif state is not None:
            print(f"{resume_path}: trained with another config; starting afresh", file=sys.stderr)
    stop = iterations if stop_at is None else min(iterations, int(stop_at))
    amp = bool(tcfg.get("amp", False)) and dev.type == "cuda"
    workers = int(tcfg.get("num_workers", 0))
    stream.start, stream.stop = start, stop
    batches = (
        torch.utils.data.DataLoader(
            stream,
            batch_size=None,
            num_workers=workers,
            pin_memory=dev.type == "cuda",
            # its own generator: drawing the workers' base seed must not move the global
            # torch RNG that training_loss uses (resume and worker count would change results)
            generator=torch.Generator().manual_seed(seed),
        )
        if workers > 0
        else iter(stream)
    )

    def save(path, it, complete):
        save_checkpoint(
            path,
            **common,
            state_dict=model.state_dict(),
            optimizer=opt.state_dict(),
            scheduler=sched.state_dict(),
            iteration=it,
            complete=complete,
            rng=rng_states(),
            sampler=stream.state_dict(),
            history=torch.tensor(rows, dtype=torch.float64).reshape(-1, 5),
            seconds=seconds,
        )

    model.train()
    tty = sys.stderr.isatty()
    bar = tqdm(
        total=iterations,
        initial=start,
        desc=f"train {common['model_name']}",
        disable=not progress,
        mininterval=1 if tty else 30,
        dynamic_ncols=True,
    )
    t_last = time.perf_counter()
    for it, cpu_batch in zip(range(start, stop), batches, strict=False):
        batch = _to(cpu_batch, dev)
        lr_now = opt.param_groups[0]["lr"]
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16) if amp else contextlib.nullcontext():
            loss, _ = model.training_loss(batch, step=it)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"{common['model_name']}: non-finite training loss {float(loss)} at iteration {it}"
            )
        loss.backward()
        opt.step()
        sched.step()
        done = it + 1
        val = math.nan
        if done % int(tcfg["val_every"]) == 0 or done == iterations:
            val = validation_loss(model, val_batches, dev, seed)
        now = time.perf_counter()
        seconds += now - t_last
        t_last = now
        loss_value = float(loss.detach())
        rows.append([done, loss_value, val, lr_now, seconds])
        bar.update(1)
        bar.set_postfix(
            loss=f"{loss_value:.3g}", val=f"{val:.3g}" if val == val else "-", refresh=False
        )
        if not math.isnan(val) and (bar.disable or not tty):  # a line per validation in logs
            print(
                f"iteration {done}/{iterations}: loss {loss_value:.4g}, val_loss {val:.4g}, "
                f"lr {lr_now:.3g}, {seconds:.1f} s",
                flush=True,
            )
        if done % int(tcfg["checkpoint_every"]) == 0 and done < iterations:
            save(resume_path, done, False)
            write_history(history_path, torch.tensor(rows, dtype=torch.float64))
    bar.close()
    done = int(rows[-1][0]) if rows else start
    if (
        done < iterations
    ):  # stopped early (stop_at): leave the resume state as an interruption would
        save(resume_path, done, False)
        return resume_path
    save(final_path, iterations, True)
    write_history(history_path, torch.tensor(rows, dtype=torch.float64).reshape(-1, 5))
    resume_path.unlink(missing_ok=True)
    return final_path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="model name, e.g. liif or nhcsr-no_scs")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--config-json", type=Path, help="config (JSON) as written by the workflow")
    src.add_argument("--preset", help="load config.yaml merged with this preset (name or path)")
    ap.add_argument("--data", type=Path, default=Path("results/data"))
    ap.add_argument("--out", type=Path, required=True, help="output folder of this model")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--stop-at", type=int, default=None, help="stop after this many iterations")
    ap.add_argument("--cache-mb", type=int, default=1024, help="decoded-sample cache (MiB)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.config_json is not None:
        with open(args.config_json) as fh:
            config = json.load(fh)
    else:
        from fesr.config import load_config

        config = load_config(args.preset)
    if args.threads:
        torch.set_num_threads(args.threads)
    path = train(
        args.model,
        config,
        args.data,
        args.out,
        device=args.device,
        stop_at=args.stop_at,
        progress=not args.no_progress,
        cache_mb=args.cache_mb,
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
